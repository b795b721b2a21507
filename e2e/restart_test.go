package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// TestFeatureFlagsOnARunningContainerRestartIt: adding docker to a running
// container sets feature flags that Proxmox keeps pending until the next
// start. The plan shows the restart and why; apply makes it (after the update,
// before docker's verify, which needs nesting in the running container); the
// plan afterwards is empty.
func TestFeatureFlagsOnARunningContainerRestartIt(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	r.respec(specEdit{"containers.yaml", "  features: [vllm]\n", "  features: [vllm, docker]\n"})
	p := r.mustPlan(reconciler.PlanOptions{})
	g, _ := p.Guest("vllm-qwen")
	var steps []string
	var restart reconciler.Change
	for _, c := range g.Changes {
		steps = append(steps, stepKey(c))
		if c.Action == reconciler.Restart {
			restart = c
		}
	}
	if want := []string{"update", "restart", "install docker"}; !slices.Equal(steps, want) {
		t.Fatalf("vllm-qwen plans %v, want %v\n%s", steps, want, planText(p))
	}
	if !slices.Equal(restart.Pending, []string{"features"}) || !strings.Contains(restart.Reason, "features waits for a restart") {
		t.Errorf("restart %+v: want it to name the pending features", restart)
	}

	from := r.lastSeq()
	r.mustConverge(r.options())
	j := r.events(from)
	set := first(j, func(e sim.Event) bool { return e.VMID == 950 && e.OK && e.Kind == "exec" && e.Name == "pct set" })
	reboot := first(j, func(e sim.Event) bool {
		return e.VMID == 950 && e.OK && e.Kind == "task" && e.Name == "vzreboot" && !strings.HasPrefix(e.Detail, "started")
	})
	verified := first(j, execOK(950, "docker/engine", "verify"))
	if set == 0 || reboot == 0 || verified == 0 || !(set < reboot && reboot < verified) {
		t.Errorf("flags set at %d, restarted at %d, docker verified at %d: want them in that order", set, reboot, verified)
	}
}

// TestPendingChangesShowInPlanAndStatus: a change Proxmox holds as pending
// (made while the container ran, by phoenix or anyone) is planned as a
// restart and keeps the guest from being Ready until it is applied.
func TestPendingChangesShowInPlanAndStatus(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	// Someone turned on fuse and keyctl on the running ollama container.
	n, _ := r.pool.Node("pve1")
	if err := n.SetConfig(t.Context(), 955, map[string]string{"features": "fuse=1,keyctl=1,nesting=1"}, nil); err != nil {
		t.Fatal(err)
	}
	obs, p := r.plan(reconciler.PlanOptions{})
	g, _ := p.Guest("ollama")
	if len(g.Changes) != 1 || g.Changes[0].Action != reconciler.Restart || !slices.Equal(g.Changes[0].Pending, []string{"features"}) {
		t.Fatalf("ollama plans %+v, want a restart for the pending features\n%s", g.Changes, planText(p))
	}
	for _, st := range reconciler.Status(r.res, obs, p) {
		if st.Name != "ollama" {
			continue
		}
		if st.Ready() || !slices.Equal(st.Pending, []string{"features"}) {
			t.Errorf("ollama status: ready %v, pending %v", st.Ready(), st.Pending)
		}
	}
	r.mustConverge(r.options())
	cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 955)
	if err != nil || cfg.Values["features"] != "fuse=1,keyctl=1,nesting=1" {
		t.Errorf("after the restart: %v %q: the user's flags are kept", err, cfg.Values["features"])
	}
}
