package main

import (
	"context"
	"encoding/json"
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
	startSim(t, "../../examples/homelab/world.yaml", nil)
	file := filepath.Join(t.TempDir(), "homelab.plan")
	code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab", "-out", file)
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
	if code, out, _ := phoenix(t, "plan", "-f", "../../examples/homelab", "--detailed-exitcode"); code != 0 {
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
	startSim(t, "../../examples/homelab/world.yaml", nil)
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
	s := startSim(t, "../../examples/homelab/world.yaml", nil)
	if code, _, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--auto-approve", "--quiet"); code != 0 {
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

// TestApplyJSONIsDocumentedAndVersioned: apply -o json writes one document
// on stdout, with its own format version and the plan's.
func TestApplyJSONIsDocumentedAndVersioned(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	code, out, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--auto-approve", "-o", "json")
	if code != 0 {
		t.Fatalf("apply -o json: exit %d\n%s", code, errOut)
	}
	var doc struct {
		FormatVersion string `json:"format_version"`
		Plan          struct {
			FormatVersion string `json:"format_version"`
		} `json:"plan"`
		Result struct {
			Guests []struct {
				Name      string   `json:"name"`
				Action    string   `json:"action"`
				Outcome   string   `json:"outcome"`
				Done      int      `json:"done"`
				Installed []string `json:"installed"`
			} `json:"guests"`
			Summary map[string]int `json:"summary"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("stdout is not the documented document: %v\n%s", err, out)
	}
	if doc.FormatVersion != "1" || doc.Plan.FormatVersion != "2" || len(doc.Result.Guests) != 6 ||
		doc.Result.Summary["created"] != 6 || doc.Result.Summary["installed"] != 8 || doc.Result.Summary["failed"] != 0 {
		t.Errorf("apply's JSON: %+v", doc)
	}
	for _, g := range doc.Result.Guests {
		if g.Outcome != "converged" || g.Done == 0 {
			t.Errorf("%s: %+v", g.Name, g)
		}
	}
	if !strings.Contains(errOut, "Apply complete:") {
		t.Errorf("the summary is not on standard error:\n%s", errOut)
	}
}
