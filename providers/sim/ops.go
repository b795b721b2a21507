package sim

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Operations on containers, one per API endpoint that changes something. Each
// runs with c.mu held, checks what Proxmox checks synchronously (answering at
// once with an error), and leaves the slow part to a task. Messages are
// Proxmox's own.

// propString splits a property string ("a=1,b=2", with an optional leading
// value for the default key) into its parts.
func propString(v, defaultKey string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(v, ",") {
		if part == "" {
			continue
		}
		if k, val, ok := strings.Cut(part, "="); ok {
			out[k] = val
		} else if defaultKey != "" {
			out[defaultKey] = part
		}
	}
	return out
}

// printVolume writes a disk's parts back (rootfs, mpN), the volume first
// without its key, as PVE::LXC::Config prints them.
func printVolume(parts map[string]string) string {
	var out []string
	if v, ok := parts["volume"]; ok {
		out = append(out, v)
	}
	for _, k := range slices.Sorted(maps.Keys(parts)) {
		if k != "volume" {
			out = append(out, k+"="+parts[k])
		}
	}
	return strings.Join(out, ",")
}

// configKey reports whether key is a container option at all.
func (c *cluster) configKey(key string) bool {
	if c.configMethod == nil {
		return true
	}
	switch key {
	case "node", "vmid", "delete", "digest", "revert":
		return false
	}
	_, ok := c.configMethod.Property(key)
	return ok
}

// checkModifyPerm is PVE's check_ct_modify_config_perm for the keys only
// root@pam may touch. Tokens never pass, not even root@pam's own.
func checkModifyPerm(who caller, oldConf map[string]string, set map[string]string, del []string) *apiError {
	if who.rootTicket() {
		return nil
	}
	keys := append(slices.Collect(maps.Keys(set)), del...)
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case isIndexed(k, "dev"):
			return permission("configuring device passthrough is only allowed for root@pam")
		case k == "hookscript":
			return permission("changing the hookscript is only allowed for root@pam")
		case k == "features":
			if privilegedFeatures(oldConf, set) {
				return permission("changing feature flags for privileged container is only allowed for root@pam")
			}
			if featuresBeyondNesting(oldConf["features"], set["features"]) {
				return permission("changing feature flags (except nesting) is only allowed for root@pam")
			}
		case k == "rootfs" || isIndexed(k, "mp"):
			if v, ok := set[k]; ok && strings.HasPrefix(propString(v, "volume")["volume"], "/") {
				kind := "bind"
				if strings.HasPrefix(propString(v, "volume")["volume"], "/dev/") {
					kind = "device"
				}
				return permission("mount point type " + kind + " is only allowed for root@pam")
			}
		}
	}
	return nil
}

// featuresBeyondNesting reports whether a features change touches any flag
// other than nesting.
func featuresBeyondNesting(oldV, newV string) bool {
	o, n := propString(oldV, ""), propString(newV, "")
	for _, k := range slices.Concat(slices.Collect(maps.Keys(o)), slices.Collect(maps.Keys(n))) {
		if k != "nesting" && o[k] != n[k] {
			return true
		}
	}
	return false
}

// deviceMissing is PVE::LXC::Tools::get_device_mode_and_rdev (pve-container
// src/PVE/LXC/Tools.pm): the device a devN value names must exist on the
// host.
func deviceMissing(n *node, value string) error {
	if p := devPath(value); !n.hasDevice(p) {
		return fmt.Errorf("Device %s does not exist", p) //lint:ignore ST1005 Proxmox VE's own text
	}
	return nil
}

