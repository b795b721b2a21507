package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/e2e/suite"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// Ownership: phoenix changes and deletes only the guests its deployment made
// (or adopted). Copies of managed guests carry phoenix's tag and record,
// because Proxmox copies both; other deployments' guests and VMs carry the
// tag too. None of them is ever deleted, each shows in the plan as foreign
// with the reason, and adopt: true takes one over on purpose.

// pruning is the rig's apply options with --prune.
func (r *rig) pruning() reconciler.ApplyOptions {
	opts := r.options()
	opts.Prune = true
	return opts
}

// entry finds the plan's entry for a VMID.
func entry(p *reconciler.Plan, vmid int) *reconciler.GuestPlan {
	for i := range p.Guests {
		if p.Guests[i].VMID == vmid {
			return &p.Guests[i]
		}
	}
	return nil
}

// destroyed lists the VMIDs the journal shows destroyed (or asked to be).
var destroyed = suite.Destroyed

// exists reports whether the cluster lists a VMID.
func (r *rig) exists(vmid int) bool {
	r.t.Helper()
	var guests []reconciler.GuestSummary
	r.read(func() (err error) { guests, err = r.cluster.Guests(context.Background()); return err })
	return slices.ContainsFunc(guests, func(g reconciler.GuestSummary) bool { return g.VMID == vmid })
}

// record reads a guest's phoenix record.
func (r *rig) record(vmid int) *reconciler.State {
	r.t.Helper()
	cfg, err := r.cluster.GuestConfig(context.Background(), "pve1", vmid)
	if err != nil {
		r.t.Fatal(err)
	}
	_, st, err := reconciler.ParseDescription(cfg.Values["description"])
	if err != nil || st == nil {
		r.t.Fatalf("record of %d: %v %v", vmid, st, err)
	}
	return st
}

// mustNotDestroy applies with --prune and checks that nothing was destroyed.
func (r *rig) mustNotDestroy(opts reconciler.ApplyOptions) {
	r.t.Helper()
	from := r.lastSeq()
	res := r.apply(context.Background(), opts)
	for _, g := range res.Guests {
		if g.Action == reconciler.Delete {
			r.t.Errorf("%s (%d) was deleted (error %v)", g.Name, g.VMID, g.Err)
		}
	}
	if d := destroyed(r.events(from)); len(d) > 0 {
		r.t.Errorf("destroyed %v", d)
	}
}

// TestHandMadeCloneIsForeign: a container cloned by hand from a phoenix
// template (a plain API clone, as the web UI makes: it copies the template's
// tags and record) is foreign, not an orphan: --prune leaves it, and the
// plan says what it is and how to adopt it; adopt: true takes it over.
func TestHandMadeCloneIsForeign(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	if err := r.cluster.Clone(t.Context(), reconciler.CloneRequest{Node: "pve1", SourceVMID: 901, NewID: 5001, Hostname: "my-copy"}); err != nil {
		t.Fatal(err)
	}
	_, p := r.plan(r.pruning().PlanOptions)
	g := entry(p, 5001)
	if g == nil || g.Action != reconciler.NoOp || !strings.HasPrefix(g.Foreign, "it is a hand-made clone of template gpu-base (its record was made at VMID 901") ||
		len(g.Notes) != 1 || !strings.Contains(g.Notes[0], "name it in a Template or Container spec at VMID 5001 with adopt: true") {
		t.Fatalf("the hand-made clone's entry %+v\n%s", g, planText(p))
	}
	r.mustNotDestroy(r.pruning())
	if !r.exists(5001) {
		t.Fatal("the hand-made clone is gone")
	}

	// Adopted on purpose: tagged, recorded as this deployment's at its VMID,
	// then converged like any guest.
	r.respec(specEdit{file: "containers.yaml", new: `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata:
  name: my-copy
spec:
  vmid: 5001
  from:
    template: gpu-base
  gpus: [0]
  adopt: true
`})
	p = r.mustPlan(reconciler.PlanOptions{})
	if got := changesOf(t, p, "my-copy"); len(got) == 0 || got[0] != "adopt" {
		t.Fatalf("my-copy plans %v\n%s", got, planText(p))
	}
	r.mustConverge(r.options())
	if st := r.record(5001); st.Dep != "homelab" || st.VMID != 5001 || st.Name != "my-copy" || st.Kind != "Container" || st.Parent != "gpu-base" {
		t.Errorf("the adopted clone's record %+v", st)
	}
}

