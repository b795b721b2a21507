package reconciler

import (
	"reflect"
	"testing"
	"time"
)

// TestTookRoundTrip: the durations measured on a guest survive its record's
// rendering and parsing.
func TestTookRoundTrip(t *testing.T) {
	s := &State{V: StateVersion, Name: "vllm-0", Kind: "Container", Took: map[string]int{"clone": 1, "start": 9, "install vllm": 241}}
	_, got, err := ParseDescription(RenderDescription("notes", s))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Took, s.Took) {
		t.Errorf("took %v after a round trip, want %v", got.Took, s.Took)
	}
}

// TestTookIsMeasuredAndMerged: a step that ended well is kept (whole
// seconds, rounded up) until the guest's next record write takes it along;
// a feature's install is taken along by its own record, written before the
// install's end; a failed step and a step that is not kept are not.
func TestTookIsMeasuredAndMerged(t *testing.T) {
	e := newEngine(nil, nil, nil, &Observed{}, ApplyOptions{})
	now := time.Now()
	e.opts.Events(Event{VMID: 101, Action: Create, Outcome: Done, Duration: 24100 * time.Millisecond})
	e.opts.Events(Event{VMID: 101, Action: Start, Outcome: Failed, Duration: time.Second})
	e.opts.Events(Event{VMID: 101, Action: UpdateConfig, Outcome: Done, Duration: time.Second})
	e.opts.Events(Event{VMID: 101, Action: InstallFeature, Feature: "vllm", Outcome: Started, Time: now.Add(-90 * time.Second)})
	e.opts.Events(Event{VMID: 102, Action: Clone, Outcome: Done, Duration: time.Millisecond})
	e.noteInstalled(101, "vllm")
	s := &State{Took: map[string]int{"create": 30, "start": 8}}
	e.mergeTook(101, s)
	want := map[string]int{"create": 25, "start": 8, "install vllm": 90}
	if got := s.Took["install vllm"]; got < 90 || got > 92 {
		t.Errorf("install vllm took %d s in the record, want about 90", got)
	}
	s.Took["install vllm"] = 90
	if !reflect.DeepEqual(s.Took, want) {
		t.Errorf("record took %v, want %v", s.Took, want)
	}
	other := &State{}
	e.mergeTook(102, other)
	if !reflect.DeepEqual(other.Took, map[string]int{"clone": 1}) {
		t.Errorf("a 1 ms clone recorded as %v, want 1 s", other.Took)
	}
}

// TestScheduleUsesRecordedDurations: a plan's schedule ranks a step by what
// the guests' records say it took on this cluster (the median), ahead of the
// built-in estimate, and by what this process measured ahead of both.
func TestScheduleUsesRecordedDurations(t *testing.T) {
	obs := &Observed{Guests: map[int]*ObservedGuest{
		1: {State: &State{Took: map[string]int{"install vllm": 3600}}},
		2: {State: &State{Took: map[string]int{"install vllm": 3000, "clone": 50}}},
		3: {State: &State{Took: map[string]int{"install vllm": 9000}}},
	}}
	order := []*job{{plan: GuestPlan{Name: "vllm-0", Changes: []Change{{Action: Clone}, {Action: InstallFeature, Feature: "vllm"}}}}}
	jobs := map[string]*job{"vllm-0": order[0]}
	e := newEngine(nil, nil, nil, obs, ApplyOptions{})
	e.rankJobs(order, jobs)
	if want := 50*time.Second + time.Hour; order[0].rank != want {
		t.Errorf("vllm-0 ranks %v, want %v (the records' median install and clone)", order[0].rank, want)
	}
	d := NewDurations()
	d.record(Event{Action: InstallFeature, Feature: "vllm", Outcome: Done, Duration: time.Minute})
	e = newEngine(nil, nil, nil, obs, ApplyOptions{Durations: d})
	e.rankJobs(order, jobs)
	if want := 50*time.Second + time.Minute; order[0].rank != want {
		t.Errorf("vllm-0 ranks %v, want %v (this process's measurement first)", order[0].rank, want)
	}
}
