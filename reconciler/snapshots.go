package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Snapshots around phoenix's changes (spec/snapshots.go). A Container whose
// spec asks for them gets, on a pass that changes it, a before snapshot
// ahead of every other change, and an after snapshot once it converged;
// phoenix then deletes its own snapshots of that kind beyond keep, never a
// snapshot it did not name.
//
// The plan stays level-triggered: the after snapshot's comment holds the
// guest's state stamp (its config, but for the keys a snapshot itself
// changes, and its records), and an after snapshot is due whenever the
// newest after snapshot's stamp is not the guest's. So the plan a pass
// approved still shows it when the apply engine plans the guest again, once
// its other changes are done; and a guest that first asks for after
// snapshots gets one.
//
// Proxmox keeps the container's description out of a snapshot
// (pve-guest-common AbstractConfig.pm __snapshot_copy_config) and keeps the
// current one on a rollback (__snapshot_apply_config): a rollback by hand
// puts back the config and the disk, but phoenix's records stay as they
// were before it.

// SnapshotKind is before or after.
const (
	SnapshotBefore = "before"
	SnapshotAfter  = "after"
)

// SnapshotChange is what a Snapshot change takes and deletes.
type SnapshotChange struct {
	// Kind is before or after.
	Kind string `json:"kind"`
	// Name is the snapshot's fixed name (spec snapshots.name); empty, the
	// apply names it with its kind's prefix and the time.
	Name string `json:"name,omitempty"`
	// Replace deletes the snapshot of the fixed name first.
	Replace bool `json:"replace,omitempty"`
	// Prune are phoenix's snapshots of the kind deleted afterwards, beyond keep.
	Prune []string `json:"prune,omitempty"`
}

// snapshotStampPrefix starts the line of a snapshot's comment that holds
// the guest's state stamp.
const snapshotStampPrefix = "phoenix-state: "

// snapshotCapableTypes are the storage types whose plugins have the
// snapshot feature for a container's raw or subvol volume (pve-storage
// src/PVE/Storage/*Plugin.pm volume_has_feature): LVM-thin, ZFS, Ceph RBD
// and BTRFS. Directory, NFS, CIFS, CephFS and plain LVM snapshot qcow2 only.
var snapshotCapableTypes = []string{"lvmthin", "zfspool", "zfs", "rbd", "btrfs"}

// snapshotSpec is the guest's snapshots block, nil where it asks for none.
func snapshotSpec(r *spec.Resolved) *spec.Snapshots {
	if r == nil || r.Guest == nil || r.IsTemplate() || !r.Guest.Spec.Snapshots.Wanted() {
		return nil
	}
	return r.Guest.Spec.Snapshots
}

// snapshotsWanted reports whether the spec of the guest at vmid asks for
// snapshots: only then are its snapshots read.
// A container that is cloned from (from.container) has them read too.
func snapshotsWanted(res *spec.Resolution, vmid int) bool {
	r := specAt(res, vmid)
	if r == nil || r.VMID != vmid {
		return false
	}
	if snapshotSpec(r) != nil {
		return true
	}
	for _, name := range r.Children {
		if c, ok := res.Guest(name); ok && c.Guest != nil && c.Guest.Spec.From.Container != "" {
			return true
		}
	}
	return false
}

// sourceSnapshotProblem reports a clone of a container's snapshot
// (from.container) whose snapshot will not be there to clone: the source
// exists, its snapshots were read, the snapshot is not among them, and the
// source's plan does not take it (as its fixed after snapshot).
func (p *planner) sourceSnapshotProblem(r *spec.Resolved) *Problem {
	name := r.Guest.Spec.From.Snapshot
	src, ok := p.res.Guest(r.Parent)
	if !ok {
		return nil
	}
	if sp := p.planned[src.Name]; sp != nil && slices.ContainsFunc(sp.Changes, func(c Change) bool {
		return c.Action == TakeSnapshot && c.Snapshot != nil && c.Snapshot.Name == name
	}) {
		return nil
	}
	og := p.obs.Guests[p.targetOf(src).vmid]
	if og == nil {
		// Made in this plan: only its own after snapshot can be there.
		if s := snapshotSpec(src); s != nil && s.After && s.Name == name {
			return nil
		}
		pr := problem(ProblemSpec, "%s is to be cloned from snapshot %s of %s, which %s's plan does not take: give %s snapshots: {after: true, name: %s}, or take the snapshot by hand", r.Name, name, src.Name, src.Name, src.Name, name)
		return &pr
	}
	if og.SnapshotsErr != nil {
		pr := problem(ProblemObserve, "reading the snapshots of %s failed: %v", src.Name, og.SnapshotsErr)
		return &pr
	}
	if !slices.ContainsFunc(og.Snapshots, func(x Snapshot) bool { return x.Name == name }) {
		pr := problem(ProblemSpec, "%s has no snapshot %s to clone, and its plan does not take one: give %s snapshots: {after: true, name: %s}, or take the snapshot by hand", src.Name, name, src.Name, name)
		return &pr
	}
	return nil
}

