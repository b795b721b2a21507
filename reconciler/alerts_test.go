package reconciler

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// alertClock is a settable clock for Alerts.
type alertClock struct{ t time.Time }

func (c *alertClock) now() time.Time { return c.t }

// timers are the functions Alerts scheduled, with their delays.
type timers struct {
	delays []time.Duration
	fns    []func()
}

func newTestAlerts(max int) (*Alerts, *[]Alert, *alertClock) {
	a, got, clock, _ := newTimedAlerts(max)
	return a, got, clock
}

func newTimedAlerts(max int) (*Alerts, *[]Alert, *alertClock, *timers) {
	var got []Alert
	tm := &timers{}
	clock := &alertClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	a := NewAlerts(AlertOptions{Send: func(al Alert) { got = append(got, al) }, MaxPerWindow: max, Now: clock.now,
		Revision:  func() string { return "abc123" },
		AfterFunc: func(d time.Duration, f func()) { tm.delays, tm.fns = append(tm.delays, d), append(tm.fns, f) }})
	return a, &got, clock, tm
}

func states(alerts []Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.State+" "+a.Incident)
	}
	return out
}

func planWithProblem(name string) *Plan {
	return &Plan{Guests: []GuestPlan{{Name: name, Node: "pve1", Errors: []Problem{{Kind: "conflict", Message: "VMID 950 is taken"}}}}}
}

// TestAlertLifecycle: an incident opens once, stays quiet while it
// persists across passes, and is resolved once.
func TestAlertLifecycle(t *testing.T) {
	a, got, clock := newTestAlerts(10)
	for range 3 {
		a.Pass(PassSeen{Plan: planWithProblem("app"), Failed: map[string]string{"web": "permission denied (permission)"}})
		clock.t = clock.t.Add(time.Minute)
	}
	want := []string{"open failed:web", "open problem:app"}
	if !slices.Equal(states(*got), want) {
		t.Fatalf("after three passes: %v, want %v", states(*got), want)
	}
	first := (*got)[1]
	if first.Kind != IncidentProblem || first.Guest != "app" || first.Node != "pve1" || first.Revision != "abc123" ||
		!strings.Contains(first.Message, "VMID 950 is taken (conflict)") || !strings.Contains(first.Title(), "app cannot converge") {
		t.Errorf("problem alert: %+v (%s)", first, first.Title())
	}
	// A pass that fails leaves the guests' incidents open and opens its own.
	a.Pass(PassSeen{Err: errors.New("the API is unreachable")})
	a.Pass(PassSeen{Err: errors.New("the API is unreachable")})
	a.Pass(PassSeen{Plan: &Plan{Guests: []GuestPlan{{Name: "app"}}}})
	a.Pass(PassSeen{Plan: &Plan{Guests: []GuestPlan{{Name: "app"}}}})
	want = append(want, "open pass-failed", "resolved failed:web", "resolved pass-failed", "resolved problem:app")
	if !slices.Equal(states(*got), want) {
		t.Fatalf("got %v, want %v", states(*got), want)
	}
	if len(a.Open()) != 0 {
		t.Errorf("still open: %v", a.Open())
	}
}

// TestAlertRateLimit: past the limit, alerts are folded into one summary
// sent once there is room again: by a timer, or by a pass that comes first.
func TestAlertRateLimit(t *testing.T) {
	var plan Plan
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		plan.Guests = append(plan.Guests, planWithProblem(n).Guests[0])
	}
	for _, byTimer := range []bool{true, false} {
		testRateLimit(t, &plan, byTimer)
	}
}

