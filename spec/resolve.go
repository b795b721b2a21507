package spec

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Values used where neither a guest, its ancestors nor the Cluster set one. They
// are Proxmox's own defaults for pct create, except unprivileged, whose Proxmox
// default changed between releases (0 before PVE 9, 1 since): phoenix always
// sends it, and defaults to the safer unprivileged container.
const (
	DefaultCores        = 1
	DefaultMemoryMiB    = 512
	DefaultSwapMiB      = 512
	DefaultDiskGiB      = 8
	DefaultBridge       = "vmbr0"
	DefaultUnprivileged = true
)

// Settings are a guest's effective configuration: its own fields over its
// parent's effective settings over the defaults.
type Settings struct {
	Node string
	// OSTemplate is the volume the lineage's root was created from.
	OSTemplate string
	// CloneMode is empty for a guest created from an OS template.
	CloneMode CloneMode
	Storage   string
	Cores     int
	MemoryMiB int
	SwapMiB   int
	DiskGiB   int
	Network   []NIC
	// Nameservers and SearchDomains are nil where no spec in the lineage
	// sets them: phoenix then leaves the container's as they are.
	Nameservers   []string
	SearchDomains []string
	Unprivileged  bool
	GPUs          GPUSet
	// GPUGroup is the gid the GPU device nodes belong to in the container;
	// nil keeps the host nodes' mode.
	GPUGroup *int
	// Mounts are the mount points (mp0, mp1, ...); nil leaves a guest's
	// mount points as they are.
	Mounts []Mount
	// Firewall is the guest's firewall, each field its own or inherited;
	// nil where no document of the lineage has one.
	Firewall *Firewall
	// Security is the guest's security settings, each field its own or
	// inherited; nil where no document of the lineage has them.
	Security *Security
	// Tags are normalised the way Proxmox stores them: lower case, sorted, unique.
	Tags       []string
	OnBoot     bool
	Protection bool
	// Startup is nil where no spec in the lineage sets it: phoenix then
	// leaves the container's as it is.
	Startup *Startup
	// DependsOn are the names of the guests this one waits for, as their
	// documents spell them.
	DependsOn []string
}

// Resolved is one guest with its lineage and feature sets worked out.
type Resolved struct {
	Guest    *Guest
	Name     string
	Kind     Kind
	VMID     int
	Parent   string   // the Template it is cloned from; empty for a root
	Lineage  []string // ancestors, root first, parent last
	Children []string // guests cloned from this one, by VMID
	Settings Settings

	// Own are the features the guest's document lists. Inherited are the
	// features its parent has, with the same parameters, whose requirements are
	// inherited too: a clone arrives with them installed. Effective is own plus
	// inherited plus everything they require. All three are sorted.
	Own, Inherited, Effective []string
	// Install is Effective minus Inherited, each feature after what it requires:
	// what this guest must install itself.
	Install []string
	// Params holds the effective parameters of every effective feature;
	// nil when there is none. Read it, never write into it.
	Params map[string]Params
	// Runtime holds the values of the features' runtime settings
	// (ParamDef.Runtime), by feature: what their files and services read,
	// no part of the install records. Nil when there is none.
	Runtime map[string]Params
	// Files are the guest's own files (not inherited: a feature's files
	// come with the feature).
	Files []File
	// RenewalVMIDs are where a Template's new generations may be made
	// (spec.renewal.vmids); a clone does not inherit them.
	RenewalVMIDs []int
	// Stopped is set on a Container whose spec.state is stopped; a
	// Container runs otherwise. Not inherited: templates have no run state.
	Stopped bool
	// Hostname is the host name Proxmox gives the container: spec.hostname,
	// or the name. Not inherited.
	Hostname string
}

// IsTemplate reports whether the guest is a Template.
func (r *Resolved) IsTemplate() bool { return r.Kind == KindTemplate }

// Resolution is a spec set with every guest resolved.
type Resolution struct {
	Cluster ClusterSpec
	// Deployment is the deployment the guests belong to (Set.DeploymentID).
	Deployment string
	Catalog    *Catalog
	// Guests are in lineage order: every parent before its clones, roots and
	// siblings by VMID, each subtree together (a depth-first walk).
	Guests []*Resolved
	byName map[string]*Resolved
	// byVMID finds a guest by its VMID and its renewal VMIDs.
	byVMID map[int]*Resolved
}

