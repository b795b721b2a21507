package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// planner holds what one planning pass has worked out so far. Guests are
// planned parents first, and each leaves behind what it will be once its
// plan is applied, which is what its clones start from.
type planner struct {
	res  *spec.Resolution
	obs  *Observed
	opts PlanOptions
	// planned are the plans made so far, by guest name.
	planned map[string]*GuestPlan
	// final is each planned guest as it will be after the apply.
	final map[string]*future
	// observedByName indexes observed guests by lower-case name, VMIDs
	// ascending.
	observedByName map[string][]int
	// plannedInstalls numbers the records this plan will write, so that a
	// record it predicts is told apart from every real one.
	plannedInstalls int
	// targets fix the VMID (and template generation) a guest's plan is
	// about, where the apply engine re-plans an approved entry.
	targets map[string]target
	// superseded are the template generations a newer one replaces, by
	// VMID: planned after the spec's guests, with the orphans.
	superseded map[int]supersededGeneration
	// dep is the deployment whose guests these are; namedAt is the spec's
	// guest that names a VMID (as its VMID or a renewal VMID).
	dep     string
	namedAt map[int]*spec.Resolved
	// single is set where the apply engine re-plans one guest: its
	// dependencies are the engine's to wait for, not the plan's to judge.
	single bool
	// planning are the guests whose plan is being made, so that planning a
	// dependency first never goes round in a circle.
	planning map[string]bool
}

// target is the guest a spec's guest is planned at: its VMID, and for a
// renewed template the generation.
type target struct{ vmid, generation int }

// supersededGeneration is an old generation of a template, and why.
type supersededGeneration struct {
	name string
	// current is the VMID of the generation that replaces it.
	current, generation int
	// stale says why it went stale, when it does so in this plan.
	stale string
}

// future is a guest as it will be once its plan is applied: what a clone of
// it starts from.
type future struct {
	// config holds the options phoenix manages.
	config map[string]string
	// records are the feature records in its state block.
	records map[string]FeatureRecord
	// vmid is the guest clones are made from.
	vmid int
	node string
	// firewall is its firewall, which a clone copies (nil: not read).
	firewall *FirewallConfig
	// lxc are its raw lxc.* lines, which a clone copies.
	lxc [][2]string
	// files are the file records in its state block.
	files map[string]string
}

func newPlanner(res *spec.Resolution, obs *Observed, opts PlanOptions) *planner {
	p := &planner{res: res, obs: obs, opts: opts, planned: map[string]*GuestPlan{}, final: map[string]*future{},
		observedByName: map[string][]int{}, targets: map[string]target{}, superseded: map[int]supersededGeneration{},
		dep: deploymentOf(res), namedAt: map[int]*spec.Resolved{}, planning: map[string]bool{}}
	for _, r := range res.Guests {
		for _, vmid := range append([]int{r.VMID}, r.RenewalVMIDs...) {
			if p.namedAt[vmid] == nil {
				p.namedAt[vmid] = r
			}
		}
	}
	for _, vmid := range slices.Sorted(maps.Keys(obs.Guests)) {
		// Names are hostnames: GPU and gpu are one name.
		name := strings.ToLower(obs.Guests[vmid].Name)
		p.observedByName[name] = append(p.observedByName[name], vmid)
	}
	return p
}

// planDependency plans a guest another depends on, after the templates it
// is cloned from, before its own turn in the spec's order comes; nil where
// it is being planned already (a cycle, which validation refuses) or is not
// in the spec.
func (p *planner) planDependency(name string) *GuestPlan {
	r, ok := p.res.Guest(name)
	if !ok || p.planning[name] {
		return nil
	}
	for _, a := range r.Lineage {
		if ar, ok := p.res.Guest(a); ok && !p.planning[a] {
			p.plan(ar)
		}
	}
	p.plan(r)
	return p.planned[name]
}

// plan plans one guest once; later calls return the same plan.
func (p *planner) plan(r *spec.Resolved) GuestPlan {
	if g, ok := p.planned[r.Name]; ok {
		return *g
	}
	p.planning[r.Name] = true
	g := p.guest(r)
	delete(p.planning, r.Name)
	if len(g.Errors) > 0 {
		// Nothing is done to a guest with a problem, and nothing can be
		// cloned from it.
		g.Action, g.Changes = NoOp, []Change{}
		delete(p.final, r.Name)
	}
	p.planned[r.Name] = &g
	return g
}

