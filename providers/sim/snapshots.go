package sim

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Container snapshots as Proxmox VE 8 and 9 take them: the API of
// pve-container src/PVE/API2/LXC/Snapshot.pm, whose workers run
// pve-guest-common src/PVE/AbstractConfig.pm (snapshot_create,
// snapshot_delete, snapshot_rollback) with pve-container's
// src/PVE/LXC/Config.pm filling in the container parts, and pve-storage's
// volume_has_feature deciding which volumes can be snapshotted at all.

// snapshot is one section of a container's config ([name]) and the state of
// its volumes when it was taken.
type snapshot struct {
	name string
	// vals are the options __snapshot_copy_config copies: everything but
	// the description, lock, unusedN and the snapshot keys themselves
	// (parent is copied: it is the snapshot this one descends from).
	vals map[string]string
	lxc  [][2]string
	// description is the snapshot's own comment, not the container's.
	description string
	snaptime    int64
	// seq orders snapshots taken within one second.
	seq  int
	disk *disk
}

func (s *apiServer) snapshotRoutes() map[string]handler {
	return map[string]handler{
		"GET /nodes/{node}/lxc/{vmid}/snapshot": s.locked(func(r request) (any, *apiError) { return s.c.snapshotList(r.node(), r.vmid()) }),
		"POST /nodes/{node}/lxc/{vmid}/snapshot": s.locked(func(r request) (any, *apiError) {
			return s.c.snapshotCreate(r.who, r.node(), r.vmid(), r.params)
		}),
		"GET /nodes/{node}/lxc/{vmid}/snapshot/{snapname}": func(request) (any, *apiError) {
			// snapshot_cmd_idx checks nothing, not even that the snapshot exists.
			return []any{map[string]string{"cmd": "rollback"}, map[string]string{"cmd": "config"}}, nil
		},
		"DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}": s.locked(func(r request) (any, *apiError) {
			return s.c.snapshotDelete(r.who, r.node(), r.vmid(), r.params["snapname"])
		}),
		"POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback": s.locked(func(r request) (any, *apiError) {
			return s.c.snapshotRollback(r.who, r.node(), r.vmid(), r.params["snapname"], boolParam(r.params["start"]))
		}),
		"GET /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config": s.locked(func(r request) (any, *apiError) {
			return s.c.snapshotConfig(r.node(), r.vmid(), r.params["snapname"])
		}),
		"PUT /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config": s.locked(func(r request) (any, *apiError) {
			return s.c.snapshotUpdate(r.node(), r.vmid(), r.params)
		}),
	}
}

// snapshotList is Snapshot.pm's list: every snapshot with its time,
// comment and parent, and the entry "current" for the container as it is.
// Proxmox lists them in Perl's hash order; the simulator by age.
func (c *cluster) snapshotList(nodeName string, vmid int) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, sn := range g.snapshotsByAge() {
		item := map[string]any{"name": sn.name, "snaptime": sn.snaptime, "description": sn.description}
		if p, ok := sn.vals["parent"]; ok {
			item["parent"] = p
		}
		out = append(out, item)
	}
	running := 0
	if g.run != nil {
		running = 1
	}
	current := map[string]any{"name": "current", "digest": g.conf.digest(), "running": running, "description": "You are here!"}
	if p, ok := g.conf.vals["parent"]; ok {
		current["parent"] = p
	}
	return append(out, current), nil
}

func (g *guest) snapshotsByAge() []*snapshot {
	out := slices.Collect(maps.Values(g.snaps))
	slices.SortFunc(out, func(a, b *snapshot) int {
		return cmp.Or(cmp.Compare(a.snaptime, b.snaptime), cmp.Compare(a.seq, b.seq))
	})
	return out
}

// snapshotCreate is POST .../snapshot: the reserved names are refused at
// once, everything else (template, lock, a name in use, a volume that
// cannot be snapshotted) in the vzsnapshot worker, in __snapshot_prepare's
// order.
func (c *cluster) snapshotCreate(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	name := p["snapname"]
	if name == "current" || name == "vzdump" {
		return nil, die("unable to use snapshot name '%s' (reserved name)", name)
	}
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	t := c.startTask(nodeName, "vzsnapshot", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Snapshot), func(t *task) error {
		if g.isTemplate() {
			return errors.New("you can't take a snapshot if it's a template")
		}
		if err := g.checkLock(); err != nil {
			return errors.New(err.Reason)
		}
		if _, used := g.snaps[name]; used {
			return fmt.Errorf("snapshot name '%s' already used", name)
		}
		if !c.canSnapshot(g.conf.vals) {
			return errors.New("snapshot feature is not available")
		}
		// __snapshot_prepare drops a parent reference to the new name, left
		// over from a snapshot of that name deleted by force.
		for _, other := range g.snaps {
			if other.vals["parent"] == name {
				delete(other.vals, "parent")
			}
		}
		sn := &snapshot{name: name, vals: map[string]string{}, lxc: slices.Clone(g.conf.lxc), description: p["description"],
			snaptime: c.now().Unix(), seq: c.snapSeq(g), disk: g.disk.copy()}
		for k, v := range g.conf.vals {
			if k != "description" && !isIndexed(k, "unused") {
				sn.vals[k] = v
			}
		}
		if g.snaps == nil {
			g.snaps = map[string]*snapshot{}
		}
		g.snaps[name] = sn
		// __snapshot_commit: the container now descends from it.
		g.conf.vals["parent"] = name
		t.logf("create snapshot '%s'", name)
		return nil
	})
	return t.upid, nil
}

