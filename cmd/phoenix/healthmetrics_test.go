package main

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestHealthMetrics: /metrics exports each check's health, its failures and
// when it last ran, from what the runner knows when it is scraped; a check
// that has not run yet has no last run.
func TestHealthMetrics(t *testing.T) {
	at := time.Unix(1_800_000_000, 500_000_000)
	snap := map[string]reconciler.GuestHealth{
		"ollama": {Name: "ollama", Checks: []reconciler.CheckStatus{
			{Name: "ollama", Retries: 3, Failures: 3, FailuresTotal: 7, Last: &reconciler.CheckResult{At: at, ExitCode: 1}},
		}},
		"web": {Name: "web", Checks: []reconciler.CheckStatus{
			{Name: "alive", Retries: 3, Healthy: true, FailuresTotal: 1, Last: &reconciler.CheckResult{At: at, OK: true}},
			{Name: "site", Retries: 3, Healthy: true},
		}},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(healthCollector{func() map[string]reconciler.GuestHealth { return snap }})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`phoenix_health_check_healthy{check="ollama",guest="ollama"} 0`,
		`phoenix_health_check_healthy{check="alive",guest="web"} 1`,
		`phoenix_health_check_healthy{check="site",guest="web"} 1`,
		`phoenix_health_check_failures_total{check="ollama",guest="ollama"} 7`,
		`phoenix_health_check_failures_total{check="site",guest="web"} 0`,
		`phoenix_health_check_last_run_timestamp_seconds{check="alive",guest="web"} 1.8000000005e+09`,
		"# TYPE phoenix_health_check_failures_total counter",
		"# TYPE phoenix_health_check_healthy gauge",
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), `last_run_timestamp_seconds{check="site"`) {
		t.Errorf("a check that never ran has a last run:\n%s", body)
	}
	// A check taken out of the specs leaves no series.
	delete(snap, "ollama")
	rec = httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(rec.Body.String(), `guest="ollama"`) {
		t.Errorf("a forgotten guest is still exported:\n%s", rec.Body.String())
	}
}
