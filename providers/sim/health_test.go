package sim

import (
	"strings"
	"testing"
)

// TestHealthChecks: a probe of ollama's API passes once ollama is
// installed; a world fault fails a named check for a number of runs, or
// until the container restarts; a user's command passes; no check passes on
// a stopped container (pct exec refuses it).
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Faults.Health = map[string]HealthFault{"100/own": {Runs: 2}}
	})
	probe := []string{"PHOENIX_HEALTH_HTTP=http://127.0.0.1:11434/", "PHOENIX_HEALTH_TIMEOUT=5", "PHOENIX_HEALTH_FEATURE=ollama"}
	check := func(name string, env ...string) sshResult {
		return l.script("pve1", 100, "health/"+name, "check", "probe", env...)
	}
	r := check("ollama", probe...)
	wantExit(t, "ollama before its install", r, 1)
	if !strings.Contains(r.stdout, "no answer from http://127.0.0.1:11434/") {
		t.Errorf("ollama before its install: %v", r)
	}
	wantExit(t, "ollama install", l.script("pve1", 100, "ollama/install", "apply", "install"), 0)
	wantExit(t, "ollama installed", check("ollama", probe...), 0)
	// The same port probed by a check of the guest's own.
	wantExit(t, "ollama by tcp", check("port", "PHOENIX_HEALTH_TCP=127.0.0.1:11434"), 0)

	wantExit(t, "own check, first injected failure", check("own"), 1)
	wantExit(t, "own check, second injected failure", check("own"), 1)
	wantExit(t, "own check, after the injected failures", check("own"), 0)

	l.s.SetHealthFault(100, "ollama", HealthFault{UntilRestart: true})
	wantExit(t, "hung ollama", check("ollama", probe...), 1)
	wantExit(t, "hung ollama, again", check("ollama", probe...), 1)
	l.reboot("pve1", 100)
	wantExit(t, "ollama after a restart", check("ollama", probe...), 0)

	l.s.SetHealthFault(100, "own", HealthFault{Fail: true})
	wantExit(t, "failing own check", check("own"), 1)
	l.s.SetHealthFault(100, "own", HealthFault{})
	wantExit(t, "healed own check", check("own"), 0)

	l.stop("pve1", 100)
	wantExit(t, "a check of a stopped container", check("own"), 255, "container '100' not running!")
}

func TestHealthFaultsInAWorldFile(t *testing.T) {
	w, err := ParseWorld([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec:\n  nodes: [{name: pve1}]\n" +
		"  faults:\n    health: {\"955/ollama\": fail, \"955/api\": untilRestart, \"960/web\": 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := w.Spec.Faults.Health
	if !got["955/ollama"].Fail || !got["955/api"].UntilRestart || got["960/web"].Runs != 3 {
		t.Errorf("faults.health: %+v", got)
	}
	for _, bad := range []string{`{"955/ollama": sometimes}`, `{"955/ollama": -1}`, `{"ollama": fail}`, `{"955/Bad_Name": 1}`} {
		if _, err := ParseWorld([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec:\n  nodes: [{name: pve1}]\n  faults:\n    health: " + bad + "\n")); err == nil {
			t.Errorf("faults.health %s was taken", bad)
		}
	}
}
