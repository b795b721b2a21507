package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// Feature scripts: a feature's steps run as named scripts in the guest (or on
// its node), each check, then apply when the check fails, then verify; an
// uninstall runs the steps' uninstall phase in reverse order.

// featureContext is what a feature's steps on a guest are computed from.
func (e *engine) featureContext(r *spec.Resolved, feature string) features.Context {
	host := e.hosts[r.Settings.Node]
	d, _ := desiredConfig(r, host)
	fctx := features.Context{Guest: r, Params: r.Params[feature], Devices: d.devices, NVIDIA: e.res.Cluster.NVIDIA}
	if host != nil {
		fctx.DriverVersion = host.Info.DriverVersion
	}
	return fctx
}

// install runs a feature's steps and records it in the guest's state block
// once it verified.
func (e *engine) install(ctx context.Context, g GuestPlan, r *spec.Resolved, c Change) error {
	steps, err := features.Steps(e.res.Catalog, c.Feature, e.featureContext(r, c.Feature))
	if err != nil {
		return err
	}
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if err := e.step(ctx, g, c, node, s); err != nil {
			return err
		}
	}
	rec := recordFor(e.res, r, c.Feature, e.hosts[r.Settings.Node])
	rec.VMID = g.VMID
	rec.At = e.opts.Now().UTC()
	return e.record(ctx, g, c.Feature, rec)
}

// uninstall runs a feature's uninstall phases, last step first, and drops its
// record once they all succeeded.
func (e *engine) uninstall(ctx context.Context, g GuestPlan, r *spec.Resolved, c Change) error {
	steps, err := features.UninstallSteps(e.res.Catalog, c.Feature, e.featureContext(r, c.Feature))
	if err != nil {
		return err
	}
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if err := e.attempts(ctx, g, c, s, "uninstall", func() (Result, error) {
			return e.runScript(ctx, g, c, node, s, "uninstall")
		}); err != nil {
			return err
		}
	}
	return e.forget(ctx, g, c.Feature)
}

// renewIdentity gives a clone SSH host keys of its own (and a machine-id
// where Proxmox's clone left it empty and systemd has not made one), and
// records that it did, so that it happens once.
func (e *engine) renewIdentity(ctx context.Context, g GuestPlan) error {
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	s := features.Identity()
	c := Change{Action: RenewIdentity}
	if err := e.attempts(ctx, g, c, s, "apply", func() (Result, error) { return e.runScript(ctx, g, c, node, s, "apply") }); err != nil {
		return err
	}
	now := e.opts.Now().UTC()
	return e.retry(ctx, g, Event{Action: RenewIdentity, Step: "record"}, func() error {
		return e.updateState(ctx, g, func(st *State) bool {
			st.Identity, st.IdentityDue = &now, false
			return true
		}, nil)
	})
}

// step runs one step: a wait is polled; otherwise check, and when the check
// fails, push and apply (tried again a few times), then verify.
func (e *engine) step(ctx context.Context, g GuestPlan, c Change, node Node, s features.Step) error {
	if s.Wait {
		return e.wait(ctx, g, Event{Action: c.Action, Feature: c.Feature, Target: changeTarget(c)}, node, s)
	}
	if s.Where == features.OnHost {
		unlock, err := e.hold(ctx, "host "+g.Node)
		if err != nil {
			return err
		}
		defer unlock()
	}
	res, err := e.runScript(ctx, g, c, node, s, "check")
	if err != nil {
		return err
	}
	// A reapply runs the apply of the guest's steps even where their check
	// passes: the software is there, yet its health check keeps failing.
	if res.ExitCode != 0 || c.Reapply && s.Where == features.InGuest {
		if err := e.attempts(ctx, g, c, s, "apply", func() (Result, error) {
			if err := e.push(ctx, g, c, node, s); err != nil {
				return Result{}, err
			}
			return e.runScript(ctx, g, c, node, s, "apply")
		}); err != nil {
			return err
		}
	}
	if !s.HasVerify() {
		return nil
	}
	res, err = e.runScript(ctx, g, c, node, s, "verify")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return stepError(s, "verify", res)
	}
	return nil
}

func (e *engine) push(ctx context.Context, g GuestPlan, c Change, node Node, s features.Step) error {
	if s.Push == nil {
		return nil
	}
	p := s.Push
	return e.retry(ctx, g, Event{Action: c.Action, Feature: c.Feature, Target: changeTarget(c), Step: "push " + p.Src}, func() error {
		return node.Push(ctx, g.VMID, p.Src, p.Dst, os.FileMode(p.Mode))
	})
}