// Guest finds a resolved guest by name.
func (r *Resolution) Guest(name string) (*Resolved, bool) {
	g, ok := r.byName[name]
	return g, ok
}

// At finds the resolved guest a VMID belongs to: its own, or one of its
// renewal VMIDs (a template's generations).
func (r *Resolution) At(vmid int) (*Resolved, bool) {
	if r.byVMID == nil {
		// A Resolution built by hand, not by Resolve.
		for _, g := range r.Guests {
			if g.VMID == vmid || slices.Contains(g.RenewalVMIDs, vmid) {
				return g, true
			}
		}
		return nil, false
	}
	g, ok := r.byVMID[vmid]
	return g, ok
}

// Resolve works out every guest's lineage, settings and feature sets. The set
// must have come from Load or Parse, which validate it; on a set built by hand
// with a broken lineage it returns an error rather than guess.
func Resolve(set *Set) (*Resolution, error) {
	res := newResolver(set)
	if broken := res.lin.broken(); len(broken) > 0 {
		return nil, fmt.Errorf("cannot resolve the lineage of %s: validate the specs first", escapeText(strings.Join(broken, ", ")))
	}
	out := &Resolution{
		Catalog: res.catalog, Deployment: set.DeploymentID(),
		byName: make(map[string]*Resolved, len(set.Guests)), byVMID: make(map[int]*Resolved, len(set.Guests)),
	}
	if len(set.Guests) > 0 {
		out.Guests = make([]*Resolved, 0, len(set.Guests))
	}
	if set.Cluster != nil {
		out.Cluster = set.Cluster.Spec
	}
	// A depth-first walk with a stack of its own: a lineage thousands of
	// levels deep takes no more than the stack's memory.
	stack := slices.Clone(res.lin.roots)
	slices.Reverse(stack)
	for len(stack) > 0 {
		g := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		r := res.resolve(g)
		out.Guests = append(out.Guests, r)
		out.byName[r.Name] = r
		for _, vmid := range append([]int{r.VMID}, r.RenewalVMIDs...) {
			if _, taken := out.byVMID[vmid]; !taken {
				out.byVMID[vmid] = r
			}
		}
		children := res.lin.children[g]
		for i := len(children) - 1; i >= 0; i-- {
			stack = append(stack, children[i])
		}
	}
	return out, nil
}

// LoadResolved loads, validates and resolves spec files in one step.
func LoadResolved(paths ...string) (*Resolution, error) {
	set, err := Load(paths...)
	if err != nil {
		return nil, err
	}
	return Resolve(set)
}

// lineage links guests to the templates they are cloned from. A name is a
// hostname, in which case does not count: byName holds each guest under its
// folded name (nameKey), the first document of a name where several share it.
type lineage struct {
	byName   map[string]*Guest
	parent   map[*Guest]*Guest
	children map[*Guest][]*Guest // by VMID
	roots    []*Guest            // by VMID
	// missing holds guests whose from.template names no Template; cycles the
	// clone cycles found, each closed (a -> b -> a).
	missing map[*Guest]bool
	cycles  [][]string
	onCycle map[*Guest]bool
	// whole holds, for every guest, whether its chain of templates reaches a
	// root without a missing template or a cycle.
	whole map[*Guest]bool
}

// nameKey is the form of a guest's name that two names share when they are
// the same hostname: hostnames ignore case (RFC 4343).
func nameKey(name string) string { return strings.ToLower(name) }

// guest finds a guest by name, in any case.
func (l *lineage) guest(name string) *Guest { return l.byName[nameKey(name)] }

func byVMID(a, b *Guest) int {
	if a.Spec.VMID != b.Spec.VMID {
		return a.Spec.VMID - b.Spec.VMID
	}
	return strings.Compare(a.Name(), b.Name())
}