func (p *planner) guest(r *spec.Resolved) GuestPlan {
	t := p.targetOf(r)
	g := GuestPlan{Name: r.Name, Kind: r.Kind, VMID: t.vmid, Generation: t.generation, Node: r.Settings.Node, Parent: r.Parent,
		Changes: []Change{}, Errors: []Problem{}, Notes: []string{}}
	// A guest's own problems come first: they say more than its template's.
	if pr := p.conflict(r, t.vmid); pr != nil {
		if og := p.obs.Guests[t.vmid]; og != nil && og.Managed {
			g.Foreign = p.owner(og).reason
		}
		g.Errors = append(g.Errors, *pr)
		return g
	}
	d, problems := desiredConfig(r, p.obs.Hosts[r.Settings.Node])
	if len(problems) > 0 {
		g.Errors = append(g.Errors, problems...)
		return g
	}
	if parent, ok := p.planned[r.Parent]; ok && len(parent.Errors) > 0 {
		g.Errors = append(g.Errors, problem(ProblemBlocked, "its template %s cannot be converged", r.Parent))
		return g
	}
	g.DependsOn = r.Settings.DependsOn
	if !p.single {
		for _, name := range r.Settings.DependsOn {
			dp := p.planDependency(name)
			switch {
			case dp == nil:
			case len(dp.Errors) > 0:
				g.Errors = append(g.Errors, problem(ProblemBlocked, "it waits for %s (dependsOn), which cannot be converged", name))
				return g
			case dp.Action != NoOp:
				g.Notes = append(g.Notes, fmt.Sprintf("waits for %s (dependsOn) to converge and run first", name))
			}
		}
	}
	if og := p.obs.Guests[t.vmid]; og != nil {
		if f := p.owner(og); f.foreign() {
			// Only a spec that adopts gets here (conflict): the guest is
			// planned as it will be once adopted.
			g.Changes = append(g.Changes, Change{Action: Adopt, Reason: "adopt: true: " + f.reason + "; phoenix tags it and records it as this deployment's"})
			og = adopted(p.res, r, og)
		}
		p.existing(&g, r, d, og)
		if g.Action == UpdateConfig && len(g.Changes) > 0 && g.Changes[0].Action == Adopt {
			g.Action = Adopt
		}
	} else {
		p.missing(&g, r, d)
	}
	for _, og := range p.generationsOf(r) {
		if og.VMID != g.VMID {
			if _, renewed := p.superseded[og.VMID]; !renewed {
				p.superseded[og.VMID] = supersededGeneration{name: r.Name, current: g.VMID, generation: g.Generation}
			}
		}
	}
	return g
}

// generationsOf lists the observed generations of a template, oldest first:
// the managed guests at its VMID and its renewal VMIDs whose records say
// they are this template.
func (p *planner) generationsOf(r *spec.Resolved) []*ObservedGuest {
	if !r.IsTemplate() {
		return nil
	}
	var out []*ObservedGuest
	for _, vmid := range append([]int{r.VMID}, r.RenewalVMIDs...) {
		og := p.obs.Guests[vmid]
		if og != nil && og.Managed && og.State != nil && og.State.Name == r.Name && og.State.Kind == string(spec.KindTemplate) && !p.owner(og).foreign() {
			out = append(out, og)
		}
	}
	slices.SortStableFunc(out, func(a, b *ObservedGuest) int { return cmp.Compare(a.State.Generation, b.State.Generation) })
	return out
}

// targetOf is the guest a spec's guest is planned at: the entry the apply
// engine works on, else a template's newest generation, else its VMID.
func (p *planner) targetOf(r *spec.Resolved) target {
	if t, ok := p.targets[r.Name]; ok {
		return t
	}
	if gens := p.generationsOf(r); len(gens) > 0 {
		newest := gens[len(gens)-1]
		return target{vmid: newest.VMID, generation: newest.State.Generation}
	}
	return target{vmid: r.VMID}
}

// conflict reports a VMID or name held by something this deployment does
// not own: a guest without the tag, or one whose record is not this
// deployment's at this VMID. A spec that says adopt: true takes such a
// container over; a VM never.
func (p *planner) conflict(r *spec.Resolved, vmid int) *Problem {
	if og := p.obs.Guests[vmid]; og != nil {
		switch f := p.owner(og); {
		case isVM(og):
			pr := problem(ProblemConflict, "VMID %d is held by the VM %q; phoenix never touches it: pick another vmid", vmid, og.Name)
			return &pr
		case adopts(r):
		case !og.Managed:
			pr := problem(ProblemConflict, "VMID %d is held by container %q on %s, which is not managed by phoenix (no %s tag); phoenix never touches it: pick another vmid, or set adopt: true in its spec to have phoenix take it over",
				vmid, og.Name, og.Node, ManagedTag)
			return &pr
		case f.foreign():
			pr := problem(ProblemConflict, "VMID %d is held by container %q on %s, which is not this deployment's: %s; phoenix never touches it: pick another vmid, or set adopt: true in its spec to have phoenix take it over",
				vmid, og.Name, og.Node, f.reason)
			return &pr
		}
	}
	for _, other := range p.observedByName[strings.ToLower(r.Hostname)] {
		og := p.obs.Guests[other]
		if other != vmid && !og.Managed {
			held := fmt.Sprint(other)
			if og.Name != r.Hostname {
				held += " (" + strconv.QuoteToASCII(og.Name) + ")"
			}
			what := "name " + r.Name
			if r.Hostname != r.Name {
				what = "host name " + r.Hostname
			}
			pr := problem(ProblemConflict, "%s is used by guest %s on %s, which is not managed by phoenix: rename one of them", what, held, og.Node)
			return &pr
		}
	}
	return nil
}

