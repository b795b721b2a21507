package reconciler

import (
	"fmt"
	"slices"

	"github.com/phoenixhv/phoenix/spec"
)

// Action is what a change does. A guest's plan has a headline action and an
// ordered list of changes, each with its own action.
type Action int

const (
	NoOp Action = iota
	Create
	Clone
	UpdateConfig
	Resize
	Start
	Restart
	Stop
	RenewIdentity
	InstallFeature
	ReinstallFeature
	UninstallFeature
	ConvertToTemplate
	Replace
	Delete
	// Adopt takes over a guest phoenix did not make, or that is not this
	// deployment's, where its spec says adopt: true: it is tagged and gets
	// this deployment's record.
	Adopt
	// Directory makes the node's directories that bind mount points show
	// in a container, owned as the spec says: Proxmox does not make them,
	// and a container whose bind mount has none does not start.
	Directory
	// Firewall converges a guest's firewall options and the rules phoenix
	// keeps (firewall.go).
	Firewall
	// Download fetches a root's OS template volume to its storage, from
	// the node's appliance index or a URL, before it is created
	// (ostemplate.go).
	Download
	// WriteFile writes a file into a container (files.go).
	WriteFile
	// Service brings a systemd service of a container to its wanted state,
	// or restarts it after a file it reads changed (files.go).
	Service
	// TakeSnapshot takes a snapshot of a container around phoenix's
	// changes, and deletes phoenix's own snapshots beyond the spec's keep
	// (snapshots.go).
	TakeSnapshot
)

var actionNames = [...]string{"no-op", "create", "clone", "update", "resize", "start", "restart", "stop", "identity", "install", "reinstall", "uninstall", "convert", "replace", "delete", "adopt", "directory", "firewall", "download", "file", "service", "snapshot"}

// Actions lists every action, for documentation and tests.
var Actions = []Action{NoOp, Create, Clone, UpdateConfig, Resize, Start, Restart, Stop, RenewIdentity, InstallFeature, ReinstallFeature,
	UninstallFeature, ConvertToTemplate, Replace, Delete, Adopt, Directory, Firewall, Download, WriteFile, Service, TakeSnapshot}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// MarshalText writes the action by name, for the JSON plan.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads an action by name, for saved plans.
func (a *Action) UnmarshalText(b []byte) error {
	i := slices.Index(actionNames[:], string(b))
	if i < 0 {
		return fmt.Errorf("unknown action %q", b)
	}
	*a = Action(i)
	return nil
}

// installs reports whether the action runs a feature's install steps.
func (a Action) installs() bool { return a == InstallFeature || a == ReinstallFeature }

// Change is one step of a guest's plan. Reason is for people; the renderers
// print it, nothing decides on it.
type Change struct {
	Action  Action        `json:"action"`
	Feature string        `json:"feature,omitempty"`
	Fields  []FieldChange `json:"fields,omitempty"`
	// SizeGiB is the disk size a resize grows to.
	SizeGiB int `json:"sizeGiB,omitempty"`
	// Disk is the disk a resize grows, a mount point (mp0); empty is the
	// root disk.
	Disk string `json:"disk,omitempty"`
	// Pending are the options a restart makes current: those waiting in
	// Proxmox's pending section, and those this plan's update will put there.
	Pending []string `json:"pending,omitempty"`
	// File is the path a file write writes, Digest its new content's
	// SHA-256 (the plan shows it instead of the content).
	File   string `json:"file,omitempty"`
	Digest string `json:"digest,omitempty"`
	// Service is the service a service change is about, and Restart
	// (restart or reload) what a changed file asks of it.
	Service string `json:"service,omitempty"`
	Restart string `json:"restart,omitempty"`
	// Snapshot is what a snapshot change takes and deletes.
	Snapshot *SnapshotChange `json:"snapshot,omitempty"`
	Reason   string          `json:"reason"`
	// Reapply marks a reinstall a failing health check asked for: its
	// steps' apply runs even where their check passes (healthcheck.go).
	Reapply bool `json:"reapply,omitempty"`
}

