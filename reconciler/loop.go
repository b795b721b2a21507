package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Loop is phoenix run: observe, plan, apply, again. It is level-triggered:
// every pass starts from what the cluster is, not from what the last pass did.
type Loop struct {
	cluster Cluster
	nodes   NodeOf
	load    func() (*spec.Resolution, error)
	opts    LoopOptions

	trigger chan struct{}
	mu      sync.Mutex
	report  Report
	ready   bool
	// failures are the guests backing off, by name.
	failures map[string]*failure
	// progress is the pass in flight's last sign of life (see Health).
	progress progress
	// guard is what the loop knows of the spec tree's changes (--prune).
	guard pruneGuard
	// view is what the last pass that ran saw (LastView).
	view PassView
}

// LoopOptions tune the loop. Zero values take the defaults.
type LoopOptions struct {
	// Interval between passes (default 60 s), varied by Jitter (default 0.1:
	// plus or minus 10%) so that several phoenix do not beat in step.
	Interval time.Duration
	Jitter   float64
	Apply    ApplyOptions
	Observe  ObserveOptions
	// Backoff of a guest that failed with a retryable error: Initial doubles
	// per failure up to Max (defaults 30 s and 10 min).
	BackoffInitial, BackoffMax time.Duration
	Log                        *slog.Logger
	// Pass, when set, is told about each pass when it ends (metrics).
	Pass func(PassInfo, *Plan, *ApplyResult, []GuestStatus)
	// KeepView keeps what the last pass saw for LastView (the status
	// page): its specs, observation and plans stay in memory between
	// passes, which otherwise end with the pass.
	KeepView bool
	// PruneGrace is how long the spec tree must have been unchanged before
	// a pass prunes (with Apply.Prune); default DefaultPruneGrace, negative
	// for none. A pass a file event started (Trigger) never prunes.
	PruneGrace time.Duration
	// SpecsModified, when set, says when the spec tree last changed on
	// disk (spec.Modified), so that a deploy in progress holds the prune
	// back even before a file event or a changed spec set says so.
	SpecsModified func() (time.Time, error)
	// Rand returns a number in [0,1) for jitter (default math/rand).
	Rand func() float64
	Now  func() time.Time
	// StallTimeout is how long a pass may go without progress before
	// Health reports it stalled (default DefaultStallTimeout).
	StallTimeout time.Duration
	// Lease, when set, is taken before each pass and let go when it ends
	// (see LeaseEachPass): the pass runs under the context it returns,
	// which ends when the lease is lost. A pass that cannot take it changes
	// nothing and fails with the reason (who holds it).
	Lease func(context.Context) (context.Context, func(), error)
	// Health, when set, runs the guests' health checks between and during
	// passes (Run starts it), learns after each pass which guests to check,
	// and hands the reinstalls their policy asks for to the next pass.
	Health *HealthRunner
	// Alerts, when set, is told what each pass found (alerts.go).
	Alerts *Alerts
	// Revision, when set, names the revision of the specs the last load
	// read (a git commit) and why a newer one was refused ("" when none
	// was): each pass logs it and records it on the guests it changes,
	// and the report shows both.
	Revision func() (rev, refused string)
}

// failure is a guest that did not converge in a recent pass.
type failure struct {
	count int
	// next is when a retryable failure is tried again.
	next time.Time
	// parked is set for a failure that needs a person: the guest is not
	// applied again until its spec (specHash) changes. A plan problem is
	// never parked this way: the plan shows it, and drops it, by itself.
	parked   bool
	specHash string
	kind     ErrorKind
	reason   string
	// problem marks a plan problem (as opposed to an apply failure).
	problem bool
}

// PassInfo describes one pass.
type PassInfo struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// Error is why the pass could not run (bad specs, the API unreachable).
	Error  string `json:"error,omitempty"`
	Failed int    `json:"failed"`
	// PruneHeld says why this pass deleted nothing that is in no spec, when
	// it would have with --prune (the spec files changed a moment ago).
	PruneHeld string `json:"pruneHeld,omitempty"`
	// Problems counts the guests the plan could not converge (conflicts,
	// impossible specs, nodes to fix, failed observations).
	Problems int `json:"problems"`
	// Changed counts the guests the pass worked on.
	Changed int `json:"changed"`
}