func (c *cluster) snapSeq(g *guest) int {
	n := 0
	for _, sn := range g.snaps {
		n = max(n, sn.seq+1)
	}
	return n
}

// canSnapshot is PVE::LXC::Config->has_feature('snapshot', ...) for the
// rootfs and every mount point: a bind or device mount point is no volume
// (pve-storage's volume_has_feature answers undef for a path), and of the
// storage plugins' volume_has_feature tables only LVM-thin, ZFS (pool and
// over iSCSI), Ceph RBD and BTRFS have the snapshot feature for a
// container's raw or subvol volume; directory, NFS, CIFS and CephFS
// (Plugin.pm) and plain LVM have it for qcow2 only.
func (c *cluster) canSnapshot(vals map[string]string) bool {
	for _, k := range append([]string{"rootfs"}, mountPointKeys(vals)...) {
		vol := mpVolume(vals[k])
		if mountKind(vol) != "volume" {
			return false
		}
		id, _, _ := strings.Cut(vol, ":")
		st, ok := c.storageDef(id)
		if !ok || !slices.Contains([]string{"lvmthin", "zfspool", "zfs", "rbd", "btrfs"}, st.Type) {
			return false
		}
	}
	return true
}

// snapshotDelete is DELETE .../snapshot/{snapname}: a vzdelsnapshot worker
// that takes the snapshot-delete lock, drops the snapshot and points what
// descended from it at its parent.
func (c *cluster) snapshotDelete(who caller, nodeName string, vmid int, name string) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	t := c.startTask(nodeName, "vzdelsnapshot", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Snapshot), func(t *task) error {
		sn := g.snaps[name]
		if sn == nil {
			return fmt.Errorf("snapshot '%s' does not exist", name)
		}
		if err := g.checkLock(); err != nil { // set_lock
			return errors.New(err.Reason)
		}
		if g.isTemplate() {
			return errors.New("you can't delete a snapshot if vm is a template")
		}
		relink := func(vals map[string]string) {
			if vals["parent"] != name {
				return
			}
			if p, ok := sn.vals["parent"]; ok {
				vals["parent"] = p
			} else {
				delete(vals, "parent")
			}
		}
		relink(g.conf.vals)
		for _, other := range g.snaps {
			if other != sn {
				relink(other.vals)
			}
		}
		delete(g.snaps, name)
		t.logf("delete snapshot '%s'", name)
		return nil
	})
	return t.upid, nil
}

// snapshotRollback is POST .../snapshot/{snapname}/rollback: a vzrollback
// worker that checks the volumes can go back (ZFS only to its most recent
// snapshot), stops a running container, puts the snapshot's config and
// volumes back, keeping the container's description and unusedN, sets
// parent to the snapshot, and with start=1 starts the container again.
func (c *cluster) snapshotRollback(who caller, nodeName string, vmid int, name string, start bool) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	t := c.startTask(nodeName, "vzrollback", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Snapshot), func(t *task) error {
		if g.isTemplate() {
			return errors.New("you can't rollback if vm is a template")
		}
		sn := g.snaps[name]
		if sn == nil {
			return fmt.Errorf("snapshot '%s' does not exist", name)
		}
		if err := c.rollbackPossible(g, sn); err != nil {
			return err
		}
		if err := g.checkLock(); err != nil {
			return errors.New(err.Reason)
		}
		if g.run != nil {
			// __snapshot_rollback_vm_stop: PVE::LXC::vm_stop($vmid, 1).
			if err := c.realStop(g); err != nil {
				return err
			}
			g.run = nil
		}
		conf := &ctConfig{vals: maps.Clone(sn.vals), lxc: slices.Clone(sn.lxc), pending: map[string]string{}}
		for k, v := range g.conf.vals {
			if k == "description" || isIndexed(k, "unused") {
				conf.vals[k] = v
			}
		}
		conf.vals["parent"] = name
		g.conf = conf
		g.disk = sn.disk.copy()
		t.logf("rollback to snapshot '%s'", name)
		if start {
			return c.startNow(t, g)
		}
		return nil
	})
	return t.upid, nil
}