// checkOptions is update_pct_config's walk over the options set, in key
// order, before anything is saved (pve-container src/PVE/LXC/Config.pm):
// since 556ddd3 (2024-04, "fix invalid device passthrough being added to
// config") a devN whose device the node lacks dies there, a 500 with the
// message and no parameter map; a netN with an mtu reads its bridge
// (netMTUError).
func checkOptions(n *node, set map[string]string) *apiError {
	for _, k := range slices.Sorted(maps.Keys(set)) {
		switch {
		case isIndexed(k, "dev"):
			if err := deviceMissing(n, set[k]); err != nil {
				return die("%v", err)
			}
		case isIndexed(k, "net"):
			if err := netMTUError(n, k, set[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// lxcConfigError is what update_lxc_config (pve-container src/PVE/LXC.pm)
// dies with when it writes a container's lxc config, after PUT .../config
// saved a change (a 500, the change kept) and in vm_start before lxc-start
// runs (a failed vzstart or vzreboot): first a passed-through device the node
// lacks (foreach_passthrough_device reads each device's numbers), then a
// bridge (missingBridge). Templates have no lxc config. The devices come in
// index order here; Proxmox walks them in Perl's hash order, so with
// several missing it names any one of them.
func lxcConfigError(n *node, vals map[string]string) error {
	if vals["template"] == "1" {
		return nil
	}
	for _, k := range sortedDevKeys(vals) {
		if err := deviceMissing(n, vals[k]); err != nil {
			return err
		}
	}
	return missingBridge(n, vals)
}

// volumeName is the root disk a storage type gives a new container.
func volumeName(st WorldStorage, vmid int) string {
	switch st.Type {
	case "zfspool", "btrfs":
		return fmt.Sprintf("%s:subvol-%d-disk-0", st.Name, vmid)
	case "dir", "nfs", "cephfs":
		return fmt.Sprintf("%s:%d/vm-%d-disk-0.raw", st.Name, vmid, vmid)
	}
	return fmt.Sprintf("%s:vm-%d-disk-0", st.Name, vmid)
}

// rootfsStorage returns the storage ID of a rootfs value.
func rootfsStorage(v string) string {
	vol := propString(v, "volume")["volume"]
	s, _, _ := strings.Cut(vol, ":")
	return s
}

// rootfsSizeGiB reads size=NG from a rootfs value.
func rootfsSizeGiB(v string) int {
	size := propString(v, "volume")["size"]
	n, _ := strconv.Atoi(strings.TrimSuffix(size, "G"))
	return n
}

func boolParam(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// createParams are the create parameters that are not config options.
var createOnly = []string{"vmid", "ostemplate", "storage", "start", "password", "ssh-public-keys",
	"pool", "restore", "force", "unique", "ignore-unpack-errors", "bwlimit", "node"}

func (c *cluster) create(who caller, nodeName string, p map[string]string) (any, *apiError) {
	n := c.node(nodeName)
	vmid, _ := strconv.Atoi(p["vmid"])
	// pve-container src/PVE/API2/LXC.pm create_vm: Sys.Modify on / for a
	// privileged container, the VMID unused, then VM.Allocate on it, refused
	// without naming it (raise_perm_exc()).
	if p["unprivileged"] == "0" {
		if err := c.check(who, "/", false, "Sys.Modify"); err != nil {
			return nil, err
		}
	}
	if err := c.vmidUsed(vmid); err != nil {
		return nil, err
	}
	if !c.can(who, fmt.Sprintf("/vms/%d", vmid), "VM.Allocate") {
		return nil, permission("")
	}
	set := map[string]string{}
	for k, v := range p {
		if !slices.Contains(createOnly, k) {
			set[k] = v
		}
	}
	if err := checkModifyPerm(who, nil, set, nil); err != nil {
		return nil, err
	}
	// check_volume_access (pve-storage src/PVE/Storage.pm) parses the
	// template's volume ID against storage.cfg: a storage it does not know
	// dies here; whether the file is there shows only in the worker.
	templateStorage, _, _ := strings.Cut(p["ostemplate"], ":")
	if _, ok := c.storageDef(templateStorage); !ok && strings.Contains(p["ostemplate"], ":") {
		return nil, die("storage '%s' does not exist", templateStorage)
	}
	storageName := p["storage"]
	if storageName == "" {
		storageName = "local"
	}
	rootfs := set["rootfs"]
	if rootfs == "" {
		rootfs = storageName + ":4"
	}
	vol := propString(rootfs, "volume")["volume"]
	stName, sizeText, _ := strings.Cut(vol, ":")
	// create_vm's check_and_activate_storage (pve-container
	// src/PVE/API2/LXC.pm): enabled on this node, holding rootdir, then
	// activated, all before the worker starts.
	st, aerr := c.storageCheckEnabled(stName, nodeName)
	if aerr != nil {
		return nil, aerr
	}
	if !slices.Contains(st.Content, "rootdir") {
		return nil, paramError(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support container directories", stName)})
	}
	if err := activateStorage(st); err != nil {
		return nil, die("%v", err)
	}
	// Then update_pct_config checks the options, in key order.
	if err := checkOptions(n, set); err != nil {
		return nil, err
	}
	if err := c.checkMountOptions(nodeName, set); err != nil {
		return nil, err
	}
	size, err := strconv.ParseFloat(sizeText, 64)
	if err != nil || size <= 0 {
		return nil, die("unable to parse volume ID '%s'", vol)
	}
	g := &guest{vmid: vmid, node: nodeName, conf: newConfig(), lock: "create", disk: newDisk(p["ostemplate"])}
	// Creating from an OS template generates the SSH host keys
	// (pve-container src/PVE/LXC/Create.pm, ssh key generation in setup).
	g.disk.hostKeys, g.disk.machineID = c.randomID(), c.randomID()
	for k, v := range set {
		switch {
		case k == "tags":
			v = normalizeTags(v)
		case k == "description":
			v = storeDescription(v)
		}
		g.conf.vals[k] = v
	}
	// In key order: the MACs come from the seeded source.
	for _, k := range slices.Sorted(maps.Keys(g.conf.vals)) {
		if isIndexed(k, "net") {
			g.conf.vals[k] = c.applyNet(g.conf.vals[k])
		}
	}
	g.conf.vals["rootfs"] = fmt.Sprintf("%s,size=%dG", volumeName(st, vmid), int(size))
	g.conf.vals["arch"] = "amd64"
	g.conf.vals["ostype"] = g.disk.osID
	for k, def := range map[string]string{"hostname": fmt.Sprintf("CT%d", vmid), "memory": "512", "swap": "512"} {
		if _, ok := g.conf.vals[k]; !ok {
			g.conf.vals[k] = def
		}
	}
	// PVE 9 creates unprivileged containers unless told otherwise; 8 does
	// the opposite. The key is written only when true.
	if _, ok := g.conf.vals["unprivileged"]; !ok && versionAtLeast(c.world.Spec.Version, 9) {
		g.conf.vals["unprivileged"] = "1"
	}
	if g.conf.vals["unprivileged"] == "0" {
		delete(g.conf.vals, "unprivileged")
	}
	c.guests[vmid] = g
	// create_disks allocates the new mount point volumes after the root
	// disk, in key order.
	taken := map[int]bool{}
	for _, k := range mountPointKeys(g.conf.vals) {
		g.conf.vals[k] = c.allocMount(nodeName, vmid, g.conf.vals[k], taken)
	}
	start := boolParam(p["start"])
	// create_vm's worker (pve-container src/PVE/API2/LXC.pm) destroys the
	// new container's config and disks on any error, a signal's included.
	fail := func(err error) error {
		delete(c.guests, vmid)
		return fmt.Errorf("unable to create CT %d - %v", vmid, err)
	}
	t := c.startTask(nodeName, "vzcreate", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Create), func(t *task) error {
		// The worker allocates the root disk, then restore_archive
		// (pve-container src/PVE/LXC/Create.pm) checks the template's
		// storage and activates it to find the file.
		if err := allocError(st); err != nil {
			return fail(err)
		}
		if strings.Contains(p["ostemplate"], ":") {
			tst, aerr := c.storageCheckEnabled(templateStorage, nodeName)
			if aerr != nil {
				return fail(errors.New(aerr.Reason))
			}
			if err := activateStorage(tst); err != nil {
				return fail(err)
			}
		}
		if !slices.Contains(c.osTemplates(n), p["ostemplate"]) {
			return fail(fmt.Errorf("can't find file '%s'", p["ostemplate"]))
		}
		if err := c.realCreate(g, p["ostemplate"]); err != nil {
			return fail(err)
		}
		t.logf("extracting archive '%s'", p["ostemplate"])
		t.logf("Total bytes read: 527769600 (504MiB, 96MiB/s)")
		t.logf("Detected container architecture: amd64")
		g.lock = ""
		if start {
			// create_vm calls the start API (vm_start, src/PVE/API2/LXC/Status.pm),
			// which forks a vzstart worker of its own: the create task ends
			// as that start begins, the container runs only once it is done,
			// and the create succeeded even when the start fails (a bridge
			// is missing).
			c.startTask(nodeName, "vzstart", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Start), c.vzstart(g))
		}
		return nil
	})
	t.interrupt = fail
	return t.upid, nil
}

func versionAtLeast(v string, major int) bool {
	m, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(m)
	return n >= major
}

// applyNet is a netN value as Proxmox applies it, at create, on a stopped
// CT, at a hot-plug and at a clone: parse_lxc_network (pve-container
// src/PVE/LXC/Config.pm) adds type=veth and, when the value has no hwaddr, a
// new random MAC with the datacenter's mac_prefix (default BC:24:11, the
// rest from PVE::Tools::random_ether_addr), then print_lxc_network writes it
// back (printNet). A value sent without hwaddr so gets a new MAC every time.
func (c *cluster) applyNet(v string) string {
	parts := propString(v, "")
	if parts["hwaddr"] == "" {
		parts["hwaddr"] = fmt.Sprintf("BC:24:11:%02X:%02X:%02X", c.rng.IntN(256), c.rng.IntN(256), c.rng.IntN(256))
	}
	parts["type"] = "veth"
	return printNet(parts)
}

func (c *cluster) clone(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	src, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	n := c.node(nodeName)
	target := nodeName
	if t := p["target"]; t != "" {
		if c.node(t) == nil {
			return nil, die("no such cluster node '%s'", t)
		}
		target = t
	}
	destStorage, haveDest := WorldStorage{}, false
	if s := p["storage"]; s != "" {
		// clone_vm (pve-container src/PVE/API2/LXC.pm) checks the storage
		// is enabled here, then on the target node, then that it is shared.
		ds, aerr := c.storageCheckEnabled(s, nodeName)
		if aerr != nil {
			return nil, aerr
		}
		if target != nodeName {
			if ds, aerr = c.storageCheckEnabled(s, target); aerr != nil {
				return nil, aerr
			}
			if !ds.IsShared() {
				return nil, die("can't clone to non-shared storage '%s'", s)
			}
		}
		destStorage, haveDest = ds, true
	}
	// The source is locked synchronously, before the worker: a second clone
	// of the same source fails at once with the lock error.
	if err := src.checkLock(); err != nil {
		return nil, err
	}
	newid, _ := strconv.Atoi(p["newid"])
	if err := c.vmidUsed(newid); err != nil {
		return nil, err
	}
	full := !src.isTemplate()
	if v, ok := p["full"]; ok {
		full = boolParam(v)
	}
	if haveDest && !full {
		return nil, die("parameter 'storage' not allowed for linked clones")
	}
	// With snapname, clone_vm copies the snapshot's config and volumes
	// instead of the current ones (snapshots.go).
	view, aerr := src.cloneSource(p["snapname"])
	if aerr != nil {
		return nil, aerr
	}
	// clone_vm walks the config in key order: mpN before rootfs.
	if err := c.cloneMountCheck(view, full); err != nil {
		return nil, err
	}
	volume := propString(view.conf.vals["rootfs"], "volume")["volume"]
	srcStorage := rootfsStorage(view.conf.vals["rootfs"])
	st, _ := n.storage(srcStorage)
	if full && view.run != nil {
		return nil, die("Full clone of a running container is only possible from a snapshot")
	}
	if !full && !linkedCloneable(view, st, p["snapname"] != "") {
		return nil, die("Linked clone feature for '%s' is not available", volume)
	}
	if target != nodeName && !st.IsShared() {
		return nil, die("can't clone CT to node '%s' (CT uses local storage)", target)
	}
	if !haveDest {
		destStorage = st
	}
	src.lock = "disk"
	conf := view.conf.clone()
	conf.pending, conf.pendingDel = map[string]string{}, nil
	for _, k := range []string{"template", "parent", "snaptime", "snapstate"} {
		delete(conf.vals, k)
	}
	for _, k := range slices.Sorted(maps.Keys(conf.vals)) {
		v := conf.vals[k]
		// clone_vm (pve-container src/PVE/API2/LXC.pm) gives every
		// interface a new MAC.
		if isIndexed(k, "net") {
			parts := propString(v, "")
			delete(parts, "hwaddr")
			conf.vals[k] = c.applyNet(printNet(parts))
		}
		if isIndexed(k, "unused") {
			delete(conf.vals, k)
		}
	}
	if h := p["hostname"]; h != "" {
		conf.vals["hostname"] = h
	}
	if d := p["description"]; d != "" {
		conf.vals["description"] = storeDescription(d)
	}
	size := rootfsSizeGiB(view.conf.vals["rootfs"])
	if full || p["snapname"] != "" {
		// A linked clone of a snapshot is a new thin volume of its own
		// (vdisk_clone with a snapshot: no base volume in its name).
		conf.vals["rootfs"] = fmt.Sprintf("%s,size=%dG", volumeName(destStorage, newid), size)
	} else {
		base := strings.TrimPrefix(volume, srcStorage+":")
		conf.vals["rootfs"] = fmt.Sprintf("%s:%s/vm-%d-disk-0,size=%dG", srcStorage, base, newid, size)
	}
	dest := ""
	if haveDest {
		dest = destStorage.Name
	}
	c.cloneMounts(conf, newid, full, dest, map[int]bool{0: true})
	dst := &guest{vmid: newid, node: target, conf: conf, lock: "create", disk: view.disk.clone()}
	c.guests[newid] = dst
	d := c.world.Spec.Durations.Clone
	if full {
		d = c.world.Spec.Durations.FullClone
	}
	// Full clones to one storage run at once: clone_vm holds the source's
	// config lock ('disk') for the whole clone, and the storage's lock only
	// while the new volume is allocated (pve-container src/PVE/LXC.pm
	// copy_volume -> alloc_disk -> pve-storage src/PVE/Storage.pm
	// vdisk_alloc -> cluster_lock_storage), not while it is copied. What
	// bounds them is a bandwidth limit per copy (bwlimit 'clone'), not a
	// number. Only a clone that would wait for the lock longer than its
	// timeout (10 s: pve-common PVE::Tools lock_file_full, pve-cluster
	// PVE::Cluster cfs_lock) fails on it.
	wait, lockErr := c.allocate(full, nodeName, destStorage)
	t := c.startTask(nodeName, "vzclone", strconv.Itoa(vmid), who, c.world.Scaled(d)+wait, func(t *task) error {
		t.logf("creating a clone of container %d with ID %d", vmid, newid)
		if lockErr != nil {
			src.lock = ""
			delete(c.guests, newid)
			return fmt.Errorf("clone failed: %v", lockErr)
		}
		if full {
			t.logf("create full clone of mountpoint rootfs (%s)", volume)
		} else {
			t.logf("create linked clone of mount point rootfs (%s)", volume)
		}
		if err := c.realClone(src, dst); err != nil {
			src.lock = ""
			delete(c.guests, newid)
			return fmt.Errorf("clone failed: %v", err)
		}
		src.lock = ""
		dst.lock = ""
		c.cloneFirewall(vmid, newid)
		return nil
	})
	// clone_vm unlocks the source in any case and, on an error, removes
	// the new container (pve-container src/PVE/API2/LXC.pm).
	t.interrupt = func(err error) error {
		src.lock = ""
		delete(c.guests, newid)
		return fmt.Errorf("clone failed: %v", err)
	}
	return t.upid, nil
}

// changeable finds a container a config change may go to: it exists, holds
// no lock, and (when the request sends one) its digest still matches, which
// Proxmox checks in this order.
func (c *cluster) changeable(nodeName string, vmid int, p map[string]string) (*guest, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if err := g.checkLock(); err != nil {
		return nil, err
	}
	if d, ok := p["digest"]; ok && d != g.conf.digest() {
		return nil, die("detected modified configuration - file changed by other user? Try again.")
	}
	return g, nil
}

// setConfig is PUT .../config: synchronous, digest-checked, hot-plugged or
// pending on a running container.
func (c *cluster) setConfig(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	g, err := c.changeable(nodeName, vmid, p)
	if err != nil {
		return nil, err
	}
	options := 0
	for k := range p {
		if k != "node" && k != "vmid" && k != "digest" {
			options++
		}
	}
	if options == 0 {
		return nil, die("no options specified")
	}
	var del []string
	for k := range strings.SplitSeq(p["delete"], ",") {
		if k = strings.TrimSpace(k); k != "" {
			del = append(del, k)
		}
	}
	set := map[string]string{}
	for k, v := range p {
		if k != "delete" && k != "digest" && k != "revert" && k != "node" && k != "vmid" {
			set[k] = v
		}
	}
	if err := checkModifyPerm(who, g.conf.effective(), set, del); err != nil {
		return nil, err
	}
	for _, k := range del {
		if _, both := set[k]; both {
			return nil, paramError(map[string]string{"delete": "you can't use '-" + k + "' and -delete " + k + "' at the same time"})
		}
		if !c.configKey(k) {
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("unknown option '%s'", k)})
		}
		switch k {
		case "memory", "rootfs", "ostype":
			return nil, die("unable to delete required option '%s'", k)
		case "unprivileged":
			return nil, die("unable to delete read-only option: 'unprivileged'")
		}
	}
	if v, ok := set["unprivileged"]; ok && boolParam(v) != (g.conf.vals["unprivileged"] == "1") {
		return nil, die("unable to modify read-only option: 'unprivileged'")
	}
	running := g.run != nil
	n := c.node(nodeName)
	if err := checkOptions(n, set); err != nil {
		return nil, err
	}
	if err := c.checkMountOptions(nodeName, set); err != nil {
		return nil, err
	}
	vals := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		v := set[k]
		switch {
		case k == "tags":
			v = normalizeTags(v)
		case k == "description":
			v = storeDescription(v)
		case isIndexed(k, "net"):
			// Hot-plugged or applied, the value goes through
			// parse_lxc_network: without hwaddr it is a new MAC, which on a
			// running CT recreates the interface.
			v = c.applyNet(v)
		}
		vals[k] = v
	}
	// update_vm (pve-container src/PVE/API2/LXC/Config.pm) writes nothing
	// when a hot-plug failed, except what update_net wrote itself on the way.
	orig := g.conf.clone()
	var written *ctConfig
	for _, k := range del {
		if _, set := g.conf.effective()[k]; !set {
			continue // Proxmox only warns: "cannot delete 'k' - not set in current configuration!"
		}
		if running && !hotplug(k, true) {
			if !slices.Contains(g.conf.pendingDel, k) {
				g.conf.pendingDel = append(g.conf.pendingDel, k)
			}
			delete(g.conf.pending, k)
			continue
		}
		if isIndexed(k, "mp") {
			old := g.conf.vals[k]
			delete(g.conf.vals, k)
			unuseVolume(g.conf.vals, old)
		}
		delete(g.conf.vals, k)
		delete(g.conf.pending, k)
	}
	errs := map[string]string{}
	taken := map[int]bool{}
	var replaced []string // volumes of replaced mount points
	keys := slices.Sorted(maps.Keys(vals))
	for i, k := range keys {
		v := vals[k]
		old, existing := g.conf.vals[k]
		if running && isIndexed(k, "net") {
			msg, recreated := hotplugNetError(n, old, existing, v)
			if recreated {
				delete(g.conf.vals, k)
				written = writtenMidHotplug(g.conf, keys[i+1:], vals)
			}
			if msg != "" {
				errs[k] = "unable to hotplug " + k + ": " + msg
				continue
			}
		}
		if running && !hotplug(k, existing) {
			g.conf.pendingDel = slices.DeleteFunc(g.conf.pendingDel, func(x string) bool { return x == k })
			if existing && old == v {
				// cleanup_pending (pve-guest-common src/PVE/AbstractConfig.pm)
				// drops a pending value equal to the current one.
				delete(g.conf.pending, k)
				continue
			}
			g.conf.pending[k] = v
			continue
		}
		if isIndexed(k, "mp") {
			// apply_pending_mountpoint: a new volume is allocated; on a
			// running CT the mount point is hot-plugged, which fails for a
			// bind mount whose directory is missing (__mountpoint_mount).
			if vol := mpVolume(v); running && mountKind(vol) == "bind" && !n.dirExists(vol) {
				errs[k] = fmt.Sprintf("unable to hotplug %s: directory '%s' does not exist", k, vol)
				continue
			}
			v = c.allocMount(nodeName, g.vmid, v, taken)
			if existing {
				replaced = append(replaced, old)
			}
		}
		if running && isIndexed(k, "dev") {
			// device_passthrough_hotplug (pve-container src/PVE/LXC.pm)
			// creates the node inside at once; what the config keeps
			// afterwards does not undo that.
			if p := devPath(v); !slices.Contains(g.run.hotplugged, p) {
				g.run.hotplugged = append(g.run.hotplugged, p)
				g.run.access[p] = accessOf(v)
			}
		}
		g.conf.vals[k] = v
	}
	if len(errs) > 0 {
		g.conf = orig
		if written != nil {
			g.conf = written
		}
		return nil, paramError(errs)
	}
	for _, old := range replaced {
		unuseVolume(g.conf.vals, old)
	}
	// After writing the config, update_vm regenerates the lxc config, which
	// stats every passed-through device and reads every bridge's MTU: the
	// change is saved, the answer a 500.
	if err := lxcConfigError(n, g.conf.vals); err != nil {
		return nil, die("%v", err)
	}
	return nil, nil
}

// fastplug are PVE::LXC::Config's LXC_FASTPLUG_OPTIONS: on a running
// container they move from pending into the config before anything is
// hot-plugged.
var fastplug = []string{"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"}

// writtenMidHotplug is the config update_net writes when it recreates an
// interface (pve-container src/PVE/LXC.pm): the options handled so far, the
// fast-plug ones, and everything still to be hot-plugged as pending, the
// interface itself gone.
func writtenMidHotplug(conf *ctConfig, rest []string, vals map[string]string) *ctConfig {
	w := conf.clone()
	for _, k := range rest {
		if slices.Contains(fastplug, k) {
			w.vals[k] = vals[k]
			continue
		}
		w.pending[k] = vals[k]
		w.pendingDel = slices.DeleteFunc(w.pendingDel, func(x string) bool { return x == k })
	}
	return w
}

func (c *cluster) start(who caller, nodeName string, vmid int) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.run != nil {
		return nil, die("CT %d already running", vmid)
	}
	t := c.startTask(nodeName, "vzstart", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Start), c.vzstart(g))
	return t.upid, nil
}