// Converged reports whether the pass ran and left every guest converged.
func (p PassInfo) Converged() bool { return p.Error == "" && p.Failed == 0 && p.Problems == 0 }

// Report is what /status serves: the last pass and every guest's conditions.
type Report struct {
	Pass     *PassInfo     `json:"pass,omitempty"`
	LastGood *time.Time    `json:"lastSuccessfulPass,omitempty"`
	Guests   []GuestStatus `json:"guests"`
	// Backoff says which guests wait, for what and until when.
	Backoff map[string]string `json:"backoff,omitempty"`
	// Revision is the revision of the specs the last pass loaded, and
	// RevisionError why a newer one was refused (LoopOptions.Revision).
	Revision      string `json:"revision,omitempty"`
	RevisionError string `json:"revisionError,omitempty"`
}

// NewLoop makes a loop; load reads and resolves the specs anew for each pass.
func NewLoop(cluster Cluster, nodes NodeOf, load func() (*spec.Resolution, error), opts LoopOptions) *Loop {
	if opts.Interval <= 0 {
		opts.Interval = 60 * time.Second
	}
	if opts.Jitter == 0 {
		opts.Jitter = 0.1
	}
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = 30 * time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 10 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.PruneGrace == 0 {
		opts.PruneGrace = DefaultPruneGrace
	}
	l := &Loop{cluster: cluster, nodes: nodes, load: load, opts: opts, trigger: make(chan struct{}, 1),
		report: Report{Guests: []GuestStatus{}}, failures: map[string]*failure{}}
	if opts.Health != nil {
		// A reapply asks for a pass, which is no change to the specs.
		opts.Health.setAskPass(l.wakeUp)
	}
	return l
}

// wakeUp starts the next pass now, as Trigger does, without counting as a
// change to the spec files.
func (l *Loop) wakeUp() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Trigger asks for a pass now (the specs changed). Passes never overlap: a
// trigger during a pass starts the next one when it ends.
func (l *Loop) Trigger() {
	l.guard.noteEvent(l.opts.Now())
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Ready reports whether the last pass that ended ran to its end: the specs
// loaded and the cluster observed, planned and applied, whatever single
// guests did (their failures are in the report, not in readiness). A pass
// that could not run (bad specs, the API unreachable) makes the loop not
// ready until a pass runs again; so does having had no pass yet.
func (l *Loop) Ready() bool {
	return l.Readiness() == nil
}

// Readiness is Ready with the reason when not ready.
func (l *Loop) Readiness() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.report.Pass == nil:
		return errors.New("no pass has ended yet")
	case !l.ready:
		return fmt.Errorf("the last pass (started %s) could not run: %s", l.report.Pass.Started.Format(time.RFC3339), l.report.Pass.Error)
	}
	return nil
}

// Report returns the latest report.
func (l *Loop) Report() Report {
	l.mu.Lock()
	r := l.report
	l.mu.Unlock()
	if l.opts.Revision != nil {
		_, r.RevisionError = l.opts.Revision()
	}
	if l.opts.Health != nil {
		// The checks' latest results, not those of the pass's end.
		r.Guests = WithHealth(r.Guests, l.opts.Health.Snapshot())
	}
	return r
}

