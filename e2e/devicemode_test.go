package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// ollamaVerify runs ollama's verify step in a container, as apply does.
func ollamaVerify(t *testing.T, r *rig, vmid int) reconciler.Result {
	t.Helper()
	n, _ := r.pool.Node("pve1")
	res, err := n.Exec(t.Context(), vmid, reconciler.Script{Name: "ollama/install", Phase: "verify", Body: "true"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// awaitDevices waits, as apply does before a container's steps, until a
// started container sees its devices: they appear a moment after the start.
func awaitDevices(t *testing.T, r *rig, vmid int, devices ...string) {
	t.Helper()
	n, _ := r.pool.Node("pve1")
	s := reconciler.Script{Name: "phoenix/initialized", Phase: "check", Body: "true",
		Env: map[string]string{"PHOENIX_DEVICES": strings.Join(devices, " ")}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := n.Exec(t.Context(), vmid, s)
		if err == nil && res.ExitCode == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CT %d never saw %v: %+v %v", vmid, devices, res, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGPUNodesAreUsableByServiceUsers: a device passed as Proxmox makes it
// by default (0660, the container's root) leaves ollama's service user off
// the GPU, which its verify now says. phoenix passes the nodes with the host's
// mode; the plan corrects devices passed without it (a restart, as a changed
// devN waits for one), and ollama reaches the GPU afterwards.
func TestGPUNodesAreUsableByServiceUsers(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	if res := ollamaVerify(t, r, 955); res.ExitCode != 0 {
		t.Fatalf("ollama's verify after the apply: %+v", res)
	}

	// Someone passes the devices again the way a hand-written script does.
	cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 955)
	if err != nil {
		t.Fatal(err)
	}
	bare := map[string]string{}
	for k, v := range cfg.Values {
		if strings.HasPrefix(k, "dev") {
			bare[k], _, _ = strings.Cut(v, ",")
		}
	}
	n, _ := r.pool.Node("pve1")
	if err := n.SetConfig(t.Context(), 955, bare, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.cluster.Reboot(t.Context(), "pve1", 955); err != nil {
		t.Fatal(err)
	}
	awaitDevices(t, r, 955, "/dev/nvidiactl")
	if res := ollamaVerify(t, r, 955); res.ExitCode == 0 || !strings.Contains(res.Stderr, "ollama's service user cannot use the GPU") ||
		!strings.Contains(res.Stderr, "Failed to initialize NVML: Insufficient Permissions; /dev/nvidiactl mode 0660, owner 0:0") {
		t.Fatalf("ollama's verify with root-only nodes: %+v", res)
	}

	p := r.mustPlan(reconciler.PlanOptions{})
	if got := changesOf(t, p, "ollama"); len(got) != 2 || got[0] != "update" || got[1] != "restart" {
		t.Fatalf("ollama plans %v\n%s", got, planText(p))
	}
	r.mustConverge(r.options())
	awaitDevices(t, r, 955, "/dev/nvidiactl")
	if res := ollamaVerify(t, r, 955); res.ExitCode != 0 {
		t.Errorf("ollama's verify after phoenix passed the nodes again: %+v", res)
	}
}

// TestGPUGroupGivesTheNodesToAGroup: with gpuGroup the nodes belong to that
// group inside, and ollama, a member of video (44), reaches the GPU.
func TestGPUGroupGivesTheNodesToAGroup(t *testing.T) {
	r := newRig(t, nil)
	r.respec(specEdit{"containers.yaml", "  gpus: [1]\n", "  gpus: [1]\n  gpuGroup: 44\n"})
	r.mustConverge(r.options())
	cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 955)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range cfg.Values {
		if strings.HasPrefix(k, "dev") && !strings.HasSuffix(v, ",gid=44,mode=0660") {
			t.Errorf("%s = %q, want the group's", k, v)
		}
	}
	if res := ollamaVerify(t, r, 955); res.ExitCode != 0 {
		t.Errorf("ollama's verify: %+v", res)
	}
}
