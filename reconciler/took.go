package reconciler

import (
	"maps"
	"math"
	"slices"
	"time"
)

// What phoenix measured on this cluster outlives the process: each guest's
// state record keeps, in whole seconds, how long its steps took (State.Took),
// written along with a record phoenix writes anyway (a feature's, the
// identity's, a cleared error), never with a write of its own. An apply
// starts from them: the schedule prefers what was measured here over the
// built-in estimates, and what this process measures over both.

// tookSteps are the steps whose durations are kept: those that make up
// most of a guest's work and so decide the order of work.
var tookSteps = map[Action]bool{Create: true, Clone: true, Start: true, Restart: true, InstallFeature: true, ReinstallFeature: true}

// tookSeconds is a measured duration as kept: whole seconds, rounded up,
// at least 1 (a step that ran took time).
func tookSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// noteTook keeps the duration of a guest's step that ended well, until the
// next write of the guest's record takes it along, and when a step began.
func (e *engine) noteTook(ev Event) {
	if !ev.ActionLevel() || !tookSteps[ev.Action] || ev.VMID == 0 {
		return
	}
	step := stepName(Change{Action: ev.Action, Feature: ev.Feature})
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.took == nil {
		e.took, e.began = map[int]map[string]int{}, map[int]map[string]time.Time{}
	}
	switch {
	case ev.Outcome == Started:
		if e.began[ev.VMID] == nil {
			e.began[ev.VMID] = map[string]time.Time{}
		}
		e.began[ev.VMID][step] = ev.Time
	case ev.Outcome == Done && ev.Duration > 0:
		if e.took[ev.VMID] == nil {
			e.took[ev.VMID] = map[string]int{}
		}
		e.took[ev.VMID][step] = tookSeconds(ev.Duration)
		delete(e.began[ev.VMID], step)
	}
}

// noteInstalled keeps the duration of a feature's install (or reinstall)
// as its record is written, which is at the install's end: its record takes
// it along (the install's own end comes after that write).
func (e *engine) noteInstalled(vmid int, feature string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range []Action{InstallFeature, ReinstallFeature} {
		step := stepName(Change{Action: a, Feature: feature})
		if at, ok := e.began[vmid][step]; ok {
			if e.took[vmid] == nil {
				e.took[vmid] = map[string]int{}
			}
			e.took[vmid][step] = tookSeconds(time.Since(at))
		}
	}
}

// mergeTook adds the durations measured on a guest to the record about to
// be written.
func (e *engine) mergeTook(vmid int, s *State) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.took[vmid]) == 0 {
		return
	}
	if s.Took == nil {
		s.Took = map[string]int{}
	}
	maps.Copy(s.Took, e.took[vmid])
}

// tookRoom is a record's Took as it may be once the plan's changes are
// made: what the plan counts when it checks that the record fits.
func tookRoom(took map[string]int, changes []Change) map[string]int {
	out := maps.Clone(took)
	for _, c := range changes {
		if tookSteps[c.Action] {
			if out == nil {
				out = map[string]int{}
			}
			out[stepName(c)] = maxTookSeconds
		}
	}
	return out
}

// maxTookSeconds is the widest figure the plan counts room for: a day.
const maxTookSeconds = 86400

// seedDurations sets, for each step no measurement of this process covers,
// the median of what the observed guests' records say it took.
func (d *Durations) seedDurations(obs *Observed) {
	if obs == nil {
		return
	}
	seen := map[string][]int{}
	for _, og := range obs.Guests {
		if og == nil || og.State == nil || og.StateErr != nil {
			continue
		}
		for step, sec := range og.State.Took {
			if sec > 0 {
				seen[step] = append(seen[step], sec)
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for step, secs := range seen {
		if _, ok := d.m[step]; ok {
			continue
		}
		slices.Sort(secs)
		d.m[step] = time.Duration(secs[len(secs)/2]) * time.Second
	}
}