// vzstart is the start API's worker, whether the API was called by a client
// or by a create with start=1.
func (c *cluster) vzstart(g *guest) func(t *task) error {
	return func(t *task) error {
		n := c.node(g.node)
		// Start checks the template flag and the lock inside the worker: a
		// failed task, not a 500.
		if g.isTemplate() {
			return errors.New("you can't start a CT if it's a template")
		}
		if err := g.checkLock(); err != nil {
			return errors.New(err.Reason)
		}
		// vm_start (pve-container src/PVE/LXC.pm) applies what is pending
		// and saves it, then regenerates the lxc config before lxc-start
		// runs: a passed device that is not there (nvidia-uvm not loaded
		// after a host reboot) or a missing bridge fails the task.
		g.conf.applyPending()
		if err := lxcConfigError(n, g.conf.vals); err != nil {
			return err
		}
		if g.run != nil {
			// The API refuses a start only while the container runs when
			// it is asked (check_running); a start asked for while another
			// was under way waits for the config lock that one holds, then
			// goes through vm_start all the same, and its `systemctl start
			// pve-container@VMID` of an active unit does nothing.
			return nil
		}
		if err := startMounts(t, n, g); err != nil {
			return err
		}
		if err := startIDMap(t, n, g); err != nil {
			return err
		}
		if err := c.realStart(g); err != nil {
			return err
		}
		if g.run == nil { // else another start won while the real one ran
			g.run = c.startRuntime(g)
		}
		return nil
	}
}

