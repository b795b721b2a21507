package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// A root template and a container that asks for snapshots around phoenix's
// changes, on the examples' LVM-thin storage.
const snapshotSpecs = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: snapbase}
spec:
  vmid: 930
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  features: [base]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: snapped}
spec:
  vmid: 931
  from: {template: snapbase}
  cloneMode: full
  resources: {cores: 1}
  snapshots: {before: true, after: true, keep: 2}
`

// snapshotClock is an apply clock that moves a minute at each reading, so
// that every snapshot has a time of its own.
func snapshotClock() func() time.Time {
	t := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Minute); return t }
}

func (r *rig) snapshotNames(vmid int) []string {
	r.t.Helper()
	snaps, err := r.cluster.Snapshots(context.Background(), "pve1", vmid)
	if err != nil {
		r.t.Fatalf("snapshots of %d: %v", vmid, err)
	}
	var names []string
	for _, s := range snaps {
		names = append(names, s.Name)
	}
	return names
}

func countPrefix(names []string, prefix string) int {
	n := 0
	for _, s := range names {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// TestSnapshotsAroundChanges: a new container gets an after snapshot once
// it converged; each later change is wrapped in a before and an after
// snapshot, phoenix keeps two of each kind and never deletes the user's;
// a rollback by hand puts the old config back and the next plan puts the
// change back again.
func TestSnapshotsAroundChanges(t *testing.T) {
	r := newRig(t, nil)
	r.res = withCluster(t, "snapshots.yaml", snapshotSpecs)
	opts := r.options()
	opts.Now = snapshotClock()
	ctx := context.Background()

	_, p := r.plan(reconciler.PlanOptions{})
	if text := planText(p); !strings.Contains(text, "snapshot after (phoenix-after-<time>): after snapshot of the new container") {
		t.Errorf("the plan of the new container shows no after snapshot:\n%s", text)
	}
	r.mustConverge(opts)
	names := r.snapshotNames(931)
	if countPrefix(names, spec.SnapshotAfterPrefix) != 1 || countPrefix(names, spec.SnapshotBeforePrefix) != 0 {
		t.Fatalf("after the first apply: %v, want one after snapshot", names)
	}
	if err := r.cluster.CreateSnapshot(ctx, "pve1", 931, "mine", "the user's own"); err != nil {
		t.Fatal(err)
	}

	for _, cores := range []string{"2", "3", "4"} {
		r.res = withCluster(t, "snapshots.yaml", strings.Replace(snapshotSpecs, "cores: 1", "cores: "+cores, 1))
		_, p := r.plan(reconciler.PlanOptions{})
		g, _ := p.Guest("snapped")
		var steps []string
		for _, c := range g.Changes {
			steps = append(steps, c.Action.String())
		}
		if len(steps) < 3 || steps[0] != "snapshot" || steps[len(steps)-1] != "snapshot" || !slices.Contains(steps, "update") {
			t.Errorf("cores %s: plan %v, want snapshot first and last around the update", cores, steps)
		}
		r.mustConverge(opts)
	}
	names = r.snapshotNames(931)
	if b, a := countPrefix(names, spec.SnapshotBeforePrefix), countPrefix(names, spec.SnapshotAfterPrefix); b != 2 || a != 2 || !slices.Contains(names, "mine") {
		t.Fatalf("after three changes: %v, want two of each kind of phoenix's and the user's", names)
	}

	// Roll back by hand to the last before snapshot: cores 3 again, and
	// Proxmox leaves the container stopped.
	var lastBefore string
	for _, n := range names {
		if strings.HasPrefix(n, spec.SnapshotBeforePrefix) {
			lastBefore = n
		}
	}
	if err := r.cluster.RollbackSnapshot(ctx, "pve1", 931, lastBefore); err != nil {
		t.Fatal(err)
	}
	cfg, err := r.cluster.GuestConfig(ctx, "pve1", 931)
	if err != nil || cfg.Values["cores"] != "3" || cfg.Values["parent"] != lastBefore {
		t.Fatalf("after the rollback: cores %q parent %q (%v)", cfg.Values["cores"], cfg.Values["parent"], err)
	}
	_, p = r.plan(reconciler.PlanOptions{})
	if text := planText(p); !strings.Contains(text, `~ cores: "3" -> "4"`) || !strings.Contains(text, "snapshot before") {
		t.Errorf("the plan after the rollback does not put the change back:\n%s", text)
	}
	r.mustConverge(opts)
	if cfg, _ := r.cluster.GuestConfig(ctx, "pve1", 931); cfg.Values["cores"] != "4" {
		t.Errorf("cores %q after the apply, want 4", cfg.Values["cores"])
	}
	if names := r.snapshotNames(931); !slices.Contains(names, "mine") || countPrefix(names, spec.SnapshotBeforePrefix) != 2 {
		t.Errorf("after the apply: %v", names)
	}
}

// TestSnapshotProvider: the provider's snapshot calls against the
// simulator: taking one twice is one, deleting one that is gone is done, a
// rollback waits for its task, a clone of a snapshot gets its config.
func TestSnapshotProvider(t *testing.T) {
	f := startSim(t, testWorld)
	c := f.client(t)
	ctx := context.Background()
	createCT(t, c, 200, map[string]string{"memory": "1024"})
	if err := c.CreateSnapshot(ctx, "pve1", 200, "one", "first"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateSnapshot(ctx, "pve1", 200, "one", "first"); err != nil {
		t.Errorf("a snapshot taken again: %v", err)
	}
	if err := c.SetConfig(ctx, "pve1", 200, map[string]string{"memory": "2048"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Clone(ctx, reconciler.CloneRequest{Node: "pve1", SourceVMID: 200, NewID: 201, Full: true, Snapshot: "one"}); err != nil {
		t.Fatalf("clone of a snapshot: %v", err)
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 201); cfg.Values["memory"] != "1024" {
		t.Errorf("the clone of the snapshot has memory %q, want the snapshot's 1024", cfg.Values["memory"])
	}
	snaps, err := c.Snapshots(ctx, "pve1", 200)
	if err != nil || len(snaps) != 1 || snaps[0].Name != "one" || snaps[0].Description != "first" || snaps[0].Time.IsZero() {
		t.Fatalf("snapshots: %+v %v", snaps, err)
	}
	if err := c.RollbackSnapshot(ctx, "pve1", 200, "one"); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 200); cfg.Values["memory"] != "1024" {
		t.Errorf("memory %q after the rollback", cfg.Values["memory"])
	}
	err = c.RollbackSnapshot(ctx, "pve1", 200, "two")
	if !strings.Contains(err.Error(), "snapshot 'two' does not exist") {
		t.Errorf("rollback to a missing snapshot: %v", err)
	}
	if err := c.DeleteSnapshot(ctx, "pve1", 200, "one"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSnapshot(ctx, "pve1", 200, "one"); err != nil {
		t.Errorf("deleting a snapshot that is gone: %v", err)
	}
}

// A container snapshotted as final-form once converged, the way the
// original scripts kept their templates, and a full clone of that snapshot.
const cloneSnapshotSpecs = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: snapbase}
spec:
  vmid: 930
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  features: [base]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: golden}
spec:
  vmid: 932
  from: {template: snapbase}
  cloneMode: full
  features: [docker]
  snapshots: {after: true, name: final-form}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: copy}
spec:
  vmid: 933
  from: {container: golden, snapshot: final-form}
  resources: {memory: 1024}
`