func newLineage(guests []*Guest) *lineage {
	l := &lineage{
		byName: map[string]*Guest{}, parent: map[*Guest]*Guest{}, children: map[*Guest][]*Guest{},
		missing: map[*Guest]bool{}, onCycle: map[*Guest]bool{},
	}
	for _, g := range guests {
		if _, dup := l.byName[nameKey(g.Name())]; !dup {
			l.byName[nameKey(g.Name())] = g
		}
	}
	for _, g := range guests {
		// A clone's parent is its Template, or the Container whose
		// snapshot it clones (from.container).
		name, kind := g.Spec.From.Template, KindTemplate
		if name == "" {
			name, kind = g.Spec.From.Container, KindContainer
		}
		if name == "" {
			continue
		}
		p, ok := l.byName[nameKey(name)]
		if !ok || p.Kind != kind || p == g {
			if p != g {
				l.missing[g] = true
			} else {
				l.onCycle[g] = true
				l.cycles = append(l.cycles, []string{g.Name(), g.Name()})
			}
			continue
		}
		l.parent[g] = p
	}
	// Follow parent links from each guest; a walk that comes back to a guest on
	// its own path has found a cycle.
	state := map[*Guest]int{} // 0 new, 1 on the current path, 2 finished
	for _, g := range guests {
		var path []*Guest
		for cur := g; cur != nil && state[cur] == 0; cur = l.parent[cur] {
			state[cur] = 1
			path = append(path, cur)
			if next := l.parent[cur]; next != nil && state[next] == 1 {
				i := slices.Index(path, next)
				var names []string
				for _, m := range path[i:] {
					l.onCycle[m] = true
					names = append(names, m.Name())
				}
				// path runs child -> parent; show the cycle as parent -> clone.
				slices.Reverse(names)
				l.cycles = append(l.cycles, rotateCycle(names))
			}
		}
		for _, m := range path {
			state[m] = 2
		}
	}
	l.findWhole(guests)
	for _, g := range guests {
		if l.guest(g.Name()) != g || l.onCycle[g] || l.missing[g] {
			continue
		}
		if p := l.parent[g]; p != nil {
			l.children[p] = append(l.children[p], g)
		} else {
			l.roots = append(l.roots, g)
		}
	}
	slices.SortFunc(l.roots, byVMID)
	for _, c := range l.children {
		slices.SortFunc(c, byVMID)
	}
	return l
}

// findWhole works out, once for every guest, whether its chain of templates
// is whole: each walk up the chain stops at the first guest already known,
// so that all walks together visit every guest once, however deep the
// lineage. The cycles are known by now, so no walk goes round one.
func (l *lineage) findWhole(guests []*Guest) {
	l.whole = make(map[*Guest]bool, len(guests))
	var path []*Guest
	for _, g := range guests {
		path = path[:0]
		whole := true
		for cur := g; cur != nil; cur = l.parent[cur] {
			if known, ok := l.whole[cur]; ok {
				whole = known
				break
			}
			path = append(path, cur)
			if l.missing[cur] || l.onCycle[cur] {
				whole = false
				break
			}
		}
		for _, m := range path {
			l.whole[m] = whole
		}
	}
}

// intact reports whether g's chain of templates reaches a root: no template
// on it is missing, none is on a cycle.
func (l *lineage) intact(g *Guest) bool { return l.whole[g] }

// broken names the guests whose lineage cannot be resolved, and those below them.
func (l *lineage) broken() []string {
	var out []string
	for _, g := range l.byName {
		if !l.intact(g) {
			out = append(out, g.Name())
		}
	}
	slices.Sort(out)
	return out
}

// resolver computes Resolved values, each once, parents first.
type resolver struct {
	set     *Set
	cluster ClusterSpec
	catalog *Catalog
	lin     *lineage
	done    map[*Guest]*Resolved
	config  map[*Guest]map[string]Params // merged featureConfig
	// below holds the lineage of each template's clones: its own lineage
	// and its name. A clone's lineage extends its template's in the same
	// array where it can (spread marks a lineage some clone extended
	// already), so that a chain thousands of levels deep keeps one array of
	// names, not one per level.
	below  map[*Guest][]string
	spread map[*Guest]bool
}

func newResolver(set *Set) *resolver {
	r := &resolver{
		set: set, catalog: newCatalog(set.Features), lin: newLineage(set.Guests),
		done: map[*Guest]*Resolved{}, config: map[*Guest]map[string]Params{},
		below: map[*Guest][]string{}, spread: map[*Guest]bool{},
	}
	if set.Cluster != nil {
		r.cluster = set.Cluster.Spec
	}
	return r
}