func (c *cluster) stop(who caller, nodeName string, vmid int, typ string) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.run == nil {
		return nil, die("CT %d not running", vmid)
	}
	d := c.world.Spec.Durations.Stop
	if typ == "vzshutdown" {
		d = c.world.Spec.Durations.Shutdown
	}
	t := c.startTask(nodeName, typ, strconv.Itoa(vmid), who, c.world.Scaled(d), func(t *task) error {
		if g.lock != "" && !(typ == "vzstop" && g.lock == "mounted") {
			return fmt.Errorf("CT is locked (%s)", g.lock)
		}
		if err := c.realStop(g); err != nil {
			return err
		}
		g.stopped()
		return nil
	})
	return t.upid, nil
}

func (c *cluster) reboot(who caller, nodeName string, vmid int) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.run == nil {
		return nil, die("VM %d not running", vmid) // sic: reboot says VM
	}
	t := c.startTask(nodeName, "vzreboot", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Reboot), func(t *task) error {
		if g.run == nil {
			return fmt.Errorf("CT %d not running", vmid)
		}
		// vm_reboot stops the container (the poststop hook applies what is
		// pending), then vm_start fails like a start does (pve-container
		// src/PVE/LXC.pm): the container stays stopped.
		if err := c.realStop(g); err != nil {
			return err
		}
		g.stopped()
		if err := lxcConfigError(c.node(g.node), g.conf.vals); err != nil {
			return err
		}
		if err := startMounts(t, c.node(g.node), g); err != nil {
			return err
		}
		if err := startIDMap(t, c.node(g.node), g); err != nil {
			return err
		}
		if err := c.realStart(g); err != nil {
			return err
		}
		g.run = c.startRuntime(g)
		return nil
	})
	return t.upid, nil
}

