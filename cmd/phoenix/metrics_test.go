package main

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestMetricsComeFromTypedFields: the counters are built from the events'
// fields (action, feature, outcome, error kind), never by parsing their text.
func TestMetricsComeFromTypedFields(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	install := reconciler.Event{Guest: "g", Action: reconciler.ReinstallFeature, Feature: "cuda-toolkit"}
	for _, ev := range []reconciler.Event{
		withOutcome(install, reconciler.Started, nil),
		// Parts of an action are not actions.
		{Guest: "g", Action: reconciler.ReinstallFeature, Feature: "cuda-toolkit", Step: "cuda-toolkit/toolkit", Phase: "apply", Outcome: reconciler.Done},
		withOutcome(install, reconciler.Done, nil),
		withOutcome(reconciler.Event{Guest: "h", Action: reconciler.Restart}, reconciler.Failed, errors.New("boom")),
		withOutcome(reconciler.Event{Guest: "i", Action: reconciler.Start}, reconciler.Skipped, nil),
	} {
		m.event(ev)
	}
	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{
		{testutil.ToFloat64(m.actions.WithLabelValues("reinstall", "done")), 1, "reinstall done"},
		{testutil.ToFloat64(m.actions.WithLabelValues("restart", "failed")), 1, "restart failed"},
		{testutil.ToFloat64(m.actions.WithLabelValues("start", "skipped")), 1, "start skipped"},
		{testutil.ToFloat64(m.featureInstalls.WithLabelValues("cuda-toolkit", "done")), 1, "cuda-toolkit installs"},
		{testutil.ToFloat64(m.failures.WithLabelValues("restart", "transient")), 1, "restart failures by kind"},
		{float64(testutil.CollectAndCount(m.actions)), 3, "action series"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

func withOutcome(ev reconciler.Event, o reconciler.Outcome, err error) reconciler.Event {
	ev.Outcome, ev.Err = o, err
	if err != nil {
		ev.ErrKind = reconciler.ErrorTransient
	}
	return ev
}