// resolve works out g, whose lineage must be intact, and the templates above
// it that are not worked out yet, root-most first: a loop, not a recursion,
// so that a lineage of any depth fits the stack.
func (r *resolver) resolve(g *Guest) *Resolved {
	if out, ok := r.done[g]; ok {
		return out
	}
	var todo []*Guest
	for cur := g; cur != nil; cur = r.lin.parent[cur] {
		if _, ok := r.done[cur]; ok {
			break
		}
		todo = append(todo, cur)
		if !r.lin.intact(cur) {
			break // a broken chain may go round a cycle
		}
	}
	for i := len(todo) - 1; i >= 0; i-- {
		r.resolveOne(todo[i])
	}
	return r.done[g]
}

// lineageBelow is the lineage of p's clones: p's own, then p.
func (r *resolver) lineageBelow(p *Guest) []string {
	if l, ok := r.below[p]; ok {
		return l
	}
	var above []string
	if pp := r.lin.parent[p]; pp != nil {
		above = r.below[pp]
		if r.spread[pp] {
			// Another clone of pp has put its name after pp's lineage: copy.
			above = slices.Clone(above)
		}
		r.spread[pp] = true
	}
	l := append(above, p.Name())
	r.below[p] = l
	return l
}

// resolveOne works out g once its template is.
func (r *resolver) resolveOne(g *Guest) {
	out := &Resolved{
		Guest: g, Name: g.Name(), Kind: g.Kind, VMID: g.Spec.VMID,
		Lineage: []string{},
	}
	var parent *Resolved
	var parentConfig map[string]Params
	if p := r.lin.parent[g]; p != nil && r.done[p] != nil {
		parent = r.done[p]
		parentConfig = r.config[p]
		out.Parent = p.Name()
		out.Settings = parent.Settings
		// Clipped, so that appending to one guest's lineage never writes
		// into the array another's shares.
		below := r.lineageBelow(p)
		out.Lineage = below[:len(below):len(below)]
	} else {
		out.Settings = r.rootDefaults()
	}
	for _, c := range r.lin.children[g] {
		out.Children = append(out.Children, c.Name())
	}
	r.overlay(&out.Settings, g)
	if parent != nil && g.Spec.Network == nil {
		// Proxmox gives every interface of a clone a new MAC (clone_vm in
		// pve-container): a pinned MAC is its own guest's, never inherited.
		out.Settings.Network = withoutMACs(out.Settings.Network)
	}
	if rn := g.Spec.Renewal; rn != nil {
		out.RenewalVMIDs = slices.Clone(rn.VMIDs)
	}
	out.Stopped = g.Spec.State == StateStopped
	out.Files = g.Spec.Files
	out.Hostname = cmp.Or(g.Spec.Hostname, g.Name())

	config := map[string]Params{}
	for f, p := range parentConfig {
		config[f] = maps.Clone(p)
	}
	for f, p := range g.Spec.FeatureConfig {
		if config[f] == nil {
			config[f] = Params{}
		}
		maps.Copy(config[f], p)
	}
	r.config[g] = config

	out.Own = slices.Compact(slices.Sorted(slices.Values(g.Spec.Features)))
	if out.Own == nil {
		out.Own = []string{}
	}
	var fromParent []string
	if parent != nil {
		fromParent = parent.Effective
	}
	out.Effective = r.catalog.Closure(append(slices.Clone(out.Own), fromParent...))
	for _, f := range out.Effective {
		if def, ok := r.catalog.Lookup(f); ok {
			if out.Params == nil {
				out.Params = make(map[string]Params, len(out.Effective))
			}
			out.Params[f] = def.effectiveParams(config[f])
			if rt := def.runtimeParams(config[f]); rt != nil {
				if out.Runtime == nil {
					out.Runtime = map[string]Params{}
				}
				out.Runtime[f] = rt
			}
		}
	}
	// A feature arrives with the clone only if the parent has it with the same
	// parameters and everything it requires arrived too: a changed CUDA version
	// on the clone means the clone installs CUDA, and then vllm, itself.
	inherited := map[string]bool{}
	for _, f := range r.catalog.Order(out.Effective) {
		if parent == nil || !slices.Contains(parent.Effective, f) || !maps.Equal(parent.Params[f], out.Params[f]) {
			continue
		}
		ok := true
		if def, known := r.catalog.Lookup(f); known {
			for _, req := range def.Requires {
				ok = ok && inherited[req]
			}
		}
		inherited[f] = ok
	}
	for _, f := range out.Effective {
		if inherited[f] {
			out.Inherited = append(out.Inherited, f)
		}
	}
	var install []string
	for _, f := range out.Effective {
		if !inherited[f] {
			install = append(install, f)
		}
	}
	out.Install = r.catalog.Order(install)
	if out.Inherited == nil {
		out.Inherited = []string{}
	}
	if out.Install == nil {
		out.Install = []string{}
	}
	r.done[g] = out
}