// observeSnapshots reads a guest's snapshots, and its node's storage
// types, where its spec asks for snapshots.
func observeSnapshots(rd reader, cluster Cluster, res *spec.Resolution, og *ObservedGuest) {
	if !snapshotsWanted(res, og.VMID) {
		return
	}
	og.SnapshotsErr = rd.retry(fmt.Sprintf("read the snapshots of %d", og.VMID), func() error {
		return fillSnapshots(rd.ctx, cluster, og)
	})
}

// readSnapshots is observeSnapshots for the apply engine's reads.
func readSnapshots(ctx context.Context, cluster Cluster, res *spec.Resolution, og *ObservedGuest) error {
	if !snapshotsWanted(res, og.VMID) {
		return nil
	}
	return fillSnapshots(ctx, cluster, og)
}

func fillSnapshots(ctx context.Context, cluster Cluster, og *ObservedGuest) error {
	snaps, err := cluster.Snapshots(ctx, og.Node, og.VMID)
	if err != nil {
		return err
	}
	storages, err := cluster.Storages(ctx, og.Node)
	if err != nil {
		return err
	}
	og.Snapshots, og.StorageTypes = snaps, map[string]string{}
	for _, s := range storages {
		og.StorageTypes[s.Name] = s.Type
	}
	return nil
}

// cannotSnapshot says why Proxmox would refuse a snapshot of a container
// with this config ("snapshot feature is not available"), or "".
func cannotSnapshot(values map[string]string, types map[string]string) string {
	keys := []string{"rootfs"}
	for k := range values {
		if k != "rootfs" && isMountKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys[1:])
	for _, k := range keys {
		vol, _, _ := strings.Cut(values[k], ",")
		vol = strings.TrimPrefix(vol, "volume=")
		if strings.HasPrefix(vol, "/") {
			return fmt.Sprintf("%s is a bind or device mount point, which Proxmox cannot snapshot", k)
		}
		id, _, _ := strings.Cut(vol, ":")
		typ, known := types[id]
		if !known {
			return fmt.Sprintf("storage %s of %s is not on the node's storage list", id, k)
		}
		if !slices.Contains(snapshotCapableTypes, typ) {
			return fmt.Sprintf("storage %s (%s) cannot snapshot a container volume", id, typ)
		}
	}
	return ""
}

func isMountKey(k string) bool {
	rest, ok := strings.CutPrefix(k, "mp")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// snapshotWorthy reports whether a change alters the container's config or
// disk: what a snapshot guards. Starting or stopping it, its services' run
// state, its firewall and the node's directories are not in a snapshot.
func snapshotWorthy(a Action) bool {
	switch a {
	case UpdateConfig, Resize, Restart, RenewIdentity, InstallFeature, ReinstallFeature, UninstallFeature, Adopt, WriteFile:
		return true
	}
	return false
}

// snapshotStamp is the guest's state as an after snapshot records it: its
// config, but for what a snapshot or phoenix's error record changes, its
// raw lxc lines, and its feature records and identity.
func snapshotStamp(og *ObservedGuest) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(og.Config.Values)) {
		switch k {
		case "description", "digest", "parent", "lock", "snaptime", "snapstate":
			continue
		}
		fmt.Fprintf(h, "%s: %s\n", k, og.Config.Values[k])
	}
	for _, l := range og.Config.LXC {
		fmt.Fprintf(h, "%s: %s\n", l[0], l[1])
	}
	if og.State != nil {
		b, _ := json.Marshal(struct {
			Features map[string]FeatureRecord `json:"f"`
			Identity any                      `json:"i"`
		}{og.State.Features, og.State.Identity})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// stampOf reads the state stamp from a snapshot's comment.
func stampOf(s Snapshot) string {
	for line := range strings.SplitSeq(s.Description, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), snapshotStampPrefix); ok {
			return v
		}
	}
	return ""
}