// missing plans a guest that does not exist yet: made from its template as
// the template will be, or created from its OS template, and then converged
// like any existing guest.
func (p *planner) missing(g *GuestPlan, r *spec.Resolved, d desired) {
	if problems := p.preflight(r, d); len(problems) > 0 {
		g.Errors = append(g.Errors, problems...)
		return
	}
	start := &ObservedGuest{GuestSummary: GuestSummary{VMID: g.VMID, Type: "lxc", Node: r.Settings.Node, Name: r.Hostname, Status: "stopped"},
		Managed: true, State: ownedState(p.res, r, g.VMID, g.Generation)}
	if r.Parent == "" {
		g.Action = Create
		if c, ok := p.templateDownload(r); ok {
			g.Changes = append(g.Changes, c)
		}
		g.Changes = append(g.Changes, Change{Action: Create, Reason: fmt.Sprintf("from %s on %s", r.Settings.OSTemplate, r.Settings.Storage)})
		start.Config = createdConfig(r, d, g.VMID)
	} else {
		parent := p.final[r.Parent]
		if parent == nil {
			g.Errors = append(g.Errors, problem(ProblemBlocked, "its template %s is not in the plan", r.Parent))
			return
		}
		g.Action, g.Source = Clone, parent.vmid
		reason := fmt.Sprintf("%s clone of %s", r.Settings.CloneMode, r.Parent)
		if snap := r.Guest.Spec.From.Snapshot; snap != "" {
			if pr := p.sourceSnapshotProblem(r); pr != nil {
				g.Errors = append(g.Errors, *pr)
				return
			}
			reason = fmt.Sprintf("full clone of snapshot %s of %s", snap, r.Parent)
		}
		if pp := p.planned[r.Parent]; pp != nil && pp.Action != NoOp {
			reason += ", once " + r.Parent + " is ready"
		}
		g.Changes = append(g.Changes, Change{Action: Clone, Reason: reason})
		// A clone copies its source's config and its state block's records:
		// what it inherits is what its template will hold.
		start.Config = Config{Values: maps.Clone(parent.config), LXC: slices.Clone(parent.lxc)}
		start.Config.Values["hostname"] = r.Hostname
		start.State.Features = maps.Clone(parent.records)
		start.State.Files = maps.Clone(parent.files)
		// Proxmox copies the firewall too (clone_vmfw_conf).
		start.Firewall = parent.firewall
		start.State.IdentityDue = !r.IsTemplate()
		// The template's notes come along too, to share the clone's
		// description with its record.
		if src := p.obs.Guests[parent.vmid]; src != nil {
			start.User = src.User
		}
	}
	p.converge(g, r, d, start, true)
	p.snapshots(g, r, start, true)
}

// createdConfig is what a container created from an OS template starts with,
// as far as the plan compares it.
func createdConfig(r *spec.Resolved, d desired, vmid int) Config {
	v := map[string]string{"rootfs": fmt.Sprintf("%s:vm-%d-disk-0,size=%dG", r.Settings.Storage, vmid, r.Settings.DiskGiB)}
	// The create request sets the spec's options and the flags the API
	// allows the session; the rest follows in an update.
	maps.Copy(v, createOptionsOf(d))
	delete(v, "description")
	delete(v, "unprivileged")
	return Config{Values: v}
}

// existing plans a managed guest that exists.
func (p *planner) existing(g *GuestPlan, r *spec.Resolved, d desired, og *ObservedGuest) {
	switch {
	case og.ConfigErr != nil:
		g.Errors = append(g.Errors, problem(ProblemObserve, "reading its config failed: %v", og.ConfigErr))
		return
	case og.Node != r.Settings.Node:
		g.Errors = append(g.Errors, problem(ProblemSpec, "it is on node %s and the spec says %s: phoenix does not migrate (pct migrate it, or change spec.node)", og.Node, r.Settings.Node))
		return
	case og.PendingErr != nil:
		g.Errors = append(g.Errors, problem(ProblemObserve, "reading its pending changes failed: %v", og.PendingErr))
		return
	}
	if og.StateErr != nil {
		g.Notes = append(g.Notes, fmt.Sprintf("%v; its records are not trusted and its features are checked again", og.StateErr))
	}
	if reason := replaceReason(r, d, og); reason != "" {
		p.replace(g, r, d, og, reason)
		return
	}
	p.converge(g, r, d, og, false)
	p.snapshots(g, r, og, false)
	if g.Action == NoOp && len(g.Changes) > 0 {
		g.Action = UpdateConfig
		if clones := p.existingClones(r); r.IsTemplate() && len(clones) > 0 {
			g.Notes = append(g.Notes, fmt.Sprintf("existing clones (%s) are independent of this template: each is converged on its own, as its own plan shows",
				strings.Join(clones, ", ")))
		}
	}
}

