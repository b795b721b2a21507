package spec

import (
	"fmt"
	"slices"
	"strings"
)

// startOrder checks each document's startup and dependsOn, and the cycles
// that the clone lineage and the dependencies make together: a guest waits
// for its template and for what it depends on, so a cycle through both
// would wait forever.
func (v *validator) startOrder() {
	lin := v.res.lin
	for _, g := range v.set.Guests {
		if lin.guest(g.Name()) != g {
			continue // a duplicate name, reported already
		}
		subject := string(g.Kind) + " " + g.Name()
		bad := func(field, format string, args ...any) {
			v.report(g.Source, g.pos, subject, field, format, args...)
		}
		if st := g.Spec.Startup; st != nil {
			for _, f := range []struct {
				name string
				v    *int
			}{{"order", st.Order}, {"up", st.Up}, {"down", st.Down}} {
				if f.v != nil && *f.v < 0 {
					bad("spec.startup."+f.name, "%d is negative: Proxmox takes 0 or more", *f.v)
				}
			}
		}
		seen := map[*Guest]bool{}
		for i, name := range g.Spec.DependsOn {
			field := fmt.Sprintf("spec.dependsOn[%d]", i)
			dep := lin.guest(name)
			switch {
			case dep == nil:
				bad(field, "no guest named %s", name)
			case dep == g:
				bad(field, "a guest cannot depend on itself")
			case seen[dep]:
				bad(field, "%s is listed twice", name)
			case dep.Kind == KindTemplate:
				bad(field, "%s is a Template, which never runs: depend on a Container", dep.Name())
			case dep.Spec.State == StateStopped:
				bad(field, "%s is kept stopped by its spec.state: nothing could wait for it to run", dep.Name())
			}
			if dep != nil {
				seen[dep] = true
			}
		}
	}
	v.startCycles()
}

// startEdge is one reason a guest waits for another.
type startEdge struct {
	to     *Guest
	depend bool // dependsOn; otherwise the guest is cloned from to
}

// startEdges are what g waits for: its template, then its dependencies
// (inherited ones included where its lineage resolves).
func (v *validator) startEdges(g *Guest) []startEdge {
	lin := v.res.lin
	var out []startEdge
	if p := lin.parent[g]; p != nil {
		out = append(out, startEdge{to: p})
	}
	deps := g.Spec.DependsOn
	if lin.intact(g) {
		deps = v.res.resolve(g).Settings.DependsOn
	}
	for _, name := range deps {
		if d := lin.guest(name); d != nil && d != g {
			out = append(out, startEdge{to: d, depend: true})
		}
	}
	return out
}

// startCycles reports each cycle of waiting that goes through at least one
// dependsOn (clone cycles alone are reported as such), once, at its
// alphabetically first guest. The walk keeps its own stack, so that a
// lineage of any depth fits.
func (v *validator) startCycles() {
	const (
		white = iota
		grey
		black
	)
	colour := map[*Guest]int{}
	type frame struct {
		g     *Guest
		edges []startEdge
		next  int
	}
	reported := map[string]bool{}
	for _, root := range v.set.Guests {
		if v.res.lin.guest(root.Name()) != root || colour[root] != white {
			continue
		}
		stack := []*frame{{g: root, edges: v.startEdges(root)}}
		colour[root] = grey
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			if top.next == len(top.edges) {
				colour[top.g] = black
				stack = stack[:len(stack)-1]
				continue
			}
			e := top.edges[top.next]
			top.next++
			switch colour[e.to] {
			case white:
				colour[e.to] = grey
				stack = append(stack, &frame{g: e.to, edges: v.startEdges(e.to)})
			case grey:
				// The stack from e.to up to top, then back to e.to.
				i := slices.IndexFunc(stack, func(f *frame) bool { return f.g == e.to })
				var members []*Guest
				var kinds []bool
				for _, f := range stack[i:] {
					members = append(members, f.g)
					kinds = append(kinds, f.edges[f.next-1].depend)
				}
				if slices.Contains(kinds, true) {
					v.reportStartCycle(members, kinds, reported)
				}
			}
		}
	}
}

// reportStartCycle reports a cycle: members[i] waits for members[i+1] (the
// last for the first), through a dependency where kinds[i] is set.
func (v *validator) reportStartCycle(members []*Guest, kinds []bool, reported map[string]bool) {
	first := 0
	for i, g := range members {
		if g.Name() < members[first].Name() {
			first = i
		}
	}
	var b strings.Builder
	n := len(members)
	for k := range n {
		i := (first + k) % n
		if k == 0 {
			b.WriteString(members[i].Name())
		}
		if kinds[i] {
			b.WriteString(" depends on ")
		} else {
			b.WriteString(" is cloned from ")
		}
		b.WriteString(members[(i+1)%n].Name())
		if k < n-1 {
			b.WriteString(", which")
		}
	}
	text := b.String()
	if reported[text] {
		return
	}
	reported[text] = true
	g := members[first]
	field := "spec.dependsOn"
	if !kinds[first] {
		field = "spec.from.template"
	}
	v.report(g.Source, g.pos, string(g.Kind)+" "+g.Name(), field,
		"cycle of clones and dependencies, so none of them could ever be made: %s", text)
}
