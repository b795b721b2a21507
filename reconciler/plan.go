package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

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
	InstallFeature
	ReinstallFeature
	ConvertToTemplate
	Replace
	Delete
)

var actionNames = [...]string{"no-op", "create", "clone", "update", "resize", "start", "restart", "install", "reinstall", "convert", "replace", "delete"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// MarshalText writes the action by name, for the JSON plan.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Change is one step of a guest's plan. Reason is for people; the renderers
// print it, nothing decides on it.
type Change struct {
	Action  Action        `json:"action"`
	Feature string        `json:"feature,omitempty"`
	Fields  []FieldChange `json:"fields,omitempty"`
	// SizeGiB is the disk size a resize grows to.
	SizeGiB int    `json:"sizeGiB,omitempty"`
	Reason  string `json:"reason"`
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
	Action Action    `json:"action"`
	// Changes are in the order they are applied.
	Changes []Change `json:"changes"`
	// Errors stop this guest (and its clones); Notes inform.
	Errors []string `json:"errors"`
	Notes  []string `json:"notes"`
}

// Plan is the whole dry run: a value, rendered elsewhere, applied elsewhere.
type Plan struct {
	Guests []GuestPlan `json:"guests"`
}

// Summary counts a plan the way its last line does.
type Summary struct {
	Create   int `json:"create"`
	Change   int `json:"change"`
	Replace  int `json:"replace"`
	Delete   int `json:"delete"`
	Features int `json:"features"`
	Errors   int `json:"errors"`
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
			if c.Action == InstallFeature || c.Action == ReinstallFeature {
				s.Features++
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

// Guest finds a guest's plan by name.
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
	AllowReplace bool
	Prune        bool
}

// MakePlan compares the resolved specs with the observed cluster. It is a pure
// function: no network, no clock, no randomness.
func MakePlan(res *spec.Resolution, obs *Observed, opts PlanOptions) *Plan {
	p := &planner{res: res, obs: obs, opts: opts, byName: map[string]*GuestPlan{}, observedByName: map[string][]int{}}
	for _, vmid := range slices.Sorted(maps.Keys(obs.Guests)) {
		name := obs.Guests[vmid].Name
		p.observedByName[name] = append(p.observedByName[name], vmid)
	}
	plan := &Plan{Guests: []GuestPlan{}}
	for _, r := range res.Guests {
		g := p.guest(r)
		plan.Guests = append(plan.Guests, g)
		p.byName[r.Name] = &plan.Guests[len(plan.Guests)-1]
	}
	plan.Guests = append(plan.Guests, p.orphans()...)
	return plan
}

// PlanGuest plans one guest against an observation that needs to hold only
// that guest (and its template, for what a clone starts from). The apply
// engine re-plans each guest after every step with it.
func PlanGuest(res *spec.Resolution, obs *Observed, name string, opts PlanOptions) (GuestPlan, bool) {
	r, ok := res.Guest(name)
	if !ok {
		return GuestPlan{}, false
	}
	p := &planner{res: res, obs: obs, opts: opts, byName: map[string]*GuestPlan{}, observedByName: map[string][]int{}}
	for _, vmid := range slices.Sorted(maps.Keys(obs.Guests)) {
		name := obs.Guests[vmid].Name
		p.observedByName[name] = append(p.observedByName[name], vmid)
	}
	return p.guest(r), true
}

type planner struct {
	res    *spec.Resolution
	obs    *Observed
	opts   PlanOptions
	byName map[string]*GuestPlan
	// observedByName indexes observed guests by name, VMIDs ascending.
	observedByName map[string][]int
}

func (p *planner) guest(r *spec.Resolved) GuestPlan {
	g := GuestPlan{Name: r.Name, Kind: r.Kind, VMID: r.VMID, Node: r.Settings.Node, Parent: r.Parent,
		Changes: []Change{}, Errors: []string{}, Notes: []string{}}
	if parent, ok := p.byName[r.Parent]; ok && len(parent.Errors) > 0 {
		g.Errors = append(g.Errors, fmt.Sprintf("its template %s cannot be converged", r.Parent))
		return g
	}
	if err := p.conflict(r); err != "" {
		g.Errors = append(g.Errors, err)
		return g
	}
	d, errs := desiredConfig(r, p.obs.Hosts[r.Settings.Node])
	g.Errors = append(g.Errors, errs...)
	og := p.obs.Guests[r.VMID]
	if og == nil {
		p.missing(&g, r, d)
	} else {
		p.existing(&g, r, d, og)
	}
	if len(g.Errors) > 0 {
		// Nothing is done to a guest with a problem.
		g.Action, g.Changes = NoOp, []Change{}
	}
	return g
}

// conflict reports a VMID or name held by something phoenix does not own.
func (p *planner) conflict(r *spec.Resolved) string {
	if og := p.obs.Guests[r.VMID]; og != nil {
		switch {
		case og.Type == "qemu":
			return fmt.Sprintf("VMID %d is held by the VM %q; phoenix never touches it", r.VMID, og.Name)
		case !og.Managed:
			return fmt.Sprintf("VMID %d is held by container %q on %s, which is not managed by phoenix (no %s tag); phoenix never touches it: pick another vmid, or tag it %s to adopt it",
				r.VMID, og.Name, og.Node, ManagedTag, ManagedTag)
		}
	}
	for _, vmid := range p.observedByName[r.Name] {
		og := p.obs.Guests[vmid]
		if vmid != r.VMID && !og.Managed {
			return fmt.Sprintf("name %s is used by guest %d on %s, which is not managed by phoenix", r.Name, vmid, og.Node)
		}
	}
	return ""
}

// missing plans a guest that does not exist yet.
func (p *planner) missing(g *GuestPlan, r *spec.Resolved, d desired) {
	if r.Parent == "" {
		g.Action = Create
		g.Changes = append(g.Changes, Change{Action: Create, Reason: fmt.Sprintf("from %s on %s", r.Settings.OSTemplate, r.Settings.Storage)})
	} else {
		g.Action = Clone
		reason := fmt.Sprintf("%s clone of %s", r.Settings.CloneMode, r.Parent)
		if parent, ok := p.byName[r.Parent]; ok && parent.Action != NoOp {
			reason += ", once " + r.Parent + " is ready"
		}
		g.Changes = append(g.Changes, Change{Action: Clone, Reason: reason})
	}
	// What the config will need after the create or clone, against what it
	// will start from: nothing for a create, the parent's for a clone.
	var from Config
	if parent, ok := p.res.Guest(r.Parent); ok {
		if pd, errs := desiredConfig(parent, p.obs.Hosts[parent.Settings.Node]); len(errs) == 0 {
			from = predictedConfig(pd, parent.Name)
		}
	}
	if r.Parent == "" {
		from = Config{Values: map[string]string{"rootfs": fmt.Sprintf("%s:vm-%d-disk-0,size=%dG", r.Settings.Storage, r.VMID, r.Settings.DiskGiB)}}
	}
	if from.Values == nil {
		from.Values = map[string]string{}
	}
	// The create or clone request names the guest.
	from.Values["hostname"] = r.Name
	fields, grow, _ := configDiff(d, from)
	if len(fields) > 0 {
		g.Changes = append(g.Changes, Change{Action: UpdateConfig, Fields: fields, Reason: "settings of the spec"})
	}
	if grow > 0 {
		g.Changes = append(g.Changes, Change{Action: Resize, SizeGiB: grow, Reason: "disk larger than the template's"})
	}
	install := r.Install
	if len(install) > 0 {
		g.Changes = append(g.Changes, Change{Action: Start, Reason: "to install features"})
	}
	for _, f := range install {
		g.Changes = append(g.Changes, Change{Action: InstallFeature, Feature: f, Reason: p.installReason(r, f)})
	}
	if r.IsTemplate() {
		g.Changes = append(g.Changes, Change{Action: ConvertToTemplate, Reason: "its features are in place"})
	}
}

// predictedConfig is the config a guest will have once converged, as far as
// phoenix manages it: what its clones start from.
func predictedConfig(d desired, name string) Config {
	v := map[string]string{}
	maps.Copy(v, d.options)
	v["hostname"] = name
	if len(d.features) > 0 {
		v["features"] = printPropString(d.features)
	}
	for i, n := range d.nics {
		v[fmt.Sprintf("net%d", i)] = nicValue(n, "")
	}
	for i, dev := range d.devices {
		v[fmt.Sprintf("dev%d", i)] = dev
	}
	// Only the size of the root disk matters to what a clone plans.
	v["rootfs"] = fmt.Sprintf("size=%dG", d.diskGiB)
	return Config{Values: v}
}

// installReason says why a guest installs a feature: its spec lists it, or
// features it has require it.
func (p *planner) installReason(r *spec.Resolved, f string) string {
	if slices.Contains(r.Own, f) {
		return "listed in the spec"
	}
	var by []string
	for _, o := range r.Effective {
		if o != f && slices.Contains(p.res.Catalog.Closure([]string{o}), f) {
			by = append(by, o)
		}
	}
	if len(by) == 0 {
		return "inherited from the lineage"
	}
	return "required by " + strings.Join(by, ", ")
}

// existing plans a managed guest that exists.
func (p *planner) existing(g *GuestPlan, r *spec.Resolved, d desired, og *ObservedGuest) {
	if og.ConfigErr != nil {
		g.Errors = append(g.Errors, fmt.Sprintf("reading its config failed: %v", og.ConfigErr))
		return
	}
	if og.Node != r.Settings.Node {
		g.Errors = append(g.Errors, fmt.Sprintf("it is on node %s and the spec says %s: phoenix does not migrate (pct migrate it, or change spec.node)", og.Node, r.Settings.Node))
		return
	}
	if og.StateErr != nil {
		g.Notes = append(g.Notes, fmt.Sprintf("%v; its records are not trusted and its features are checked again", og.StateErr))
	}
	if reason := replaceReason(r, d, og); reason != "" {
		p.replace(g, r, d, og, reason)
		return
	}
	fields, grow, errs := configDiff(d, og.Config)
	g.Errors = append(g.Errors, errs...)
	if len(fields) > 0 {
		g.Changes = append(g.Changes, Change{Action: UpdateConfig, Fields: fields, Reason: "config differs from the spec"})
	}
	if grow > 0 {
		g.Changes = append(g.Changes, Change{Action: Resize, SizeGiB: grow, Reason: "the spec's disk is larger"})
	}
	features := p.features(r, og)
	if og.Template && len(features) > 0 && p.opts.AllowReplace && len(p.clonesOf(r.Name)) == 0 {
		// A template cannot run installs; with no clones on its disk it can
		// be rebuilt.
		p.replace(g, r, d, og, fmt.Sprintf("it is a template missing %s, and a template cannot run installs", changedFeatures(features)))
		return
	}
	if og.Template {
		if len(features) > 0 {
			var names []string
			for _, c := range features {
				names = append(names, c.Feature)
			}
			g.Notes = append(g.Notes, fmt.Sprintf("%s is already a template and a template cannot run installs: its clones are independent and are converged individually (each installs %s itself); replace it with --allow-replace to rebuild it once it has no linked clones",
				r.Name, strings.Join(names, ", ")))
		}
	} else {
		restart := needsRestart(fields, og)
		if len(features) > 0 || restart != "" {
			switch {
			case og.Status != "running":
				g.Changes = append(g.Changes, Change{Action: Start, Reason: "to install features"})
			case restart != "":
				g.Changes = append(g.Changes, Change{Action: Restart, Reason: restart})
			}
		}
		g.Changes = append(g.Changes, features...)
		if r.IsTemplate() {
			g.Changes = append(g.Changes, Change{Action: ConvertToTemplate, Reason: "its features are in place"})
		}
	}
	if len(g.Changes) > 0 {
		g.Action = UpdateConfig
		if clones := p.existingClones(r); r.IsTemplate() && len(clones) > 0 && len(g.Errors) == 0 {
			g.Notes = append(g.Notes, fmt.Sprintf("existing clones (%s) are independent of this template: each is converged on its own, as its own plan shows",
				strings.Join(clones, ", ")))
		}
	}
}

// existingClones names the guests cloned from r (by the spec) that exist.
func (p *planner) existingClones(r *spec.Resolved) []string {
	var out []string
	for _, c := range r.Children {
		if cr, ok := p.res.Guest(c); ok && p.obs.Guests[cr.VMID] != nil {
			out = append(out, c)
		}
	}
	return out
}

func changedFeatures(cs []Change) string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Feature)
	}
	return strings.Join(names, ", ")
}

