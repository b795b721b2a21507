package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// TestHealthCheckRestartsAHungGuest: phoenix run checks a converged guest on
// the check's interval; a check that fails its retries in a row is reported
// (not Healthy, not Ready), restarts the container under onFailure: restart
// (once: the restart cures it), and the guest is Healthy and Ready again.
func TestHealthCheckRestartsAHungGuest(t *testing.T) {
	r := newRig(t, nil)
	r.respec(specEdit{"containers.yaml", "  features: [ollama]\n",
		"  features: [ollama]\n  health: [{name: api, http: \"http://127.0.0.1:11434/api/tags\", interval: 1s, timeout: 1s, retries: 2, onFailure: restart}]\n"})
	r.mustConverge(r.options())

	out := &outputs{}
	health := reconciler.NewHealthRunner(r.cluster, r.node, reconciler.HealthOptions{Log: out.logger()})
	l := r.loop(reconciler.LoopOptions{Interval: time.Hour, Health: health, Log: out.logger()}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, stop, false) }()
	defer func() {
		close(stop)
		cancel()
		<-done
	}()

	// ollama's health, from the last report, once it satisfies ok.
	await := func(what string, ok func(reconciler.GuestStatus, reconciler.Condition) bool) reconciler.GuestStatus {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			for _, g := range l.Report().Guests {
				for _, c := range g.Conditions {
					if g.Name == "ollama" && c.Type == reconciler.CondHealthy && ok(g, c) {
						return g
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("ollama never %s: %+v\nlog:\n%s", what, l.Report().Guests, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Its own check, then its features' (docker's is inherited).
	g := await("was checked", func(g reconciler.GuestStatus, c reconciler.Condition) bool {
		return c.Status && g.Health != nil && len(g.Health.Checks) == 3 && g.Health.Checks[0].Last != nil && g.Health.Checks[0].Last.OK
	})
	var names []string
	for _, c := range g.Health.Checks {
		names = append(names, c.Feature+"/"+c.Name)
	}
	if !g.Ready() || strings.Join(names, " ") != "/api docker/docker ollama/ollama" {
		t.Fatalf("ollama while healthy: %+v, checks %v", g.Conditions, names)
	}

	// The service hangs; only a restart cures it.
	from := r.lastSeq()
	r.sim.SetHealthFault(955, "api", sim.HealthFault{UntilRestart: true})
	g = await("was reported unhealthy", func(_ reconciler.GuestStatus, c reconciler.Condition) bool { return !c.Status })
	if g.Ready() {
		t.Errorf("ollama is Ready while not Healthy: %+v", g.Conditions)
	}
	g = await("passed again after a restart", func(g reconciler.GuestStatus, c reconciler.Condition) bool {
		return c.Status && g.Health.Checks[0].Last.OK && g.Health.LastAction != ""
	})
	if !g.Ready() || !strings.HasPrefix(g.Health.LastAction, "restarted at") || !strings.Contains(g.Health.LastAction, "health check api failed 2 times in a row") {
		t.Errorf("ollama after the restart: %+v, last action %q", g.Conditions, g.Health.LastAction)
	}

	reboots, failed, passedAfter := 0, 0, false
	for _, e := range r.events(from) {
		switch {
		case e.Kind == "task" && e.Name == "vzreboot" && e.VMID == 955 && !strings.HasPrefix(e.Detail, "started"):
			reboots++
		case e.Kind == "exec" && e.Name == "health/api" && e.VMID == 955 && !e.OK:
			failed++
		case e.Kind == "exec" && e.Name == "health/api" && e.VMID == 955 && e.OK && reboots > 0:
			passedAfter = true
		}
	}
	if reboots != 1 || failed < 2 || !passedAfter {
		t.Errorf("ollama rebooted %d times (want 1) after %d failed checks (want 2 or more), passed after: %v\nlog:\n%s", reboots, failed, passedAfter, out.String())
	}
	if !strings.Contains(out.String(), "restarting the guest") || !strings.Contains(out.String(), "health check failing") {
		t.Errorf("the log does not say what happened:\n%s", out.String())
	}
}