// template converts a container in the background and answers null: the
// worker's UPID is not returned, so clients find it in the task list or poll
// the config for template: 1, which a worker that failed never writes.
func (c *cluster) template(who caller, nodeName string, vmid int) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if err := g.checkLock(); err != nil {
		return nil, err
	}
	// pve-container src/PVE/API2/LXC.pm template: snapshots first, then
	// the template flag, then the run state.
	if len(g.snaps) > 0 {
		return nil, die("unable to create template, because CT contains snapshots")
	}
	if g.isTemplate() {
		return nil, die("you can't convert a template to a template")
	}
	if g.run != nil {
		return nil, die("you can't convert a CT to template if the CT is running")
	}
	c.startTask(nodeName, "vztemplate", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Template), func(t *task) error {
		return c.templateCreate(g)
	})
	return nil, nil
}

// templateCreate is PVE::LXC::template_create (pve-container src/PVE/LXC.pm):
// every volume (rootfs, then the volume mount points) must have the
// storage's template feature, then each is activated and renamed to a base
// volume (create_base); only then does the worker write template: 1.
func (c *cluster) templateCreate(g *guest) error {
	n := c.node(g.node)
	var keys []string
	for _, k := range append([]string{"rootfs"}, mountPointKeys(g.conf.vals)...) {
		// Bind and device mount points are no volumes.
		if vol := propString(g.conf.vals[k], "volume")["volume"]; strings.Contains(vol, ":") && !strings.HasPrefix(vol, "/") {
			keys = append(keys, k)
		}
	}
	// volume_has_feature (pve-storage src/PVE/Storage.pm) reads the
	// storage's storage.cfg entry only; activate_volumes then checks that
	// it is enabled here and activates it.
	stores := map[string]WorldStorage{}
	for _, k := range keys {
		vol := propString(g.conf.vals[k], "volume")["volume"]
		id, _, _ := strings.Cut(vol, ":")
		st, ok := c.storageDef(id)
		if !ok {
			return fmt.Errorf("storage '%s' does not exist", id)
		}
		if !st.TemplateFeature() {
			return fmt.Errorf("Template feature is not available for '%s'", vol) //lint:ignore ST1005 Proxmox VE's own text
		}
	}
	for _, k := range keys {
		id, _, _ := strings.Cut(propString(g.conf.vals[k], "volume")["volume"], ":")
		st, aerr := c.storageCheckEnabled(id, n.Name)
		if aerr != nil {
			return errors.New(aerr.Reason)
		}
		if err := activateStorage(st); err != nil {
			return err
		}
		stores[k] = st
	}
	for _, k := range keys {
		mp := propString(g.conf.vals[k], "volume")
		mp["volume"] = baseVolume(stores[k], mp["volume"], g.vmid)
		g.conf.vals[k] = printVolume(mp)
	}
	g.conf.vals["template"] = "1"
	return nil
}

