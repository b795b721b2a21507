package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// upgradeHostDriver converges the examples, then moves pve1's driver to a new
// version: every guest's userspace no longer matches it.
func upgradeHostDriver(t *testing.T, r *rig) {
	t.Helper()
	r.mustConverge(r.options())
	if err := r.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {DriverVersion: ptr("580.95.05")}}}); err != nil {
		t.Fatal(err)
	}
}

// nvidiaSMI runs nvidia-smi in a guest as the driver step's verify does.
func nvidiaSMI(t *testing.T, r *rig, vmid int) reconciler.Result {
	t.Helper()
	n, _ := r.pool.Node("pve1")
	res, err := n.Exec(context.Background(), vmid, reconciler.Script{Name: "nvidia-driver/userspace", Phase: "verify",
		Body: "nvidia-smi", Env: map[string]string{"NVIDIA_VERSION": "580.95.05", "NVIDIA_RUNFILE": "/root/x"}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestHostDriverUpgradeConverges: after a host driver upgrade, plan and apply
// agree on every guest. The containers reinstall the driver and everything
// built on it (the plan's reinstalls all happen: the contract check of
// r.apply fails otherwise); the templates, which cannot run installs and
// whose disks their linked clones use, are stale: a warning in plan and
// status, not a failure, and every guest is Ready.
func TestHostDriverUpgradeConverges(t *testing.T) {
	r := newRig(t, nil)
	upgradeHostDriver(t, r)
	if res := nvidiaSMI(t, r, 950); res.ExitCode != 18 || !strings.Contains(res.Stderr, "Driver/library version mismatch") {
		t.Fatalf("before: nvidia-smi in vllm-qwen %+v, want the version mismatch", res)
	}
	p := r.mustPlan(reconciler.PlanOptions{})
	want := map[string][]string{
		"vllm-qwen": {"reinstall nvidia-driver", "reinstall cuda-toolkit", "reinstall vllm"},
		"ollama":    {"reinstall nvidia-driver", "reinstall cuda-toolkit", "reinstall nvidia-container-toolkit"},
	}
	for name, steps := range want {
		g, _ := p.Guest(name)
		var got []string
		for _, c := range g.Changes {
			got = append(got, stepKey(c))
		}
		if !slices.Equal(got, steps) {
			t.Errorf("%s plans %v, want the reinstalls %v\n%s", name, got, steps, planText(p))
		}
	}
	for _, name := range []string{"gpu-base", "docker-gpu"} {
		if g, _ := p.Guest(name); g.Stale == "" || g.Action != reconciler.NoOp || !strings.Contains(g.Stale, "linked clones") {
			t.Errorf("%s: stale %q, action %v; want a stale template naming its linked clones", name, g.Stale, g.Action)
		}
	}

	r.mustConverge(r.options())
	for _, vmid := range []int{950, 955} {
		if res := nvidiaSMI(t, r, vmid); res.ExitCode != 0 {
			t.Errorf("%d: nvidia-smi after the apply: %+v", vmid, res)
		}
	}
	obs, p := r.plan(reconciler.PlanOptions{})
	for _, st := range reconciler.Status(r.res, obs, p) {
		if !st.Ready() {
			t.Errorf("%s is not Ready after the apply: %+v", st.Name, st.Conditions)
		}
		stale := slices.ContainsFunc(st.Conditions, func(c reconciler.Condition) bool { return c.Type == reconciler.CondStale && c.Status })
		if template := st.Name == "gpu-base" || st.Name == "docker-gpu"; stale != template {
			t.Errorf("%s: Stale condition %v", st.Name, stale)
		}
	}
}

// TestNewCloneOfAStaleTemplateInstallsWhatItLacks: a container cloned from a
// template that went stale plans, and applies, the reinstalls its template
// could not make.
func TestNewCloneOfAStaleTemplateInstallsWhatItLacks(t *testing.T) {
	r := newRig(t, nil)
	upgradeHostDriver(t, r)
	r.respec(specEdit{file: "containers.yaml", new: `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata:
  name: vllm-b
spec:
  vmid: 951
  from:
    template: gpu-base
  gpus: [1]
  features: [vllm]
`})
	p := r.mustPlan(reconciler.PlanOptions{})
	g, _ := p.Guest("vllm-b")
	var got []string
	for _, c := range g.Changes {
		got = append(got, stepKey(c))
	}
	want := []string{"clone", "update", "start", "identity", "reinstall nvidia-driver", "reinstall cuda-toolkit", "install vllm"}
	if !slices.Equal(got, want) {
		t.Errorf("vllm-b plans %v, want %v", got, want)
	}
	r.mustConverge(r.options())
	if res := nvidiaSMI(t, r, 951); res.ExitCode != 0 {
		t.Errorf("nvidia-smi in the new clone: %+v", res)
	}
}

// TestStaleTemplateIsRenewed: a template whose spec allows renewal is made
// again as a new generation when a host driver upgrade leaves it stale with
// linked clones on its disk. New clones come from the new generation and
// install nothing the template has; the old generation stays while linked
// clones use it, and goes with --prune once none does.
func TestStaleTemplateIsRenewed(t *testing.T) {
	r := newRig(t, nil)
	renewal := specEdit{"templates.yaml", "  vmid: 901\n", "  vmid: 901\n  renewal:\n    vmids: [9011, 9012]\n"}
	r.respec(renewal)
	upgradeHostDriver(t, r)

	p := r.mustPlan(reconciler.PlanOptions{})
	g, _ := p.Guest("gpu-base")
	if g.VMID != 9011 || g.Generation != 1 || g.Action != reconciler.Clone || g.Source != 900 {
		t.Fatalf("gpu-base: %+v, want generation 2 cloned at 9011 from 900\n%s", g, planText(p))
	}
	if got := changesOf(t, p, "gpu-base"); !slices.Contains(got, "install nvidia-driver") || !slices.Contains(got, "convert") {
		t.Errorf("gpu-base generation 2 plans %v", got)
	}
	old := superseded(p, 901)
	if old == nil || old.Action != reconciler.NoOp || old.Stale == "" || !strings.Contains(old.Notes[0], "linked clones (docker-gpu, ollama, vllm-qwen) use its disk") {
		t.Fatalf("the old generation: %+v\n%s", old, planText(p))
	}
	r.mustConverge(r.options())
	cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 9011)
	if err != nil || cfg.Values["template"] != "1" {
		t.Fatalf("generation 2 at 9011: %v %v", err, cfg.Values)
	}

	// A new clone comes from the new generation and installs only its own.
	r.respec(renewal, specEdit{file: "containers.yaml", new: `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata:
  name: vllm-b
spec:
  vmid: 951
  from:
    template: gpu-base
  gpus: [1]
  features: [vllm]
`})
	p = r.mustPlan(reconciler.PlanOptions{})
	if g, _ := p.Guest("vllm-b"); g.Source != 9011 {
		t.Errorf("vllm-b is cloned from %d, want the new generation 9011", g.Source)
	}
	if got := changesOf(t, p, "vllm-b"); !slices.Equal(got, []string{"clone", "update", "start", "identity", "install vllm"}) {
		t.Errorf("vllm-b plans %v: it should inherit the driver from the new generation", got)
	}
	r.mustConverge(r.options())
	if res := nvidiaSMI(t, r, 951); res.ExitCode != 0 {
		t.Errorf("nvidia-smi in the new clone: %+v", res)
	}

	// The old generation's linked clones go; then it goes with --prune.
	r.respec(renewal, specEdit{"templates.yaml", "---\napiVersion: phoenix/v1alpha1\nkind: Template\nmetadata:\n  name: docker-gpu\n", "---\napiVersion: phoenix/v1alpha1\nkind: Template\nmetadata:\n  name: docker-gpu-unused\n"},
		specEdit{"templates.yaml", "  vmid: 902\n", "  vmid: 903\n"},
		specEdit{"containers.yaml", "    template: docker-gpu\n", "    template: docker-gpu-unused\n"},
		specEdit{"containers.yaml", "  vmid: 955\n", "  vmid: 956\n"},
		specEdit{"containers.yaml", "  vmid: 950\n", "  vmid: 952\n"})
	prune := r.options()
	prune.Prune = true
	prune.PruneMax = 4 // the four renamed guests go at once: more than the default limit
	r.apply(t.Context(), prune)
	_, p = r.plan(reconciler.PlanOptions{Prune: true})
	if old := superseded(p, 901); old == nil || old.Action != reconciler.Delete {
		t.Fatalf("once no linked clone uses it, the old generation is pruned: %+v\n%s", old, planText(p))
	}
	r.mustConverge(prune)
	if _, err := r.cluster.GuestConfig(t.Context(), "pve1", 901); err == nil {
		t.Error("the old generation is still there")
	}
}

// superseded finds the plan's entry for an old template generation.
func superseded(p *reconciler.Plan, vmid int) *reconciler.GuestPlan {
	for i := range p.Guests {
		if g := &p.Guests[i]; g.VMID == vmid && g.Kind == spec.KindTemplate && g.Parent == "" {
			return g
		}
	}
	return nil
}
