package reconciler

import (
	"log/slog"
	"time"
)

// Event is one thing the apply engine did or saw, with typed fields: the
// progress printer, the logs, the metrics and the JSON output are all built
// from these fields, never from parsing text.
type Event struct {
	Time  time.Time
	Guest string
	VMID  int
	Node  string
	// Action is the plan's action the event belongs to.
	Action Action
	// Feature is the feature of an install, reinstall or uninstall.
	Feature string
	// Target is what a file write or a service change is about: the
	// file's path, the service's name.
	Target string
	// Step is a part of the action: a feature's step (cuda-toolkit/toolkit),
	// or an operation of its own (shutdown, pct set, wait for the template).
	// Empty for the action itself.
	Step string
	// Phase is a script's phase: check, apply, verify or uninstall.
	Phase   string
	Outcome Outcome
	// Duration is how long it took; for Retrying the wait before the next
	// try; for Running how long the step has run.
	Duration time.Duration
	// Reason is the plan's reason for the action (on its Started event).
	Reason string
	// Output is the last line a running step printed (Running, Output).
	Output string
	Err    error
	// ErrKind classifies Err.
	ErrKind ErrorKind
}

// changeTarget is what a change is about beyond its action and feature:
// a file's path, a service's name.
func changeTarget(c Change) string {
	switch c.Action {
	case WriteFile:
		return c.File
	case Service:
		return c.Service
	}
	return ""
}

// Name is what the event is about in words: the action and its feature, then
// the step and phase when there is one ("install cuda-toolkit:
// cuda-toolkit/toolkit apply").
func (ev Event) Name() string {
	s := ev.Action.String()
	switch {
	case ev.Target != "":
		s += " " + ev.Target
	case ev.Feature != "":
		s += " " + ev.Feature
	}
	if ev.Step != "" {
		s += ": " + ev.Step
	}
	if ev.Phase != "" {
		s += " " + ev.Phase
	}
	return s
}

// ActionLevel reports whether the event is about a whole action of the plan
// (its start and end), not a part of one.
func (ev Event) ActionLevel() bool { return ev.Step == "" && ev.Phase == "" }

// Noteworthy reports whether an event is worth a line to a person: the end
// of an action, the end of a script that changed something (apply,
// uninstall), a retry, a heartbeat, a failure. Starts of parts of actions,
// checks and single output lines are not. The progress printer and the logs
// both go by it.
func (ev Event) Noteworthy() bool {
	switch ev.Outcome {
	case Failed, Retrying, Running:
		return true
	case Done, Skipped:
		return ev.ActionLevel() || ev.Phase == "apply" || ev.Phase == "uninstall"
	}
	return false
}

// LogAttrs are the event's fields as structured log attributes.
func (ev Event) LogAttrs() []any {
	attrs := []any{"guest", ev.Guest, "vmid", ev.VMID, "node", ev.Node, "action", ev.Action.String()}
	if ev.Feature != "" {
		attrs = append(attrs, "feature", ev.Feature)
	}
	if ev.Target != "" {
		attrs = append(attrs, "target", ev.Target)
	}
	if ev.Step != "" {
		attrs = append(attrs, "step", ev.Step)
	}
	if ev.Phase != "" {
		attrs = append(attrs, "phase", ev.Phase)
	}
	attrs = append(attrs, "outcome", string(ev.Outcome))
	if ev.Duration > 0 {
		attrs = append(attrs, "duration", ev.Duration.Round(time.Millisecond))
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if ev.Output != "" {
		attrs = append(attrs, "output", ev.Output)
	}
	if ev.Err != nil {
		attrs = append(attrs, "error", ev.Err.Error(), "error_kind", string(ev.ErrKind))
	}
	return attrs
}

// LogEvent writes an event as one structured log line at the level its
// outcome deserves: the noteworthy ones, and the start of each action with
// its reason. Output lines are left out (heartbeats carry the last one).
func LogEvent(log *slog.Logger, ev Event) {
	if !ev.Noteworthy() && !(ev.Outcome == Started && ev.ActionLevel()) {
		return
	}
	switch ev.Outcome {
	case Failed:
		log.Error("apply", ev.LogAttrs()...)
	case Retrying:
		log.Warn("apply", ev.LogAttrs()...)
	default:
		log.Info("apply", ev.LogAttrs()...)
	}
}
