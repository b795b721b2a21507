package main

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixhv/phoenix/reconciler"
)

// healthCollector exports the health checks phoenix run keeps, read when
// /metrics is scraped: a check taken out of the specs leaves no series behind.
type healthCollector struct {
	snapshot func() map[string]reconciler.GuestHealth
}

var (
	healthCheckHealthy = prometheus.NewDesc("phoenix_health_check_healthy",
		"1 while a guest's health check has failed fewer times in a row than its retries, else 0.", []string{"guest", "check"}, nil)
	healthCheckFailures = prometheus.NewDesc("phoenix_health_check_failures_total",
		"Runs of a guest's health check that failed, since phoenix started.", []string{"guest", "check"}, nil)
	healthCheckLastRun = prometheus.NewDesc("phoenix_health_check_last_run_timestamp_seconds",
		"When a guest's health check last ran.", []string{"guest", "check"}, nil)
)

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- healthCheckHealthy
	ch <- healthCheckFailures
	ch <- healthCheckLastRun
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.snapshot()
	for _, guest := range slices.Sorted(maps.Keys(snap)) {
		for _, st := range snap[guest].Checks {
			healthy := 0.0
			if st.Healthy {
				healthy = 1
			}
			ch <- prometheus.MustNewConstMetric(healthCheckHealthy, prometheus.GaugeValue, healthy, guest, st.Name)
			ch <- prometheus.MustNewConstMetric(healthCheckFailures, prometheus.CounterValue, float64(st.FailuresTotal), guest, st.Name)
			if st.Last != nil {
				ch <- prometheus.MustNewConstMetric(healthCheckLastRun, prometheus.GaugeValue, float64(st.Last.At.UnixNano())/1e9, guest, st.Name)
			}
		}
	}
}