// key identifies a change within a guest's plan: its action (start and
// restart are one, as are install and reinstall) and its feature.
func (c Change) key() string {
	a := c.Action
	switch a {
	case Restart:
		a = Start
	case ReinstallFeature:
		a = InstallFeature
	case Resize:
		return a.String() + " " + c.Disk
	case WriteFile:
		return a.String() + " " + c.File
	case Service:
		return a.String() + " " + c.Service
	case TakeSnapshot:
		if c.Snapshot != nil {
			return a.String() + " " + c.Snapshot.Kind
		}
	}
	return a.String() + " " + c.Feature
}

// FieldChange is one config option: After empty deletes it.
type FieldChange struct {
	Key    string `json:"key"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// GuestPlan is everything planned for one guest.
type GuestPlan struct {
	Name   string    `json:"name"`
	Kind   spec.Kind `json:"kind"`
	VMID   int       `json:"vmid"`
	Node   string    `json:"node"`
	Parent string    `json:"parent,omitempty"`
	// DependsOn are the guests this one waits for (spec dependsOn): the
	// engine makes or changes it only once they converged and run.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Generation is the template generation the entry is about, when it is
	// not the first (a renewed template).
	Generation int `json:"generation,omitempty"`
	// Source is the VMID a guest still to be cloned is cloned from: its
	// template's current generation.
	Source int `json:"source,omitempty"`
	// After are the VMIDs whose deletion in this plan comes first: the
	// linked clones of a template that is deleted too.
	After  []int  `json:"after,omitempty"`
	Action Action `json:"action"`
	// Changes are in the order they are applied.
	Changes []Change `json:"changes"`
	// Errors stop this guest (and its clones); Notes inform.
	Errors []Problem `json:"errors"`
	Notes  []string  `json:"notes"`
	// Stale says why an existing template is out of date in a way it cannot
	// be changed in place (a template cannot run installs): a warning, its
	// clones converge on their own.
	Stale string `json:"stale,omitempty"`
	// Foreign says why a guest that carries phoenix's tag is not this
	// deployment's (another deployment's, a hand-made clone or a restored
	// backup of a managed guest, a VM): phoenix changes and deletes none.
	Foreign string `json:"foreign,omitempty"`
}

// Plan is the whole dry run: a value, rendered elsewhere, applied elsewhere.
type Plan struct {
	Guests []GuestPlan `json:"guests"`
	// Targeted is set on a plan of some guests only (--target).
	Targeted *Targeting `json:"targeted,omitempty"`
}

// Summary counts a plan the way its last line does.
type Summary struct {
	Create    int `json:"create"`
	Change    int `json:"change"`
	Replace   int `json:"replace"`
	Delete    int `json:"delete"`
	Features  int `json:"features"`
	Uninstall int `json:"uninstall"`
	Errors    int `json:"errors"`
}

// Summary counts guests by headline action and feature installs.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, g := range p.Guests {
		switch g.Action {
		case Create, Clone:
			s.Create++
		case Replace:
			s.Replace++
		case Delete:
			s.Delete++
		case NoOp:
		default:
			s.Change++
		}
		for _, c := range g.Changes {
			switch {
			case c.Action.installs():
				s.Features++
			case c.Action == UninstallFeature:
				s.Uninstall++
			}
		}
		s.Errors += len(g.Errors)
	}
	return s
}

// HasChanges reports whether applying the plan would do anything.
func (p *Plan) HasChanges() bool {
	for _, g := range p.Guests {
		if g.Action != NoOp && len(g.Errors) == 0 {
			return true
		}
	}
	return false
}

// HasErrors reports whether any guest cannot be converged as specified.
func (p *Plan) HasErrors() bool { return p.Summary().Errors > 0 }

// Guest finds a guest's plan by name: the entry of the spec's guest, which
// comes before any entry of an old template generation or another guest that
// shares its name.
func (p *Plan) Guest(name string) (*GuestPlan, bool) {
	for i := range p.Guests {
		if p.Guests[i].Name == name {
			return &p.Guests[i], true
		}
	}
	return nil, false
}

// PlanOptions allow the destructive actions, which are otherwise refused.
type PlanOptions struct {
	AllowReplace bool `json:"allowReplace,omitempty"`
	Prune        bool `json:"prune,omitempty"`
	// PruneMax is the most guests one prune deletes (--prune-max). Zero is
	// the default: a quarter of the deployment's guests, at least one, at
	// most DefaultPruneMax. A prune that would delete more deletes nothing:
	// its guests show the count as a problem.
	PruneMax int `json:"pruneMax,omitempty"`
	// PruneHold, when set, says why this pass deletes nothing even with
	// Prune (the loop: the spec files changed a moment ago).
	PruneHold string `json:"-"`
	// RemoveRawGPULines allows removing the raw lxc.* lines that pass NVIDIA
	// devices (the way hand-written scripts did it), which no API can do:
	// phoenix edits the config file on the node.
	RemoveRawGPULines bool `json:"removeRawGPULines,omitempty"`
	// Targets, when set, limit the plan to these guests and what they need
	// (TargetClosure); such a plan prunes nothing. Names as the specs
	// spell them (ResolveTargets).
	Targets []string `json:"targets,omitempty"`
	// Secret reads the secrets of files' templates; nil is ReadSecret
	// (phoenix's environment, or a file).
	Secret SecretReader `json:"-"`
	// Reapply asks for features to be installed again where a health
	// check that says onFailure: reapply keeps failing (phoenix run):
	// guest name, then feature. Not saved with a plan.
	Reapply map[string]map[string]ReapplyRequest `json:"-"`
	// Revision, when set, names the revision of the specs (a git commit):
	// each guest the apply changes records it (State.Rev), so the plan
	// counts it in the room of the guest's record.
	Revision string `json:"-"`
}

// MakePlan compares the resolved specs with the observed cluster. It is a pure
// function: no network, no clock, no randomness.
func MakePlan(res *spec.Resolution, obs *Observed, opts PlanOptions) *Plan {
	if len(opts.Targets) > 0 {
		// A targeted plan has not judged the rest of the specs: it deletes
		// nothing.
		opts.Prune = false
	}
	p := newPlanner(res, obs, opts)
	plan := &Plan{Guests: make([]GuestPlan, 0, len(res.Guests))}
	set := TargetClosure(res, opts.Targets)
	for _, r := range res.Guests {
		if len(opts.Targets) > 0 && !set[r.Name] {
			continue
		}
		plan.Guests = append(plan.Guests, p.plan(r))
	}
	if plan.Targeted = targeting(res, opts.Targets, set); plan.Targeted == nil {
		plan.Guests = append(plan.Guests, p.orphans()...)
	}
	return plan
}

// PlanGuest plans one guest of an approved plan again, against an
// observation that needs to hold only that guest (at the approved entry's
// VMID), and its source while it is still to be cloned. The apply engine
// re-plans a guest before each of its changes with it.
func PlanGuest(res *spec.Resolution, obs *Observed, approved GuestPlan, opts PlanOptions) (GuestPlan, bool) {
	r, ok := res.Guest(approved.Name)
	if !ok {
		return GuestPlan{}, false
	}
	p := newPlanner(res, obs, opts)
	p.single = true
	p.targets[r.Name] = target{vmid: approved.VMID, generation: approved.Generation}
	if parent, ok := res.Guest(r.Parent); ok && obs.Guests[approved.VMID] == nil {
		// What a clone starts from is its template as it will be.
		p.plan(parent)
	}
	return p.plan(r), true
}