// attempts runs a script phase and tries it again a few times when it exits
// non-zero: install scripts are idempotent, and the usual failures (a dpkg
// lock held by unattended-upgrades, a mirror hiccup) pass.
func (e *engine) attempts(ctx context.Context, g GuestPlan, c Change, s features.Step, phase string, run func() (Result, error)) error {
	var last error
	for attempt := range e.opts.Retry.Attempts {
		if attempt > 0 {
			wait := e.opts.Retry.Initial << (attempt - 1)
			e.event(g, Event{Action: c.Action, Feature: c.Feature, Target: changeTarget(c), Step: s.Name, Phase: phase, Outcome: Retrying, Duration: wait, Err: last})
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		res, err := run()
		if err != nil {
			return err
		}
		if res.ExitCode == 0 {
			return nil
		}
		last = stepError(s, phase, res)
	}
	return last
}

// runScript runs one phase of a step, with events for its start and end, its
// output lines as they come and a heartbeat while it runs. Failures worth
// retrying (a dropped connection) are retried; an exit status is an answer.
func (e *engine) runScript(ctx context.Context, g GuestPlan, c Change, node Node, s features.Step, phase string) (Result, error) {
	base := Event{Action: c.Action, Feature: c.Feature, Target: changeTarget(c), Step: s.Name, Phase: phase}
	start := time.Now()
	ev := base
	ev.Outcome = Started
	e.event(g, ev)
	live := e.heartbeat(g, base, start)
	script := Script{Name: s.Name, Phase: phase, Body: s.BodyFor(phase), Env: s.Env, Output: live.line, Timeout: s.TimeoutFor(phase)}
	var res Result
	err := e.retry(ctx, g, base, func() error {
		var err error
		res, err = execBounded(ctx, g, node, s, script)
		return err
	})
	live.stop()
	ev = base
	ev.Duration = time.Since(start)
	switch {
	case err != nil:
		ev.Outcome, ev.Err = Failed, err
	case phase == "check" && res.ExitCode != 0:
		ev.Outcome = Needed
	case phase == "check":
		ev.Outcome = Skipped
	case res.ExitCode != 0:
		ev.Outcome, ev.Err = Failed, stepError(s, phase, res)
	default:
		ev.Outcome = Done
	}
	e.event(g, ev)
	return res, err
}

// scriptAnswerGrace is how long past a script's own bound (its Timeout and
// the SIGKILL after it) phoenix waits for its exit status: what is still
// missing then is a node or a connection that stopped answering.
const scriptAnswerGrace = 30 * time.Second

// execBounded runs one phase of a step where it runs. The script carries its
// bound (Timeout), which the node enforces where the script runs; the wait
// for its exit status is bounded too, a little later, for a node that no
// longer answers. A script that ran out of its time is a *StepTimeoutError.
func execBounded(ctx context.Context, g GuestPlan, node Node, s features.Step, script Script) (Result, error) {
	bctx, cancel := context.WithTimeout(ctx, script.Timeout+ScriptKillAfter+scriptAnswerGrace)
	defer cancel()
	start := time.Now()
	var res Result
	var err error
	if s.Where == features.OnHost {
		res, err = node.ExecHost(bctx, script)
	} else {
		res, err = node.Exec(bctx, g.VMID, script)
	}
	where := "in the guest"
	if s.Where == features.OnHost {
		where = "on node " + g.Node
	}
	switch {
	case err != nil && ctx.Err() == nil && bctx.Err() != nil:
		return res, &StepTimeoutError{Step: s.Name, Phase: script.Phase, Timeout: script.Timeout, Where: where, NoAnswer: true}
	case err == nil && (res.ExitCode == exitTimedOut || res.ExitCode == exitKilled) && time.Since(start) >= script.Timeout:
		// timeout(1)'s statuses, once the time is up: a script that exits
		// 124 by itself, sooner, failed as any other.
		msg := ""
		if res.ExitCode != exitTimedOut || strings.TrimSpace(res.Stdout+res.Stderr) != "" {
			msg = lastLine(res)
		}
		return res, &StepTimeoutError{Step: s.Name, Phase: script.Phase, Timeout: script.Timeout, Where: where,
			ExitCode: res.ExitCode, Output: msg}
	}
	return res, err
}

// What timeout(1) exits with once it signalled the script: 124 when SIGTERM
// ended it, 128+9 when it needed SIGKILL.
const (
	exitTimedOut = 124
	exitKilled   = 137
)

// StepTimeoutError is a feature script that ran out of its time: timeout(1)
// stopped it where it ran (or, NoAnswer, its node gave no exit status even
// after that). It fails that guest, which backs off; it is not tried again in
// the same apply.
type StepTimeoutError struct {
	Step, Phase string
	Timeout     time.Duration
	// Where says where it ran: in the guest, or on node N.
	Where    string
	ExitCode int
	// Output is the last line the script printed.
	Output   string
	NoAnswer bool
}

func (e *StepTimeoutError) Error() string {
	if e.NoAnswer {
		return fmt.Sprintf("step %s %s ran out of its %v, and no exit status came within %v more: phoenix stopped waiting for its node",
			e.Step, e.Phase, e.Timeout, ScriptKillAfter+scriptAnswerGrace)
	}
	how := "SIGTERM"
	if e.ExitCode == exitKilled {
		how = "SIGKILL, as it outlived SIGTERM by " + ScriptKillAfter.String()
	}
	msg := fmt.Sprintf("step %s %s ran out of its %v and was stopped %s (%s)", e.Step, e.Phase, e.Timeout, e.Where, how)
	if e.Output != "" {
		msg += "; its last output: " + e.Output
	}
	return msg
}

// ErrorKind makes it a timeout for the loop and the metrics.
func (e *StepTimeoutError) ErrorKind() ErrorKind { return ErrorTimeout }

// live tracks a running script: the last line it printed, and a heartbeat
// that reports it at a steady interval.
type live struct {
	mu   sync.Mutex
	last string
	done chan struct{}
	once sync.Once
	out  func(string)
}

// heartbeat starts reporting a running script every Heartbeat.
func (e *engine) heartbeat(g GuestPlan, base Event, start time.Time) *live {
	l := &live{done: make(chan struct{})}
	l.out = func(line string) {
		ev := base
		ev.Outcome, ev.Output, ev.Duration = Output, line, time.Since(start)
		e.event(g, ev)
	}
	go func() {
		t := time.NewTicker(e.opts.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				l.mu.Lock()
				last := l.last
				l.mu.Unlock()
				ev := base
				ev.Outcome, ev.Output, ev.Duration = Running, last, time.Since(start)
				e.event(g, ev)
			}
		}
	}()
	return l
}