// converge plans what brings a guest, existing or as it will be made, to its
// spec: its config, its disk, its run state and its features. made marks a
// guest this plan makes, which is stopped and has never run.
func (p *planner) converge(g *GuestPlan, r *spec.Resolved, d desired, og *ObservedGuest, made bool) {
	fields, grow, problems := configDiff(d, og.Config)
	if raw := withoutOwned(rawGPULines(og.Config.LXC, p.obs.Hosts[r.Settings.Node]), d.raw); len(raw) > 0 {
		if !p.opts.RemoveRawGPULines {
			problems = append(problems, rawLinesProblem(og.VMID, raw))
		}
		fields = append(fields, rawLineFields(raw)...)
	}
	mountFields, mountGrows, mountProblems := mountDiff(d, og.Config.Values)
	fields, problems = append(fields, mountFields...), append(problems, mountProblems...)
	// Bind mount owners map through the id map the container will have.
	dirs, dirProblems := p.directoryChange(r, Config{Values: og.Config.Values, LXC: lxcAfter(og.Config.LXC, rawDiff(d.raw, og.Config.LXC), d.raw)})
	problems = append(problems, dirProblems...)
	problems = append(problems, p.subIDProblems(r, d)...)
	if len(problems) > 0 {
		g.Errors = append(g.Errors, problems...)
		return
	}
	if dirs != nil {
		g.Changes = append(g.Changes, *dirs)
	}
	fields, atRestart := rawAtRestart(fields, d, og, r)
	if len(fields) > 0 {
		reason := "config differs from the spec"
		if made {
			reason = "settings of the spec"
		}
		g.Changes = append(g.Changes, Change{Action: UpdateConfig, Fields: fields, Reason: reason})
	}
	if grow > 0 {
		reason := "the spec's disk is larger"
		if made && r.Parent != "" {
			reason = "disk larger than the template's"
		}
		g.Changes = append(g.Changes, Change{Action: Resize, SizeGiB: grow, Reason: reason})
	}
	for _, mg := range mountGrows {
		g.Changes = append(g.Changes, Change{Action: Resize, Disk: mg.key, SizeGiB: mg.gib,
			Reason: mountResizeReason(mg.key, mountPathOf(og.Config.Values[mg.key]), made && r.Parent != "")})
	}
	fwChange, fwNotes, fwProblem := p.firewallChange(r, og)
	if fwProblem != nil {
		g.Errors = append(g.Errors, *fwProblem)
		return
	}
	if fwChange != nil {
		g.Changes = append(g.Changes, *fwChange)
	}
	g.Notes = append(g.Notes, fwNotes...)
	features, records, notes := p.features(r, og)
	g.Notes = append(g.Notes, notes...)
	if pr := p.runfileProblem(r, features); pr != nil {
		g.Errors = append(g.Errors, *pr)
		return
	}
	next := &future{config: afterFields(og.Config.Values, fields), records: records, vmid: og.VMID, node: og.Node,
		firewall: firewallAfter(r, og), lxc: lxcAfter(og.Config.LXC, slices.Concat(fields, atRestart), d.raw)}
	if grow > 0 {
		next.config["rootfs"] = withSize(next.config["rootfs"], grow)
	}
	withMountSizes(next.config, mountGrows)
	if og.Template {
		if p.staleTemplate(g, r, d, og, features) {
			return // replaced or renewed: planned as made again
		}
		// A template keeps its disk: what it cannot install stays missing.
		next.records = og.records()
		if og.State != nil && og.StateErr == nil {
			next.files = og.State.Files
		}
		p.recordRoom(g, r, og, next.records, next.files)
		p.final[r.Name] = next
		return
	}
	running := og.Status == "running"
	runs := !r.IsTemplate() && !r.Stopped
	in, inProblems := p.inside(r, og, made, runs)
	if len(inProblems) > 0 {
		g.Errors = append(g.Errors, inProblems...)
		return
	}
	next.files = in.files
	identity := og.State != nil && og.State.IdentityDue && og.State.Identity == nil && !r.IsTemplate()
	switch {
	case !running && (len(features) > 0 || len(in.changes) > 0 || runs || identity):
		reason := startReason(features, made)
		if len(features) == 0 && !runs {
			reason = "to write its files"
		}
		g.Changes = append(g.Changes, Change{Action: Start, Reason: reason})
		running = true
	case running:
		if keys := restartKeys(slices.Concat(fields, atRestart), og, d); len(atRestart) > 0 {
			g.Changes = append(g.Changes, Change{Action: Restart, Pending: keys, Fields: atRestart, Reason: rawRestartReason(atRestart, keys)})
		} else if len(keys) > 0 {
			g.Changes = append(g.Changes, Change{Action: Restart, Pending: keys, Reason: restartReason(keys)})
		}
	}
	if identity {
		g.Changes = append(g.Changes, Change{Action: RenewIdentity,
			Reason: "a clone has its template's SSH host keys: it gets its own, once, before anything else runs in it"})
	}
	g.Changes = append(g.Changes, features...)
	g.Changes = append(g.Changes, in.changes...)
	switch {
	case r.IsTemplate():
		g.Changes = append(g.Changes, Change{Action: ConvertToTemplate, Reason: "its features are in place"})
	case r.Stopped && running:
		g.Changes = append(g.Changes, Change{Action: Stop, Reason: "its spec says state: stopped"})
	}
	p.recordRoom(g, r, og, next.records, next.files)
	p.final[r.Name] = next
}

// startReason says why a stopped guest is started.
func startReason(features []Change, made bool) string {
	switch {
	case len(features) > 0:
		return "to install features"
	case made:
		return "a Container runs"
	}
	return "a Container runs, and it is stopped"
}

// afterFields is a config with the fields of an update applied.
func afterFields(v map[string]string, fields []FieldChange) map[string]string {
	out := maps.Clone(v)
	if out == nil {
		out = map[string]string{}
	}
	for _, f := range fields {
		if isRawKey(f.Key) {
			continue // raw lines are not options (future.lxc)
		}
		if f.After == "" {
			delete(out, f.Key)
		} else {
			out[f.Key] = f.After
		}
	}
	return out
}

