package reconciler

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Alerts turn what each pass found into incidents, the things a person must
// act on, and send one message when an incident opens and one when it is
// resolved, never one per pass: an incident that persists across passes
// stays quiet. A rate limit protects the receiver: past MaxPerWindow
// messages in Window, the rest are held and folded into one summary, sent
// with the first pass that finds room again.
//
// Incidents, each keyed by its kind and its guest or node:
//
//   - problem (guest): the plan cannot converge the guest (a conflict, an
//     impossible spec, a node to fix, a failed observation). It is resolved
//     when a pass's plan no longer shows it.
//   - failed (guest): applying the guest failed; it stays open while the
//     guest waits (backs off, or waits for a change to its spec), and is
//     resolved when the guest converges or its spec changes.
//   - driver-mismatch (node): the node's host NVIDIA driver differs from the
//     userspace driver recorded in one of its containers (the DRIVER column
//     of status, the GPUReady condition).
//   - pass-failed (no guest): a pass could not run at all (bad specs, the
//     API unreachable, the lease held elsewhere). While passes fail, the
//     other incidents are left as they are: nothing was observed.
//   - drift (guest): a pass changed a guest that an earlier pass had left
//     converged, with the same resolved spec as then: someone or something
//     changed it behind phoenix, and phoenix put it back. A new host
//     driver on its node is no drift (the userspace driver follows it), nor
//     is a reinstall a health check asked for (phoenix's own policy).
//     Drift is an event: the message says it was corrected, so it sends no
//     "resolved"; it stays quiet while the guest drifts pass after pass, and
//     closes silently on the first pass that leaves it alone.
type Alerts struct {
	opts AlertOptions

	mu   sync.Mutex
	open map[string]Incident
	// converged holds, for each guest a pass left converged, the hash of
	// its resolved spec and its node's host driver then (drift).
	converged map[string]convergedAs
	sent      []time.Time
	held      []Alert
	// flushing is set while a timer waits to send the held alerts.
	flushing bool
}

type convergedAs struct{ hash, hostDriver string }

// AlertOptions configure Alerts. Zero values take the defaults.
type AlertOptions struct {
	// Send is given each message; it must not block (the senders queue).
	Send func(Alert)
	// MaxPerWindow messages at most in Window (defaults 10 and a minute).
	MaxPerWindow int
	Window       time.Duration
	// Revision, when set, names the revision of the specs being applied.
	Revision func() string
	Now      func() time.Time
	// AfterFunc schedules the summary of held alerts for when the window
	// has room again (default time.AfterFunc), so that it does not wait
	// for a pass.
	AfterFunc func(time.Duration, func())
}

// Incident kinds.
const (
	IncidentProblem        = "problem"
	IncidentFailed         = "failed"
	IncidentDriverMismatch = "driver-mismatch"
	IncidentPassFailed     = "pass-failed"
	IncidentDrift          = "drift"
	// IncidentSummary is the message that folds those the rate limit held.
	IncidentSummary = "summary"
)

// Alert states.
const (
	AlertOpen     = "open"
	AlertResolved = "resolved"
)

// Incident is one thing a person must act on.
type Incident struct {
	Key     string
	Kind    string
	Guest   string
	Node    string
	Message string
}

// Alert is one message: the generic webhook's JSON body.
type Alert struct {
	Incident string    `json:"incident"`
	State    string    `json:"state"`
	Kind     string    `json:"kind"`
	Guest    string    `json:"guest,omitempty"`
	Node     string    `json:"node,omitempty"`
	Message  string    `json:"message"`
	Time     time.Time `json:"time"`
	Revision string    `json:"revision,omitempty"`
}

// Title is a one-line headline for chat formats.
func (a Alert) Title() string {
	var what string
	switch a.Kind {
	case IncidentProblem:
		what = "guest " + a.Guest + " cannot converge"
	case IncidentFailed:
		what = "guest " + a.Guest + " failed to apply"
	case IncidentDriverMismatch:
		what = "NVIDIA driver mismatch on node " + a.Node
	case IncidentPassFailed:
		what = "a pass failed"
	case IncidentDrift:
		what = "drift corrected on guest " + a.Guest
	case IncidentSummary:
		return "phoenix: alerts held back by the rate limit"
	default:
		what = a.Incident
	}
	if a.State == AlertResolved {
		return "phoenix: resolved: " + what
	}
	return "phoenix: " + what
}

