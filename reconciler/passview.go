package reconciler

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// PassView is what the last pass that ran to its end saw and did, for
// read-only displays (phoenix run's status page). Its values are shared:
// read them, never change them.
type PassView struct {
	// Started is when the pass started; zero before the first pass ended.
	Started time.Time
	Res     *spec.Resolution
	// Obs is the last observation of the pass (after its changes).
	Obs *Observed
	// Applied is the plan the pass applied, Remaining the plan made from
	// the last observation: what is left to do. They are the same plan
	// when the pass changed nothing.
	Applied, Remaining *Plan
}

// LastView returns what the last pass that ran to its end saw; its fields
// are nil before one has, and without LoopOptions.KeepView.
func (l *Loop) LastView() PassView {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.view
}

// Step is the change in words: its action and the feature, file or service
// it is about ("install cuda-toolkit", "write-file /etc/app.conf").
func (c Change) Step() string { return stepName(c) }

// DriverMismatch is a node whose NVIDIA kernel driver differs from the
// userspace driver that guests on it recorded installing.
type DriverMismatch struct {
	Node       string
	HostDriver string
	// Guests are the guests that disagree, each as "NAME has VERSION",
	// in lineage order.
	Guests []string
}

// DriverMismatches lists, by node name order, the nodes whose host driver
// (as observed) differs from the nvidia-driver version recorded in guests
// of the deployment on them. A stale template does not count (its driver
// is its warning, and it cannot be changed in place), nor does a guest or a
// host not observed.
func DriverMismatches(res *spec.Resolution, obs *Observed, plan *Plan) []DriverMismatch {
	if res == nil || obs == nil || plan == nil {
		return nil
	}
	byNode := map[string][]string{}
	for _, r := range res.Guests {
		if !slices.Contains(r.Effective, spec.FeatureNVIDIADriver) {
			continue
		}
		host := obs.Hosts[r.Settings.Node]
		if host == nil || host.Err != nil || host.Info.DriverVersion == "" {
			continue
		}
		gp, ok := plan.Guest(r.Name)
		if !ok || gp.Stale != "" {
			continue
		}
		og := obs.Guests[gp.VMID]
		if og == nil || og.State == nil {
			continue
		}
		rec, ok := og.State.Features[spec.FeatureNVIDIADriver]
		if !ok || rec.Version == "" || rec.Version == host.Info.DriverVersion {
			continue
		}
		byNode[r.Settings.Node] = append(byNode[r.Settings.Node], fmt.Sprintf("%s has %s", r.Name, rec.Version))
	}
	var out []DriverMismatch
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		out = append(out, DriverMismatch{Node: n, HostDriver: obs.Hosts[n].Info.DriverVersion, Guests: byNode[n]})
	}
	return out
}