func withSize(rootfs string, gib int) string {
	parts := propString(rootfs)
	parts["size"] = fmt.Sprintf("%dG", gib)
	return printPropString(parts)
}

// staleTemplate plans what can be done about a template whose features are
// out of date (a template cannot run installs): it is made again when no
// linked clone uses its disk (with --allow-replace), renewed as a new
// generation when its spec allows, or else left stale, a warning. It reports
// whether the template is planned as made again.
func (p *planner) staleTemplate(g *GuestPlan, r *spec.Resolved, d desired, og *ObservedGuest, features []Change) bool {
	if len(features) == 0 {
		return false
	}
	what := describeChanges(features)
	clones := p.linkedClones(og.VMID)
	if len(clones) == 0 && p.opts.AllowReplace {
		p.replace(g, r, d, og, fmt.Sprintf("it is a template that needs %s, and a template cannot run installs", what))
		return true
	}
	stale := fmt.Sprintf("it needs %s and a template cannot run installs", what)
	if len(clones) > 0 {
		stale += fmt.Sprintf("; linked clones (%s) use its disk", strings.Join(clones, ", "))
		if len(r.RenewalVMIDs) > 0 {
			if vmid := p.freeRenewalVMID(r); vmid != 0 {
				p.renew(g, r, d, og, vmid, stale)
				return true
			}
			g.Notes = append(g.Notes, fmt.Sprintf("%s cannot be renewed: every VMID of spec.renewal.vmids is taken", r.Name))
		}
	}
	g.Stale = stale
	switch {
	case len(clones) > 0 && len(r.RenewalVMIDs) == 0:
		g.Notes = append(g.Notes, fmt.Sprintf("%s is stale: %s. Its clones converge on their own (each installs what it lacks), and so do new clones made from it; give it spec.renewal.vmids to have a new generation made.", r.Name, stale))
	case len(clones) > 0:
		g.Notes = append(g.Notes, fmt.Sprintf("%s is stale: %s. Its clones converge on their own (each installs what it lacks), and so do new clones made from it.", r.Name, stale))
	default:
		g.Notes = append(g.Notes, fmt.Sprintf("%s is stale: %s. Its clones converge on their own; run with --allow-replace to make it again.", r.Name, stale))
	}
	return false
}

// freeRenewalVMID is the first VMID of a template's renewal list that no
// guest holds, or 0.
func (p *planner) freeRenewalVMID(r *spec.Resolved) int {
	for _, vmid := range r.RenewalVMIDs {
		if p.obs.Guests[vmid] == nil {
			return vmid
		}
	}
	return 0
}

// renew plans a new generation of a stale template at vmid: made like the
// template was (from its own template, or its OS template), converted, and
// from then on what new clones are made from. The old generation stays while
// linked clones use its disk.
func (p *planner) renew(g *GuestPlan, r *spec.Resolved, d desired, old *ObservedGuest, vmid int, stale string) {
	gen := old.State.Generation + 1
	next := GuestPlan{Name: r.Name, Kind: r.Kind, VMID: vmid, Generation: gen, Node: r.Settings.Node, Parent: r.Parent,
		Changes: []Change{}, Errors: []Problem{}, Notes: []string{}}
	p.missing(&next, r, d)
	next.Notes = append([]string{fmt.Sprintf("generation %d of %s, at VMID %d: the one at VMID %d is stale (%s). Its linked clones stay on it until they are replaced; new clones are made from this one.",
		gen+1, r.Name, vmid, old.VMID, stale)}, next.Notes...)
	*g = next
	p.superseded[old.VMID] = supersededGeneration{name: r.Name, current: vmid, generation: gen, stale: stale}
}

// describeChanges names feature changes: "nvidia-driver (host driver a -> b), cuda-toolkit".
func describeChanges(cs []Change) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Action.String()+" "+c.Feature)
	}
	return strings.Join(parts, ", ")
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

// linkedClones names the observed guests whose root disk is a linked clone
// of the given template's base volume. A guest whose root disk cannot be read
// counts when its records say it was cloned from the template: a template is
// kept rather than risked.
func (p *planner) linkedClones(vmid int) []string {
	base := fmt.Sprintf("base-%d-disk-", vmid)
	tmpl := p.obs.Guests[vmid]
	var out []string
	for _, og := range p.obs.Guests {
		if og.VMID == vmid {
			continue
		}
		root := propString(og.Config.Values["rootfs"])[""]
		switch {
		case strings.Contains(root, base) && strings.Contains(root, "/"):
			out = append(out, og.Name)
		case root == "" && tmpl != nil && og.State != nil && og.State.Parent == tmpl.Name:
			out = append(out, og.Name)
		}
	}
	slices.Sort(out)
	return out
}

// restartKeys lists the options that wait for a restart of a running
// container: those Proxmox holds as pending now, and those this plan's
// update will put there, as far as phoenix manages them.
func restartKeys(fields []FieldChange, og *ObservedGuest, d desired) []string {
	if og.Status != "running" {
		return nil
	}
	keys := map[string]bool{}
	for _, f := range fields {
		if !hotplugs(f.Key, f.Before != "") {
			keys[f.Key] = true
		}
	}
	for _, po := range og.Pending {
		if po.Waiting() && d.manages(po.Key) {
			keys[po.Key] = true
		}
	}
	return slices.Sorted(maps.Keys(keys))
}