// mountPointKeys lists mp0..mp255 present in a config, by index.
func mountPointKeys(vals map[string]string) []string {
	var keys []string
	for k := range vals {
		if isIndexed(k, "mp") {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int { return atoiOr0(a[2:]) - atoiOr0(b[2:]) })
	return keys
}

// baseVolume is the name create_base gives a volume (pve-storage
// src/PVE/Storage/*Plugin.pm): vm- becomes base-, and on ZFS a subvol-
// becomes basevol-; a linked clone's base part stays.
func baseVolume(st WorldStorage, vol string, vmid int) string {
	vol = strings.Replace(vol, fmt.Sprintf("vm-%d-disk", vmid), fmt.Sprintf("base-%d-disk", vmid), 1)
	if st.Type == "zfspool" {
		vol = strings.Replace(vol, fmt.Sprintf("subvol-%d-disk", vmid), fmt.Sprintf("basevol-%d-disk", vmid), 1)
	}
	return vol
}

func (c *cluster) destroy(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.conf.vals["protection"] == "1" {
		return nil, die("can't remove CT %d - protection mode enabled", vmid)
	}
	if err := g.checkLock(); err != nil {
		return nil, err
	}
	if g.run != nil && !boolParam(p["force"]) {
		return nil, die("unable to destroy CT %d - container is running", vmid)
	}
	g.lock = "destroyed"
	t := c.startTask(nodeName, "vzdestroy", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Destroy), func(t *task) error {
		base := propString(g.conf.vals["rootfs"], "volume")["volume"]
		for _, other := range c.guests {
			if other != g && strings.Contains(other.conf.vals["rootfs"], base+"/") {
				g.lock = ""
				return fmt.Errorf("base volume '%s' is still in use by linked clone", base)
			}
		}
		if g.run != nil {
			t.logf("forced to stop CT %d before destroying!", vmid)
			g.run = nil
		}
		if err := c.realDestroy(vmid); err != nil {
			g.lock = ""
			return err
		}
		delete(c.guests, vmid)
		c.removeFirewall(vmid)
		t.logf("Logical volume \"%s\" successfully removed.", strings.TrimPrefix(base, rootfsStorage(g.conf.vals["rootfs"])+":"))
		return nil
	})
	return t.upid, nil
}