// needsRestart says why a running container must restart for a config
// change to take effect: devices change only at start, and feature flags wait
// in pending until a restart.
func needsRestart(fields []FieldChange, og *ObservedGuest) string {
	if og.Status != "running" {
		return ""
	}
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f.Key, "dev"):
			return "devices change only when a container starts"
		case f.Key == "features":
			return "feature flags apply at the next start"
		}
	}
	return ""
}

// replaceReason says why a guest must be destroyed and made again.
func replaceReason(r *spec.Resolved, d desired, og *ObservedGuest) string {
	haveUnpriv := og.Config.Values["unprivileged"] == "1"
	switch {
	case haveUnpriv != d.unprivileged:
		return fmt.Sprintf("unprivileged changes %t -> %t, which Proxmox cannot change in place", haveUnpriv, d.unprivileged)
	case og.Template && !r.IsTemplate():
		return "it is a template and the spec wants a container: a template cannot be converted back"
	case og.State != nil && og.State.Parent != r.Parent:
		return fmt.Sprintf("its template changes %s -> %s", orNone(og.State.Parent), orNone(r.Parent))
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (p *planner) replace(g *GuestPlan, r *spec.Resolved, d desired, og *ObservedGuest, reason string) {
	switch {
	case og.Config.Values["protection"] == "1":
		g.Errors = append(g.Errors, fmt.Sprintf("needs to be replaced (%s) but has protection: 1; phoenix never replaces a protected guest", reason))
		return
	case !p.opts.AllowReplace:
		g.Errors = append(g.Errors, fmt.Sprintf("needs to be replaced (%s): run with --allow-replace to destroy and recreate it", reason))
		return
	}
	if clones := p.clonesOf(r.Name); og.Template && len(clones) > 0 {
		g.Errors = append(g.Errors, fmt.Sprintf("needs to be replaced (%s) but linked clones may use its disk: %s", reason, strings.Join(clones, ", ")))
		return
	}
	sub := GuestPlan{}
	p.missing(&sub, r, d)
	g.Action = Replace
	g.Changes = append([]Change{{Action: Replace, Reason: reason}}, sub.Changes...)
}

// clonesOf names the observed guests whose records say they were cloned from name.
func (p *planner) clonesOf(name string) []string {
	var out []string
	for _, og := range p.obs.Guests {
		if og.State != nil && og.State.Parent == name {
			out = append(out, og.Name)
		}
	}
	slices.Sort(out)
	return out
}

// features decides what to install on an existing guest: effective minus
// what it has a trusted record of. A record made on this guest is trusted; a
// record that came with the clone is trusted only if the spec lineage says the
// feature is inherited. A changed version or parameters, or a host driver that
// moved, reinstalls the feature and everything that requires it.
func (p *planner) features(r *spec.Resolved, og *ObservedGuest) []Change {
	var records map[string]FeatureRecord
	if og.State != nil {
		records = og.State.Features
	}
	host := p.obs.Hosts[r.Settings.Node]
	redo := map[string]bool{}
	var out []Change
	for _, f := range p.res.Catalog.Order(r.Effective) {
		rec, ok := records[f]
		trusted := ok && (rec.VMID == r.VMID || slices.Contains(r.Inherited, f))
		want := recordFor(p.res, r, f, host)
		reason := ""
		switch {
		case !trusted:
			out = append(out, Change{Action: InstallFeature, Feature: f, Reason: p.installReason(r, f)})
			redo[f] = true
			continue
		case rec.Version != want.Version && f == spec.FeatureNVIDIADriver:
			reason = fmt.Sprintf("host driver %s -> %s", rec.Version, want.Version)
		case rec.Version != want.Version:
			reason = fmt.Sprintf("version %s -> %s", orNone(rec.Version), orNone(want.Version))
		case !maps.Equal(rec.Params, want.Params):
			reason = "parameters changed: " + paramDiff(rec.Params, want.Params)
		default:
			if def, ok := p.res.Catalog.Lookup(f); ok {
				for _, req := range def.Requires {
					if redo[req] {
						reason = "it requires " + req + ", which is reinstalled"
						break
					}
				}
			}
		}
		if reason != "" {
			out = append(out, Change{Action: ReinstallFeature, Feature: f, Reason: reason})
			redo[f] = true
		}
	}
	return out
}

// recordFor is the record a feature will have once installed on r.
func recordFor(res *spec.Resolution, r *spec.Resolved, f string, host *HostObservation) FeatureRecord {
	rec := FeatureRecord{VMID: r.VMID}
	if len(r.Params[f]) > 0 {
		rec.Params = r.Params[f]
	}
	if def, ok := res.Catalog.Lookup(f); ok {
		rec.Version = def.Version
	}
	if f == spec.FeatureNVIDIADriver && host != nil {
		rec.Version = host.Info.DriverVersion
	}
	return rec
}

func paramDiff(before, after map[string]string) string {
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if before[k] != after[k] {
			out = append(out, fmt.Sprintf("%s %s -> %s", k, orNone(before[k]), orNone(after[k])))
		}
	}
	return strings.Join(out, ", ")
}

// orphans plans the managed guests no spec wants: deleted with --prune.
func (p *planner) orphans() []GuestPlan {
	wanted := map[int]bool{}
	for _, r := range p.res.Guests {
		wanted[r.VMID] = true
	}
	var out []GuestPlan
	for _, vmid := range slices.Sorted(maps.Keys(p.obs.Guests)) {
		og := p.obs.Guests[vmid]
		if wanted[vmid] || !og.Managed {
			continue
		}
		kind := spec.KindContainer
		if og.Template {
			kind = spec.KindTemplate
		}
		g := GuestPlan{Name: og.Name, Kind: kind, VMID: vmid, Node: og.Node, Changes: []Change{}, Errors: []string{}, Notes: []string{}}
		switch {
		case !p.opts.Prune:
			g.Notes = append(g.Notes, "managed by phoenix but in no spec: run with --prune to delete it")
		case og.Config.Values["protection"] == "1":
			g.Errors = append(g.Errors, "in no spec, but has protection: 1; phoenix never deletes a protected guest")
		default:
			g.Action = Delete
			reason := "managed by phoenix and in no spec"
			if og.Status == "running" {
				g.Changes = append(g.Changes, Change{Action: Delete, Reason: reason + "; it is stopped first"})
			} else {
				g.Changes = append(g.Changes, Change{Action: Delete, Reason: reason})
			}
		}
		out = append(out, g)
	}
	// Clones before the templates they may be linked to.
	slices.SortStableFunc(out, func(a, b GuestPlan) int {
		return cmp.Compare(boolInt(a.Kind == spec.KindTemplate), boolInt(b.Kind == spec.KindTemplate))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
