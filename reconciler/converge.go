package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/phoenixhv/phoenix/spec"
)

// converge carries out one guest's approved changes in order. Before each it
// observes the guest and plans it afresh: a change the fresh plan no longer
// has has become true and is skipped; a problem, or a guest that must now be
// made or replaced where the approved plan did not say so, stops the guest.
// Once the approved changes are done, a last observation confirms that
// nothing the plan did not show is left.
func (e *engine) converge(ctx context.Context, j *job) {
	var err error
	step := ""
	defer func() {
		if err != nil && ctx.Err() == nil && !errors.Is(err, ErrStopped) {
			err = e.rollback(ctx, j, err)
			e.recordError(ctx, j.plan, step, err)
		}
		j.result.Err = err
	}()
	if j.plan.Action == Delete {
		err = e.delete(ctx, j)
		return
	}
	approved := j.plan.Changes
	for i, c := range approved {
		if err = e.stopped(ctx); err != nil {
			return
		}
		step = stepName(c)
		if err = e.carryOut(ctx, j, c, approved[i:]); err != nil {
			return
		}
		if c.Action == Clone {
			e.unlockUnused(ctx) // a clone found made already leaves its lock
		}
	}
	step = "confirm"
	err = e.confirm(ctx, j)
}

// conflictRetries bounds how often a change is made again from a fresh
// observation because the guest's config changed under it.
const conflictRetries = 3

// carryOut observes, re-plans and makes one approved change, or skips it when
// it has become true. A config that changed between the observation and the
// write (Proxmox's digest check) is observed again and the change recomputed.
func (e *engine) carryOut(ctx context.Context, j *job, c Change, remaining []Change) error {
	for attempt := 0; ; attempt++ {
		obs, fresh, err := e.replan(ctx, j.plan)
		if err != nil {
			return err
		}
		if err := unplannedHeadline(fresh, remaining); err != nil {
			return err
		}
		m, ok := findChange(fresh.Changes, c)
		if !ok {
			e.event(j.plan, Event{Action: c.Action, Feature: c.Feature, Target: changeTarget(c), Outcome: Skipped, Reason: "already done"})
			j.result.Skipped = append(j.result.Skipped, stepName(c))
			return nil
		}
		m.Reason = c.Reason
		start := time.Now()
		e.event(j.plan, Event{Action: m.Action, Feature: m.Feature, Target: changeTarget(m), Outcome: Started, Reason: m.Reason})
		err = e.execute(ctx, j, fresh, m, obs)
		if errors.Is(err, ErrConflict) && attempt < conflictRetries {
			e.event(j.plan, Event{Action: m.Action, Feature: m.Feature, Target: changeTarget(m), Outcome: Retrying, Err: err})
			continue
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", stepName(c), err)
			e.event(j.plan, Event{Action: m.Action, Feature: m.Feature, Target: changeTarget(m), Outcome: Failed, Duration: time.Since(start), Err: err})
			return err
		}
		j.result.Done++
		e.event(j.plan, Event{Action: m.Action, Feature: m.Feature, Target: changeTarget(m), Outcome: Done, Duration: time.Since(start)})
		return nil
	}
}

// confirm observes the guest once its approved changes are done: anything a
// fresh plan still has was not in the approved plan (the guest changed during
// the apply, or phoenix predicted it wrong), and is reported, not done.
func (e *engine) confirm(ctx context.Context, j *job) error {
	obs, fresh, err := e.replan(ctx, j.plan)
	if err != nil {
		return err
	}
	if len(fresh.Changes) > 0 {
		var left []string
		for _, c := range fresh.Changes {
			left = append(left, stepName(c)+" ("+c.Reason+")")
		}
		return withKind(ErrorChanged, fmt.Errorf("still needs %s, which the approved plan did not show: the guest changed during the apply; plan and apply again",
			strings.Join(left, "; ")))
	}
	og := obs.Guests[fresh.VMID]
	clear := og != nil && og.State != nil && og.State.Error != nil
	stamp := j.result.Done > 0 && e.opts.Revision != ""
	if clear || stamp {
		e.settle(ctx, fresh, clear, stamp)
	}
	return nil
}

// replan observes a guest and plans it afresh; a problem stops it.
func (e *engine) replan(ctx context.Context, g GuestPlan) (*Observed, GuestPlan, error) {
	obs, err := e.observe(ctx, g)
	if err != nil {
		return nil, GuestPlan{}, fmt.Errorf("observe: %w", err)
	}
	fresh, _ := PlanGuest(e.res, obs, g, e.opts.PlanOptions)
	if len(fresh.Errors) > 0 {
		perr := &ProblemError{Problems: fresh.Errors}
		e.event(g, Event{Action: g.Action, Step: "plan", Outcome: Failed, Err: perr})
		return nil, GuestPlan{}, perr
	}
	return obs, fresh, nil
}

