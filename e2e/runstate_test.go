package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// TestContainersRunAgainAfterAHostReboot: a host reboots and does not load
// nvidia-uvm at boot, so Proxmox cannot start the GPU containers (their
// devN names /dev/nvidia-uvm). The loop shows them not Ready and why (a
// problem of the node, not a spec change), starts the one it can, and starts
// the others as soon as the module is loaded, with no spec change.
func TestContainersRunAgainAfterAHostReboot(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Nodes[0].UVMLoaded = ptr(false) })
	load := func(on bool) {
		t.Helper()
		if err := r.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {UVMLoaded: ptr(on)}}}); err != nil {
			t.Fatal(err)
		}
	}
	load(true) // nvidia-modprobe -c0 -u, once, by hand after the first boot
	r.mustConverge(r.options())

	if err := r.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {Reboot: true}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	l := r.loop(reconciler.LoopOptions{BackoffInitial: time.Minute, Now: func() time.Time { return now }}, nil)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for _, g := range l.Report().Guests {
		ready[g.Name] = g.Ready()
	}
	if ready["ollama"] || ready["vllm-qwen"] || !ready["nginx"] {
		t.Errorf("after the reboot, without nvidia-uvm: ready %v (the GPU containers cannot run, nginx can)", ready)
	}
	if got := l.Report().Backoff["ollama"]; !strings.Contains(got, "node: node pve1 has no /dev/nvidia-uvm") {
		t.Errorf("ollama waits for %q", got)
	}

	load(true)
	now = now.Add(time.Minute)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, g := range l.Report().Guests {
		if !g.Ready() {
			t.Errorf("%s is not Ready once nvidia-uvm is loaded: %+v", g.Name, g.Conditions)
		}
	}
	for _, vmid := range []int{950, 955} {
		st, err := r.cluster.Status(context.Background(), "pve1", vmid)
		if err != nil || st.Status != "running" {
			t.Errorf("guest %d: %v %s", vmid, err, st.Status)
		}
	}
}

// refusingStart is the API client on a node where a container's start task
// fails the way Proxmox's does for a device the node lacks.
type refusingStart struct {
	*proxmox.Client
	vmid int
}

func (c refusingStart) Start(ctx context.Context, node string, vmid int) error {
	if vmid == c.vmid {
		return &reconciler.TaskError{UPID: "UPID:pve1:0000ABCD:00000000:00000000:vzstart:960:root@pam:",
			ExitStatus: "Device /dev/dri/renderD128 does not exist"}
	}
	return c.Client.Start(ctx, node, vmid)
}

// TestAStartProxmoxRefusesIsReportedAndRetried: a container whose start
// Proxmox refuses fails with Proxmox's text and is retried with backoff:
// a device may appear (a module loaded), so it is not parked.
func TestAStartProxmoxRefusesIsReportedAndRetried(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	if err := r.cluster.Shutdown(context.Background(), "pve1", 960); err != nil {
		t.Fatal(err)
	}
	opts := reconciler.LoopOptions{BackoffInitial: time.Minute}
	opts.Apply = r.options()
	l := reconciler.NewLoop(refusingStart{r.cluster, 960}, r.node, func() (*spec.Resolution, error) { return r.res, nil }, opts)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := l.Report().Backoff["nginx"]; !strings.HasPrefix(got, "retries after") || !strings.Contains(got, "Device /dev/dri/renderD128 does not exist") {
		t.Errorf("nginx backoff %q: want a retry with Proxmox's text", got)
	}
	for _, g := range l.Report().Guests {
		if g.Name == "nginx" && (g.Ready() || g.LastError == nil || !strings.Contains(g.LastError.Message, "renderD128")) {
			t.Errorf("nginx: ready %v, last error %+v", g.Ready(), g.LastError)
		}
	}
}
