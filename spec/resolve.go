package spec

import (
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
	CloneMode    CloneMode
	Storage      string
	Cores        int
	MemoryMiB    int
	SwapMiB      int
	DiskGiB      int
	Network      []NIC
	Unprivileged bool
	GPUs         GPUSet
	// GPUGroup is the gid the GPU device nodes belong to in the container;
	// nil keeps the host nodes' mode.
	GPUGroup *int
	// Tags are normalised the way Proxmox stores them: lower case, sorted, unique.
	Tags       []string
	OnBoot     bool
	Protection bool
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
	// Params holds the effective parameters of every effective feature.
	Params map[string]Params
	// RenewalVMIDs are where a Template's new generations may be made
	// (spec.renewal.vmids); a clone does not inherit them.
	RenewalVMIDs []int
	// Stopped is set on a Container whose spec.state is stopped; a
	// Container runs otherwise. Not inherited: templates have no run state.
	Stopped bool
}

// IsTemplate reports whether the guest is a Template.
func (r *Resolved) IsTemplate() bool { return r.Kind == KindTemplate }

// Resolution is a spec set with every guest resolved.
type Resolution struct {
	Cluster ClusterSpec
	Catalog *Catalog
	// Guests are in lineage order: every parent before its clones, roots and
	// siblings by VMID, each subtree together (a depth-first walk).
	Guests []*Resolved
	byName map[string]*Resolved
}

// Guest finds a resolved guest by name.
func (r *Resolution) Guest(name string) (*Resolved, bool) {
	g, ok := r.byName[name]
	return g, ok
}

// Resolve works out every guest's lineage, settings and feature sets. The set
// must have come from Load or Parse, which validate it; on a set built by hand
// with a broken lineage it returns an error rather than guess.
func Resolve(set *Set) (*Resolution, error) {
	res := newResolver(set)
	if broken := res.lin.broken(); len(broken) > 0 {
		return nil, fmt.Errorf("cannot resolve the lineage of %s: validate the specs first", strings.Join(broken, ", "))
	}
	out := &Resolution{Catalog: res.catalog, byName: map[string]*Resolved{}}
	if set.Cluster != nil {
		out.Cluster = set.Cluster.Spec
	}
	var walk func(g *Guest)
	walk = func(g *Guest) {
		r := res.resolve(g)
		out.Guests = append(out.Guests, r)
		out.byName[r.Name] = r
		for _, c := range res.lin.children[g] {
			walk(c)
		}
	}
	for _, g := range res.lin.roots {
		walk(g)
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

// lineage links guests to the templates they are cloned from.
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
}

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
		if _, dup := l.byName[g.Name()]; !dup {
			l.byName[g.Name()] = g
		}
	}
	for _, g := range guests {
		name := g.Spec.From.Template
		if name == "" {
			continue
		}
		p, ok := l.byName[name]
		if !ok || p.Kind != KindTemplate || p == g {
			if p != g {
				l.missing[g] = true
			} else {
				l.onCycle[g] = true
				l.cycles = append(l.cycles, []string{name, name})
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
	for _, g := range guests {
		if l.byName[g.Name()] != g || l.onCycle[g] || l.missing[g] {
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

// broken names the guests whose lineage cannot be resolved, and those below them.
func (l *lineage) broken() []string {
	var out []string
	for name, g := range l.byName {
		if _, ok := l.ancestors(g); !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// ancestors returns g's ancestors, root first; false when the chain is broken.
func (l *lineage) ancestors(g *Guest) ([]*Guest, bool) {
	var chain []*Guest
	for cur := g; ; {
		if l.missing[cur] || l.onCycle[cur] {
			return nil, false
		}
		p := l.parent[cur]
		if p == nil {
			break
		}
		chain = append(chain, p)
		cur = p
	}
	slices.Reverse(chain)
	return chain, true
}

// resolver computes Resolved values, each once, parents first.
type resolver struct {
	set     *Set
	cluster ClusterSpec
	catalog *Catalog
	lin     *lineage
	done    map[*Guest]*Resolved
	config  map[*Guest]map[string]Params // merged featureConfig
}

func newResolver(set *Set) *resolver {
	r := &resolver{
		set: set, catalog: newCatalog(set.Features), lin: newLineage(set.Guests),
		done: map[*Guest]*Resolved{}, config: map[*Guest]map[string]Params{},
	}
	if set.Cluster != nil {
		r.cluster = set.Cluster.Spec
	}
	return r
}

// resolve works out g, whose lineage must be intact.
func (r *resolver) resolve(g *Guest) *Resolved {
	if out, ok := r.done[g]; ok {
		return out
	}
	chain, _ := r.lin.ancestors(g)
	out := &Resolved{
		Guest: g, Name: g.Name(), Kind: g.Kind, VMID: g.Spec.VMID,
		Lineage: []string{}, Params: map[string]Params{},
	}
	var parent *Resolved
	var parentConfig map[string]Params
	if p := r.lin.parent[g]; p != nil {
		parent = r.resolve(p)
		parentConfig = r.config[p]
		out.Parent = p.Name()
		out.Settings = parent.Settings
	} else {
		out.Settings = r.rootDefaults()
	}
	for _, a := range chain {
		out.Lineage = append(out.Lineage, a.Name())
	}
	for _, c := range r.lin.children[g] {
		out.Children = append(out.Children, c.Name())
	}
	r.overlay(&out.Settings, g)
	if rn := g.Spec.Renewal; rn != nil {
		out.RenewalVMIDs = slices.Clone(rn.VMIDs)
	}
	out.Stopped = g.Spec.State == StateStopped

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
			out.Params[f] = def.effectiveParams(config[f])
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
	return out
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
	setBool(&s.Unprivileged, sp.Unprivileged)
	if sp.GPUGroup != nil {
		gid := *sp.GPUGroup
		s.GPUGroup = &gid
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
