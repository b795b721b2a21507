package sim

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Storages as pve-storage sees them. Proxmox keeps one storage.cfg for the
// whole cluster; the world lists storages per node, so a storage ID is one
// storage.cfg entry (CheckWorld makes the nodes agree on it), and a storage
// that some nodes lack carries a "nodes" restriction naming the others.

// storageIDs lists every storage ID of the cluster.
func (c *cluster) storageIDs() []string {
	ids := map[string]bool{}
	for _, n := range c.nodes {
		for _, st := range n.Storages {
			ids[st.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(ids))
}

// storageDef is a storage's storage.cfg entry.
func (c *cluster) storageDef(id string) (WorldStorage, bool) {
	for _, n := range c.nodes {
		if st, ok := n.storage(id); ok {
			return st, true
		}
	}
	return WorldStorage{}, false
}

// storageOnNode is PVE::Storage::storage_check_node (pve-storage
// src/PVE/Storage.pm): a storage every node lists has no "nodes" restriction
// and passes for any node name, known or not.
func (c *cluster) storageOnNode(id, nodeName string) bool {
	everywhere := true
	for _, n := range c.nodes {
		_, ok := n.storage(id)
		if ok && n.Name == nodeName {
			return true
		}
		everywhere = everywhere && ok
	}
	return everywhere
}

// storageCheckEnabled is PVE::Storage::storage_check_enabled (pve-storage
// src/PVE/Storage.pm): the storage exists in storage.cfg, is not disabled
// there, and is not restricted to other nodes. It returns the node's view of
// the storage.
func (c *cluster) storageCheckEnabled(id, nodeName string) (WorldStorage, *apiError) {
	def, ok := c.storageDef(id)
	switch {
	case !ok:
		return WorldStorage{}, die("storage '%s' does not exist", id)
	case !def.IsEnabled():
		return WorldStorage{}, die("storage '%s' is disabled", id)
	case !c.storageOnNode(id, nodeName):
		return WorldStorage{}, die("storage '%s' is not available on node '%s'", id, nodeName)
	}
	if n := c.node(nodeName); n != nil {
		if st, ok := n.storage(id); ok {
			return st, nil
		}
	}
	return def, nil
}

// TemplateFeature reports whether the storage can hold base volumes, which
// converting a container to a template needs: the template feature of its
// plugin's volume_has_feature (pve-storage src/PVE/Storage/*Plugin.pm) for a
// container's current volume. Plugin.pm (directory, NFS, CIFS, CephFS,
// GlusterFS), LvmThinPlugin.pm, ZFSPoolPlugin.pm, ZFSPlugin.pm, RBDPlugin.pm
// and BTRFSPlugin.pm have it; LVMPlugin.pm's is commented out, and the iSCSI,
// PBS and ESXi plugins have none.
func (s WorldStorage) TemplateFeature() bool {
	return !slices.Contains([]string{"lvm", "iscsi", "iscsidirect", "pbs", "esxi"}, s.Type)
}

// storagePath is the directory of a path-based storage: the installer's
// /var/lib/vz for local, /mnt/pve/<id> for the storages the GUI adds.
func storagePath(st WorldStorage) string {
	if st.Name == "local" {
		return "/var/lib/vz"
	}
	return "/mnt/pve/" + st.Name
}

// thinPool is the thin pool of every simulated lvmthin storage: the
// installer's pve/data for local-lvm, and the same name in the volume group
// of any other.
const thinPool = "data"

// lvmThinVG is the volume group behind an lvmthin storage: the installer's
// pve for local-lvm, else one named after the storage.
func lvmThinVG(st WorldStorage) string {
	if st.Name == "local-lvm" {
		return "pve"
	}
	return st.Name
}

// zfsPool is the pool a zfspool storage imports: rpool for the installer's
// local-zfs (rpool/data), else a pool named after the storage.
func zfsPool(st WorldStorage) string {
	if st.Name == "local-zfs" {
		return "rpool"
	}
	return st.Name
}

// inactiveModelled lists the storage types whose failure to activate the
// simulator reproduces; CheckWorld refuses "active: false" on the others
// rather than guess their messages.
func inactiveModelled(typ string) bool {
	return slices.Contains([]string{"dir", "btrfs", "nfs", "cifs", "lvm", "lvmthin", "zfspool"}, typ)
}

// activateStorage is PVE::Storage::activate_storage (pve-storage
// src/PVE/Storage.pm) on a storage the node cannot activate: the message each
// plugin dies with. NFS and CIFS fail their connection check ("is not
// online"); a directory or BTRFS storage marked is_mountpoint whose mount is
// missing fails in DirPlugin.pm/BTRFSPlugin.pm; LvmThinPlugin.pm cannot find
// its thin pool; ZFSPoolPlugin.pm cannot import its pool. LVMPlugin.pm's
// activation only rescans and never fails: its missing volume group shows
// when a volume is allocated (allocError).
func activateStorage(st WorldStorage) error {
	if st.IsActive() {
		return nil
	}
	switch st.Type {
	case "nfs", "cifs":
		return fmt.Errorf("storage '%s' is not online", st.Name)
	case "dir", "btrfs":
		return fmt.Errorf("unable to activate storage '%s' - directory is expected to be a mount point but is not mounted: '%s'",
			st.Name, storagePath(st))
	case "lvmthin":
		return fmt.Errorf("no such logical volume %s/%s", lvmThinVG(st), thinPool)
	case "zfspool":
		return fmt.Errorf("could not activate storage '%s', zfs error: cannot import '%s': no such pool available",
			st.Name, zfsPool(st))
	}
	return nil
}

// allocError is what allocating a volume on the storage dies with, after
// activation passed: an LVM storage whose volume group is gone
// (LVMPlugin.pm alloc_lvm_image).
func allocError(st WorldStorage) error {
	if !st.IsActive() && st.Type == "lvm" {
		return fmt.Errorf("no such volume group '%s'", st.Name)
	}
	return nil
}

// storageTotal is the size the storage's plugin reports, fixed per type.
func storageTotal(st WorldStorage) int64 {
	switch st.Type {
	case "dir", "btrfs":
		return 100861726720 // the installer's root LV on a 128 GB disk
	case "lvmthin":
		return 373553102848
	case "zfspool":
		return 965739291648
	}
	return 1 << 40
}

// storageUsed is the space the simulated volumes take on a storage as one node
// sees it: the root file system under local, OS templates, root disks of the
// node's containers (of every node's, on a shared storage).
func (c *cluster) storageUsed(n *node, st WorldStorage) int64 {
	var used int64
	if st.Name == "local" {
		used += 12 * gib
	}
	for _, t := range c.osTemplates(n) {
		if strings.HasPrefix(t, st.Name+":") {
			used += templateSize
		}
	}
	for _, g := range c.guests {
		if (g.node == n.Name || st.IsShared()) && rootfsStorage(g.conf.vals["rootfs"]) == st.Name {
			used += int64(rootfsSizeGiB(g.conf.vals["rootfs"])) * gib
		}
	}
	return min(used, storageTotal(st))
}

// osTemplates lists the OS template volumes a node finds: its own, and those
// the world lists on other nodes on a shared storage this node has too.
func (c *cluster) osTemplates(n *node) []string {
	out := slices.Clone(n.OSTemplates)
	for _, other := range c.nodes {
		for _, t := range other.OSTemplates {
			id, _, _ := strings.Cut(t, ":")
			if st, ok := n.storage(id); ok && st.IsShared() && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// templateSize is the size of every OS template volume (the real
// ubuntu-24.04-standard_24.04-2 archive's).
const templateSize = 141589318

// defaultFormat is the default disk format of every plugin the simulator
// has (get_formats in Proxmox VE 9.1).
const defaultFormat = "raw"

// storageFormats are a plugin's disk formats: get_formats in Proxmox VE 9.1
// (the plugindata of DirPlugin.pm, NFSPlugin.pm, CIFSPlugin.pm,
// BTRFSPlugin.pm, ZFSPoolPlugin.pm; LVMPlugin.pm's override; raw for the
// plugins without), and whether 8.3's plugindata had a format at all.
func storageFormats(typ string) (valid []string, inPlugindata83 bool) {
	switch typ {
	case "dir":
		return []string{"qcow2", "raw", "subvol", "vmdk"}, true
	case "nfs", "cifs":
		return []string{"qcow2", "raw", "vmdk"}, true
	case "btrfs", "zfspool":
		return []string{"raw", "subvol"}, true
	}
	return []string{"raw"}, false
}

// formatInfo adds what storage_info gives with format=1 (pve-storage
// src/PVE/Storage.pm): since 9.1 the structured formats and the deprecated
// format pair; before, only the plugin's format pair, and only where the
// plugin has one.
func formatInfo(e map[string]any, st WorldStorage, version string) {
	valid, old := storageFormats(st.Type)
	def := defaultFormat
	hash := map[string]int{}
	for _, f := range valid {
		hash[f] = 1
	}
	switch {
	case versionAtLeastMinor(version, 9, 1):
		e["formats"] = map[string]any{"supported": valid, "default": def}
		e["format"] = []any{hash, def}
	case old:
		e["format"] = []any{hash, def}
	}
	if st.Type == "iscsi" || st.Type == "iscsidirect" {
		e["select_existing"] = 1
	}
}

// versionAtLeastMinor compares a version's major.minor.
func versionAtLeastMinor(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	ma, _ := strconv.Atoi(parts[0])
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(parts[1])
	}
	return ma > major || ma == major && mi >= minor
}

// splitList is PVE::Tools::split_list: a list separated by commas,
// semicolons or white space.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' })
}

// storageIndex is GET /nodes/{node}/storage, as pve-storage's
// src/PVE/API2/Storage/Status.pm answers it on top of storage_info
// (src/PVE/Storage.pm):
//   - every storage of storage.cfg is listed, also one disabled or restricted
//     to other nodes (enabled 0, active 0, sizes 0);
//   - content keeps only storages holding one of the listed types, and of
//     those only the enabled ones;
//   - a storage the node cannot activate is enabled 1, active 0, sizes 0, and
//     without used_fraction (only set when there is a total);
//   - storage names one entry, and is a parameter error ("No such storage.")
//     when the content filter or storage.cfg has no such entry;
//   - enabled=1 drops storages disabled in storage.cfg, but not those
//     restricted to other nodes: the handler checks only "disable";
//   - target (another node) keeps the shared storages both nodes reach;
//   - format adds the plugin's formats, for enabled storages only.
func (s *apiServer) storageIndex(r request) (any, *apiError) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(r.node())
	if n == nil {
		return nil, die("no such cluster node '%s'", r.node())
	}
	content, filtered := r.params["content"]
	ctypes := splitList(content)
	info := map[string]map[string]any{}
	for _, id := range c.storageIDs() {
		def, _ := c.storageDef(id)
		enabled := def.IsEnabled() && c.storageOnNode(id, n.Name)
		if filtered && (!enabled || !slices.ContainsFunc(ctypes, func(t string) bool { return slices.Contains(def.Content, t) })) {
			continue
		}
		e := map[string]any{
			"type": def.Type, "content": strings.Join(def.Content, ","), "shared": boolInt(def.IsShared()),
			"enabled": boolInt(enabled), "active": 0, "total": 0, "used": 0, "avail": 0,
		}
		if enabled {
			st, _ := n.storage(id)
			if boolParam(r.params["format"]) {
				formatInfo(e, st, c.world.Spec.Version)
			}
			// An activation that fails is only warned about; a plugin whose
			// status finds nothing (LVM without its volume group) reports
			// inactive: either way the entry stays at active 0.
			if st.IsActive() {
				total, used := storageTotal(st), c.storageUsed(n, st)
				e["total"], e["used"], e["avail"], e["active"] = total, used, total-used, 1
			}
		}
		info[id] = e
	}
	only := r.params["storage"]
	if only != "" && info[only] == nil {
		return nil, paramError(map[string]string{"storage": "No such storage."})
	}
	target := r.params["target"]
	if target == n.Name || target == "localhost" {
		target = ""
	}
	out := map[string]map[string]any{}
	for id, e := range info {
		def, _ := c.storageDef(id)
		switch {
		case only != "" && id != only:
			continue
		case boolParam(r.params["enabled"]) && !def.IsEnabled():
			continue
		case target != "" && (!def.IsShared() || !c.storageOnNode(id, n.Name) || !c.storageOnNode(id, target)):
			continue
		}
		if total, _ := e["total"].(int64); total > 0 {
			e["used_fraction"] = float64(e["used"].(int64)) / float64(total)
		}
		out[id] = e
	}
	return c.hashToArray(out, "storage"), nil
}

// hashToArray is PVE::RESTHandler::hash_to_array (pve-common): the entries
// in the order of a Perl hash, which is no order at all. An order drawn from
// the world's seed stands in for it (without touching the random source the
// faults draw from), so that no client comes to rely on a sorted answer.
func (c *cluster) hashToArray(entries map[string]map[string]any, idprop string) []any {
	key := func(k string) uint64 {
		h := fnv.New64a()
		_ = binary.Write(h, binary.LittleEndian, c.world.Spec.Seed)
		h.Write([]byte(k))
		return h.Sum64()
	}
	keys := slices.Sorted(maps.Keys(entries))
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(key(a), key(b)) })
	out := []any{}
	for _, k := range keys {
		entries[k][idprop] = k
		out = append(out, entries[k])
	}
	return out
}