// Run passes until ctx ends or stop closes; a pass in flight when stop closes
// finishes its steps in flight and starts no new ones. once runs one pass.
// The next pass comes after the interval, or sooner when a guest's backoff
// ends before it.
func (l *Loop) Run(ctx context.Context, stop <-chan struct{}, once bool) error {
	if h := l.opts.Health; h != nil && !once {
		hctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); h.Run(hctx) }()
		defer func() { cancel(); <-done }()
	}
	for {
		err := l.Pass(ctx, stop)
		if once {
			return err
		}
		timer := time.NewTimer(l.nextWait())
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-stop:
			timer.Stop()
			return nil
		case <-l.trigger:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// nextWait is the interval with its jitter, shortened to the first backoff
// that ends before it.
func (l *Loop) nextWait() time.Duration {
	wait := time.Duration(float64(l.opts.Interval) * (1 + l.opts.Jitter*(2*l.opts.Rand()-1)))
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	for _, f := range l.failures {
		if f.parked || f.next.IsZero() {
			continue
		}
		if d := max(f.next.Sub(now), time.Second); d < wait {
			wait = d
		}
	}
	return wait
}

// Pass runs one observe, plan, apply. Its error is what stopped it from
// running at all; guests that failed are in the report and back off.
func (l *Loop) Pass(ctx context.Context, stop <-chan struct{}) error {
	info := PassInfo{Started: l.opts.Now()}
	log := l.opts.Log
	l.progress.begin(info.Started)
	defer l.progress.end()
	var plan, applied *Plan
	var result *ApplyResult
	var statuses []GuestStatus
	triggered := l.guard.takeEvent()
	leased := ctx
	var seen PassSeen
	var rev string
	err := func() error {
		if l.opts.Lease != nil {
			lctx, release, err := l.opts.Lease(ctx)
			if err != nil {
				return err
			}
			defer release()
			ctx, leased = lctx, lctx
		}
		res, err := l.load()
		if err != nil {
			return err
		}
		l.progress.mark(l.opts.Now(), "the specs loaded")
		if l.opts.Revision != nil {
			rev, _ = l.opts.Revision()
			log = log.With("revision", shortRev(rev))
		}
		planOpts := l.opts.Apply.PlanOptions
		planOpts.Revision = rev
		if hold := l.pruneHold(res, triggered, info.Started); hold != "" && planOpts.Prune {
			planOpts.PruneHold = hold
		}
		if l.opts.Health != nil {
			planOpts.Reapply = l.opts.Health.TakeReapply()
			seen.Reapply = planOpts.Reapply
		}
		obs, err := Observe(ctx, l.cluster, l.nodes, res, l.opts.Observe)
		if err != nil {
			return err
		}
		l.progress.mark(l.opts.Now(), "the cluster observed")
		plan = MakePlan(res, obs, planOpts)
		applied = plan
		if hold := planOpts.PruneHold; hold != "" && heldBack(plan, hold) > 0 {
			info.PruneHeld = hold
			log.Info("prune held back", "guests", heldBack(plan, hold), "reason", hold)
		}
		opts := l.opts.Apply
		opts.PlanOptions = planOpts
		opts.Skip, opts.Stop = l.backingOff(res, plan), stop
		userEvents := opts.Events
		opts.Events = func(ev Event) {
			LogEvent(log, ev)
			l.progress.event(l.opts.Now(), ev)
			if userEvents != nil {
				userEvents(ev)
			}
		}
		if opts.Log == nil {
			opts.Log = log
		}
		result = Apply(ctx, l.cluster, l.nodes, res, obs, plan, opts)
		l.remember(res, plan, result)
		info.Changed = len(result.Guests)
		if len(result.Guests) > 0 {
			// What changed is observed again, so that the status is true.
			if obs, err = Observe(ctx, l.cluster, l.nodes, res, l.opts.Observe); err != nil {
				return err
			}
			plan = MakePlan(res, obs, planOpts)
		}
		statuses = Status(res, obs, plan)
		seen.Res, seen.Obs = res, obs
		if l.opts.Health != nil {
			l.opts.Health.Update(res, obs, plan)
		}
		return nil
	}()
	if cause := context.Cause(leased); errors.Is(cause, ErrLeaseLost) {
		err = cause
	}
	info.Duration = l.opts.Now().Sub(info.Started)
	if result != nil {
		for _, g := range result.Guests {
			if g.Err != nil {
				info.Failed++
			}
		}
	}
	if plan != nil {
		for _, g := range plan.Guests {
			if len(g.Errors) > 0 {
				info.Problems++
				log.Info("not converged", "guest", g.Name, "vmid", g.VMID, "kind", string(g.Errors[0].Kind), "reason", g.Errors[0].Message)
			}
		}
	}
	l.mu.Lock()
	if err != nil {
		info.Error = err.Error()
		l.ready = false
		log.Error("pass failed", "error", err, "duration", info.Duration)
	} else {
		l.report.Guests = statuses
		if l.opts.KeepView {
			l.view = PassView{Started: info.Started, Res: seen.Res, Obs: seen.Obs, Applied: applied, Remaining: plan}
		}
		if info.Converged() {
			t := info.Started.Add(info.Duration)
			l.report.LastGood = &t
		}
		// Ready while passes run to their end, whatever single guests
		// did: the loop is working.
		l.ready = true
		log.Info("pass done", "duration", info.Duration, "changed", info.Changed, "failed", info.Failed, "problems", info.Problems)
	}
	l.report.Pass = &info
	l.report.Backoff = l.backoffSummary()
	if rev != "" {
		l.report.Revision = rev
	}
	l.mu.Unlock()
	if l.opts.Alerts != nil {
		seen.Err, seen.Plan, seen.Result, seen.Failed = err, plan, result, l.waiting()
		l.opts.Alerts.Pass(seen)
	}
	if l.opts.Pass != nil {
		if l.opts.Health != nil && statuses != nil {
			statuses = WithHealth(statuses, l.opts.Health.Snapshot())
		}
		l.opts.Pass(info, plan, result, statuses)
	}
	return err
}

// backingOff lists the guests to leave alone this pass: those waiting out a
// retryable failure, and those whose failure needs a person and whose spec
// has not changed since.
func (l *Loop) backingOff(res *spec.Resolution, plan *Plan) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	skip := map[string]string{}
	for _, g := range plan.Guests {
		f := l.failures[g.Name]
		if f == nil || f.problem {
			continue
		}
		r, ok := res.Guest(g.Name)
		switch {
		case f.parked && ok && guestHash(r) == f.specHash:
			skip[g.Name] = "its last failure needs a person: " + f.reason
		case f.parked:
			delete(l.failures, g.Name) // the spec changed: try again
		case now.Before(f.next):
			skip[g.Name] = "backing off until " + f.next.Format(time.RFC3339)
		}
	}
	return skip
}

