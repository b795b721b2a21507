package reconciler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// Conditions of a guest, computed from a fresh observation and the plan made
// from it: phoenix keeps no state of its own.
const (
	CondExists        = "Exists"
	CondConfigInSync  = "ConfigInSync"
	CondFeaturesReady = "FeaturesReady"
	CondGPUReady      = "GPUReady"
	CondReady         = "Ready"
	// CondStale is a warning, not a failure: true for a template that is out
	// of date in a way it cannot be changed in place (a template cannot run
	// installs). Ready does not depend on it: the template's clones converge
	// on their own.
	CondStale = "Stale"
)

// Condition is one fact about a guest.
type Condition struct {
	Type    string `json:"type"`
	Status  bool   `json:"status"`
	Message string `json:"message,omitempty"`
}

// GuestStatus is one guest's conditions and last error.
type GuestStatus struct {
	Name       string      `json:"name"`
	Kind       spec.Kind   `json:"kind"`
	VMID       int         `json:"vmid"`
	Node       string      `json:"node"`
	Conditions []Condition `json:"conditions"`
	// Pending are the options that wait for the container's next start.
	Pending []string `json:"pending,omitempty"`
	// LastError is the last failure phoenix recorded on the guest, if it has
	// not converged since.
	LastError *StateError `json:"lastError,omitempty"`
	// Health is what the guest's health checks said last (healthcheck.go).
	Health *GuestHealth `json:"health,omitempty"`
}

// Ready reports the Ready condition.
func (s GuestStatus) Ready() bool {
	for _, c := range s.Conditions {
		if c.Type == CondReady {
			return c.Status
		}
	}
	return false
}

// Status computes every specified guest's conditions.
func Status(res *spec.Resolution, obs *Observed, plan *Plan) []GuestStatus {
	var out []GuestStatus
	for _, r := range res.Guests {
		gp, _ := plan.Guest(r.Name)
		og := obs.Guests[gp.VMID]
		st := GuestStatus{Name: r.Name, Kind: r.Kind, VMID: gp.VMID, Node: r.Settings.Node}
		exists := og != nil && og.Managed && gp.Foreign == ""
		cond := func(t string, ok bool, msg string) {
			st.Conditions = append(st.Conditions, Condition{Type: t, Status: ok, Message: msg})
		}
		existsMsg := ""
		switch {
		case og == nil:
			existsMsg = "not created yet"
		case !og.Managed:
			existsMsg = fmt.Sprintf("VMID %d is held by %q, not managed by phoenix", r.VMID, og.Name)
		case gp.Foreign != "":
			existsMsg = fmt.Sprintf("VMID %d is held by %q, which is not this deployment's: %s", gp.VMID, og.Name, gp.Foreign)
		}
		cond(CondExists, exists, existsMsg)
		var configMsg, featureMsg []string
		for _, c := range gp.Changes {
			switch c.Action {
			case UpdateConfig, Resize, Directory, Download, Start, Restart, Stop, RenewIdentity, Replace, Create, Clone, Delete, ConvertToTemplate,
				Firewall, Adopt:
				configMsg = append(configMsg, stepName(c)+": "+c.Reason)
			case InstallFeature, ReinstallFeature, UninstallFeature:
				featureMsg = append(featureMsg, stepName(c))
			case WriteFile, Service:
				// A file not as the spec says, or a service not running,
				// is a feature not in place.
				featureMsg = append(featureMsg, stepName(c)+": "+c.Reason)
			}
		}
		if og != nil {
			for _, p := range og.waiting() {
				st.Pending = append(st.Pending, p.Key)
			}
		}
		if len(st.Pending) > 0 {
			configMsg = append(configMsg, "pending until the container next starts: "+strings.Join(st.Pending, ", "))
		}
		for _, p := range gp.Errors {
			configMsg = append(configMsg, fmt.Sprintf("%s (%s)", p.Message, p.Kind))
		}
		cond(CondConfigInSync, exists && len(configMsg) == 0, joinMsgs(configMsg))
		featuresOK := exists && len(featureMsg) == 0 && len(gp.Errors) == 0
		cond(CondFeaturesReady, featuresOK, joinMsgs(featureMsg))
		ready := exists && len(configMsg) == 0 && featuresOK
		if slices.Contains(r.Effective, spec.FeatureNVIDIADriver) {
			ok, msg := gpuReady(og, obs.Hosts[r.Settings.Node], configMsg)
			cond(CondGPUReady, ok, msg)
			// A stale template's driver is its warning, not a failure.
			ready = ready && (ok || gp.Stale != "")
		}
		if gp.Stale != "" {
			cond(CondStale, true, gp.Stale)
		}
		cond(CondReady, ready, "")
		if og != nil && og.State != nil {
			st.LastError = og.State.Error
		}
		out = append(out, st)
	}
	waitsForDependencies(res, out)
	return out
}

// waitsForDependencies says, on each guest that is not Ready, which of the
// guests it depends on are not Ready either: it waits for them, and that
// is the reason to fix first.
func waitsForDependencies(res *spec.Resolution, out []GuestStatus) {
	ready := map[string]bool{}
	for _, st := range out {
		ready[st.Name] = st.Ready()
	}
	for i, r := range res.Guests {
		if ready[r.Name] {
			continue
		}
		var waits []string
		for _, d := range r.Settings.DependsOn {
			if !ready[d] {
				waits = append(waits, d)
			}
		}
		if len(waits) == 0 {
			continue
		}
		for j, c := range out[i].Conditions {
			if c.Type == CondReady {
				out[i].Conditions[j].Message = "waits for " + strings.Join(waits, ", ") + " (dependsOn), not ready"
			}
		}
	}
}

// gpuReady compares the host driver with the userspace driver recorded in
// the guest, and the passthrough with what the spec asks.
func gpuReady(og *ObservedGuest, host *HostObservation, configPending []string) (bool, string) {
	hostV, ctV := "none", "none"
	if host != nil && host.Err == nil && host.Info.DriverVersion != "" {
		hostV = host.Info.DriverVersion
	}
	if og != nil && og.State != nil {
		if rec, ok := og.State.Features[spec.FeatureNVIDIADriver]; ok && rec.Version != "" {
			ctV = rec.Version
		}
	}
	msg := fmt.Sprintf("driver host %s / CT %s", hostV, ctV)
	if len(configPending) > 0 {
		msg += "; passthrough pending"
	}
	isolated := true
	if og != nil && len(rawGPULines(og.Config.LXC, host)) > 0 {
		msg += "; not GPU-isolated: raw lxc lines pass every NVIDIA device"
		isolated = false
	}
	return og != nil && hostV != "none" && hostV == ctV && len(configPending) == 0 && isolated, msg
}

func joinMsgs(msgs []string) string {
	out := ""
	for i, m := range msgs {
		if i > 0 {
			out += "; "
		}
		out += m
	}
	return out
}