// TestRestoredBackupIsForeign: a backup of a managed guest restored under a
// new VMID carries that guest's tags and record; it is foreign, never pruned,
// and the guest it is a copy of is unaffected.
func TestRestoredBackupIsForeign(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 950)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cluster.Create(t.Context(), reconciler.CreateRequest{Node: "pve1", VMID: 5950, Storage: "local-lvm", DiskGiB: 8,
		OSTemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
		Options:    map[string]string{"hostname": "vllm-qwen", "unprivileged": "1", "tags": cfg.Values["tags"], "description": cfg.Values["description"]}}); err != nil {
		t.Fatal(err)
	}
	_, p := r.plan(r.pruning().PlanOptions)
	if g := entry(p, 5950); g == nil || g.Action != reconciler.NoOp ||
		g.Foreign != "it is a copy of Container vllm-qwen made outside phoenix, a hand-made clone or a restored backup (its record was made at VMID 950)" {
		t.Fatalf("the restored backup's entry %+v\n%s", g, planText(p))
	}
	if g, _ := p.Guest("vllm-qwen"); g.VMID != 950 || g.Action != reconciler.NoOp || len(g.Errors) > 0 {
		t.Errorf("vllm-qwen itself: %+v", g)
	}
	r.mustNotDestroy(r.pruning())
	if !r.exists(5950) {
		t.Fatal("the restored backup is gone")
	}
}

