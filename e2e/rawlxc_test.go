package e2e

import (
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// TestRawGPULinesAreReportedAndRemovedOnRequest: a container made by a
// hand-written script carries raw lxc lines that pass every NVIDIA device.
// The plan refuses to call it converged and names each line; with
// --remove-raw-gpu-lines, apply removes them from the config file on the node
// (no API can) and restarts the container, and the plan after is empty.
func TestRawGPULinesAreReportedAndRemovedOnRequest(t *testing.T) {
	r := newRig(t, func(w *sim.World) {
		w.Spec.Guests = append(w.Spec.Guests, sim.WorldGuest{VMID: 970, Name: "legacy-gpu", Node: "pve1", Running: true,
			Tags: []string{reconciler.ManagedTag},
			Config: map[string]string{
				"unprivileged": "1", "cores": "1", "memory": "512", "swap": "512", "onboot": "0", "protection": "0",
				"description":               reconciler.RenderDescription("", &reconciler.State{Name: "legacy-gpu", Kind: "Container"}),
				"lxc.cgroup2.devices.allow": "c 195:* rwm",
				"lxc.mount.entry":           "/dev/nvidia0 dev/nvidia0 none bind,optional,create=file",
			}})
	})
	r.respec(specEdit{file: "legacy.yaml", new: `apiVersion: phoenix/v1alpha1
kind: Container
metadata:
  name: legacy-gpu
spec:
  vmid: 970
  from:
    ostemplate: local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst
  gpus: [0]
`})
	_, p := r.plan(reconciler.PlanOptions{})
	g, _ := p.Guest("legacy-gpu")
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemFlag ||
		!strings.Contains(g.Errors[0].Message, "lxc.cgroup2.devices.allow: c 195:* rwm; lxc.mount.entry: /dev/nvidia0 dev/nvidia0") ||
		!strings.Contains(g.Errors[0].Message, "--remove-raw-gpu-lines") {
		t.Fatalf("legacy-gpu: %+v", g.Errors)
	}

	opts := r.options()
	opts.RemoveRawGPULines = true
	p = r.mustPlan(opts.PlanOptions)
	if got := changesOf(t, p, "legacy-gpu"); len(got) != 2 || got[0] != "update" || got[1] != "restart" {
		t.Fatalf("legacy-gpu plans %v\n%s", got, planText(p))
	}
	r.mustConverge(opts)
	cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 970)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.LXC) != 0 || !strings.HasPrefix(cfg.Values["dev0"], "/dev/nvidia0") {
		t.Errorf("after the apply: raw lines %v, dev0 %q", cfg.LXC, cfg.Values["dev0"])
	}
	if first(r.events(0), func(e sim.Event) bool {
		return e.Kind == "exec" && e.Name == "phoenix/remove-raw-lxc" && e.OK && e.VMID == 970
	}) == 0 {
		t.Error("the lines were not removed by the script on the node")
	}
}