// TestCloneFromAContainerSnapshot: the source converges and takes
// final-form, then the clone is made from that snapshot, after it, with
// the source's features inherited (records and disk), installing nothing
// again; a clone of a snapshot nobody takes is a problem in the plan.
func TestCloneFromAContainerSnapshot(t *testing.T) {
	r := newRig(t, nil)
	r.res = withCluster(t, "clone.yaml", cloneSnapshotSpecs)
	opts := r.options()
	opts.Now = snapshotClock()
	_, p := r.plan(reconciler.PlanOptions{})
	text := planText(p)
	for _, want := range []string{"snapshot after (final-form)", "clone: full clone of snapshot final-form of golden"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
	from := r.lastSeq()
	r.mustConverge(opts)
	events := r.events(from)
	snapAt := first(events, func(e sim.Event) bool {
		return e.Kind == "task" && e.VMID == 932 && e.Name == "vzsnapshot" && e.OK && !strings.HasPrefix(e.Detail, "started")
	})
	cloneAt := first(events, func(e sim.Event) bool {
		return e.Kind == "api" && e.OK && e.Name == "POST /nodes/pve1/lxc/932/clone"
	})
	if snapAt == 0 || cloneAt == 0 || cloneAt < snapAt {
		t.Errorf("final-form taken at event %d, clone asked at %d: want the snapshot first", snapAt, cloneAt)
	}
	if n := first(events, func(e sim.Event) bool {
		return e.Kind == "exec" && e.VMID == 933 && strings.HasPrefix(e.Name, "docker/") && e.Phase == "apply"
	}); n != 0 {
		t.Errorf("the clone installed docker again (event %d)", n)
	}
	st := r.record(933)
	if st == nil || st.Features["docker"].VMID != 932 || st.Features["base"].VMID != 930 {
		t.Errorf("the clone's records: %+v, want docker from 932 and base from 930", st)
	}
	if names := r.snapshotNames(933); len(names) != 0 {
		t.Errorf("the clone has snapshots %v, want none (Proxmox drops them)", names)
	}

	// A snapshot that nobody takes cannot be cloned.
	r.res = withCluster(t, "clone.yaml", strings.Replace(strings.Replace(cloneSnapshotSpecs, "vmid: 933", "vmid: 934", 1),
		"snapshot: final-form}\n  resources", "snapshot: other}\n  resources", 1))
	_, p = r.plan(reconciler.PlanOptions{})
	g, _ := p.Guest("copy")
	if len(g.Errors) != 1 || !strings.Contains(g.Errors[0].Message, "golden has no snapshot other to clone") {
		t.Errorf("plan of a clone of a missing snapshot: %+v", g.Errors)
	}
}

// rollbackSpecs: a container whose next change installs two features, the
// second of which fails.
const rollbackSpecs = snapshotSpecs + `---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: good}
spec:
  steps: [{name: install, check: "test -e /opt/good", apply: "touch /opt/good", verify: "test -e /opt/good"}]
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: broken}
spec:
  requires: [good]
  steps: [{name: install, check: "test -e /opt/broken", apply: "exit 1", verify: "test -e /opt/broken"}]
`

// TestRollbackOnFailure: with snapshots.rollback, a change that fails puts
// the container back to the before snapshot this apply took, with the
// record it had then: the feature installed before the failure is undone on
// disk and in the record, so the next plan installs it again; the failure
// says so, and is recorded.
func TestRollbackOnFailure(t *testing.T) {
	r := newRig(t, func(w *sim.World) {
		w.Spec.Faults.Exec.Scripts = map[string]float64{"broken/install": 1}
	})
	specs := strings.Replace(rollbackSpecs, "snapshots: {before: true, after: true, keep: 2}", "snapshots: {before: true, rollback: true}", 1)
	r.res = withCluster(t, "snapshots.yaml", specs)
	opts := r.options()
	opts.Now = snapshotClock()
	r.mustConverge(opts)

	r.res = withCluster(t, "snapshots.yaml", strings.Replace(specs, "  resources: {cores: 1}\n", "  resources: {cores: 1}\n  features: [broken]\n", 1))
	_, p := r.plan(reconciler.PlanOptions{})
	if g, _ := p.Guest("snapped"); !slices.Contains(g.Notes, "should a change fail, the container is rolled back to the before snapshot (snapshots.rollback)") {
		t.Errorf("the plan does not say a failure rolls back: %q", g.Notes)
	}
	from := r.lastSeq()
	res := r.apply(context.Background(), opts)
	var got reconciler.GuestResult
	for _, g := range res.Guests {
		if g.Name == "snapped" {
			got = g
		}
	}
	if got.Err == nil || !strings.HasPrefix(got.RolledBack, spec.SnapshotBeforePrefix) ||
		!strings.Contains(got.Err.Error(), "rolled back to snapshot "+got.RolledBack) {
		t.Fatalf("result: rolled back %q, error %v", got.RolledBack, got.Err)
	}
	rollbacks := 0
	for _, e := range r.events(from) {
		if e.Kind == "task" && e.Name == "vzrollback" && e.VMID == 931 && e.OK && !strings.HasPrefix(e.Detail, "started") {
			rollbacks++
		}
	}
	if rollbacks != 1 {
		t.Errorf("%d rollback tasks, want 1", rollbacks)
	}
	st := r.record(931)
	if _, ok := st.Features["good"]; ok || st.Error == nil || !strings.Contains(st.Error.Message, "rolled back to snapshot") {
		t.Errorf("record after the rollback: features %v, error %+v", st.Features, st.Error)
	}
	// The next pass (the fault gone) installs both again, on the disk the
	// rollback put back.
	r.sim.SetScriptFault("broken/install", 0)
	_, p = r.plan(reconciler.PlanOptions{})
	g, _ := p.Guest("snapped")
	var installs []string
	for _, c := range g.Changes {
		if c.Action == reconciler.InstallFeature {
			installs = append(installs, c.Feature)
		}
	}
	if !slices.Equal(installs, []string{"good", "broken"}) {
		t.Errorf("installs after the rollback %v, want good and broken again", installs)
	}
	r.mustConverge(opts)
}