// rollbackPossible is volume_rollback_is_possible of each volume's plugin
// (pve-storage src/PVE/Storage/*Plugin.pm): ZFS rolls back only to its
// most recent snapshot; LVM-thin, RBD and BTRFS to any.
func (c *cluster) rollbackPossible(g *guest, sn *snapshot) error {
	for _, k := range append([]string{"rootfs"}, mountPointKeys(sn.vals)...) {
		vol := mpVolume(sn.vals[k])
		id, _, _ := strings.Cut(vol, ":")
		if st, ok := c.storageDef(id); !ok || st.Type != "zfspool" {
			continue
		}
		for _, other := range g.snaps {
			if other.snaptime > sn.snaptime || other.snaptime == sn.snaptime && other.seq > sn.seq {
				return fmt.Errorf("can't rollback, '%s' is not most recent snapshot on '%s'", sn.name, vol)
			}
		}
	}
	return nil
}

// startNow is vm_start as the rollback's start=1 calls it, within the
// worker (pve-container src/PVE/API2/LXC/Status.pm).
func (c *cluster) startNow(t *task, g *guest) error {
	n := c.node(g.node)
	g.conf.applyPending()
	if err := lxcConfigError(n, g.conf.vals); err != nil {
		return err
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
	g.run = c.startRuntime(g)
	return nil
}

// snapshotConfig is GET .../snapshot/{snapname}/config
// (load_snapshot_config): the snapshot's section with the container's
// digest.
func (c *cluster) snapshotConfig(nodeName string, vmid int, name string) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	sn := g.snaps[name]
	if sn == nil {
		return nil, die("snapshot '%s' does not exist", name)
	}
	out := map[string]any{"digest": g.conf.digest(), "snaptime": sn.snaptime}
	for k, v := range sn.vals {
		out[k] = jsonValue(k, v)
	}
	if sn.description != "" {
		out["description"] = sn.description
	}
	if len(sn.lxc) > 0 {
		lines := [][]string{}
		for _, l := range sn.lxc {
			lines = append(lines, []string{l[0], l[1]})
		}
		out["lxc"] = lines
	}
	return out, nil
}

// snapshotUpdate is PUT .../snapshot/{snapname}/config: a new comment,
// synchronous; without one it does nothing at all.
func (c *cluster) snapshotUpdate(nodeName string, vmid int, p map[string]string) (any, *apiError) {
	d, ok := p["description"]
	if !ok {
		return nil, nil
	}
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if err := g.checkLock(); err != nil {
		return nil, err
	}
	sn := g.snaps[p["snapname"]]
	if sn == nil {
		return nil, die("snapshot '%s' does not exist", p["snapname"])
	}
	sn.description = d
	return nil, nil
}

// cloneSource is what clone_vm copies: the container as it is, or with
// snapname one of its snapshots, which is never running.
func (g *guest) cloneSource(snapname string) (*guest, *apiError) {
	if snapname == "" {
		return g, nil
	}
	sn := g.snaps[snapname]
	if sn == nil {
		return nil, die("snapshot '%s' does not exist", snapname)
	}
	conf := &ctConfig{vals: maps.Clone(sn.vals), lxc: slices.Clone(sn.lxc), pending: map[string]string{}}
	if sn.description != "" {
		// The snapshot's section has its comment as description, which
		// clone_vm copies like any other option.
		conf.vals["description"] = storeDescription(sn.description)
	}
	return &guest{vmid: g.vmid, node: g.node, conf: conf, lock: g.lock, disk: sn.disk}, nil
}

// linkedCloneable is volume_has_feature('clone', ...) for a root disk: a
// template's base volume on a storage with linked clones, or a snapshot on
// LVM-thin or RBD (their tables have clone => { snap => 1 }; ZFS's and
// BTRFS's subvols have no clone from a snapshot).
func linkedCloneable(src *guest, st WorldStorage, fromSnapshot bool) bool {
	if fromSnapshot {
		return st.Type == "lvmthin" || st.Type == "rbd"
	}
	return src.isTemplate() && st.LinkedClones()
}

// copy is the disk as a snapshot keeps it, or a rollback puts it back:
// every byte, the machine-id included.
func (d *disk) copy() *disk {
	c := *d
	c.files = maps.Clone(d.files)
	c.records = maps.Clone(d.records)
	return &c
}