// writeSpecs writes spec files into a directory of the test's and resolves them.
func writeSpecs(t *testing.T, files map[string]string) *spec.Resolution {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := spec.LoadResolved(dir)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// teamB is a second deployment's spec set, for the same cluster.
const teamB = `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata:
  name: team-b
spec:
  defaults: {node: pve2, storage: local-lvm}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata:
  name: b-web
spec:
  vmid: 700
  from:
    ostemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
`

// TestSecondDeploymentIsLeftAlone: two spec sets, each its own deployment,
// on one cluster: each prunes only its own guests, lists the other's as
// foreign, and a spec naming the other's VMID is a conflict.
func TestSecondDeploymentIsLeftAlone(t *testing.T) {
	r := newRig(t, nil)
	homelab := r.res
	r.mustConverge(r.options())
	r.res = writeSpecs(t, map[string]string{"b.yaml": teamB})
	r.mustConverge(r.options())
	if st := r.recordOn("pve2", 700); st.Dep != "team-b" || st.VMID != 700 {
		t.Errorf("team-b's guest's record %+v", st)
	}

	// homelab with --prune: team-b's guest is foreign.
	r.res = homelab
	_, p := r.plan(r.pruning().PlanOptions)
	if g := entry(p, 700); g == nil || g.Action != reconciler.NoOp || g.Foreign != `its record says phoenix deployment "team-b" made it, and this is deployment "homelab"` {
		t.Fatalf("team-b's guest in homelab's plan: %+v\n%s", g, planText(p))
	}
	r.mustNotDestroy(r.pruning())

	// team-b with --prune: homelab's six guests are foreign.
	r.res = writeSpecs(t, map[string]string{"b.yaml": teamB})
	_, p = r.plan(r.pruning().PlanOptions)
	foreign := 0
	for _, g := range p.Guests {
		if strings.HasPrefix(g.Foreign, `its record says phoenix deployment "homelab" made it`) && g.Action == reconciler.NoOp {
			foreign++
		}
	}
	if foreign != 6 {
		t.Errorf("%d of homelab's guests foreign in team-b's plan, want 6\n%s", foreign, planText(p))
	}
	r.mustNotDestroy(r.pruning())
	for _, g := range homelab.Guests {
		if !r.exists(g.VMID) {
			t.Errorf("homelab's %s is gone", g.Name)
		}
	}

	// A spec of team-b that names one of homelab's VMIDs is a conflict.
	r.res = writeSpecs(t, map[string]string{"b.yaml": strings.Replace(teamB, "vmid: 700", "vmid: 960", 1)})
	_, p = r.plan(reconciler.PlanOptions{})
	if g, _ := p.Guest("b-web"); len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemConflict ||
		!strings.Contains(g.Errors[0].Message, `which is not this deployment's: its record says phoenix deployment "homelab" made it, and this is deployment "team-b"`) {
		t.Errorf("b-web at homelab's VMID 960: %+v", g)
	}
}

// recordOn reads the record of a guest on a node.
func (r *rig) recordOn(node string, vmid int) *reconciler.State {
	r.t.Helper()
	cfg, err := r.cluster.GuestConfig(context.Background(), node, vmid)
	if err != nil {
		r.t.Fatal(err)
	}
	_, st, err := reconciler.ParseDescription(cfg.Values["description"])
	if err != nil || st == nil {
		r.t.Fatalf("record of %d: %v %v", vmid, st, err)
	}
	return st
}

// TestTaggedVMIsNeverPruned: a QEMU VM carrying phoenix's tag is a VM: never
// a delete candidate, and the engine refuses to delete it even when a plan
// says so, instead of finding no container there and calling it deleted.
func TestTaggedVMIsNeverPruned(t *testing.T) {
	r := newRig(t, func(w *sim.World) {
		w.Spec.Guests = append(w.Spec.Guests, sim.WorldGuest{VMID: 300, Name: "windows", Node: "pve1", Type: "qemu", Running: true,
			Tags: []string{"phoenix-managed"}})
	})
	_, p := r.plan(r.pruning().PlanOptions)
	if g := entry(p, 300); g == nil || g.Action != reconciler.NoOp || g.Kind != "VM" || !strings.HasPrefix(g.Foreign, "it is a VM (qemu)") {
		t.Fatalf("the VM's entry %+v\n%s", g, planText(p))
	}
	r.mustConverge(r.pruning())
	r.mustNotDestroy(r.pruning())
	if !r.exists(300) {
		t.Fatal("the VM is not listed any more")
	}

	// A plan that says delete (a saved plan, an older phoenix's) is refused.
	obs, _ := r.plan(reconciler.PlanOptions{})
	forged := &reconciler.Plan{Guests: []reconciler.GuestPlan{{Name: "windows", Kind: spec.KindContainer, VMID: 300, Node: "pve1", Action: reconciler.Delete,
		Changes: []reconciler.Change{{Action: reconciler.Delete, Reason: "managed by phoenix and in no spec"}}}}}
	res := reconciler.Apply(t.Context(), r.cluster, r.node, r.res, obs, forged, r.pruning())
	if len(res.Guests) != 1 || res.Guests[0].Err == nil || !strings.Contains(res.Guests[0].Err.Error(), "VMID 300 is a VM (qemu), not a container: phoenix never deletes a VM") {
		t.Errorf("deleting the VM: %+v", res.Guests)
	}
}

// TestUpgradeKeepsGuestsOfOlderRecords: guests whose records an older
// phoenix wrote (version 2, no owner) stay this deployment's where the spec
// names them: no change is planned for them, and a record written later gets
// its owner. Such a guest that no spec names any more is never pruned.
func TestUpgradeKeepsGuestsOfOlderRecords(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	for _, g := range r.res.Guests {
		cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", g.VMID)
		if err != nil {
			t.Fatal(err)
		}
		user, st, err := reconciler.ParseDescription(cfg.Values["description"])
		if err != nil {
			t.Fatal(err)
		}
		st.Dep, st.VMID = "", 0
		old := strings.Replace(reconciler.RenderDescription(user, st), fmt.Sprintf(`{"v":%d,`, reconciler.StateVersion), `{"v":2,`, 1)
		if err := r.cluster.SetConfig(t.Context(), "pve1", g.VMID, map[string]string{"description": old}, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	if p := r.mustPlan(reconciler.PlanOptions{}); p.HasChanges() {
		t.Fatalf("older records planned changes:\n%s", planText(p))
	}
	// A change that writes nginx's record stamps its owner.
	r.respec(specEdit{"containers.yaml", "  features: [nginx]\n", "  features: [nginx, docker]\n"})
	r.mustConverge(r.options())
	if st := r.record(960); st.Dep != "homelab" || st.VMID != 960 {
		t.Errorf("nginx's record after a write: %+v", st)
	}
	if st := r.record(955); st.Dep != "" {
		t.Errorf("ollama's record was rewritten without a change: %+v", st)
	}
	// ollama taken out of the specs: its record names no owner, so it stays.
	r.respec(specEdit{"containers.yaml", "  features: [nginx]\n", "  features: [nginx, docker]\n"},
		specEdit{"containers.yaml", "  name: ollama\n", "  name: ollama-next\n"},
		specEdit{"containers.yaml", "  vmid: 955\n", "  vmid: 956\n"})
	_, p := r.plan(r.pruning().PlanOptions)
	if g := entry(p, 955); g == nil || g.Action != reconciler.NoOp || !strings.Contains(g.Foreign, "written by a phoenix older than ownership records") ||
		!strings.Contains(g.Notes[0], "delete it by hand (pct destroy 955)") {
		t.Fatalf("ollama with an older record, in no spec: %+v\n%s", g, planText(p))
	}
}
