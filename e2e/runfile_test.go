package e2e

import (
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// driverSource makes pve1's driver one NVIDIA publishes as source says.
func driverSource(source string) func(*sim.World) {
	return func(w *sim.World) {
		for i := range w.Spec.Nodes {
			if w.Spec.Nodes[i].Name == "pve1" {
				w.Spec.Nodes[i].DriverSource = source
			}
		}
	}
}

// execs counts the journal's runs of a named script from seq on.
func (r *rig) execs(from int, name string) int {
	n := 0
	for _, e := range r.events(from) {
		if e.Kind == "exec" && e.Name == name {
			n++
		}
	}
	return n
}

// TestDatacenterDriverRunfile: an H100/H200-class host runs a datacenter
// driver, whose runfile NVIDIA publishes under tesla/, not XFree86/. The
// default sources include both, so the lab converges; once it has, a plan
// asks the node nothing more about runfiles.
func TestDatacenterDriverRunfile(t *testing.T) {
	r := newRig(t, driverSource("datacenter"))
	from := r.lastSeq()
	r.mustConverge(r.options())
	if n := r.execs(from, "phoenix/runfile-source"); n == 0 {
		t.Error("the node was never asked where the runfile comes from")
	}
	from = r.lastSeq()
	r.mustPlan(reconciler.PlanOptions{})
	if n := r.execs(from, "phoenix/runfile-source"); n != 0 {
		t.Errorf("a converged lab's plan asked for the runfile %d time(s)", n)
	}
}

// TestNoRunfileAnywhere: a host driver installed from NVIDIA's apt
// repository has no runfile at any of NVIDIA's URLs. The plan says so for
// the guests that would install it, naming every source it tried, before
// anything is made; the guests without GPUs go ahead. A site mirror listed
// in nvidia.runfileURLs then lets the lab converge.
func TestNoRunfileAnywhere(t *testing.T) {
	r := newRig(t, driverSource("apt"))
	_, p := r.plan(reconciler.PlanOptions{})
	g, ok := p.Guest("gpu-base")
	if !ok {
		t.Fatal("no plan for gpu-base")
	}
	want := []string{
		"no source has the runfile of NVIDIA driver 580.76.05",
		"https://download.nvidia.com/XFree86/Linux-x86_64/580.76.05/NVIDIA-Linux-x86_64-580.76.05.run (HTTP 404)",
		"https://us.download.nvidia.com/tesla/580.76.05/NVIDIA-Linux-x86_64-580.76.05.run (HTTP 404)",
		"nvidia.runfileURLs", "/var/lib/phoenix/NVIDIA-Linux-x86_64-580.76.05.run",
	}
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemNode || g.Action != reconciler.NoOp {
		t.Fatalf("gpu-base plans %s with %v, want one node problem\n%s", g.Action, g.Errors, planText(p))
	}
	for _, w := range want {
		if !strings.Contains(g.Errors[0].Message, w) {
			t.Errorf("the problem %q does not say %q", g.Errors[0].Message, w)
		}
	}
	if g, _ := p.Guest("nginx"); len(g.Errors) != 0 || g.Action == reconciler.NoOp {
		t.Errorf("nginx, which needs no GPU, plans %s with %v", g.Action, g.Errors)
	}

	from := r.lastSeq()
	res := r.apply(t.Context(), r.options())
	if n := r.execs(from, "nvidia-driver/download"); n != 0 {
		t.Errorf("the apply tried %d download(s) the plan said cannot succeed", n)
	}
	for _, g := range res.Guests {
		if g.Name == "nginx" && g.Err != nil {
			t.Errorf("nginx: %v", g.Err)
		}
	}

	r.res.Cluster.NVIDIA.RunfileURLs = []string{"https://mirror.lab.example/nvidia/NVIDIA-Linux-x86_64-{version}.run"}
	r.mustConverge(r.options())
}
