package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// dependsSpec makes nginx wait for ollama, and orders their starts at boot.
var dependsSpec = []specEdit{
	{"containers.yaml", "  vmid: 960\n", "  vmid: 960\n  dependsOn: [ollama]\n  startup: {order: 2, up: 5}\n"},
	{"containers.yaml", "  vmid: 955\n", "  vmid: 955\n  startup: {order: 1}\n"},
}

// TestDependsOnOrdersTheWork: nginx, which depends on ollama, is made only
// after ollama converged and runs, although nothing in the lineage orders
// them; the startup option lands as Proxmox stores it; a second pass is a
// no-op.
func TestDependsOnOrdersTheWork(t *testing.T) {
	r := newRig(t, nil)
	r.respec(dependsSpec...)
	p := r.mustPlan(reconciler.PlanOptions{})
	if g, _ := p.Guest("nginx"); !strings.Contains(strings.Join(g.Notes, "\n"), "waits for ollama (dependsOn)") {
		t.Errorf("nginx's plan does not say it waits for ollama:\n%s", planText(p))
	}
	opts := r.options()
	spans := recordSpans(&opts)
	r.mustConverge(opts)
	if !spans.first[960].After(spans.last[955]) {
		t.Errorf("nginx's work began at %v, before ollama's ended at %v", spans.first[960], spans.last[955])
	}
	for vmid, want := range map[int]string{960: "order=2,up=5", 955: "order=1"} {
		cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", vmid)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Values["startup"] != want {
			t.Errorf("CT %d startup %q, want %q", vmid, cfg.Values["startup"], want)
		}
	}
	if p := r.mustPlan(reconciler.PlanOptions{}); p.HasChanges() {
		t.Fatalf("second plan is not empty:\n%s", planText(p))
	}
}

// TestAGuestWaitsForAFailedDependency: when ollama cannot converge, nginx
// is not made: it waits, blocked, with the reason, and the guests that do
// not depend on ollama converge.
func TestAGuestWaitsForAFailedDependency(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Faults.Exec.Scripts = map[string]float64{"ollama/install": 1} })
	r.respec(dependsSpec...)
	res := r.apply(context.Background(), r.options())
	for _, g := range res.Guests {
		switch g.Name {
		case "ollama":
			if g.Err == nil {
				t.Errorf("ollama converged despite its failing install")
			}
		case "nginx":
			if g.Err == nil || g.Kind != reconciler.ErrorKind(reconciler.ProblemBlocked) ||
				!strings.Contains(g.Err.Error(), "it waits for ollama (dependsOn), which did not converge") {
				t.Errorf("nginx: %v (%s), want blocked waiting for ollama", g.Err, g.Kind)
			}
		default:
			if g.Err != nil {
				t.Errorf("%s failed: %v", g.Name, g.Err)
			}
		}
	}
	if _, err := r.cluster.GuestConfig(t.Context(), "pve1", 960); err == nil {
		t.Error("nginx was made although ollama, which it depends on, failed")
	}
	obs, p := r.plan(reconciler.PlanOptions{})
	for _, st := range reconciler.Status(r.res, obs, p) {
		if st.Name != "nginx" {
			continue
		}
		for _, c := range st.Conditions {
			if c.Type == reconciler.CondReady && (c.Status || c.Message != "waits for ollama (dependsOn), not ready") {
				t.Errorf("nginx's Ready condition: %+v", c)
			}
		}
	}
}

// workSpans are when each guest's work began and ended in an apply, by VMID.
type workSpans struct {
	mu          sync.Mutex
	first, last map[int]time.Time
}

// recordSpans makes opts record the span of each guest's work, from its
// first event to its last, and pass every event on as before.
func recordSpans(opts *reconciler.ApplyOptions) *workSpans {
	w := &workSpans{first: map[int]time.Time{}, last: map[int]time.Time{}}
	events := opts.Events
	opts.Events = func(ev reconciler.Event) {
		w.mu.Lock()
		if _, ok := w.first[ev.VMID]; !ok {
			w.first[ev.VMID] = ev.Time
		}
		w.last[ev.VMID] = ev.Time
		w.mu.Unlock()
		events(ev)
	}
	return w
}
