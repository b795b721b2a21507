package reconciler

import (
	"context"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Writing the state record: what phoenix has achieved on a guest lives in the
// guest's description, written as soon as it is true, with the config digest
// it was read with, so that a concurrent change is never overwritten.

// record writes a feature record as soon as the feature verified. It names
// the records of what the feature requires, as they are now: a requirement
// installed again later makes this record stale.
func (e *engine) record(ctx context.Context, g GuestPlan, feature string, rec FeatureRecord) error {
	r, _ := e.res.Guest(g.Name)
	e.noteInstalled(g.VMID, feature)
	return e.retry(ctx, g, Event{Action: g.Action, Feature: feature, Step: "record"}, func() error {
		return e.updateState(ctx, g, func(s *State) bool {
			if s.Features == nil {
				s.Features = map[string]FeatureRecord{}
			}
			rec.Requires = requirementsOf(e.res, feature, s.Features)
			s.Features[feature] = rec
			return true
		}, ownedState(e.res, r, g.VMID, g.Generation))
	})
}

// forget drops a feature's record once it was uninstalled.
func (e *engine) forget(ctx context.Context, g GuestPlan, feature string) error {
	return e.retry(ctx, g, Event{Action: UninstallFeature, Feature: feature, Step: "record"}, func() error {
		return e.updateState(ctx, g, func(s *State) bool {
			if _, ok := s.Features[feature]; !ok {
				return false
			}
			delete(s.Features, feature)
			return true
		}, nil)
	})
}

// recordError writes a guest's failure into its state block, so that phoenix
// status can tell it later without state of its own. It is best effort: the
// failure is reported anyway.
func (e *engine) recordError(ctx context.Context, g GuestPlan, step string, err error) {
	// A summary: the newest output says why, the apply's output has it all;
	// what does not fit beside the notes is cut further when written.
	text := err.Error()
	if e.opts.Redact != nil {
		text = e.opts.Redact(text)
	}
	msg := cutMessage(text, maxErrorText)
	_ = e.updateState(ctx, g, func(s *State) bool {
		s.Error = &StateError{At: e.opts.Now().UTC(), Step: step, Message: msg, Kind: ErrorKindOf(err)}
		return true
	}, nil)
}

// settle writes what a converged guest's record says once its work is
// done, in one write: the last error gone (clear), and the revision of the
// specs that changed it (stamp). The change is made either way: a record
// that cannot take it (the plan counted its room) is logged.
func (e *engine) settle(ctx context.Context, g GuestPlan, clear, stamp bool) {
	err := e.updateState(ctx, g, func(s *State) bool {
		changed := false
		if clear && s.Error != nil {
			s.Error, changed = nil, true
		}
		if stamp && s.Rev != e.opts.Revision {
			s.Rev, changed = e.opts.Revision, true
		}
		return changed
	}, nil)
	if err != nil {
		e.opts.Log.Warn("the record of the converged guest could not be written", "guest", g.Name, "vmid", g.VMID, "error", err)
	}
}

// updateState reads a managed guest's state block, changes it and writes it
// back, keeping the user's text, with the digest it read. A guest without a
// block gets fresh when given, else is left alone.
func (e *engine) updateState(ctx context.Context, g GuestPlan, change func(*State) bool, fresh *State) error {
	cfg, err := e.cluster.GuestConfig(ctx, g.Node, g.VMID)
	if err != nil {
		return err
	}
	if !managedTags(cfg.Values["tags"]) {
		return nil
	}
	user, state, _ := ParseDescription(cfg.Values["description"])
	if state == nil {
		if fresh == nil {
			return nil
		}
		state = fresh
	}
	if !change(state) {
		return nil
	}
	// A record from before ownership records is this deployment's here
	// (the plan found it so): it gets its owner with this write.
	stampOwner(state, deploymentOf(e.res), g.VMID)
	e.mergeTook(g.VMID, state)
	desc, err := BoundedDescription(user, state)
	if err != nil {
		return err
	}
	return e.cluster.SetConfig(ctx, g.Node, g.VMID, map[string]string{"description": desc}, nil, cfg.Digest)
}

// recordRoom checks, as the plan is made, that the guest's description will
// hold its record beside the user's notes (Proxmox VE keeps
// DescriptionLimit characters): the record as it will be once the plan is
// applied, with room for a failure whose message is cut to the marker. A
// guest whose record could not be written is a problem of the plan, so that
// nothing is done that phoenix cannot record; the notes and the records are
// never cut. A guest with nothing to do gets a note: its record stands, but
// a failure could not be recorded.
func (p *planner) recordRoom(g *GuestPlan, r *spec.Resolved, og *ObservedGuest, records map[string]FeatureRecord, files map[string]string) {
	s := ownedState(p.res, r, og.VMID, g.Generation)
	if og.State != nil && og.StateErr == nil {
		c := *og.State
		s = &c
		stampOwner(s, deploymentOf(p.res), og.VMID)
	}
	s.Features = records
	s.Took = tookRoom(s.Took, g.Changes)
	if p.opts.Revision != "" && len(g.Changes) > 0 {
		s.Rev = p.opts.Revision // what the apply will stamp
	}
	if len(files) > 0 {
		s.Files = files
	}
	if s.IdentityDue && s.Identity == nil {
		s.Identity = &latestRecordTime
	}
	step := "confirm"
	for _, c := range g.Changes {
		if n := stepName(c); len(n) > len(step) {
			step = n
		}
	}
	s.Error = &StateError{At: latestRecordTime, Step: step, Message: errorCut, Kind: longestErrorKind()}
	_, err := BoundedDescription(og.User, s)
	switch {
	case err == nil:
	case len(g.Changes) == 0:
		g.Notes = append(g.Notes, err.Error()+": a failure on it could not be recorded")
	default:
		g.Errors = append(g.Errors, problem(ProblemSpec, "%v", err))
	}
}

// latestRecordTime takes the most characters a time in a record takes (UTC,
// nanoseconds): what the plan counts for a time it cannot know yet.
var latestRecordTime = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)

// longestErrorKind is the kind of a recorded failure that takes the most
// characters.
func longestErrorKind() ErrorKind {
	var out ErrorKind
	for _, k := range ErrorKinds {
		if len(k) > len(out) {
			out = k
		}
	}
	for _, k := range ProblemKinds {
		if len(k) > len(out) {
			out = ErrorKind(k)
		}
	}
	return out
}