func (c *cluster) resize(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	g, err := c.changeable(nodeName, vmid, p)
	if err != nil {
		return nil, err
	}
	disk := p["disk"]
	if disk != "rootfs" {
		if _, ok := g.conf.vals[disk]; !ok {
			return nil, die("unable to parse volume ID '%s'", p["disk"])
		}
		// resize_vm's parse_volname (pve-storage) of a bind mount's path.
		if vol := mpVolume(g.conf.vals[disk]); mountKind(vol) != "volume" {
			return nil, die("unable to parse volume ID '%s'", vol)
		}
	}
	cur := rootfsSizeGiB(g.conf.vals[disk])
	spec := p["size"]
	rel := strings.HasPrefix(spec, "+")
	num, err2 := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(spec, "+"), "G"), 64)
	if err2 != nil {
		return nil, paramError(map[string]string{"size": "value does not match the regex pattern"})
	}
	want := int(num)
	if rel {
		want = cur + int(num)
	}
	if want < cur {
		return nil, die("unable to shrink disk size")
	}
	if want == cur {
		return nil, die("disk is already at specified size")
	}
	t := c.startTask(nodeName, "resize", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Resize), func(t *task) error {
		root := propString(g.conf.vals[disk], "volume")
		root["size"] = fmt.Sprintf("%dG", want)
		g.conf.vals[disk] = printVolume(root)
		t.logf("Size of logical volume changed from %d.00 GiB to %d.00 GiB.", cur, want)
		return nil
	})
	return t.upid, nil
}

