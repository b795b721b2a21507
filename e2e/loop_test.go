package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

func (r *rig) loop(opts reconciler.LoopOptions, load func() (*spec.Resolution, error)) *reconciler.Loop {
	if load == nil {
		load = func() (*spec.Resolution, error) { return r.res, nil }
	}
	events := opts.Apply.Events
	opts.Apply = r.options()
	opts.Apply.Events = events
	return reconciler.NewLoop(r.cluster, r.node, load, opts)
}

func TestLoopBacksOffAFailingGuestWhileOthersConverge(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Faults.Exec.Scripts = map[string]float64{"nginx/install": 1} })
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	l := r.loop(reconciler.LoopOptions{BackoffInitial: time.Minute, Now: func() time.Time { return now }}, nil)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rep := l.Report()
	if rep.Pass.Failed != 1 || !strings.HasPrefix(rep.Backoff["nginx"], "retries after") {
		t.Fatalf("after the first pass: %+v backoff %v", rep.Pass, rep.Backoff)
	}
	for _, g := range rep.Guests {
		if g.Name != "nginx" && !g.Ready() {
			t.Errorf("%s not ready: %+v", g.Name, g.Conditions)
		}
		if g.Name == "nginx" && (g.Ready() || g.LastError == nil || !strings.Contains(g.LastError.Message, "nginx/install")) {
			t.Errorf("nginx: %+v", g)
		}
	}
	// Within the backoff, nginx is left alone.
	from := r.lastSeq()
	now = now.Add(30 * time.Second)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, e := range r.events(from) {
		if e.VMID == 960 && e.Kind == "exec" {
			t.Errorf("nginx worked on while backing off: %s %s", e.Name, e.Phase)
		}
	}
	// After it, tried again; the step is healed meanwhile.
	r.sim.SetScriptFault("nginx/install", 0)
	now = now.Add(2 * time.Minute)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if rep := l.Report(); rep.Pass.Failed != 0 || len(rep.Backoff) != 0 {
		t.Errorf("after the backoff: %+v %v", rep.Pass, rep.Backoff)
	}
	for _, g := range l.Report().Guests {
		if !g.Ready() || g.LastError != nil {
			t.Errorf("%s: ready %v, last error %v", g.Name, g.Ready(), g.LastError)
		}
	}
}

// TestLoopWaitsForAPersonOnAConflict: a VMID held by a guest phoenix does
// not own waits for a person; once the guest is gone the next pass converges
// without any change to the spec (the plan shows the problem, and drops it,
// by itself).
func TestLoopWaitsForAPersonOnAConflict(t *testing.T) {
	r := newRig(t, func(w *sim.World) {
		w.Spec.Guests = append(w.Spec.Guests, sim.WorldGuest{VMID: 960, Name: "handmade", Node: "pve1"})
	})
	l := r.loop(reconciler.LoopOptions{}, nil)
	for range 2 {
		if err := l.Pass(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	rep := l.Report()
	if got := rep.Backoff["nginx"]; !strings.HasPrefix(got, "waits for a person (conflict: VMID 960 is held by container \"handmade\"") {
		t.Errorf("nginx backoff %q", got)
	}
	if rep.Pass.Problems != 1 || rep.Pass.Converged() {
		t.Errorf("pass %+v: want one guest with a problem", rep.Pass)
	}
	// The person removes the hand-made container.
	if err := r.cluster.Delete(context.Background(), "pve1", 960); err != nil {
		t.Fatal(err)
	}
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if rep := l.Report(); !rep.Pass.Converged() || len(rep.Backoff) != 0 {
		t.Errorf("after the conflict is gone: %+v %v", rep.Pass, rep.Backoff)
	}
}

// TestLoopRetriesAFailedProbe: a GPU probe that fails once is a problem of
// observation, retried with backoff; the guests it held back converge as soon
// as it passes, with the spec unchanged.
func TestLoopRetriesAFailedProbe(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Faults.Exec.Scripts = map[string]float64{"phoenix/host-probe": 1} })
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	l := r.loop(reconciler.LoopOptions{BackoffInitial: time.Minute, Now: func() time.Time { return now }}, nil)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rep := l.Report()
	if got := rep.Backoff["gpu-base"]; !strings.HasPrefix(got, "retries after") || !strings.Contains(got, "(observe: GPU probe of node pve1 failed") {
		t.Errorf("gpu-base backoff %q, want a retry of the observation", got)
	}
	r.sim.SetScriptFault("phoenix/host-probe", 0)
	now = now.Add(2 * time.Minute)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if rep := l.Report(); !rep.Pass.Converged() || len(rep.Backoff) != 0 {
		t.Errorf("after the probe passes: %+v %v", rep.Pass, rep.Backoff)
	}
	for _, g := range l.Report().Guests {
		if !g.Ready() {
			t.Errorf("%s not ready: %+v", g.Name, g.Conditions)
		}
	}
}

func TestLoopStopFinishesTheStepInFlight(t *testing.T) {
	r := newRig(t, nil)
	stop := make(chan struct{})
	// Stop as soon as the first feature install is under way.
	var once sync.Once
	l := r.loop(reconciler.LoopOptions{Apply: reconciler.ApplyOptions{Events: func(ev reconciler.Event) {
		if ev.Action == reconciler.InstallFeature && ev.Phase == "apply" && ev.Outcome == reconciler.Started {
			once.Do(func() { close(stop) })
		}
	}}}, nil)
	done := make(chan error)
	go func() { done <- l.Run(context.Background(), stop, false) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after stop: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the loop did not stop")
	}
	// Nothing was cut off: no command was cancelled mid-way.
	for _, e := range r.events(0) {
		if strings.HasPrefix(e.Detail, "cancelled") {
			t.Errorf("a step was cancelled instead of finished: %+v", e)
		}
	}
	// A new run picks up where it stopped.
	r.mustConverge(r.options())
}

func TestLoopRunsAPassOnTrigger(t *testing.T) {
	r := newRig(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	passes := make(chan reconciler.PassInfo, 10)
	l := r.loop(reconciler.LoopOptions{Interval: time.Hour, Pass: func(p reconciler.PassInfo, _ *reconciler.Plan, _ *reconciler.ApplyResult, _ []reconciler.GuestStatus) {
		passes <- p
	}}, nil)
	go func() { _ = l.Run(ctx, nil, false) }()
	first := <-passes
	if first.Error != "" || first.Changed == 0 || !l.Ready() {
		t.Fatalf("first pass %+v ready %v", first, l.Ready())
	}
	l.Trigger()
	select {
	case p := <-passes:
		if p.Changed != 0 {
			t.Errorf("a pass on a converged cluster changed %d guests", p.Changed)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Trigger started no pass")
	}
}

// What a pass saw stays in memory after it only where a status page asks
// for it (KeepView): a loop over many guests otherwise holds none of it
// between passes.
func TestLoopKeepsTheLastViewOnlyWhenAsked(t *testing.T) {
	r := newRig(t, nil)
	for _, keep := range []bool{false, true} {
		l := r.loop(reconciler.LoopOptions{KeepView: keep}, nil)
		if err := l.Pass(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		v := l.LastView()
		if got := v.Res != nil && v.Obs != nil && v.Applied != nil && v.Remaining != nil; got != keep {
			t.Errorf("KeepView %v: view %+v", keep, v)
		}
	}
}
