package sim

import (
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Mount points (mpN), as pve-container handles them. The property string
// (src/PVE/LXC/Config.pm, $mp_desc over $rootfs_desc) is
// [volume=]VOLUME,mp=PATH[,acl=0|1][,backup=0|1][,mountoptions=OPT;...]
// [,quota=0|1][,replicate=0|1][,ro=0|1][,shared=0|1][,size=N] (9.1 adds
// keepattrs); the API schema checks its keys. classify_mountpoint (same file)
// makes an absolute path under /dev/ a device mount point, any other
// absolute path a bind mount, and everything else a volume.

// newDiskRE is $NEW_DISK_RE (pve-container src/PVE/LXC.pm): STORAGE:SIZE_IN_GiB
// asks for a new volume.
var newDiskRE = regexp.MustCompile(`^([^:\s]+):(\d+(\.\d+)?)$`)

// mountKind is classify_mountpoint: volume, bind or device.
func mountKind(vol string) string {
	switch {
	case strings.HasPrefix(vol, "/dev/"):
		return "device"
	case strings.HasPrefix(vol, "/"):
		return "bind"
	}
	return "volume"
}

// mpVolume is the volume (or host path) of an mpN or rootfs value.
func mpVolume(v string) string { return propString(v, "volume")["volume"] }

// diskNumbers are the N of the vm-VMID-disk-N (and subvol-, base-) volumes
// that VMID owns on a storage, across every container's config: what
// find_free_diskname (pve-storage src/PVE/Storage/Plugin.pm) skips.
func (c *cluster) diskNumbers(storage string, vmid int) map[int]bool {
	re := regexp.MustCompile(fmt.Sprintf(`(?:^|/)(?:vm|subvol|base|basevol)-%d-disk-(\d+)`, vmid))
	used := map[int]bool{}
	for _, g := range c.guests {
		for k, v := range g.conf.vals {
			if k != "rootfs" && !isIndexed(k, "mp") && !isIndexed(k, "unused") {
				continue
			}
			vol := mpVolume(v)
			st, name, _ := strings.Cut(vol, ":")
			if st != storage {
				continue
			}
			for _, m := range re.FindAllStringSubmatch(name, -1) {
				n, _ := strconv.Atoi(m[1])
				used[n] = true
			}
		}
	}
	return used
}

// volumeNameN is the name vdisk_alloc gives a container's new volume: the
// first free disk number of the VMID on the storage, as a subvolume on ZFS
// and BTRFS, a raw file on directory storages, a volume elsewhere.
func (c *cluster) volumeNameN(st WorldStorage, vmid int, taken map[int]bool) string {
	used := c.diskNumbers(st.Name, vmid)
	n := 0
	for used[n] || taken[n] {
		n++
	}
	taken[n] = true
	switch st.Type {
	case "zfspool", "btrfs":
		return fmt.Sprintf("%s:subvol-%d-disk-%d", st.Name, vmid, n)
	case "dir", "nfs", "cephfs":
		return fmt.Sprintf("%s:%d/vm-%d-disk-%d.raw", st.Name, vmid, vmid, n)
	}
	return fmt.Sprintf("%s:vm-%d-disk-%d", st.Name, vmid, n)
}

// checkMountOptions is update_pct_config's check of an mpN value it is
// given (pve-container src/PVE/LXC/Config.pm): a volume's storage must hold
// container volumes ("rootdir"); a new volume's storage must also be enabled
// on the node (create_disks -> alloc_disk, which dies on a storage without
// rootdir too).
func (c *cluster) checkMountOptions(nodeName string, set map[string]string) *apiError {
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if !isIndexed(k, "mp") {
			continue
		}
		vol := mpVolume(set[k])
		if mountKind(vol) != "volume" {
			continue
		}
		id, _, _ := strings.Cut(vol, ":")
		def, ok := c.storageDef(id)
		if !ok {
			return die("storage '%s' does not exist", id)
		}
		if !slices.Contains(def.Content, "rootdir") {
			return die("storage '%s' does not allow content type 'rootdir' (Container)", id)
		}
		if newDiskRE.MatchString(vol) {
			if _, aerr := c.storageCheckEnabled(id, nodeName); aerr != nil {
				return aerr
			}
		}
	}
	return nil
}

// allocMount is create_disks (pve-container src/PVE/LXC.pm) for one mpN
// value: STORAGE:SIZE becomes a new volume, written back with its size
// (size=NG); any other value is kept.
func (c *cluster) allocMount(nodeName string, vmid int, v string, taken map[int]bool) string {
	parts := propString(v, "volume")
	m := newDiskRE.FindStringSubmatch(parts["volume"])
	if m == nil {
		return v
	}
	st, _ := c.storageCheckEnabled(m[1], nodeName)
	size, _ := strconv.ParseFloat(m[2], 64)
	parts["volume"] = c.volumeNameN(st, vmid, taken)
	parts["size"] = fmt.Sprintf("%dG", int(size))
	return printVolume(parts)
}

