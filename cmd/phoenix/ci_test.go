package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// actionsWorkflow is what a GitHub, Gitea or Forgejo Actions workflow needs.
type actionsWorkflow struct {
	On   map[string]any `yaml:"on"`
	Jobs map[string]struct {
		If    string `yaml:"if"`
		Steps []struct {
			Name string            `yaml:"name"`
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestCIExamples reads examples/ci's workflows as their CI systems do: the
// jobs are there, plan posts its Markdown, and every shell script passes
// shellcheck.
func TestCIExamples(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	module := strings.Fields(strings.SplitN(string(mod), "\n", 2)[0])[1]
	install := `go install "` + module + `/cmd/phoenix@${PHOENIX_VERSION}"`
	scripts := map[string]string{}
	for _, file := range []string{"github/phoenix.yml", "gitea/phoenix.yml"} {
		var w actionsWorkflow
		decode(t, file, &w)
		if w.On["pull_request"] == nil || w.On["push"] == nil {
			t.Errorf("%s: runs on %v, want pull_request and push", file, w.On)
		}
		plan, apply := w.Jobs["plan"], w.Jobs["apply"]
		if !strings.Contains(plan.If, "pull_request") || !strings.Contains(apply.If, "push") {
			t.Errorf("%s: plan runs if %q, apply if %q", file, plan.If, apply.If)
		}
		var all []string
		for job, j := range w.Jobs {
			for i, s := range j.Steps {
				if s.Run == "" {
					continue
				}
				// Values reach scripts through env, never pasted into them by
				// ${{ }}, where a branch name or title could run as code.
				if strings.Contains(s.Run, "${{") {
					t.Errorf("%s: %s step %d pastes an expression into its script", file, job, i)
				}
				scripts[file+" "+job+" "+s.Name] = s.Run
				all = append(all, s.Run)
			}
		}
		wantScript(t, file, strings.Join(all, "\n"), install, `phoenix validate -f "$SPECS"`, `phoenix plan -f "$SPECS" -o markdown`,
			`phoenix apply -f "$SPECS" --auto-approve`)
		for _, j := range []string{"plan", "apply"} {
			for _, s := range w.Jobs[j].Steps {
				if s.Env["PROXMOX_VE_API_TOKEN"] != "" && !strings.Contains(s.Env["PROXMOX_VE_API_TOKEN"], map[string]string{"plan": "secrets.PROXMOX_VE_API_TOKEN", "apply": "secrets.PROXMOX_VE_APPLY_TOKEN"}[j]) {
					t.Errorf("%s: %s gets the token %s", file, j, s.Env["PROXMOX_VE_API_TOKEN"])
				}
			}
		}
	}
	var gl map[string]any
	decode(t, "gitlab/.gitlab-ci.yml", &gl)
	var all []string
	for _, job := range []string{".phoenix", "validate", "plan", "apply"} {
		j, ok := gl[job].(map[string]any)
		if !ok {
			t.Errorf("gitlab/.gitlab-ci.yml: no job %s", job)
			continue
		}
		var lines []string
		for _, key := range []string{"before_script", "script"} {
			list, _ := j[key].([]any)
			for _, l := range list {
				lines = append(lines, l.(string))
			}
		}
		if job != ".phoenix" && j["extends"] != ".phoenix" {
			t.Errorf("gitlab/.gitlab-ci.yml: %s does not install phoenix (extends .phoenix)", job)
		}
		scripts["gitlab "+job] = strings.Join(lines, "\n")
		all = append(all, lines...)
	}
	wantScript(t, "gitlab/.gitlab-ci.yml", strings.Join(all, "\n"), install, `phoenix validate -f "$SPECS"`,
		`phoenix plan -f "$SPECS" -o markdown`, `phoenix apply -f "$SPECS" --auto-approve`, "merge_requests/$CI_MERGE_REQUEST_IID/notes")
	if rules, _ := gl["plan"].(map[string]any)["rules"].([]any); len(rules) != 1 || !strings.Contains(rules[0].(map[string]any)["if"].(string), "merge_request_event") {
		t.Errorf("gitlab/.gitlab-ci.yml: plan runs on %v, want merge requests", rules)
	}

	// The phoenix commands in them are phoenix's.
	for _, args := range [][]string{{"plan", "-o", "markdown"}, {"apply", "--auto-approve"}} {
		cmd, _, err := newRootCmd(io.Discard, io.Discard).Find(args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(args[1:]); err != nil {
			t.Errorf("phoenix %s: %v", strings.Join(args, " "), err)
		}
	}

	sc := testtool.Require(t, "shellcheck")
	dir := t.TempDir()
	names := make([]string, 0, len(scripts))
	for name := range scripts {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(name)+".sh")
		if err := os.WriteFile(path, []byte(scripts[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		// GitHub's and Gitea's runners run steps with bash; GitLab's
		// golang image too.
		if out, err := exec.Command(sc, "--shell=bash", "--severity=style", path).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s\n--- script ---\n%s", name, err, out, scripts[name])
		}
	}
}

func decode(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../examples/ci", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func wantScript(t *testing.T, file, script string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(script, w) {
			t.Errorf("%s: no %s in its scripts", file, w)
		}
	}
}