// Text is the title and the message, for formats with one text field.
func (a Alert) Text() string {
	s := a.Title() + "\n" + a.Message
	if a.Revision != "" {
		s += "\n(revision " + a.Revision + ")"
	}
	return s
}

// NewAlerts makes the incident tracker.
func NewAlerts(opts AlertOptions) *Alerts {
	if opts.MaxPerWindow <= 0 {
		opts.MaxPerWindow = 10
	}
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Send == nil {
		opts.Send = func(Alert) {}
	}
	if opts.AfterFunc == nil {
		opts.AfterFunc = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	return &Alerts{opts: opts, open: map[string]Incident{}, converged: map[string]convergedAs{}}
}

// PassSeen is what a pass found, for Alerts: each field may be nil when the
// pass failed before it was made.
type PassSeen struct {
	Err    error
	Res    *spec.Resolution
	Obs    *Observed
	Plan   *Plan
	Result *ApplyResult
	// Failed are the guests whose apply failed and that still wait (the
	// loop's backoff), with the reason.
	Failed map[string]string
	// Reapply are the reinstalls health checks asked this pass for, by
	// guest: phoenix's own doing, not drift.
	Reapply map[string]map[string]ReapplyRequest
}

// Pass updates the incidents after a pass and sends what opened and what
// was resolved.
func (a *Alerts) Pass(p PassSeen) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	var out []Alert
	current := map[string]Incident{}
	if p.Err != nil {
		in := Incident{Key: IncidentPassFailed, Kind: IncidentPassFailed, Message: p.Err.Error()}
		current[in.Key] = in
		// Nothing was observed: the other incidents stay as they are.
		for k, in := range a.open {
			if in.Kind != IncidentPassFailed {
				current[k] = in
			}
		}
	} else {
		for _, in := range a.incidents(p) {
			current[in.Key] = in
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.open)) {
		in := a.open[k]
		if _, ok := current[k]; !ok {
			delete(a.open, k)
			if in.Kind != IncidentDrift {
				out = append(out, a.alert(in, AlertResolved, now))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(current)) {
		if _, ok := a.open[k]; !ok {
			a.open[k] = current[k]
			out = append(out, a.alert(current[k], AlertOpen, now))
		}
	}
	if p.Err == nil && p.Plan != nil && p.Res != nil {
		a.noteConverged(p)
	}
	a.emit(out, now)
}

// Open lists the open incidents' keys, sorted.
func (a *Alerts) Open() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(maps.Keys(a.open))
}

func (a *Alerts) alert(in Incident, state string, now time.Time) Alert {
	al := Alert{Incident: in.Key, State: state, Kind: in.Kind, Guest: in.Guest, Node: in.Node, Message: in.Message, Time: now}
	if state == AlertResolved {
		al.Message = "resolved; it was: " + in.Message
	}
	if a.opts.Revision != nil {
		al.Revision = a.opts.Revision()
	}
	return al
}

// incidents are those a pass that ran shows.
func (a *Alerts) incidents(p PassSeen) []Incident {
	var out []Incident
	add := func(kind, guest, node, msg string) {
		key := kind + ":" + guest
		if guest == "" {
			key = kind + ":" + node
		}
		out = append(out, Incident{Key: key, Kind: kind, Guest: guest, Node: node, Message: msg})
	}
	if p.Plan != nil {
		for _, g := range p.Plan.Guests {
			if len(g.Errors) > 0 {
				add(IncidentProblem, g.Name, g.Node, fmt.Sprintf("%s (%s)", g.Errors[0].Message, g.Errors[0].Kind))
			}
		}
	}
	node := func(name string) string {
		if p.Res != nil {
			if r, ok := p.Res.Guest(name); ok {
				return r.Settings.Node
			}
		}
		return ""
	}
	for _, name := range slices.Sorted(maps.Keys(p.Failed)) {
		add(IncidentFailed, name, node(name), p.Failed[name])
	}
	for _, m := range DriverMismatches(p.Res, p.Obs, p.Plan) {
		add(IncidentDriverMismatch, "", m.Node, fmt.Sprintf("host driver %s; %s", m.HostDriver, strings.Join(m.Guests, ", ")))
	}
	if p.Result != nil && p.Res != nil {
		for _, g := range p.Result.Guests {
			if g.Err != nil || g.Done == 0 || len(p.Reapply[g.Name]) > 0 {
				continue
			}
			r, ok := p.Res.Guest(g.Name)
			// A new host driver makes phoenix reinstall the userspace
			// driver: that is no drift.
			if c, was := a.converged[g.Name]; ok && was && c == (convergedAs{guestHash(r), hostDriver(p.Obs, r)}) {
				add(IncidentDrift, g.Name, r.Settings.Node, fmt.Sprintf("the guest had drifted from its converged state with no change to its spec; phoenix applied %d change(s) to put it back", g.Done))
			}
		}
	}
	return out
}

// noteConverged remembers which guests the pass left converged.
func (a *Alerts) noteConverged(p PassSeen) {
	for _, g := range p.Plan.Guests {
		r, ok := p.Res.Guest(g.Name)
		switch {
		case ok && len(g.Changes) == 0 && len(g.Errors) == 0 && g.Foreign == "":
			a.converged[g.Name] = convergedAs{guestHash(r), hostDriver(p.Obs, r)}
		case !ok:
			delete(a.converged, g.Name)
		}
	}
}

// hostDriver is the driver version of r's node, if observed.
func hostDriver(obs *Observed, r *spec.Resolved) string {
	if obs == nil {
		return ""
	}
	if h := obs.Hosts[r.Settings.Node]; h != nil && h.Err == nil {
		return h.Info.DriverVersion
	}
	return ""
}

// emit sends alerts within the rate limit; the rest are held, and the held
// ones go out as one summary once there is room.
func (a *Alerts) emit(alerts []Alert, now time.Time) {
	keep := a.sent[:0]
	for _, t := range a.sent {
		if now.Sub(t) < a.opts.Window {
			keep = append(keep, t)
		}
	}
	a.sent = keep
	room := func() bool { return len(a.sent) < a.opts.MaxPerWindow }
	if len(a.held) > 0 && room() {
		a.send(a.summary(now), now)
	}
	for _, al := range alerts {
		// Once messages are held, later ones wait behind them, so that the
		// summary comes before what happened after it.
		if len(a.held) == 0 && room() {
			a.send(al, now)
			continue
		}
		a.held = append(a.held, al)
	}
	if len(a.held) > 0 && !a.flushing && len(a.sent) > 0 {
		a.flushing = true
		a.opts.AfterFunc(a.sent[0].Add(a.opts.Window).Sub(now), a.flush)
	}
}

// flush sends the held alerts' summary when the window has room.
func (a *Alerts) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushing = false
	a.emit(nil, a.opts.Now())
}

func (a *Alerts) send(al Alert, now time.Time) {
	a.sent = append(a.sent, now)
	a.opts.Send(al)
}

// summary folds the held alerts into one.
func (a *Alerts) summary(now time.Time) Alert {
	lines := make([]string, 0, len(a.held))
	for _, h := range a.held {
		lines = append(lines, fmt.Sprintf("%s %s: %s", h.State, h.Incident, h.Message))
	}
	sort.Strings(lines)
	al := Alert{Incident: IncidentSummary, State: AlertOpen, Kind: IncidentSummary, Time: now,
		Message: fmt.Sprintf("%d alert(s) held back by the rate limit (%d per %s):\n%s", len(a.held), a.opts.MaxPerWindow, a.opts.Window, strings.Join(lines, "\n"))}
	if a.opts.Revision != nil {
		al.Revision = a.opts.Revision()
	}
	a.held = nil
	return al
}

// waiting lists the guests whose apply failed and that wait, with why.
func (l *Loop) waiting() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for name, f := range l.failures {
		if !f.problem {
			out[name] = fmt.Sprintf("%s (%s)", f.reason, f.kind)
		}
	}
	return out
}
