package main

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
)

// planNames plans with args and returns the names of the guests the JSON
// plan holds, in order, and its targeted block.
func planNames(t *testing.T, args ...string) ([]string, map[string]any) {
	t.Helper()
	code, out, errOut := phoenix(t, append([]string{"plan", "-f", "../../examples/homelab", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("plan %v: exit %d\n%s", args, code, errOut)
	}
	var plan struct {
		Guests   []struct{ Name string }
		Targeted map[string]any
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var names []string
	for _, g := range plan.Guests {
		names = append(names, g.Name)
	}
	return names, plan.Targeted
}

// TestPlanTargetShowsOnlyTheTargetsAndWhatTheyNeed: --target plans the
// named guests with their templates, case ignored, and says it is targeted.
func TestPlanTargetShowsOnlyTheTargetsAndWhatTheyNeed(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"a clone of the root":   {[]string{"--target", "NGINX"}, []string{"ubuntu-2404-base", "nginx"}},
		"a clone's whole chain": {[]string{"--target", "ollama"}, []string{"ubuntu-2404-base", "gpu-base", "docker-gpu", "ollama"}},
		"repeated":              {[]string{"--target", "nginx", "--target", "vllm-qwen"}, []string{"ubuntu-2404-base", "gpu-base", "vllm-qwen", "nginx"}},
		"a template":            {[]string{"--target", "gpu-base"}, []string{"ubuntu-2404-base", "gpu-base"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, targeted := planNames(t, tc.args...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("planned %v, want %v", got, tc.want)
			}
			if targeted == nil || targeted["planned"] != float64(len(tc.want)) || targeted["total"] != float64(6) {
				t.Errorf("targeted = %v", targeted)
			}
		})
	}
	if got, targeted := planNames(t); len(got) != 6 || targeted != nil {
		t.Errorf("an untargeted plan: %v, targeted %v", got, targeted)
	}
	code, out, _ := phoenix(t, "plan", "-f", "../../examples/homelab", "--target", "nginx")
	if code != 0 || !strings.Contains(out, "Targeted (nginx): 2 of 6 guests; the others are not planned.\nPlan: 2 to create,") || strings.Contains(out, "gpu-base") {
		t.Errorf("plan --target nginx: exit %d\n%s", code, out)
	}
}

func TestTargetUsageErrors(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown, close":    {[]string{"plan", "--target", "nginz"}, `--target: no Template or Container named "nginz" (did you mean nginx?) in the specs`},
		"unknown, far":      {[]string{"apply", "--auto-approve", "--target", "postgres"}, `--target: no Template or Container named "postgres" in the specs`},
		"with --prune":      {[]string{"plan", "--target", "nginx", "--prune"}, "--prune cannot be combined with --target"},
		"apply with prune":  {[]string{"apply", "--target", "nginx", "--prune"}, "--prune cannot be combined with --target"},
		"run takes no such": {[]string{"run", "--once", "--target", "nginx"}, "unknown flag: --target"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := phoenix(t, append(tc.args[:1:1], append([]string{"-f", "../../examples/homelab"}, tc.args[1:]...)...)...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q, want 1 and %q", code, errOut, tc.want)
			}
		})
	}
}

// touched lists the VMIDs the simulator saw written to: tasks, commands run
// in them and API calls other than reads.
func touched(s *sim.Sim) map[int]bool {
	out := map[int]bool{}
	for _, e := range s.Journal() {
		if e.VMID == 0 || e.Kind == "api" && strings.HasPrefix(e.Name, "GET ") {
			continue
		}
		out[e.VMID] = true
	}
	return out
}

// TestApplyTargetTouchesOnlyTheTargetedGuests: apply --target makes the
// target and its template and nothing else; a whole plan afterwards still
// has the rest to do.
func TestApplyTargetTouchesOnlyTheTargetedGuests(t *testing.T) {
	s := startSim(t, "../../examples/homelab/world.yaml", nil)
	code, out, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--target", "nginx", "--auto-approve", "--quiet")
	if code != 0 || !strings.Contains(out, "Apply complete: 2 created") {
		t.Fatalf("apply --target nginx: exit %d\n%s\n%s", code, out, errOut)
	}
	if got, want := touched(s), map[int]bool{900: true, 960: true}; !maps.Equal(got, want) {
		t.Errorf("touched VMIDs %v, want %v", got, want)
	}
	code, out, _ = phoenix(t, "plan", "-f", "../../examples/homelab", "--target", "nginx", "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "No changes. The targeted guests match the specs.") {
		t.Errorf("nginx converged: exit %d\n%s", code, out)
	}
	if code, out, _ = phoenix(t, "plan", "-f", "../../examples/homelab"); !strings.Contains(out, "Plan: 4 to create") {
		t.Errorf("the rest is still to do: exit %d\n%s", code, out)
	}
}

// TestSavedTargetedPlan: a plan saved with --target records its targets,
// and apply PLANFILE carries out that plan only.
func TestSavedTargetedPlan(t *testing.T) {
	s := startSim(t, "../../examples/homelab/world.yaml", nil)
	file := filepath.Join(t.TempDir(), "nginx.plan")
	if code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab", "--target", "nginx", "--out", file); code != 0 {
		t.Fatalf("plan --out: exit %d\n%s\n%s", code, out, errOut)
	}
	saved, err := readSavedPlan([]string{file})
	if err != nil || saved == nil || !slices.Equal(saved.Options.Targets, []string{"nginx"}) || saved.Plan.Targeted == nil {
		t.Fatalf("saved plan: %v, %+v", err, saved)
	}
	if code, _, errOut := phoenix(t, "apply", file, "--target", "gpu-base"); code != 1 || !strings.Contains(errOut, "a saved plan carries its spec files and its options") {
		t.Errorf("apply FILE --target: exit %d: %s", code, errOut)
	}
	code, out, errOut := phoenix(t, "apply", file, "--quiet")
	if code != 0 || !strings.Contains(out, "Targeted (nginx): 2 of 6 guests") || !strings.Contains(out, "Apply complete: 2 created") {
		t.Fatalf("apply FILE: exit %d\n%s\n%s", code, out, errOut)
	}
	if got, want := touched(s), map[int]bool{900: true, 960: true}; !maps.Equal(got, want) {
		t.Errorf("touched VMIDs %v, want %v", got, want)
	}
}
