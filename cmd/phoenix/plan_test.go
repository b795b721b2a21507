package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
)

// startSim serves a world in-process and points the environment at it, as
// eval "$(phoenix sim ...)" would.
func startSim(t *testing.T, worldFile string, edit func(*sim.World)) *sim.Sim {
	t.Helper()
	w, err := sim.LoadWorld(worldFile)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(w)
		if err := sim.CheckWorld(w); err != nil {
			t.Fatal(err)
		}
	}
	s, err := sim.Start(w, sim.Options{TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	return s
}

func TestPlanExamplesOnAnEmptyWorld(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab", "-o", "json")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errOut)
	}
	var plan struct {
		Guests []struct {
			Name   string `json:"name"`
			Action string `json:"action"`
		} `json:"guests"`
		Summary map[string]int `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]string{}
	for _, g := range plan.Guests {
		got[g.Name] = g.Action
	}
	want := map[string]string{"ubuntu-2404-base": "create", "gpu-base": "clone", "docker-gpu": "clone",
		"vllm-qwen": "clone", "ollama": "clone", "nginx": "clone"}
	for name, action := range want {
		if got[name] != action {
			t.Errorf("%s: %q, want %q", name, got[name], action)
		}
	}
	if plan.Summary["create"] != 6 || plan.Summary["features"] != 8 {
		t.Errorf("summary %v", plan.Summary)
	}
	code, _, _ = phoenix(t, "plan", "-f", "../../examples/homelab", "--detailed-exitcode")
	if code != exitChanges {
		t.Errorf("--detailed-exitcode with changes: exit %d, want 2", code)
	}
}

func TestPlanConflictWithAnUnmanagedGuest(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", func(w *sim.World) {
		w.Spec.Guests = append(w.Spec.Guests, sim.WorldGuest{VMID: 950, Name: "handmade", Node: "pve1", Running: true})
	})
	code, out, _ := phoenix(t, "plan", "-f", "../../examples/homelab")
	if code != 1 {
		t.Errorf("exit %d, want 1 (a guest cannot be converged)", code)
	}
	want := `! vllm-qwen (Container 950 on pve1): cannot be converged
      VMID 950 is held by container "handmade" on pve1, which is not managed by phoenix (no phoenix-managed tag); phoenix never touches it: pick another vmid, or set adopt: true in its spec to have phoenix take it over`
	if !strings.Contains(out, want) {
		t.Errorf("plan output lacks the conflict:\n%s", out)
	}
}

func TestPruneMaxIsNotNegative(t *testing.T) {
	for _, cmd := range []string{"plan", "apply"} {
		code, _, errOut := phoenix(t, cmd, "-f", "../../examples/homelab", "--prune", "--prune-max", "-1")
		if code != 1 || !strings.Contains(errOut, "--prune-max must be 0 (the default limit) or more, got -1") {
			t.Errorf("%s --prune-max -1: exit %d: %s", cmd, code, errOut)
		}
	}
}

func TestPlanNeedsCredentials(t *testing.T) {
	for _, k := range []string{"PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_USERNAME", "PROXMOX_VE_PASSWORD"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	code, _, errOut := phoenix(t, "plan", "-f", "../../examples/homelab")
	if code != 1 || !strings.Contains(errOut, "PROXMOX_VE_ENDPOINT is not set") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
