package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// The apply engine carries out an approved plan. Its invariants:
//
//   - It does what the plan shows and nothing else. Each guest's changes run
//     in the plan's order. Before each change the engine observes the guest
//     again and plans it afresh, only to skip a change that has become true
//     meanwhile (reported as skipped) or to stop on what has become
//     impossible (a problem, or a guest that now needs to be made or
//     replaced where the plan did not say so). The details of a change (the
//     fields of an update) come from the fresh plan, so that it is made
//     against the config as it is.
//   - The plan's reasons are kept in what the engine observes: a restart is
//     planned from Proxmox's pending section, a reinstall of what requires a
//     reinstalled feature from the records (each record names the
//     requirements it was installed on). So a change the plan showed is still
//     wanted after the step before it, and after a crash.
//   - A template converges, and is converted, before its clones are made; a
//     guest is made or changed only once what it depends on converged;
//     clones of one source are made one at a time (Proxmox locks the source);
//     guests that do not depend on each other run at once, up to
//     Parallelism, the longest chain of work first (schedule.go).
//   - What has been achieved is written into the guest as soon as it is true
//     (the phoenix-managed tag and the state block in the create or clone
//     request, a feature record right after the feature verified), so a run
//     killed at any moment and started again ends in the same place.
//   - One guest's failure stops that guest and the clones that depend on it;
//     the others go on. A panic in one guest's work is that guest's failure.
//   - A stop (the first SIGINT or SIGTERM) lets the change in flight finish
//     and record itself, and starts no new one; a cancelled context (the
//     second) aborts what runs.
//   - Destruction happens only where the approved plan shows it.

// ApplyOptions tune the engine. Zero values take the defaults.
type ApplyOptions struct {
	PlanOptions
	// Parallelism bounds the guests converged at once (default: derived
	// from the cluster, DefaultParallelism); at most PerNodeConcurrency
	// run on one node.
	Parallelism int
	// Durations are the step durations measured so far, which order the
	// work; the engine adds what it measures (nil: a set of its own).
	Durations *Durations
	// Retry is the backoff for failures worth retrying: locks, timeouts,
	// dropped connections, a failed install step.
	Retry RetryPolicy
	// WaitTimeout bounds waiting for a started container's network and
	// devices (default 5 minutes).
	WaitTimeout time.Duration
	// Heartbeat is how often a step that is still running reports so
	// (default 10 s).
	Heartbeat time.Duration
	// Events receives progress; it is called from several goroutines.
	Events func(Event)
	// Log receives what a person debugging phoenix needs beyond the events:
	// the stack of a panic.
	Log *slog.Logger
	// Now stamps feature records (default time.Now).
	Now func() time.Time
	// Stop, when closed, lets the changes in flight finish and starts no new
	// one: a clean exit on SIGTERM.
	Stop <-chan struct{}
	// Skip names guests to leave alone this time (backing off after failures).
	Skip map[string]string
	// Redact removes credentials from a text phoenix writes into a guest (a
	// recorded error), before it is cut to fit: a credential cut in two
	// could no longer be found whole.
	Redact func(string) string
}

// ErrStopped is the error of a guest left unfinished by a stop.
var ErrStopped = errors.New("stopped before converging")

// RetryPolicy is an exponential backoff with jitter.
type RetryPolicy struct {
	Initial, Max time.Duration
	// MaxElapsed gives up on one operation after this long.
	MaxElapsed time.Duration
	// Attempts bounds the tries of a failing install step (default 4).
	Attempts int
}

// GuestResult is what happened to one guest, in the plan's terms.
type GuestResult struct {
	Name string
	VMID int
	// Action is the guest's headline action in the plan.
	Action Action
	// Done counts the plan's changes carried out; Skipped names those that
	// had become true by their turn (action and feature).
	Done    int
	Skipped []string
	// Installed and Uninstalled name the features (re)installed and removed.
	Installed   []string
	Uninstalled []string
	// RolledBack names the before snapshot the guest was rolled back to
	// after its changes failed (snapshots.rollback).
	RolledBack string
	// Err aggregates what went wrong (nil when the guest converged); Kind
	// classifies it.
	Err  error
	Kind ErrorKind
}

// Converged reports whether the guest reached its plan's end.
func (g GuestResult) Converged() bool { return g.Err == nil }

// ApplyResult is the outcome of an apply.
type ApplyResult struct {
	Guests []GuestResult
}