func (r *resolver) rootDefaults() Settings {
	return Settings{
		Node:         r.cluster.Defaults.Node,
		Storage:      r.cluster.Defaults.Storage,
		Cores:        DefaultCores,
		MemoryMiB:    DefaultMemoryMiB,
		SwapMiB:      DefaultSwapMiB,
		DiskGiB:      DefaultDiskGiB,
		Unprivileged: DefaultUnprivileged,
		GPUs:         GPUSet{Indices: []int{}},
		Tags:         []string{},
	}
}

// overlay applies what g's document sets over the settings it starts from.
func (r *resolver) overlay(s *Settings, g *Guest) {
	sp := g.Spec
	if sp.From.OSTemplate != "" {
		s.OSTemplate = sp.From.OSTemplate
	}
	if sp.From.Template != "" {
		s.CloneMode = CloneLinked
		if sp.CloneMode != "" {
			s.CloneMode = sp.CloneMode
		}
	}
	if sp.From.Container != "" {
		// Proxmox clones a container that is no template in full only.
		s.CloneMode = CloneFull
	}
	if sp.Node != "" {
		s.Node = sp.Node
	}
	if sp.Storage != "" {
		s.Storage = sp.Storage
	}
	setInt(&s.Cores, sp.Resources.Cores)
	setInt(&s.MemoryMiB, sp.Resources.Memory)
	setInt(&s.SwapMiB, sp.Resources.Swap)
	setInt(&s.DiskGiB, sp.Resources.Disk)
	if sp.Network != nil {
		s.Network = make([]NIC, len(sp.Network))
		for i, n := range sp.Network {
			if n.Bridge == "" {
				n.Bridge = r.cluster.Defaults.Bridge
				if n.Bridge == "" {
					n.Bridge = DefaultBridge
				}
			}
			s.Network[i] = n
		}
	}
	if sp.Nameservers != nil {
		s.Nameservers = slices.Clone(sp.Nameservers)
	}
	if sp.SearchDomains != nil {
		s.SearchDomains = slices.Clone(sp.SearchDomains)
	}
	setBool(&s.Unprivileged, sp.Unprivileged)
	if sp.GPUGroup != nil {
		gid := *sp.GPUGroup
		s.GPUGroup = &gid
	}
	if sp.Mounts != nil {
		s.Mounts = cloneMounts(sp.Mounts)
	}
	if sp.GPUs != nil {
		s.GPUs = GPUSet{All: sp.GPUs.All, Indices: slices.Sorted(slices.Values(sp.GPUs.Indices))}
		if s.GPUs.Indices == nil {
			s.GPUs.Indices = []int{}
		}
	}
	if sp.Tags != nil {
		s.Tags = NormalizeTags(sp.Tags)
	}
	setBool(&s.OnBoot, sp.OnBoot)
	setBool(&s.Protection, sp.Protection)
	if sp.Startup != nil {
		st := *sp.Startup
		s.Startup = &st
	}
	if sp.DependsOn != nil {
		s.DependsOn = make([]string, 0, len(sp.DependsOn))
		for _, name := range sp.DependsOn {
			if dep := r.lin.guest(name); dep != nil {
				name = dep.Name()
			}
			s.DependsOn = append(s.DependsOn, name)
		}
	}
	overlayFirewall(s, sp.Firewall)
	overlaySecurity(s, sp.Security)
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// NormalizeTags returns tags the way Proxmox stores them: split on the
// separators it accepts (comma, semicolon, space), lower case, sorted, unique.
func NormalizeTags(tags []string) []string {
	out := []string{}
	for _, t := range tags {
		for _, part := range strings.FieldsFunc(t, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
			out = append(out, strings.ToLower(part))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// withoutMACs is nics without pinned MAC addresses; nics itself when none
// is pinned.
func withoutMACs(nics []NIC) []NIC {
	if !slices.ContainsFunc(nics, func(n NIC) bool { return n.HWAddr != "" }) {
		return nics
	}
	out := slices.Clone(nics)
	for i := range out {
		out[i].HWAddr = ""
	}
	return out
}
