package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixhv/phoenix/providers/pveapi"
	"github.com/phoenixhv/phoenix/reconciler"
)

// metrics are what phoenix run exports on /metrics.
type metrics struct {
	passDuration    prometheus.Histogram
	passes          *prometheus.CounterVec
	actions         *prometheus.CounterVec
	featureInstalls *prometheus.CounterVec
	failures        *prometheus.CounterVec
	guests          *prometheus.GaugeVec
	apiRequests     *prometheus.CounterVec
	apiErrors       *prometheus.CounterVec
	lastSuccess     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "phoenix_pass_duration_seconds", Help: "Duration of observe, plan and apply passes.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_passes_total", Help: "Passes by result (ok, failed: some guest failed or could not be converged, error: the pass could not run).",
		}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_actions_total", Help: "Actions taken on guests, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		featureInstalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_feature_installs_total", Help: "Feature installs, by feature and outcome.",
		}, []string{"feature", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_action_failures_total", Help: "Actions that failed, by action and kind of error (transient, permission, refused, step, timeout, ...).",
		}, []string{"action", "kind"}),
		guests: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "phoenix_guests", Help: "Specified guests by condition and its status after the last pass.",
		}, []string{"condition", "status"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_api_requests_total", Help: "Proxmox VE API requests, by endpoint and HTTP status code.",
		}, []string{"endpoint", "code"}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_api_errors_total", Help: "Proxmox VE API requests that failed (an error status or no answer), by endpoint.",
		}, []string{"endpoint"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "phoenix_last_successful_pass_timestamp_seconds", Help: "When the last pass that left every guest converged ended.",
		}),
	}
	reg.MustRegister(m.passDuration, m.passes, m.actions, m.featureInstalls, m.failures, m.guests, m.apiRequests, m.apiErrors, m.lastSuccess)
	return m
}

// event counts an engine event from its typed fields: each action of the
// plan once it ended, each feature install by feature, each failure by the
// kind of error.
func (m *metrics) event(ev reconciler.Event) {
	if !ev.ActionLevel() {
		return
	}
	switch ev.Outcome {
	case reconciler.Done, reconciler.Failed, reconciler.Skipped:
	default:
		return
	}
	m.actions.WithLabelValues(ev.Action.String(), string(ev.Outcome)).Inc()
	if ev.Feature != "" && (ev.Action == reconciler.InstallFeature || ev.Action == reconciler.ReinstallFeature) {
		m.featureInstalls.WithLabelValues(ev.Feature, string(ev.Outcome)).Inc()
	}
	if ev.Outcome == reconciler.Failed {
		m.failures.WithLabelValues(ev.Action.String(), string(ev.ErrKind)).Inc()
	}
}

// pass records the end of a pass.
func (m *metrics) pass(info reconciler.PassInfo, statuses []reconciler.GuestStatus) {
	m.passDuration.Observe(info.Duration.Seconds())
	switch {
	case info.Error != "":
		m.passes.WithLabelValues("error").Inc()
		return
	case !info.Converged():
		m.passes.WithLabelValues("failed").Inc()
	default:
		m.passes.WithLabelValues("ok").Inc()
		m.lastSuccess.Set(float64(info.Started.Add(info.Duration).UnixNano()) / 1e9)
	}
	m.guests.Reset()
	for _, g := range statuses {
		for _, c := range g.Conditions {
			m.guests.WithLabelValues(c.Type, strconv.FormatBool(c.Status)).Inc()
		}
	}
}

// transport counts API requests by endpoint: the path template from the API
// schema (/nodes/{node}/lxc/{vmid}/config), so that labels stay few.
func (m *metrics) transport(base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		endpoint := endpointOf(req.Method, req.URL.Path)
		res, err := base.RoundTrip(req)
		if err != nil {
			m.apiErrors.WithLabelValues(endpoint).Inc()
			m.apiRequests.WithLabelValues(endpoint, "none").Inc()
			return res, err
		}
		m.apiRequests.WithLabelValues(endpoint, strconv.Itoa(res.StatusCode)).Inc()
		if res.StatusCode >= 400 {
			m.apiErrors.WithLabelValues(endpoint).Inc()
		}
		return res, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var (
	schemaOnce sync.Once
	schema     *pveapi.Schema
)

func endpointOf(method, path string) string {
	schemaOnce.Do(func() { schema, _ = pveapi.Load(pveapi.V91) })
	path = strings.TrimPrefix(path, "/api2/json")
	if schema != nil {
		if m, _, err := schema.Lookup(method, path); err == nil {
			return method + " " + m.Path
		}
	}
	return method + " (unknown)"
}