// remember updates the failures after a pass: plan problems as the plan
// shows them, apply failures by their kind.
func (l *Loop) remember(res *spec.Resolution, plan *Plan, result *ApplyResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	for _, g := range plan.Guests {
		f := l.failures[g.Name]
		switch {
		case len(g.Errors) > 0:
			pr := g.Errors[0]
			if f == nil || !f.problem {
				f = &failure{problem: true}
				l.failures[g.Name] = f
			}
			f.kind, f.reason = ErrorKind(pr.Kind), pr.Message
			if pr.Kind.NeedsPerson() {
				f.next = time.Time{}
			} else {
				f.count++
				f.next = now.Add(l.backoff(f.count))
			}
		case f != nil && f.problem:
			delete(l.failures, g.Name)
		}
	}
	for _, g := range result.Guests {
		if g.Err == nil {
			delete(l.failures, g.Name)
			continue
		}
		if g.Kind == ErrorStopped || g.Kind == ErrorCanceled {
			continue
		}
		f := l.failures[g.Name]
		if f == nil || f.parked || f.problem {
			f = &failure{}
			l.failures[g.Name] = f
		}
		f.count++
		f.kind, f.reason = g.Kind, g.Err.Error()
		if g.Kind.NeedsPerson() {
			if r, ok := res.Guest(g.Name); ok {
				f.parked, f.specHash = true, guestHash(r)
			}
			continue
		}
		f.next = now.Add(l.backoff(f.count))
	}
}

// backoff is the wait after the nth failure in a row.
func (l *Loop) backoff(n int) time.Duration {
	d := l.opts.BackoffInitial << min(n-1, 20)
	if d > l.opts.BackoffMax || d <= 0 {
		d = l.opts.BackoffMax
	}
	return d
}

func (l *Loop) backoffSummary() map[string]string {
	out := map[string]string{}
	for name, f := range l.failures {
		switch {
		case f.parked:
			out[name] = fmt.Sprintf("waits for a change to its spec (%s: %s)", f.kind, f.reason)
		case f.next.IsZero():
			out[name] = fmt.Sprintf("waits for a person (%s: %s)", f.kind, f.reason)
		default:
			out[name] = fmt.Sprintf("retries after %s (%s: %s)", f.next.Format(time.RFC3339), f.kind, f.reason)
		}
	}
	return out
}

// shortRev is a revision as logs show it: a commit's first 12 hex digits.
func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// guestHash identifies a guest's resolved spec.
func guestHash(r *spec.Resolved) string {
	b, _ := json.Marshal(struct {
		S spec.Settings
		E []string
		P map[string]spec.Params
		A string
	}{r.Settings, r.Effective, r.Params, r.Parent})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