// Failed reports whether any guest failed.
func (r *ApplyResult) Failed() bool {
	for _, g := range r.Guests {
		if g.Err != nil {
			return true
		}
	}
	return false
}

// Apply carries out the plan. One guest's failure stops that guest and the
// clones that depend on it; the others go on.
func Apply(ctx context.Context, cluster Cluster, nodes NodeOf, res *spec.Resolution, obs *Observed, plan *Plan, opts ApplyOptions) *ApplyResult {
	e := newEngine(cluster, nodes, res, obs, opts)
	return e.run(ctx, plan)
}

type engine struct {
	cluster Cluster
	nodes   NodeOf
	res     *spec.Resolution
	hosts   map[string]*HostObservation
	opts    ApplyOptions
	// nodeInfos are the observed nodes, which the default parallelism
	// is derived from.
	nodeInfos []NodeInfo

	slots *gate // see schedule.go
	// work carries out one job's changes once it holds a slot: converge
	// (tests of the schedule give it a fake).
	work  func(ctx context.Context, j *job)
	mu    sync.Mutex
	locks map[string]*gate // see lock
	// took are the durations measured on each guest (by VMID) that its
	// record is yet to take along (took.go).
	took  map[int]map[string]int
	began map[int]map[string]time.Time
}

func newEngine(cluster Cluster, nodes NodeOf, res *spec.Resolution, obs *Observed, opts ApplyOptions) *engine {
	if opts.Retry.Initial <= 0 {
		opts.Retry.Initial = time.Second
	}
	if opts.Retry.Max <= 0 {
		opts.Retry.Max = 30 * time.Second
	}
	if opts.Retry.MaxElapsed <= 0 {
		opts.Retry.MaxElapsed = 10 * time.Minute
	}
	if opts.Retry.Attempts <= 0 {
		opts.Retry.Attempts = 4
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 5 * time.Minute
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Events == nil {
		opts.Events = func(Event) {}
	}
	if opts.Durations == nil {
		opts.Durations = NewDurations()
	}
	opts.Durations.seedDurations(obs)
	var e *engine
	events, durations := opts.Events, opts.Durations
	opts.Events = func(ev Event) {
		durations.record(ev)
		e.noteTook(ev)
		events(ev)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	e = &engine{
		cluster: cluster, nodes: nodes, res: res, hosts: obs.Hosts, opts: opts, nodeInfos: obs.Nodes,
		slots: newSlots(parallelismOf(opts.Parallelism, obs, nil)), locks: map[string]*gate{},
	}
	e.work = e.converge
	return e
}

// job is one guest's work and the moment it is over.
type job struct {
	plan   GuestPlan
	done   chan struct{}
	result GuestResult
	// ran is set once a start or restart made the guest wait for its
	// initialisation in this apply.
	ran bool
	// before is the before snapshot this apply took of the guest, which a
	// failure rolls back to where its spec says so.
	before *takenSnapshot
	// rank is the expected work of the job and of the longest chain
	// behind it; work is its own, cloneStep its clone's (rankJobs).
	rank, work, cloneStep time.Duration
	// next are the jobs that wait for this one: its clones and the guests
	// that depend on it (rankJobs).
	next []*job
}

func (e *engine) run(ctx context.Context, plan *Plan) *ApplyResult {
	jobs := map[string]*job{}
	deletes := map[int]*job{}
	var order []*job
	for _, g := range plan.Guests {
		if g.Action == NoOp || len(g.Errors) > 0 || e.opts.Skip[g.Name] != "" {
			continue
		}
		j := &job{plan: g, done: make(chan struct{}), result: GuestResult{Name: g.Name, VMID: g.VMID, Action: g.Action}}
		if g.Action == Delete {
			deletes[g.VMID] = j
		} else {
			jobs[g.Name] = j
		}
		order = append(order, j)
	}
	e.slots = newSlots(parallelismOf(e.opts.Parallelism, &Observed{Nodes: e.nodeInfos}, plan))
	e.rankJobs(order, jobs)
	var wg sync.WaitGroup
	for _, j := range order {
		wg.Go(func() {
			defer close(j.done)
			defer e.recoverPanic(j)
			e.schedule(ctx, j, jobs, deletes)
			j.result.Kind = ErrorKindOf(j.result.Err)
		})
	}
	wg.Wait()
	out := &ApplyResult{}
	for _, j := range order {
		out.Guests = append(out.Guests, j.result)
	}
	return out
}

// schedule waits for what the job depends on and for a slot, then runs it.
func (e *engine) schedule(ctx context.Context, j *job, jobs map[string]*job, deletes map[int]*job) {
	// A template is deleted after the linked clones deleted with it.
	for _, vmid := range j.plan.After {
		if other, ok := deletes[vmid]; ok {
			select {
			case <-other.done:
			case <-ctx.Done():
				j.result.Err = ctx.Err()
				return
			}
		}
	}
	// A clone waits for its template's own work, without holding a slot.
	if parent, ok := jobs[j.plan.Parent]; ok && j.plan.Action != Delete {
		select {
		case <-parent.done:
		case <-ctx.Done():
			j.result.Err = ctx.Err()
			return
		}
		if parent.result.Err != nil {
			j.result.Err = withKind(ErrorKind(ProblemBlocked), fmt.Errorf("its template %s failed", parent.plan.Name))
			e.event(j.plan, Event{Action: j.plan.Action, Step: "wait for " + parent.plan.Name, Outcome: Failed, Err: j.result.Err})
			return
		}
	}
	// It waits for what it depends on too, which must converge (and, being
	// a Container, run) first; one that failed leaves it waiting for the
	// next pass, with the reason.
	for _, name := range j.plan.DependsOn {
		if e.opts.Skip[name] != "" {
			j.result.Err = withKind(ErrorKind(ProblemBlocked), fmt.Errorf("it waits for %s (dependsOn), which is left alone this time: %s", name, e.opts.Skip[name]))
			e.event(j.plan, Event{Action: j.plan.Action, Step: "wait for " + name, Outcome: Failed, Err: j.result.Err})
			return
		}
		dep, ok := jobs[name]
		if !ok {
			continue // nothing to do there: converged and running
		}
		select {
		case <-dep.done:
		case <-ctx.Done():
			j.result.Err = ctx.Err()
			return
		}
		if dep.result.Err != nil {
			j.result.Err = withKind(ErrorKind(ProblemBlocked), fmt.Errorf("it waits for %s (dependsOn), which did not converge", name))
			e.event(j.plan, Event{Action: j.plan.Action, Step: "wait for " + name, Outcome: Failed, Err: j.result.Err})
			return
		}
	}
	// Ready: a clone waits for its source's clone lock first (the
	// clones of one template get it longest chain first), then it waits
	// for a slot, the longest chain first (schedule.go).
	s := &slot{node: j.plan.Node, rank: j.rank, locked: cloneLock(j)}
	if s.locked != "" {
		if err := e.lock(s.locked).acquire(ctx, e.opts.Stop, "", j.rank, false); err != nil {
			j.result.Err = err
			return
		}
		defer func() {
			if s.locked != "" { // its clone did not take it over
				e.lock(s.locked).release("")
			}
		}()
	}
	if err := e.slots.acquire(ctx, e.opts.Stop, j.plan.Node, j.rank, false); err != nil {
		j.result.Err = err
		return
	}
	s.held = true
	defer func() {
		if s.held {
			e.passOn(j, s.node, jobs)
		}
	}()
	e.work(context.WithValue(ctx, slotKey{}, s), j)
}

// recoverPanic turns a panic in one guest's work into that guest's failure,
// with the stack in the log: the other guests go on.
func (e *engine) recoverPanic(j *job) {
	r := recover()
	if r == nil {
		return
	}
	j.result.Err = withKind(ErrorInternal, fmt.Errorf("internal error (a bug in phoenix, please report it): %v", r))
	j.result.Kind = ErrorInternal
	e.opts.Log.Error("panic while converging a guest", "guest", j.plan.Name, "vmid", j.plan.VMID, "panic", fmt.Sprint(r),
		"stack", string(debug.Stack()))
	e.event(j.plan, Event{Action: j.plan.Action, Outcome: Failed, Err: j.result.Err})
}

// event fills in the guest and the time and sends the event.
func (e *engine) event(g GuestPlan, ev Event) {
	ev.Time, ev.Guest, ev.VMID, ev.Node = time.Now(), g.Name, g.VMID, g.Node
	if ev.Err != nil && ev.ErrKind == "" {
		ev.ErrKind = ErrorKindOf(ev.Err)
	}
	e.opts.Events(ev)
}