// unplannedHeadline stops a guest that must now be made or replaced where the
// approved plan's remaining changes do not make or replace it: it vanished,
// or its template changed, during the apply.
func unplannedHeadline(fresh GuestPlan, remaining []Change) error {
	switch fresh.Action {
	case Create, Clone, Replace:
	default:
		return nil
	}
	if slices.ContainsFunc(remaining, func(c Change) bool { return c.Action == fresh.Action }) {
		return nil
	}
	return withKind(ErrorChanged, fmt.Errorf("it now needs to be %s (%s), which the approved plan did not show: plan and apply again",
		pastTense(fresh.Action), fresh.Changes[0].Reason))
}

func pastTense(a Action) string {
	switch a {
	case Create:
		return "created"
	case Clone:
		return "cloned"
	case Replace:
		return "replaced"
	}
	return a.String()
}

// findChange finds the fresh plan's counterpart of an approved change.
func findChange(fresh []Change, c Change) (Change, bool) {
	for _, f := range fresh {
		if f.key() == c.key() {
			return f, true
		}
	}
	return Change{}, false
}

func stepName(c Change) string {
	switch {
	case c.Action == WriteFile:
		return c.Action.String() + " " + c.File
	case c.Action == Service:
		return c.Action.String() + " " + c.Service
	}
	if c.Feature != "" {
		return c.Action.String() + " " + c.Feature
	}
	return c.Action.String()
}

// stopped reports a stop or an abort that came before the next change.
func (e *engine) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-e.opts.Stop:
		return ErrStopped
	default:
		return nil
	}
}

// observe reads one guest fresh, and the template generation it is cloned
// from while it is yet to be cloned.
func (e *engine) observe(ctx context.Context, g GuestPlan) (*Observed, error) {
	obs := &Observed{Guests: map[int]*ObservedGuest{}, Hosts: e.hosts}
	observeSecurityGroups(reader{ctx: ctx}, e.cluster, e.res, obs)
	observeClusterSets(reader{ctx: ctx}, e.cluster, e.res, obs)
	e.observeHostDirs(ctx, g, obs)
	if err := e.retry(ctx, g, Event{Action: g.Action, Step: "observe"}, func() error { return e.read(ctx, obs, g.VMID, g.Node) }); err != nil {
		return nil, err
	}
	e.observeTemplate(ctx, g, obs)
	// The source matters only to a guest that is still to be cloned from it
	// (its records and whether it is converted); otherwise reading it would
	// double the reads of every step.
	if parent, ok := e.res.Guest(g.Parent); ok && obs.Guests[g.VMID] == nil {
		source := g.Source
		if source == 0 {
			source = parent.VMID
		}
		if err := e.retry(ctx, g, Event{Action: g.Action, Step: "observe " + parent.Name}, func() error {
			return e.read(ctx, obs, source, parent.Settings.Node)
		}); err != nil {
			return nil, err
		}
	}
	return obs, nil
}

// read adds one guest to an observation, as Observe would see it; a guest
// that does not exist is left out.
func (e *engine) read(ctx context.Context, obs *Observed, vmid int, node string) error {
	st, err := e.cluster.Status(ctx, node, vmid)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg, err := e.cluster.GuestConfig(ctx, node, vmid)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	og := &ObservedGuest{GuestSummary: st, Config: cfg}
	og.Node = node
	og.Template = cfg.Values["template"] == "1"
	og.Tags = spec.NormalizeTags([]string{cfg.Values["tags"]})
	og.Managed = managedTags(og.Tags...)
	og.User, og.State, og.StateErr = ParseDescription(cfg.Values["description"])
	if readsPending(og.GuestSummary, cfg) {
		if og.Pending, err = e.cluster.Pending(ctx, node, vmid); err != nil {
			return err
		}
	}
	if firewallWanted(e.res, vmid) {
		fw, err := e.cluster.Firewall(ctx, node, vmid)
		if err != nil {
			return err
		}
		og.Firewall = &fw
	}
	observeInside(reader{ctx: ctx}, e.nodes, e.res, og)
	if err := readSnapshots(ctx, e.cluster, e.res, og); err != nil {
		return err
	}
	obs.Guests[vmid] = og
	return nil
}

// retry runs op with the engine's backoff while its error is retryable, and
// says so with a Retrying event built on ev.
func (e *engine) retry(ctx context.Context, g GuestPlan, ev Event, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = e.opts.Retry.Initial, e.opts.Retry.Max, e.opts.Retry.MaxElapsed
	b.RandomizationFactor = 0.5
	err := backoff.RetryNotify(func() error {
		err := op()
		if err != nil && !Retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		ev.Outcome, ev.Duration, ev.Err = Retrying, wait, err
		e.event(g, ev)
	})
	if ctx.Err() != nil && err != nil {
		return ctx.Err()
	}
	return err
}