// line is where a node streams the script's output, line by line.
func (l *live) line(s string) {
	s = strings.TrimRight(s, "\r\n")
	if strings.TrimSpace(s) == "" {
		return
	}
	l.mu.Lock()
	l.last = s
	l.mu.Unlock()
	l.out(s)
}

func (l *live) stop() { l.once.Do(func() { close(l.done) }) }

// wait polls a step's check until it passes, or fails after WaitTimeout.
func (e *engine) wait(ctx context.Context, g GuestPlan, base Event, node Node, s features.Step) error {
	start := time.Now()
	base.Step, base.Phase = s.Name, "check"
	err := e.poll(ctx, g, node, s)
	ev := base
	ev.Duration = time.Since(start)
	if err != nil {
		ev.Outcome, ev.Err = Failed, err
	} else {
		ev.Outcome = Done
	}
	e.event(g, ev)
	return err
}

// readinessPolls is the schedule of a readiness check's polls: a quarter of
// the retry policy's intervals, unbounded but by the wait's own timeout. The
// intervals are given to the constructor, whose Reset starts the schedule at
// them: set afterwards, the first wait would be the library's default
// half-second whatever the policy says.
func readinessPolls(p RetryPolicy) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(p.Initial/4), backoff.WithMaxInterval(p.Max/4), backoff.WithMaxElapsedTime(0))
}

func (e *engine) poll(ctx context.Context, g GuestPlan, node Node, s features.Step) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.WaitTimeout)
	defer cancel()
	b := readinessPolls(e.opts.Retry)
	var last string
	for {
		script := Script{Name: s.Name, Phase: "check", Body: s.BodyFor("check"), Env: s.Env, Timeout: s.TimeoutFor("check")}
		res, err := execBounded(ctx, g, node, s, script)
		switch {
		case ctx.Err() != nil:
			// The wait ran out while the check ran: said below.
		case err == nil && res.ExitCode == 0:
			return nil
		case err == nil:
			last = lastLine(res)
		case !Retryable(err) && !errors.Is(err, ErrNotRunning):
			// Right after a start task ends pct may still find the
			// container not running: that is waited out too.
			return err
		default:
			last = err.Error()
		}
		select {
		case <-time.After(b.NextBackOff()):
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return withKind(ErrorTimeout, fmt.Errorf("%s: not ready after %v: %s", s.Name, e.opts.WaitTimeout, last))
			}
			return ctx.Err()
		}
	}
}

// stepError is a script's failure, with the end of what it said: stderr, or
// stdout where the tool prints its errors there (nvidia-smi does).
func stepError(s features.Step, phase string, res Result) error {
	msg := strings.TrimSpace(res.Stderr)
	if msg == "" {
		msg = strings.TrimSpace(res.Stdout)
	}
	if lines := strings.Split(msg, "\n"); len(lines) > 5 {
		msg = strings.Join(lines[len(lines)-5:], "\n")
	}
	return &StepError{Step: s.Name, Phase: phase, ExitCode: res.ExitCode, Output: msg}
}

// lastLine is the last line a command printed, stderr first.
func lastLine(res Result) string {
	for _, out := range []string{res.Stderr, res.Stdout} {
		if out = strings.TrimSpace(out); out != "" {
			lines := strings.Split(out, "\n")
			return lines[len(lines)-1]
		}
	}
	return fmt.Sprintf("exit status %d", res.ExitCode)
}
