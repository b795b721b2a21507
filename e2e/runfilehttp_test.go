package e2e

import (
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// TestPlainHTTPMirrorNeedsADigest: the runfile runs as root in every GPU
// container, and anyone on the path can answer plain http. A site mirror
// over http is used for a driver version only when nvidia.sha256 gives that
// version's digest: without it the node is not even asked about the mirror,
// and the plan names the mirror and says what to add; with it the lab
// converges from the mirror, the download checked.
func TestPlainHTTPMirrorNeedsADigest(t *testing.T) {
	const mirror = "http://mirror.lab.example/nvidia/NVIDIA-Linux-x86_64-580.76.05.run"
	r := newRig(t, driverSource("apt"))
	r.res.Cluster.NVIDIA.RunfileURLs = []string{"http://mirror.lab.example/nvidia/NVIDIA-Linux-x86_64-{version}.run"}
	// A digest for another version only.
	r.res.Cluster.NVIDIA.SHA256 = map[string]string{"570.172.08": sim.RunfileSHA256("570.172.08")}

	_, p := r.plan(reconciler.PlanOptions{})
	g, ok := p.Guest("gpu-base")
	if !ok {
		t.Fatal("no plan for gpu-base")
	}
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemNode || g.Action != reconciler.NoOp {
		t.Fatalf("gpu-base plans %s with %v, want one node problem\n%s", g.Action, g.Errors, planText(p))
	}
	for _, want := range []string{
		"no source has the runfile of NVIDIA driver 580.76.05",
		"not used: " + mirror + ", plain http without a digest for 580.76.05",
		"nvidia.sha256", "/var/lib/phoenix/NVIDIA-Linux-x86_64-580.76.05.run",
	} {
		if !strings.Contains(g.Errors[0].Message, want) {
			t.Errorf("the problem %q does not say %q", g.Errors[0].Message, want)
		}
	}
	if strings.Contains(g.Errors[0].Message, mirror+" (HTTP") {
		t.Errorf("the node was asked about the plain-http mirror: %s", g.Errors[0].Message)
	}

	r.res.Cluster.NVIDIA.SHA256["580.76.05"] = sim.RunfileSHA256("580.76.05")
	r.mustConverge(r.options())
}