// unuseVolume is what vmconfig_apply_pending does with the volume of an mpN
// that is deleted or replaced on a stopped container (pve-container
// src/PVE/LXC/Config.pm): add_unused_volume keeps it as unusedN, unless
// another key still uses it. Bind and device mount points just go.
func unuseVolume(vals map[string]string, old string) {
	vol := mpVolume(old)
	if mountKind(vol) != "volume" || newDiskRE.MatchString(vol) {
		return
	}
	for k, v := range vals {
		if (k == "rootfs" || isIndexed(k, "mp") || isIndexed(k, "unused")) && mpVolume(v) == vol {
			return
		}
	}
	for i := 0; ; i++ {
		k := "unused" + strconv.Itoa(i)
		if _, ok := vals[k]; !ok {
			vals[k] = vol
			return
		}
	}
}

// missingBindDir is the check __mountpoint_mount makes of a bind mount
// (pve-container src/PVE/LXC.pm): "directory '/x' does not exist". Proxmox
// never creates the directory; at a start the pre-start hook dies with this
// and lxc-start fails.
func missingBindDir(n *node, vals map[string]string) error {
	for _, k := range mountPointKeys(vals) {
		if vol := mpVolume(vals[k]); mountKind(vol) == "bind" && !n.dirExists(vol) {
			return fmt.Errorf("directory '%s' does not exist", vol)
		}
	}
	return nil
}

// startMounts fails a start (vzstart, vzreboot) whose bind mount has no
// directory the way vm_start does: the hook's error goes to the task log,
// the task ends with "startup for container 'N' failed".
func startMounts(t *task, n *node, g *guest) error {
	if err := missingBindDir(n, g.conf.vals); err != nil {
		if t != nil {
			t.logf("mount_autodev: %v", err)
		}
		return fmt.Errorf("startup for container '%d' failed", g.vmid)
	}
	return nil
}

// cloneMountCheck is clone_vm's walk over the source's mount points, in key
// order before rootfs (pve-container src/PVE/API2/LXC.pm): a bind or device
// mount point cannot be cloned ("TODO: allow bind mounts?"), shared or
// not; a linked clone needs the clone feature of each volume's storage.
func (c *cluster) cloneMountCheck(src *guest, full bool) *apiError {
	for _, k := range mountPointKeys(src.conf.vals) {
		vol := mpVolume(src.conf.vals[k])
		if kind := mountKind(vol); kind != "volume" {
			return die("unable to clone mountpoint '%s' (type %s)", k, kind)
		}
		if full {
			if src.run != nil {
				return die("Full clone of a running container is only possible from a snapshot")
			}
			continue
		}
		id, _, _ := strings.Cut(vol, ":")
		if st, ok := c.storageDef(id); !ok || !src.isTemplate() || !st.LinkedClones() {
			return die("Linked clone feature for '%s' is not available", vol)
		}
	}
	return nil
}

// cloneMounts gives a clone's mount points their volumes: a copy on the
// target storage (full; dest is that storage, or empty for the source's) or
// a linked clone of the base volume (vdisk_clone: STORE:base-X-disk-N/vm-NEW-disk-M).
func (c *cluster) cloneMounts(conf *ctConfig, newid int, full bool, dest string, taken map[int]bool) {
	for _, k := range mountPointKeys(conf.vals) {
		parts := propString(conf.vals[k], "volume")
		id, name, _ := strings.Cut(parts["volume"], ":")
		st, _ := c.storageDef(cmpOr(dest, id))
		if full {
			parts["volume"] = c.volumeNameN(st, newid, taken)
		} else {
			vm := c.volumeNameN(st, newid, taken)
			_, vmName, _ := strings.Cut(vm, ":")
			parts["volume"] = id + ":" + name + "/" + vmName
		}
		conf.vals[k] = printVolume(parts)
	}
}

// hostDir is one directory on a node.
type hostDir struct{ uid, gid int }

// dirExists reports whether the node has a directory: one phoenix made, or
// one the world file lists, or a parent of either.
func (n *node) dirExists(p string) bool {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return true
	}
	for _, d := range slices.Concat(slices.Collect(maps.Keys(n.dirs)), n.Directories) {
		d = strings.TrimRight(d, "/")
		if d == p || strings.HasPrefix(d, p+"/") {
			return true
		}
	}
	return false
}

// dirOwner is the owner of a directory the node has: 0:0 unless phoenix
// gave it one.
func (n *node) dirOwner(p string) hostDir { return n.dirs[strings.TrimRight(p, "/")] }

// hostDirs models phoenix's host script that reads (check) and makes
// (apply) bind mount directories: mkdir -p, then chown.
func (c *cluster) hostDirs(n *node, x *script, stdout io.Writer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for line := range strings.SplitSeq(x.env["PHOENIX_DIRS"], "\n") {
		owner, path, ok := strings.Cut(line, " ")
		if !ok || path == "" {
			continue
		}
		switch x.phase {
		case "check":
			if n.dirExists(path) {
				o := n.dirOwner(path)
				fmt.Fprintf(&b, "dir %d:%d %s\n", o.uid, o.gid, path)
			} else {
				fmt.Fprintf(&b, "missing - %s\n", path)
			}
		case "apply":
			if n.dirs == nil {
				n.dirs = map[string]hostDir{}
			}
			d := n.dirs[strings.TrimRight(path, "/")]
			if u, g, ok := strings.Cut(owner, ":"); ok {
				d.uid, _ = strconv.Atoi(u)
				d.gid, _ = strconv.Atoi(g)
			}
			n.dirs[strings.TrimRight(path, "/")] = d
		}
	}
	c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, Phase: x.phase, OK: true})
	_, _ = io.WriteString(stdout, b.String())
	return 0
}
