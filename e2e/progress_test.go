package e2e

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestLongStepsShowThatTheyAreAlive: while a long step runs, the engine
// passes on the lines it prints, as it prints them (streamed from the guest
// over SSH), and beats at a steady interval with how long it has run and its
// last line.
func TestLongStepsShowThatTheyAreAlive(t *testing.T) {
	r := newRig(t, nil)
	opts := r.options()
	opts.Heartbeat = 40 * time.Millisecond
	var mu sync.Mutex
	var events []reconciler.Event
	opts.Events = func(ev reconciler.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	}
	r.mustConverge(opts)
	var lines, beats []reconciler.Event
	var done reconciler.Event
	for _, ev := range events {
		if ev.Guest != "vllm-qwen" || ev.Step != "vllm/install" || ev.Phase != "apply" {
			continue
		}
		switch ev.Outcome {
		case reconciler.Output:
			lines = append(lines, ev)
		case reconciler.Running:
			beats = append(beats, ev)
		case reconciler.Done:
			done = ev
		}
	}
	if len(lines) < 3 || !strings.HasPrefix(lines[0].Output, "Progress: [") {
		t.Fatalf("vllm/install streamed %d lines: %+v", len(lines), lines)
	}
	if last := lines[len(lines)-1]; !last.Time.Before(done.Time) || done.Duration-last.Duration < 10*time.Millisecond {
		t.Errorf("the last line came at %v of a %v step: not streamed while it ran", last.Duration, done.Duration)
	}
	if len(beats) < 2 {
		t.Fatalf("%d heartbeats in a %v step at a 40ms interval", len(beats), done.Duration)
	}
	if !slices.IsSortedFunc(beats, func(a, b reconciler.Event) int { return int(a.Duration - b.Duration) }) {
		t.Error("heartbeats do not count up")
	}
	if b := beats[len(beats)-1]; !strings.HasPrefix(b.Output, "Progress: [") || b.Action != reconciler.InstallFeature || b.Feature != "vllm" {
		t.Errorf("a heartbeat without the step's last line or its action: %+v", b)
	}
}