func restartReason(keys []string) string {
	if len(keys) == 1 {
		return keys[0] + " waits for a restart: Proxmox applies it when the container starts"
	}
	return strings.Join(keys, ", ") + " wait for a restart: Proxmox applies them when the container starts"
}

// hotplugs reports whether Proxmox applies an option to a running container
// at once (PVE::LXC::Config's update_pct_config): the cgroup limits, the
// config-only options, every netN, a new mpN or devN. Everything else waits
// in the pending section until the container next starts.
func hotplugs(key string, existed bool) bool {
	switch key {
	case "cpulimit", "cpuunits", "memory", "swap", "cores", "description", "onboot", "startup", "protection",
		"hostname", "hookscript", "tags", "lock":
		return true
	}
	switch {
	case strings.HasPrefix(key, "net"):
		return true
	case strings.HasPrefix(key, "mp"), strings.HasPrefix(key, "dev"):
		return !existed
	}
	return false
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
		g.Errors = append(g.Errors, problem(ProblemFlag, "needs to be replaced (%s) but has protection: 1; phoenix never replaces a protected guest", reason))
		return
	case !p.opts.AllowReplace:
		g.Errors = append(g.Errors, problem(ProblemFlag, "needs to be replaced (%s): run with --allow-replace to destroy and recreate it", reason))
		return
	}
	if clones := p.linkedClones(og.VMID); og.Template && len(clones) > 0 {
		g.Errors = append(g.Errors, problem(ProblemSpec, "needs to be replaced (%s) but linked clones use its disk: %s", reason, strings.Join(clones, ", ")))
		return
	}
	sub := GuestPlan{}
	p.missing(&sub, r, d)
	g.Errors = append(g.Errors, sub.Errors...)
	g.Notes = append(g.Notes, sub.Notes...)
	g.Action = Replace
	g.Changes = append([]Change{{Action: Replace, Reason: reason}}, sub.Changes...)
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

// features decides what to install, reinstall and uninstall on a guest, and
// what its records will be afterwards. A record made on this guest is
// trusted; one that came with the clone only if the lineage says the feature
// is inherited. A changed version or parameters, or a host driver that moved,
// reinstalls the feature, and a reinstalled feature reinstalls what requires
// it: now, for this plan's reinstalls, and later, for a record installed
// before its requirement was installed again.
func (p *planner) features(r *spec.Resolved, og *ObservedGuest) ([]Change, map[string]FeatureRecord, []string) {
	records := og.records()
	final := maps.Clone(records)
	if final == nil {
		final = map[string]FeatureRecord{}
	}
	host := p.obs.Hosts[r.Settings.Node]
	var out []Change
	redo := map[string]bool{}
	for _, f := range p.res.Catalog.Order(r.Effective) {
		rec, ok := records[f]
		trusted := ok && (rec.VMID == og.VMID || slices.Contains(r.Inherited, f))
		want := recordFor(p.res, r, f, host)
		action, reason := InstallFeature, ""
		switch {
		case !trusted:
			reason = p.installReason(r, f)
		case rec.Version != want.Version && f == spec.FeatureNVIDIADriver:
			action, reason = ReinstallFeature, fmt.Sprintf("host driver %s -> %s", rec.Version, want.Version)
		case rec.Version != want.Version:
			action, reason = ReinstallFeature, fmt.Sprintf("version %s -> %s", orNone(rec.Version), orNone(want.Version))
		case !maps.Equal(rec.Params, want.Params):
			action, reason = ReinstallFeature, "parameters changed: "+paramDiff(rec.Params, want.Params)
		default:
			action, reason = ReinstallFeature, p.requirementChanged(f, rec, final, redo)
		}
		// A failing health check's policy (healthcheck.go) asks for the
		// feature again, once: a record made since the request answers it.
		rq, reapply := p.opts.Reapply[r.Name][f]
		reapply = reapply && trusted && reason == "" && rec.At.Before(rq.Asked)
		if reapply {
			reason = rq.Reason
		}
		if reason == "" {
			continue
		}
		out = append(out, Change{Action: action, Feature: f, Reason: reason, Reapply: reapply})
		redo[f] = true
		p.plannedInstalls++
		want.VMID = og.VMID
		want.At = plannedAt(p.plannedInstalls)
		want.Requires = requirementsOf(p.res, f, final)
		final[f] = want
	}
	uninstalls, notes := p.removed(r, records, final)
	return append(uninstalls, out...), final, notes
}

