package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain removes what the tests built once for the whole test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	removeBinary()
	os.Exit(code)
}

// phoenix runs the CLI in-process and returns its exit status and output.
func phoenix(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestValidateExamples(t *testing.T) {
	code, out, errOut := phoenix(t, "validate", "-f", "../../examples/homelab")
	if code != 0 {
		t.Fatalf("validate examples: exit %d\n%s", code, errOut)
	}
	if want := "valid: 3 templates, 3 containers, 1 feature in 5 files\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestValidateReportsEveryProblemAndExits1(t *testing.T) {
	dir := t.TempDir()
	bad := `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: bad_name}
spec:
  vmid: 42
  from: {template: missing}
  resources: {cores: many}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := phoenix(t, "validate", "-f", dir)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing", out)
	}
	file := filepath.Join(dir, "bad.yaml")
	for _, want := range []string{
		file + `:3: Container bad_name: metadata.name: "bad_name" is not a valid hostname: up to 63 letters, digits and hyphens, not starting or ending with a hyphen (RFC 1123)`,
		file + ":5: Container bad_name: spec.vmid: VMID 42 is outside 100..999999999",
		file + ":6: Container bad_name: spec.from.template: no Template named missing",
		file + `:7: Container bad_name: spec.resources.cores: expected an integer, got the string "many"`,
		"4 problems found",
	} {
		if !strings.Contains(errOut, want+"\n") {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestValidateUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no -f":        {"validate"},
		"missing path": {"validate", "-f", "/nonexistent/specs"},
		"stray arg":    {"validate", "-f", "../../examples/homelab", "extra"},
	} {
		t.Run(name, func(t *testing.T) {
			if code, _, errOut := phoenix(t, args...); code != 1 || !strings.HasPrefix(errOut, "phoenix: ") {
				t.Errorf("exit %d, stderr %q: want 1 and a phoenix: message", code, errOut)
			}
		})
	}
}

func TestGraphFormats(t *testing.T) {
	code, out, errOut := phoenix(t, "graph", "-f", "../../examples/homelab")
	if code != 0 {
		t.Fatalf("graph: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "└── nginx (Container 960 on pve1): inherits base; installs nginx\n") {
		t.Errorf("text graph:\n%s", out)
	}
	code, out, errOut = phoenix(t, "graph", "-f", "../../examples/homelab", "--format", "json")
	if code != 0 {
		t.Fatalf("graph json: exit %d\n%s", code, errOut)
	}
	var g struct {
		Guests []struct {
			Name    string   `json:"name"`
			Install []string `json:"install"`
		} `json:"guests"`
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil || len(g.Guests) != 6 {
		t.Fatalf("graph json: %v, %d guests\n%s", err, len(g.Guests), out)
	}
	if code, _, errOut := phoenix(t, "graph", "-f", "../../examples/homelab", "--format", "png"); code != 1 || !strings.Contains(errOut, `unknown --format "png"`) {
		t.Errorf("bad format: exit %d, %q", code, errOut)
	}
}
