package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/spec"
)

// TestSavedPlanIsAppliedExactly: plan -out FILE (terraform's spelling) saves
// the plan; apply FILE carries it out without asking, and converges.
func TestSavedPlanIsAppliedExactly(t *testing.T) {
	startSim(t, "../../examples/world.yaml", nil)
	file := filepath.Join(t.TempDir(), "homelab.plan")
	code, out, errOut := phoenix(t, "plan", "-f", "../../examples", "-out", file)
	if code != 0 || !strings.Contains(out, "Plan: 6 to create") {
		t.Fatalf("plan -out: exit %d\n%s\n%s", code, out, errOut)
	}
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the plan file: %v %v, want mode 0600", err, info)
	}
	code, out, errOut = phoenix(t, "apply", file, "--quiet")
	if code != 0 || !strings.Contains(out, "Apply complete: 6 created") {
		t.Fatalf("apply FILE: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := phoenix(t, "plan", "-f", "../../examples", "--detailed-exitcode"); code != 0 {
		t.Errorf("not converged after apply FILE:\n%s", out)
	}
	// A saved plan's options and specs are its own.
	if code, _, errOut := phoenix(t, "apply", file, "--prune"); code != 1 || !strings.Contains(errOut, "a saved plan carries its spec files and its options") {
		t.Errorf("apply FILE --prune: exit %d: %s", code, errOut)
	}
}

// TestSavedPlanIsRefusedWhenTheSpecsChanged: a spec file edited after the
// plan was saved makes apply FILE refuse it, naming the file.
func TestSavedPlanIsRefusedWhenTheSpecsChanged(t *testing.T) {
	startSim(t, "../../examples/world.yaml", nil)
	specs := copyExamples(t)
	file := filepath.Join(t.TempDir(), "homelab.plan")
	if code, _, errOut := phoenix(t, "plan", "-f", specs, "--out", file); code != 0 {
		t.Fatalf("plan --out: %s", errOut)
	}
	editFile(t, filepath.Join(specs, "containers.yaml"), "    cores: 8\n", "    cores: 6\n")
	code, _, errOut := phoenix(t, "apply", file)
	if code != 1 || !strings.Contains(errOut, "the specs changed since the plan was made") || !strings.Contains(errOut, "containers.yaml changed") {
		t.Errorf("apply FILE after a spec edit: exit %d: %s", code, errOut)
	}
}

// TestSavedPlanIsRefusedWhenTheClusterChanged: a guest changed after the plan
// was saved makes apply FILE refuse it, naming the guest; nothing is done.
func TestSavedPlanIsRefusedWhenTheClusterChanged(t *testing.T) {
	s := startSim(t, "../../examples/world.yaml", nil)
	if code, _, errOut := phoenix(t, "apply", "-f", "../../examples", "--auto-approve", "--quiet"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	specs := copyExamples(t)
	editFile(t, filepath.Join(specs, "containers.yaml"), "    cores: 8\n", "    cores: 6\n")
	file := filepath.Join(t.TempDir(), "homelab.plan")
	if code, out, errOut := phoenix(t, "plan", "-f", specs, "--out", file); code != 0 || !strings.Contains(out, `~ cores: "8" -> "6"`) {
		t.Fatalf("plan --out: %s\n%s", out, errOut)
	}
	// Someone changes vllm-qwen's memory meanwhile.
	env := s.Env()
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetConfig(context.Background(), "pve1", 950, map[string]string{"memory": "4096"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := phoenix(t, "apply", file)
	if code != 1 || !strings.Contains(errOut, "the cluster changed since the plan was made (guest 950 changed)") {
		t.Errorf("apply FILE after a change: exit %d: %s", code, errOut)
	}
	if got, _ := c.GuestConfig(context.Background(), "pve1", 950); got.Values["cores"] != "8" {
		t.Errorf("cores %s: the refused plan changed the guest", got.Values["cores"])
	}
}