// runfileProblem reports a driver install that cannot happen: no source has
// the runfile of the host's driver, or the node could not say. A driver from
// NVIDIA's apt repository, or a datacenter driver when only the consumer
// URL is asked, has no runfile where phoenix looks; the plan says so before
// anything is made, not a download halfway through an apply. A plain-http
// source is not used for a version without a digest, and the problem names
// it with what to add.
func (p *planner) runfileProblem(r *spec.Resolved, changes []Change) *Problem {
	if !slices.ContainsFunc(changes, func(c Change) bool { return c.Feature == spec.FeatureNVIDIADriver }) {
		return nil
	}
	host, node := p.obs.Hosts[r.Settings.Node], r.Settings.Node
	var pr Problem
	switch {
	case host == nil:
		return nil
	case host.RunfileErr != nil:
		pr = problem(ProblemObserve, "finding the runfile of NVIDIA driver %s on node %s failed: %v", host.Info.DriverVersion, node, host.RunfileErr)
	case host.Runfile == nil || host.Runfile.Found():
		return nil
	default:
		var tried []string
		for _, t := range host.Runfile.Tried {
			tried = append(tried, fmt.Sprintf("%s (HTTP %s)", t.URL, t.Status))
		}
		v := host.Info.DriverVersion
		what := "tried " + strings.Join(tried, ", ")
		if len(tried) == 0 {
			what = "no source tried"
		}
		// Plain http is used only for a runfile whose digest is known.
		if _, skipped := features.RunfileSources(p.res.Cluster.NVIDIA, v); len(skipped) > 0 {
			pr = problem(ProblemNode, "no source has the runfile of NVIDIA driver %s, which the containers on node %s need (%s; not used: %s, plain http without a digest for %s): "+
				"give the runfile's sha256 for %s in the cluster spec's nvidia.sha256, list an https source in nvidia.runfileURLs, or put NVIDIA-Linux-x86_64-%s.run at %s on the node",
				v, node, what, strings.Join(skipped, ", "), v, v, v, features.RunfilePath(v))
			break
		}
		pr = problem(ProblemNode, "no source has the runfile of NVIDIA driver %s, which the containers on node %s need (%s): a driver installed from NVIDIA's apt repository has none; "+
			"put NVIDIA-Linux-x86_64-%s.run at %s on the node, or list a source that has it in the cluster spec's nvidia.runfileURLs",
			v, node, what, v, features.RunfilePath(v))
	}
	return &pr
}

// requirementChanged says why a record whose own version and parameters are
// right must still be installed again: a feature it requires is installed
// again by this plan (redo), or was installed again since it was.
func (p *planner) requirementChanged(f string, rec FeatureRecord, final map[string]FeatureRecord, redo map[string]bool) string {
	def, ok := p.res.Catalog.Lookup(f)
	if !ok {
		return ""
	}
	for _, req := range def.Requires {
		have, ok := final[req]
		switch {
		case redo[req]:
			return "it requires " + req + ", which is reinstalled"
		case !ok:
		case rec.Requires != nil && !rec.Requires[req].IsZero() && !rec.Requires[req].Equal(have.At):
			return "it was installed before " + req + " was installed again"
		}
	}
	return ""
}

// requirementsOf is the Requires of a record written now: the At of each
// requirement's record.
func requirementsOf(res *spec.Resolution, f string, records map[string]FeatureRecord) map[string]time.Time {
	def, ok := res.Catalog.Lookup(f)
	if !ok {
		return nil
	}
	var out map[string]time.Time
	for _, req := range def.Requires {
		if rec, ok := records[req]; ok {
			if out == nil {
				out = map[string]time.Time{}
			}
			out[req] = rec.At
		}
	}
	return out
}

// plannedAt stamps a record this plan predicts. Real records are stamped
// with the time of their install; these lie in year 1, where no real one
// does, and differ from each other.
func plannedAt(n int) time.Time { return time.Time{}.Add(time.Duration(n)) }

