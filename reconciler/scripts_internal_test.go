package reconciler

import (
	"testing"
	"time"
)

// A readiness check's first poll waits a quarter of the retry policy's
// initial interval (with the library's jitter of a half either way), not the
// library's default half-second: set after its constructor, the intervals
// took effect only from the second wait.
func TestReadinessPollsStartAtThePolicy(t *testing.T) {
	p := RetryPolicy{Initial: 8 * time.Millisecond, Max: 400 * time.Millisecond}
	for range 20 {
		if d := readinessPolls(p).NextBackOff(); d < time.Millisecond || d > 3*time.Millisecond {
			t.Fatalf("the first poll waits %v, want 1-3 ms (a quarter of %v, jittered)", d, p.Initial)
		}
	}
	b := readinessPolls(p)
	var last time.Duration
	for range 40 {
		last = b.NextBackOff()
	}
	if last > 150*time.Millisecond {
		t.Errorf("a poll waits %v, past a quarter of the policy's most (%v) with its jitter", last, p.Max)
	}
}
