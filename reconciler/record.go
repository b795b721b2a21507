package reconciler

import (
	"context"
)

// Writing the state record: what phoenix has achieved on a guest lives in the
// guest's description, written as soon as it is true, with the config digest
// it was read with, so that a concurrent change is never overwritten.

// record writes a feature record as soon as the feature verified. It names
// the records of what the feature requires, as they are now: a requirement
// installed again later makes this record stale.
func (e *engine) record(ctx context.Context, g GuestPlan, feature string, rec FeatureRecord) error {
	r, _ := e.res.Guest(g.Name)
	return e.retry(ctx, g, Event{Action: g.Action, Feature: feature, Step: "record"}, func() error {
		return e.updateState(ctx, g, func(s *State) bool {
			if s.Features == nil {
				s.Features = map[string]FeatureRecord{}
			}
			rec.Requires = requirementsOf(e.res, feature, s.Features)
			s.Features[feature] = rec
			return true
		}, &State{V: 1, Name: r.Name, Kind: string(r.Kind), Parent: r.Parent, Generation: g.Generation})
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
	msg := err.Error()
	if len(msg) > 1000 {
		msg = msg[:1000] + "..."
	}
	_ = e.updateState(ctx, g, func(s *State) bool {
		s.Error = &StateError{At: e.opts.Now().UTC(), Step: step, Message: msg, Kind: ErrorKindOf(err)}
		return true
	}, nil)
}

func (e *engine) clearError(ctx context.Context, g GuestPlan) {
	_ = e.updateState(ctx, g, func(s *State) bool {
		changed := s.Error != nil
		s.Error = nil
		return changed
	}, nil)
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
	return e.cluster.SetConfig(ctx, g.Node, g.VMID, map[string]string{"description": RenderDescription(user, state)}, nil, cfg.Digest)
}
