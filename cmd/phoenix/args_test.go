package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// pathCommands are the commands that read specs, each made afresh.
var pathCommands = map[string]func() *cobra.Command{
	"validate": newValidateCmd, "graph": newGraphCmd, "plan": newPlanCmd, "apply": newApplyCmd,
	"status": newStatusCmd, "run": newRunCmd, "demo": newDemoCmd,
}

func TestPathArgsAreSpecPaths(t *testing.T) {
	cases := map[string]struct {
		command string
		args    []string
		want    []string
	}{
		"-f alone":                                   {"plan", []string{"-f", "a", "-f", "b"}, []string{"a", "b"}},
		"arguments alone":                            {"plan", []string{"a", "b"}, []string{"a", "b"}},
		"-f and arguments, -f first":                 {"apply", []string{"b", "-f", "a", "--auto-approve"}, []string{"a", "b"}},
		"the same for every command":                 {"run", []string{"--once", "a"}, []string{"a"}},
		"demo reads examples/homelab/ without paths": {"demo", nil, []string{"examples/homelab/"}},
		"an argument replaces demo's default":        {"demo", []string{"mine/"}, []string{"mine/"}},
		"-f replaces demo's default":                 {"demo", []string{"-f", "mine/"}, []string{"mine/"}},
		"demo's -f and arguments add together":       {"demo", []string{"-f", "a", "b"}, []string{"a", "b"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cmd := pathCommands[tc.command]()
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			args := cmd.Flags().Args()
			if err := cmd.ValidateArgs(args); err != nil {
				t.Fatalf("%s %v: %v", tc.command, tc.args, err)
			}
			if diff := cmp.Diff(tc.want, specFiles(cmd, args)); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPathArgsOrFIsRequired(t *testing.T) {
	for name := range pathCommands {
		if name == "demo" {
			continue // it has examples/homelab/
		}
		t.Run(name, func(t *testing.T) {
			code, out, errOut := phoenix(t, name)
			if want := "phoenix: no spec files: give -f PATH or the path as an argument\n"; code != 1 || out != "" || errOut != want {
				t.Errorf("phoenix %s: exit %d, stdout %q, stderr %q; want 1, nothing, %q", name, code, out, errOut, want)
			}
		})
	}
}

func TestArgsRefusedWhereNoPathIsTaken(t *testing.T) {
	cases := map[string]string{
		"sim":     `phoenix: sim: unexpected argument "examples/homelab/world.yaml": the world file is given with --world`,
		"schema":  `phoenix: schema: unexpected argument "examples/homelab/world.yaml": give --out FILE to write the schema to a file`,
		"version": `phoenix: version: unexpected argument "examples/homelab/world.yaml": it takes none`,
	}
	for command, want := range cases {
		t.Run(command, func(t *testing.T) {
			code, out, errOut := phoenix(t, command, "examples/homelab/world.yaml")
			if code != 1 || out != "" || errOut != want+"\n" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, out, errOut, want)
			}
		})
	}
}

func TestValidateTakesPathArgs(t *testing.T) {
	code, out, errOut := phoenix(t, "validate", "../../examples/homelab/cluster.yaml", "../../examples/homelab/templates.yaml",
		"-f", "../../examples/homelab/containers.yaml", "../../examples/homelab/features")
	if want := "valid: 3 templates, 3 containers, 1 feature in 4 files\n"; code != 0 || out != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
}

func TestValidateReportsYAMLSyntaxErrorsAtTheirLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "specs.yaml")
	src := "apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: c}\n---\napiVersion: phoenix/v1alpha1\n" +
		"kind: Template\nmetadata:\n  name: base\n   vmid: 900\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := phoenix(t, "validate", file)
	if want := file + ":9: invalid YAML: mapping values are not allowed in this context\n1 problem found\n"; code != 1 || errOut != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}
}

func TestGraphOutputFormats(t *testing.T) {
	for format, prefix := range map[string]string{
		"text": "ubuntu-2404-base (Template 900 on pve1)", "dot": "digraph", "mermaid": "graph TD", "json": `{`,
	} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := phoenix(t, "graph", "../../examples/homelab", "-o", format)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, prefix) {
				t.Errorf("exit %d, stderr %q, stdout:\n%.300s\nwant 0, nothing, and stdout starting %q", code, errOut, out, prefix)
			}
		})
	}
	if code, _, errOut := phoenix(t, "graph", "../../examples/homelab", "-o", "png"); code != 1 || !strings.Contains(errOut, `unknown --output "png"`) {
		t.Errorf("-o png: exit %d, stderr %q", code, errOut)
	}
}

// TestGraphFormatFlagIsADeprecatedOutput keeps old scripts working: --format
// still chooses the format, the notice goes to stderr so that stdout stays the
// document, and help no longer shows it.
func TestGraphFormatFlagIsADeprecatedOutput(t *testing.T) {
	code, out, errOut := phoenix(t, "graph", "-f", "../../examples/homelab", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var doc struct{ Guests []json.RawMessage }
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Guests) != 6 {
		t.Errorf("stdout is not the JSON graph: %v\n%s", err, out)
	}
	if want := "Flag --format has been deprecated, use -o/--output instead\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	if code, _, errOut := phoenix(t, "graph", "-f", "../../examples/homelab", "--format", "dot", "-o", "json"); code != 1 ||
		!strings.Contains(errOut, `phoenix: -o "json" and --format "dot" disagree: give -o alone`) {
		t.Errorf("--format and -o that disagree: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := phoenix(t, "graph", "-f", "../../examples/homelab", "--format", "dot", "-o", "dot"); code != 0 {
		t.Errorf("--format and -o that agree: exit %d", code)
	}
	if _, out, _ := phoenix(t, "graph", "--help"); strings.Contains(out, "--format") || !strings.Contains(out, "-o, --output") {
		t.Errorf("graph --help shows --format or lacks -o:\n%s", out)
	}
}

func TestSchemaOutputIsAFormat(t *testing.T) {
	_, schema, _ := phoenix(t, "schema")
	if code, out, _ := phoenix(t, "schema", "-o", "json"); code != 0 || out != schema {
		t.Errorf("schema -o json: exit %d, and not what schema prints", code)
	}
	// The -o FILE of earlier versions is refused with the way to write a file.
	file := filepath.Join(t.TempDir(), "phoenix.schema.json")
	code, _, errOut := phoenix(t, "schema", "-o", file)
	if want := `phoenix: unknown --output "` + file + `" (json; to write to a file, give --out FILE)` + "\n"; code != 1 || errOut != want {
		t.Errorf("schema -o FILE: exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("schema -o FILE wrote %s", file)
	}
}

func TestDemoTakesThePathAsAnArgument(t *testing.T) {
	code, out, errOut := phoenix(t, "demo", "../../examples/homelab", "--world", "../../examples/homelab/world.yaml", "--time-scale", "0.002", "--log-level", "warn")
	if code != 0 || !strings.Contains(out, "No changes. The cluster matches the specs.") {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errOut)
	}
}