// storageLockTimeout is how long Proxmox VE waits for a storage's lock.
const storageLockTimeout = 10 * time.Second

// allocate takes a full clone's turn at its storage's lock: how long it
// waits for the allocations before it, or the error of a wait longer than
// the lock's timeout. A storage of one node has a lock per node (a file
// under /var/lock/pve-manager), a shared one a lock in the cluster's
// filesystem.
func (c *cluster) allocate(full bool, node string, st WorldStorage) (time.Duration, error) {
	if !full {
		return 0, nil
	}
	key := st.Name
	if !st.IsShared() {
		key = node + "/" + st.Name
	}
	now := c.now()
	free := c.storageFree[key]
	if free.Before(now) {
		free = now
	}
	wait := free.Sub(now)
	if wait > c.world.Scaled(Duration(storageLockTimeout)) {
		if st.IsShared() {
			return c.world.Scaled(Duration(storageLockTimeout)), fmt.Errorf("cfs-lock 'storage-%s' error: got lock request timeout", st.Name)
		}
		return c.world.Scaled(Duration(storageLockTimeout)), fmt.Errorf("can't lock file '/var/lock/pve-manager/pve-storage-%s' - got timeout", st.Name)
	}
	c.storageFree[key] = free.Add(c.world.Scaled(c.world.Spec.Durations.Alloc))
	return wait, nil
}