// removed plans the features a guest has records of and its spec no longer
// wants: uninstalled, dependents first, when the feature knows how; left in
// place, with a note saying so, when it does not.
func (p *planner) removed(r *spec.Resolved, records, final map[string]FeatureRecord) ([]Change, []string) {
	var gone []string
	for f := range records {
		if !slices.Contains(r.Effective, f) {
			gone = append(gone, f)
		}
	}
	order := p.res.Catalog.Order(gone)
	slices.Reverse(order)
	var out []Change
	var notes []string
	for _, f := range order {
		def, ok := p.res.Catalog.Lookup(f)
		if ok && def.Uninstallable {
			out = append(out, Change{Action: UninstallFeature, Feature: f, Reason: "no longer in the spec"})
			delete(final, f)
			continue
		}
		why := "it has no uninstall steps"
		if !ok {
			why = "no Feature document defines it any more"
		}
		notes = append(notes, fmt.Sprintf("%s is no longer in the spec but stays installed: %s; replace the guest (--allow-replace after a change that replaces it, or delete it) to be rid of it", f, why))
	}
	return out, notes
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
// Old generations of a renewed template go the same way once no linked
// clone uses their disk. Only this deployment's own guests are candidates;
// a foreign one (another deployment's, a copy made outside phoenix, a VM)
// is listed with the reason and never touched. A prune that would delete
// more of the deployment's guests at once than the limit deletes nothing.
func (p *planner) orphans() []GuestPlan {
	wanted := map[int]bool{}
	for _, r := range p.res.Guests {
		wanted[r.VMID] = true
		if g, ok := p.planned[r.Name]; ok {
			wanted[g.VMID] = true
		}
	}
	var out []GuestPlan
	owned := 0
	for _, vmid := range slices.Sorted(maps.Keys(p.obs.Guests)) {
		og := p.obs.Guests[vmid]
		f := p.owner(og)
		if og.Managed && !f.foreign() {
			owned++
		}
		if sg, ok := p.superseded[vmid]; ok {
			out = append(out, p.supersededPlan(og, sg))
			continue
		}
		if wanted[vmid] || !og.Managed {
			continue
		}
		kind := spec.KindContainer
		switch {
		case isVM(og):
			kind = "VM"
		case og.Template:
			kind = spec.KindTemplate
		}
		g := GuestPlan{Name: og.Name, Kind: kind, VMID: vmid, Node: og.Node, Changes: []Change{}, Errors: []Problem{}, Notes: []string{}}
		switch {
		case f.foreign():
			g.Foreign = f.reason
			g.Notes = append(g.Notes, fmt.Sprintf("not this deployment's: %s. phoenix never changes or deletes it; %s", f.reason, f.hint))
		case !p.opts.Prune:
			g.Notes = append(g.Notes, "managed by phoenix but in no spec: run with --prune to delete it")
		case og.Config.Values["protection"] == "1":
			g.Errors = append(g.Errors, problem(ProblemFlag, "in no spec, but has protection: 1; phoenix never deletes a protected guest"))
		case p.opts.PruneHold != "":
			g.Notes = append(g.Notes, "managed by phoenix and in no spec, but this pass deletes nothing: "+p.opts.PruneHold)
		default:
			g.Action = Delete
			reason := "managed by phoenix and in no spec"
			if og.Status == "running" {
				reason += "; it is stopped first"
			}
			g.Changes = append(g.Changes, Change{Action: Delete, Reason: reason})
		}
		out = append(out, g)
	}
	p.limitPrune(out, owned)
	// Clones before the templates they may be linked to: in the plan's
	// order, and in the apply, where a template's deletion waits for those
	// of its linked clones.
	slices.SortStableFunc(out, func(a, b GuestPlan) int {
		return cmp.Compare(boolInt(a.Kind == spec.KindTemplate), boolInt(b.Kind == spec.KindTemplate))
	})
	deleted := map[string]int{}
	for _, g := range out {
		if g.Action == Delete {
			deleted[g.Name] = g.VMID
		}
	}
	for i := range out {
		if out[i].Action != Delete || out[i].Kind != spec.KindTemplate {
			continue
		}
		for _, name := range p.linkedClones(out[i].VMID) {
			if vmid, ok := deleted[name]; ok {
				out[i].After = append(out[i].After, vmid)
			}
		}
	}
	return out
}

// limitPrune holds a prune to its limit: when the plan deletes more of the
// deployment's guests than the limit, it deletes none of them, and each
// says so with the count (a half-written spec tree looks like a deployment
// that lost most of its guests). Otherwise each deletion says the count.
func (p *planner) limitPrune(out []GuestPlan, owned int) {
	deletes := 0
	for _, g := range out {
		if g.Action == Delete {
			deletes++
		}
	}
	if deletes == 0 {
		return
	}
	limit, named := pruneLimit(p.opts, owned)
	for i := range out {
		g := &out[i]
		if g.Action != Delete {
			continue
		}
		if deletes <= limit {
			g.Changes[0].Reason += fmt.Sprintf(" (this prune deletes %d of the deployment's %d guests; the limit is %d)", deletes, owned, limit)
			continue
		}
		g.Action, g.Changes = NoOp, []Change{}
		g.Errors = append(g.Errors, problem(ProblemFlag, "prune refused: it would delete %d of the deployment's %d guests at once, more than %s; nothing is deleted. If that is meant, run with --prune-max %d",
			deletes, owned, named, deletes))
	}
}

// supersededPlan plans an old generation of a template.
func (p *planner) supersededPlan(og *ObservedGuest, sg supersededGeneration) GuestPlan {
	g := GuestPlan{Name: og.Name, Kind: spec.KindTemplate, VMID: og.VMID, Node: og.Node, Changes: []Change{}, Errors: []Problem{}, Notes: []string{}}
	if og.State != nil {
		g.Generation = og.State.Generation
	}
	g.Stale = sg.stale
	what := fmt.Sprintf("an old generation of %s, superseded by generation %d at VMID %d", sg.name, sg.generation+1, sg.current)
	clones := p.linkedClones(og.VMID)
	switch {
	case len(clones) > 0:
		g.Notes = append(g.Notes, fmt.Sprintf("%s; linked clones (%s) use its disk: it stays until none does", what, strings.Join(clones, ", ")))
	case og.Config.Values["protection"] == "1":
		g.Notes = append(g.Notes, what+"; it has protection: 1, so phoenix never deletes it")
	case !p.opts.Prune:
		g.Notes = append(g.Notes, what+"; no clone uses its disk: run with --prune to delete it")
	case p.opts.PruneHold != "":
		g.Notes = append(g.Notes, what+"; no clone uses its disk, but this pass deletes nothing: "+p.opts.PruneHold)
	default:
		g.Action = Delete
		g.Changes = append(g.Changes, Change{Action: Delete, Reason: what + ", and no clone uses its disk"})
	}
	return g
}

// owner decides whether this deployment owns an observed guest.
func (p *planner) owner(og *ObservedGuest) foreignGuest {
	return ownership(og, p.dep, p.namedAt[og.VMID])
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
