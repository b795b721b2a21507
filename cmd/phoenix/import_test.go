package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportTheOriginalPlansOnItsWorld: phoenix import of the original's
// v01.06.01 config writes specs that validate, and a plan of them against
// the simulator started from the world written beside them has no problem.
func TestImportTheOriginalPlansOnItsWorld(t *testing.T) {
	out := filepath.Join(t.TempDir(), "lab")
	code, stdout, stderr := phoenix(t, "import", "--lxc", "../../../shared/original/phoenix_lxc_configs.json",
		"--hypervisor", "../../../shared/original/phoenix_hypervisor_config.json", "--out", out, "--world")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "imported 12 templates and containers, 4 features") {
		t.Errorf("stdout %q", stdout)
	}
	if !strings.Contains(stderr, `not carried: phoenix_lxc_configs.json $.lxc_configs["801"].ports`) {
		t.Errorf("stderr does not name what was not carried:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "IMPORT-REPORT.md")); err != nil {
		t.Error(err)
	}
	startSim(t, filepath.Join(out, "world.yaml"), nil)
	code, plan, errOut := phoenix(t, "plan", "-f", out, "-o", "json")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s\n%s", code, plan, errOut)
	}
	var p struct {
		Guests []struct {
			Name   string            `json:"name"`
			Action string            `json:"action"`
			Errors []json.RawMessage `json:"errors"`
		} `json:"guests"`
		Summary map[string]int `json:"summary"`
	}
	if err := json.Unmarshal([]byte(plan), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Guests) != 12 || p.Summary["errors"] != 0 || p.Summary["create"] != 12 {
		t.Errorf("plan: %d guests, summary %v", len(p.Guests), p.Summary)
	}
	for _, g := range p.Guests {
		if len(g.Errors) > 0 {
			t.Errorf("%s: %s", g.Name, g.Errors)
		}
	}
	// A second import into the same directory refuses to overwrite the specs.
	if code, _, stderr := phoenix(t, "import", "--lxc", "../../../shared/original/phoenix_lxc_configs.json", "--out", out); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Errorf("a second import: exit %d\n%s", code, stderr)
	}
}