func testRateLimit(t *testing.T, plan *Plan, byTimer bool) {
	a, got, clock, tm := newTimedAlerts(2)
	a.Pass(PassSeen{Plan: plan})
	if !slices.Equal(states(*got), []string{"open problem:a", "open problem:b"}) {
		t.Fatalf("first window: %v", states(*got))
	}
	clock.t = clock.t.Add(30 * time.Second)
	a.Pass(PassSeen{Plan: plan})
	if len(*got) != 2 {
		t.Fatalf("the window is full, yet: %v", states(*got))
	}
	if !slices.Equal(tm.delays, []time.Duration{time.Minute}) {
		t.Fatalf("timers: %v, want one of 1m", tm.delays)
	}
	clock.t = clock.t.Add(30 * time.Second)
	if byTimer {
		tm.fns[0]()
	} else {
		a.Pass(PassSeen{Plan: plan})
	}
	if len(*got) != 3 || (*got)[2].Kind != IncidentSummary {
		t.Fatalf("want one summary: %v", states(*got))
	}
	sum := (*got)[2].Message
	for _, n := range []string{"c", "d", "e"} {
		if !strings.Contains(sum, "open problem:"+n) {
			t.Errorf("summary lacks %s:\n%s", n, sum)
		}
	}
	if !strings.HasPrefix(sum, "3 alert(s) held back") {
		t.Errorf("summary: %s", sum)
	}
}

// TestAlertDriverMismatchAndDrift reads a real plan of the examples.
func TestAlertDriverMismatchAndDrift(t *testing.T) {
	res := examples(t)
	obs := converged(res, "580.76.05")
	a, got, _ := newTestAlerts(10)
	plan := MakePlan(res, obs, PlanOptions{})
	a.Pass(PassSeen{Res: res, Obs: obs, Plan: plan})
	if len(*got) != 0 {
		t.Fatalf("a converged cluster alerts: %v", states(*got))
	}
	// Something changed a guest behind phoenix; the pass put it back.
	name := res.Guests[len(res.Guests)-1].Name
	for range 2 {
		a.Pass(PassSeen{Res: res, Obs: obs, Plan: plan, Result: &ApplyResult{Guests: []GuestResult{{Name: name, Done: 1}}}})
	}
	a.Pass(PassSeen{Res: res, Obs: obs, Plan: plan})
	if !slices.Equal(states(*got), []string{"open drift:" + name}) || !strings.Contains((*got)[0].Title(), "drift corrected") {
		t.Fatalf("drift: %v", states(*got))
	}
	// A reinstall a health check asked for is phoenix's own doing.
	*got = nil
	a.Pass(PassSeen{Res: res, Obs: obs, Plan: plan, Result: &ApplyResult{Guests: []GuestResult{{Name: name, Done: 1}}},
		Reapply: map[string]map[string]ReapplyRequest{name: {"base": {Reason: "health check x failed 3 times in a row"}}}})
	if len(*got) != 0 {
		t.Fatalf("a health check's reinstall alerts as drift: %v", states(*got))
	}
	*got = nil
	// The host driver was upgraded under its containers.
	var node string
	for n, h := range obs.Hosts {
		h.Info.DriverVersion = "590.1"
		node = n
	}
	a.Pass(PassSeen{Res: res, Obs: obs, Plan: MakePlan(res, obs, PlanOptions{})})
	var mismatch []Alert
	for _, al := range *got {
		if al.Kind == IncidentDriverMismatch {
			mismatch = append(mismatch, al)
		}
	}
	if len(mismatch) != 1 || mismatch[0].Node != node || !strings.Contains(mismatch[0].Message, "host driver 590.1") ||
		!strings.Contains(mismatch[0].Message, "has 580.76.05") {
		t.Fatalf("driver mismatch: %+v", *got)
	}
	// Reinstalling the userspace driver for the new host driver is no drift.
	*got = nil
	for _, r := range res.Guests {
		if slices.Contains(r.Effective, spec.FeatureNVIDIADriver) && !r.IsTemplate() {
			a.Pass(PassSeen{Res: res, Obs: obs, Plan: MakePlan(res, obs, PlanOptions{}),
				Result: &ApplyResult{Guests: []GuestResult{{Name: r.Name, Done: 1, Installed: []string{spec.FeatureNVIDIADriver}}}}})
		}
	}
	for _, al := range *got {
		if al.Kind == IncidentDrift {
			t.Errorf("a driver reinstall taken for drift: %+v", al)
		}
	}
}
