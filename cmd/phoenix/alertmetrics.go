package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Alert outcomes, the result label of phoenix_alerts_total.
const (
	alertSent    = "sent"
	alertFailed  = "failed"  // the receiver refused it, or every retry failed
	alertDropped = "dropped" // the sender's queue was full
)

// alertMetrics count what became of each alert, per target, so that an
// alert path that stopped working shows on the dashboard that would
// otherwise wait for its messages.
type alertMetrics struct {
	total *prometheus.CounterVec
}

// newAlertMetrics registers phoenix_alerts_total and, with alerts,
// phoenix_alert_incidents_open.
func newAlertMetrics(reg prometheus.Registerer, alerts *reconciler.Alerts) *alertMetrics {
	m := &alertMetrics{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "phoenix_alerts_total",
		Help: "Alerts by target kind, incident kind, state (open, resolved) and result (sent, failed, dropped).",
	}, []string{"target", "incident", "state", "result"})}
	reg.MustRegister(m.total)
	if alerts != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "phoenix_alert_incidents_open", Help: "Incidents a person must act on that are open now.",
		}, func() float64 { return float64(len(alerts.Open())) }))
	}
	return m
}

// count is an alertSenderOptions.Count.
func (m *alertMetrics) count(target, result string, a reconciler.Alert) {
	m.total.WithLabelValues(target, a.Kind, a.State, result).Inc()
}