// ownSnapshots are phoenix's timestamped snapshots of a kind, oldest first.
func ownSnapshots(snaps []Snapshot, kind string) []Snapshot {
	prefix := spec.SnapshotBeforePrefix
	if kind == SnapshotAfter {
		prefix = spec.SnapshotAfterPrefix
	}
	var out []Snapshot
	for _, s := range snaps {
		if strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// snapshotChange plans taking one snapshot of a kind and the deletions
// beyond keep that follow it.
func snapshotChange(s *spec.Snapshots, kind string, snaps []Snapshot) SnapshotChange {
	c := SnapshotChange{Kind: kind}
	if kind == SnapshotAfter && s.Name != "" {
		c.Name = s.Name
		c.Replace = slices.ContainsFunc(snaps, func(x Snapshot) bool { return x.Name == s.Name })
		return c
	}
	own := ownSnapshots(snaps, kind)
	for i := 0; i < len(own)+1-s.KeepCount(); i++ {
		c.Prune = append(c.Prune, own[i].Name)
	}
	return c
}

// afterDue reports whether the newest after snapshot does not record the
// guest as it is.
func afterDue(s *spec.Snapshots, og *ObservedGuest) bool {
	var newest *Snapshot
	if s.Name != "" {
		if i := slices.IndexFunc(og.Snapshots, func(x Snapshot) bool { return x.Name == s.Name }); i >= 0 {
			newest = &og.Snapshots[i]
		}
	} else if own := ownSnapshots(og.Snapshots, SnapshotAfter); len(own) > 0 {
		newest = &own[len(own)-1]
	}
	return newest == nil || stampOf(*newest) != snapshotStamp(og)
}

// snapshots adds the before and after snapshots to a guest's plan. made
// marks a guest this plan makes: it has nothing to go back to, and gets
// only the after snapshot, where its storage can take one.
func (p *planner) snapshots(g *GuestPlan, r *spec.Resolved, og *ObservedGuest, made bool) {
	s := snapshotSpec(r)
	if s == nil || len(g.Errors) > 0 {
		return
	}
	worthy := slices.ContainsFunc(g.Changes, func(c Change) bool { return snapshotWorthy(c.Action) })
	if made {
		if !s.After {
			return
		}
		if inv := p.obs.Inventory[r.Settings.Node]; inv != nil && (r.Parent == "" || r.Settings.CloneMode == spec.CloneFull) {
			types := map[string]string{}
			for _, st := range inv.Storages {
				types[st.Name] = st.Type
			}
			if typ, ok := types[r.Settings.Storage]; ok && !slices.Contains(snapshotCapableTypes, typ) {
				g.Notes = append(g.Notes, fmt.Sprintf("snapshots skipped: storage %s (%s) cannot snapshot a container volume", r.Settings.Storage, typ))
				return
			}
		}
		c := SnapshotChange{Kind: SnapshotAfter, Name: s.Name}
		g.Changes = append(g.Changes, Change{Action: TakeSnapshot, Snapshot: &c, Reason: "after snapshot of the new container, once it converged"})
		return
	}
	if og.SnapshotsErr != nil {
		g.Notes = append(g.Notes, fmt.Sprintf("snapshots skipped: reading them failed: %v", og.SnapshotsErr))
		return
	}
	if why := cannotSnapshot(og.Config.Values, og.StorageTypes); why != "" {
		if worthy || s.After && afterDue(s, og) {
			g.Notes = append(g.Notes, "snapshots skipped: "+why)
		}
		return
	}
	if worthy && s.Before {
		c := snapshotChange(s, SnapshotBefore, og.Snapshots)
		at := 0
		if len(g.Changes) > 0 && g.Changes[0].Action == Adopt {
			at = 1 // the headline stays adopt
		}
		g.Changes = slices.Insert(g.Changes, at, Change{Action: TakeSnapshot, Snapshot: &c, Reason: "before phoenix changes the container" + pruneReason(c, s)})
		if s.Rollback {
			g.Notes = append(g.Notes, "should a change fail, the container is rolled back to the before snapshot (snapshots.rollback)")
		}
	}
	if s.After && (worthy || afterDue(s, og)) {
		c := snapshotChange(s, SnapshotAfter, og.Snapshots)
		reason := "once the container converged"
		if !worthy {
			reason = "the container is not as its newest after snapshot recorded it"
		}
		g.Changes = append(g.Changes, Change{Action: TakeSnapshot, Snapshot: &c, Reason: reason + pruneReason(c, s)})
	}
}

func pruneReason(c SnapshotChange, s *spec.Snapshots) string {
	switch {
	case c.Replace:
		return fmt.Sprintf("; %s is made again", c.Name)
	case len(c.Prune) > 0:
		return fmt.Sprintf("; then deletes %s (keep: %d)", strings.Join(c.Prune, ", "), s.KeepCount())
	}
	return ""
}

// snapshotWhat names a snapshot change in the text plan.
func snapshotWhat(c *SnapshotChange) string {
	if c == nil {
		return "snapshot"
	}
	name := c.Name
	if name == "" {
		prefix := spec.SnapshotBeforePrefix
		if c.Kind == SnapshotAfter {
			prefix = spec.SnapshotAfterPrefix
		}
		name = prefix + "<time>"
	}
	return fmt.Sprintf("snapshot %s (%s)", c.Kind, name)
}

// snapshotName is the name a snapshot change takes.
func (e *engine) snapshotName(c SnapshotChange) string {
	if c.Name != "" {
		return c.Name
	}
	prefix := spec.SnapshotBeforePrefix
	if c.Kind == SnapshotAfter {
		prefix = spec.SnapshotAfterPrefix
	}
	return prefix + e.opts.Now().UTC().Format(spec.SnapshotTimeLayout)
}

// snapshot takes the change's snapshot, its comment recording the guest's
// state stamp, then deletes what the change prunes.
func (e *engine) snapshot(ctx context.Context, j *job, g GuestPlan, og *ObservedGuest, c Change) error {
	if c.Snapshot == nil || og == nil {
		return fmt.Errorf("snapshot of %s: nothing to snapshot", g.Name)
	}
	sc := *c.Snapshot
	name := e.snapshotName(sc)
	if sc.Name == "" {
		// Two of a kind within a second (a quick second pass): a name of
		// its own all the same.
		base := name
		for i := 2; slices.ContainsFunc(og.Snapshots, func(x Snapshot) bool { return x.Name == name }); i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
	}
	if sc.Replace {
		if err := e.retry(ctx, g, Event{Action: TakeSnapshot, Step: "delete " + name}, func() error {
			return e.cluster.DeleteSnapshot(ctx, g.Node, g.VMID, name)
		}); err != nil {
			return err
		}
	}
	desc := fmt.Sprintf("phoenix: %s %s\n%s%s", sc.Kind, g.Name, snapshotStampPrefix, snapshotStamp(og))
	if err := e.retry(ctx, g, Event{Action: TakeSnapshot, Step: "take " + name}, func() error {
		return e.cluster.CreateSnapshot(ctx, g.Node, g.VMID, name, desc)
	}); err != nil {
		return err
	}
	if sc.Kind == SnapshotBefore {
		// What a rollback puts back: the snapshot, and the record the
		// guest had when it was taken (Proxmox keeps the description).
		j.before = &takenSnapshot{name: name, user: og.User, state: og.State}
	}
	for _, old := range sc.Prune {
		if err := e.retry(ctx, g, Event{Action: TakeSnapshot, Step: "delete " + old}, func() error {
			return e.cluster.DeleteSnapshot(ctx, g.Node, g.VMID, old)
		}); err != nil {
			return err
		}
	}
	return nil
}

// takenSnapshot is a before snapshot this apply took of a guest, with the
// description's parts at that moment.
type takenSnapshot struct {
	name  string
	user  string
	state *State
}

// rollback puts a guest whose changes failed back to the before snapshot
// this apply took, when its spec says snapshots.rollback, and writes back
// the record it had then: Proxmox's rollback keeps the current
// description, whose records would claim what the rollback undid. Proxmox
// stops a running container for the rollback; the next pass starts it.
func (e *engine) rollback(ctx context.Context, j *job, cause error) error {
	r, ok := e.res.Guest(j.plan.Name)
	if !ok || j.before == nil {
		return cause
	}
	if s := snapshotSpec(r); s == nil || !s.Rollback {
		return cause
	}
	g, b := j.plan, j.before
	ev := Event{Action: TakeSnapshot, Step: "rollback to " + b.name}
	start := time.Now()
	started := ev
	started.Outcome, started.Reason = Started, "a change failed: "+cause.Error()
	e.event(g, started)
	err := e.retry(ctx, g, ev, func() error { return e.cluster.RollbackSnapshot(ctx, g.Node, g.VMID, b.name) })
	if err == nil {
		err = e.retry(ctx, g, Event{Action: TakeSnapshot, Step: "restore the record"}, func() error { return e.restoreRecord(ctx, g, b) })
	}
	done := ev
	done.Duration = time.Since(start)
	if err != nil {
		done.Outcome, done.Err = Failed, err
		e.event(g, done)
		return fmt.Errorf("%w; rolling back to snapshot %s failed too: %v", cause, b.name, err)
	}
	done.Outcome = Done
	e.event(g, done)
	j.result.RolledBack = b.name
	return fmt.Errorf("%w; rolled back to snapshot %s", cause, b.name)
}

// restoreRecord writes a guest's description as it was when a snapshot was
// taken, with the digest of the config now.
func (e *engine) restoreRecord(ctx context.Context, g GuestPlan, b *takenSnapshot) error {
	cfg, err := e.cluster.GuestConfig(ctx, g.Node, g.VMID)
	if err != nil {
		return err
	}
	if !managedTags(cfg.Values["tags"]) {
		return nil
	}
	desc := b.user
	if b.state != nil {
		if desc, err = BoundedDescription(b.user, b.state); err != nil {
			return err
		}
	}
	return e.cluster.SetConfig(ctx, g.Node, g.VMID, map[string]string{"description": desc}, nil, cfg.Digest)
}
