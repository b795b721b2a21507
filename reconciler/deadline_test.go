package reconciler

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler/features"
)

// exitNode is a Node whose checks fail and whose applies exit with a given
// status, at once; it records the bound the apply was sent with.
type exitNode struct {
	Node
	code    int
	stderr  string
	timeout time.Duration
}

func (n *exitNode) Exec(_ context.Context, _ int, s Script) (Result, error) {
	if s.Phase == "check" {
		return Result{ExitCode: 1}, nil
	}
	n.timeout = s.Timeout
	return Result{ExitCode: n.code, Stderr: n.stderr}, nil
}

func (n *exitNode) ExecHost(ctx context.Context, s Script) (Result, error) { return n.Exec(ctx, 0, s) }

func (n *exitNode) Push(context.Context, int, string, string, os.FileMode) error { return nil }

func (n *exitNode) WriteFile(context.Context, int, FileWrite) error { return nil }

// TestStepTimeoutIsTimeoutsExitOnceTheTimeIsUp: timeout(1)'s statuses mean
// a timeout only once the step's time has passed; a script that exits 124
// by itself, sooner, failed as any other.
func TestStepTimeoutIsTimeoutsExitOnceTheTimeIsUp(t *testing.T) {
	g := GuestPlan{Name: "web", VMID: 101, Node: "pve1"}
	cases := map[string]struct {
		code    int
		timeout time.Duration
		kind    ErrorKind
		msg     string
	}{
		"SIGTERM after the time":   {124, time.Nanosecond, ErrorTimeout, "step web/install apply ran out of its 1ns and was stopped in the guest (SIGTERM); its last output: E: stuck"},
		"SIGKILL after the time":   {137, time.Nanosecond, ErrorTimeout, "step web/install apply ran out of its 1ns and was stopped in the guest (SIGKILL, as it outlived SIGTERM by 30s); its last output: E: stuck"},
		"124 of its own, in time":  {124, time.Hour, ErrorStep, "web/install apply exited 124: E: stuck"},
		"another failure, in time": {100, time.Hour, ErrorStep, "web/install apply exited 100: E: stuck"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n := &exitNode{code: tc.code, stderr: "E: stuck\n"}
			e := newEngine(nil, func(string) (Node, error) { return n, nil }, nil, &Observed{}, ApplyOptions{Retry: RetryPolicy{Attempts: 1}})
			s := features.Step{Name: "web/install", Check: "false", Apply: "true", Timeout: tc.timeout}
			err := e.step(context.Background(), g, Change{Action: InstallFeature, Feature: "web"}, n, s)
			if n.timeout != tc.timeout {
				t.Errorf("sent with timeout %v, want %v", n.timeout, tc.timeout)
			}
			var te *StepTimeoutError
			if ErrorKindOf(err) != tc.kind || err.Error() != tc.msg || (tc.kind == ErrorTimeout) != errors.As(err, &te) {
				t.Errorf("err %v (kind %s), want %q (kind %s)", err, ErrorKindOf(err), tc.msg, tc.kind)
			}
		})
	}
}

// TestProgress: a pass in flight is stalled once nothing happened for longer
// than the bound; any event is progress; between passes nothing is stalled.
func TestProgress(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var p progress
	if why := p.stalled(t0, time.Minute); why != "" {
		t.Errorf("before any pass: %q", why)
	}
	p.begin(t0)
	p.event(t0.Add(time.Minute), Event{Guest: "web", Action: InstallFeature, Feature: "web", Step: "web/install", Phase: "apply", Outcome: Running})
	if why := p.stalled(t0.Add(2*time.Minute), time.Minute); why != "" {
		t.Errorf("a minute after a heartbeat, with a bound of a minute: %q", why)
	}
	want := "the pass started at 2026-11-01T00:00:00Z has made no progress for 1m1s (more than 1m0s); " +
		"the last was web: web/install apply running at 2026-11-01T00:01:00Z"
	if why := p.stalled(t0.Add(2*time.Minute+time.Second), time.Minute); why != want {
		t.Errorf("stalled: %q, want %q", why, want)
	}
	p.end()
	if why := p.stalled(t0.Add(time.Hour), time.Minute); why != "" {
		t.Errorf("after the pass: %q", why)
	}
}
