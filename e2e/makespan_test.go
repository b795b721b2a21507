package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// BenchmarkMakespan converges the examples from empty with the example
// world's realistic relative durations, once one guest at a time (what the
// hand-written scripts did) and once with the engine's parallelism, and
// reports the makespan against its lower bound: the longest chain of
// dependent guests, or a template's chain plus its clones one after another
// (Proxmox locks the source of a clone), with each guest's work as measured
// when it ran alone.
func BenchmarkMakespan(b *testing.B) {
	for b.Loop() {
		serial, work := makespan(b, 1)
		parallel, _ := makespan(b, 4)
		bound := lowerBound(b, work)
		b.ReportMetric(serial.Seconds(), "serial-s")
		b.ReportMetric(parallel.Seconds(), "parallel-s")
		b.ReportMetric(bound.Seconds(), "bound-s")
		b.ReportMetric(float64(parallel)/float64(bound), "x-bound")
		b.ReportMetric(float64(serial)/float64(parallel), "x-faster-than-serial")
	}
}

// guestWork is one guest's time from its first step to its last, and of its
// clone step.
type guestWork struct {
	total, clone time.Duration
}

func makespan(b *testing.B, parallelism int) (time.Duration, map[string]guestWork) {
	return rigMakespan(b, newBenchRig(b), parallelism)
}

// rigMakespan converges a rig's specs from empty at a parallelism (0: the
// default) and returns the makespan and each guest's work.
func rigMakespan(b *testing.B, r *rig, parallelism int) (time.Duration, map[string]guestWork) {
	opts := r.options()
	opts.Parallelism = parallelism
	var mu sync.Mutex
	firstAt, lastAt := map[string]time.Time{}, map[string]time.Time{}
	cloneTime := map[string]time.Duration{}
	opts.Events = func(ev reconciler.Event) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := firstAt[ev.Guest]; !ok {
			firstAt[ev.Guest] = ev.Time
		}
		lastAt[ev.Guest] = ev.Time
		if ev.Action == reconciler.Clone && ev.ActionLevel() && ev.Outcome == reconciler.Done {
			cloneTime[ev.Guest] = ev.Duration
		}
	}
	start := time.Now()
	res := r.apply(context.Background(), opts)
	elapsed := time.Since(start)
	if res.Failed() {
		b.Fatalf("apply failed: %+v", res)
	}
	work := map[string]guestWork{}
	for g := range firstAt {
		work[g] = guestWork{total: lastAt[g].Sub(firstAt[g]), clone: cloneTime[g]}
	}
	return elapsed, work
}

func newBenchRig(b *testing.B) *rig {
	return newRigTB(b, func(w *sim.World) { w.Spec.TimeScale = 0.01 })
}

func lowerBound(b *testing.B, work map[string]guestWork) time.Duration {
	r := newRigTB(b, nil)
	chain := map[string]time.Duration{}
	var bound time.Duration
	for _, g := range r.res.Guests { // parents first
		chain[g.Name] = chain[g.Parent] + work[g.Name].total
		bound = max(bound, chain[g.Name])
		var clones time.Duration
		for _, c := range g.Children {
			clones += work[c].clone
		}
		bound = max(bound, chain[g.Name]+clones)
	}
	return bound
}
