package spec

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// GraphFormats are the formats WriteGraph knows.
var GraphFormats = []string{"text", "dot", "mermaid", "json"}

// GraphGuest is one guest in the JSON lineage graph. The lists are sorted, except
// Install, which is in dependency order.
type GraphGuest struct {
	Name      string   `json:"name"`
	Kind      Kind     `json:"kind"`
	VMID      int      `json:"vmid"`
	Node      string   `json:"node"`
	Parent    string   `json:"parent"`
	Lineage   []string `json:"lineage"`
	Own       []string `json:"own"`
	Inherited []string `json:"inherited"`
	Effective []string `json:"effective"`
	Install   []string `json:"install"`
	// DependsOn are the guests this one waits for besides its template.
	DependsOn []string `json:"dependsOn"`
}

// Graph is the JSON lineage graph, guests in lineage order.
type Graph struct {
	Guests []GraphGuest `json:"guests"`
}

// Graph returns the lineage as data.
func (r *Resolution) Graph() Graph {
	g := Graph{Guests: []GraphGuest{}}
	for _, x := range r.Guests {
		g.Guests = append(g.Guests, GraphGuest{
			Name: x.Name, Kind: x.Kind, VMID: x.VMID, Node: x.Settings.Node, Parent: x.Parent,
			Lineage: nonNil(x.Lineage), Own: nonNil(x.Own), Inherited: nonNil(x.Inherited),
			Effective: nonNil(x.Effective), Install: nonNil(x.Install), DependsOn: nonNil(x.Settings.DependsOn),
		})
	}
	return g
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// WriteGraph renders the lineage in one of GraphFormats.
func (r *Resolution) WriteGraph(w io.Writer, format string) error {
	var b strings.Builder
	switch format {
	case "text", "":
		r.graphText(&b)
	case "dot":
		r.graphDot(&b)
	case "mermaid":
		r.graphMermaid(&b)
	case "json":
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.Graph()); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown graph format %q (one of %s)", format, strings.Join(GraphFormats, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// summary says in words what a guest brings along and what it installs.
func (x *Resolved) summary() string {
	var parts []string
	if len(x.Inherited) > 0 {
		parts = append(parts, "inherits "+strings.Join(x.Inherited, ", "))
	}
	if len(x.Install) > 0 {
		parts = append(parts, "installs "+strings.Join(x.Install, ", "))
	} else {
		parts = append(parts, "installs nothing")
	}
	if len(x.Settings.DependsOn) > 0 {
		parts = append(parts, "after "+strings.Join(x.Settings.DependsOn, ", "))
	}
	return strings.Join(parts, "; ")
}

func (x *Resolved) label() string {
	return fmt.Sprintf("%s %d on %s", x.Kind, x.VMID, x.Settings.Node)
}

func (r *Resolution) graphText(b *strings.Builder) {
	var walk func(x *Resolved, prefix, branch string, childPrefix string)
	walk = func(x *Resolved, prefix, branch, childPrefix string) {
		fmt.Fprintf(b, "%s%s%s (%s): %s\n", prefix, branch, x.Name, x.label(), x.summary())
		for i, c := range x.Children {
			child := r.byName[c]
			if i == len(x.Children)-1 {
				walk(child, prefix+childPrefix, "└── ", "    ")
			} else {
				walk(child, prefix+childPrefix, "├── ", "│   ")
			}
		}
	}
	for _, x := range r.Guests {
		if x.Parent == "" {
			walk(x, "", "", "")
		}
	}
}

func (r *Resolution) graphDot(b *strings.Builder) {
	b.WriteString("digraph phoenix {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, x := range r.Guests {
		shape := "box"
		if x.IsTemplate() {
			shape = "box3d"
		}
		label := x.Name + "\n" + x.label() + "\n" + x.summary()
		fmt.Fprintf(b, "  g%d [label=%s, shape=%s];\n", x.VMID, dotQuote(label), shape)
	}
	for _, x := range r.Guests {
		if p, ok := r.byName[x.Parent]; ok {
			fmt.Fprintf(b, "  g%d -> g%d;\n", p.VMID, x.VMID)
		}
		for _, d := range x.Settings.DependsOn {
			if dep, ok := r.byName[d]; ok {
				fmt.Fprintf(b, "  g%d -> g%d [style=dashed, label=\"before\"];\n", dep.VMID, x.VMID)
			}
		}
	}
	b.WriteString("}\n")
}

// dotQuote writes a Graphviz double-quoted string; \n inside stays a line break.
func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}

func (r *Resolution) graphMermaid(b *strings.Builder) {
	b.WriteString("graph TD\n")
	for _, x := range r.Guests {
		open, closing := "[", "]"
		if x.IsTemplate() {
			open, closing = "[[", "]]"
		}
		label := x.Name + "<br/>" + x.label() + "<br/>" + x.summary()
		fmt.Fprintf(b, "  g%d%s\"%s\"%s\n", x.VMID, open, strings.ReplaceAll(label, `"`, "#quot;"), closing)
	}
	for _, x := range r.Guests {
		if p, ok := r.byName[x.Parent]; ok {
			fmt.Fprintf(b, "  g%d --> g%d\n", p.VMID, x.VMID)
		}
		for _, d := range x.Settings.DependsOn {
			if dep, ok := r.byName[d]; ok {
				fmt.Fprintf(b, "  g%d -. before .-> g%d\n", dep.VMID, x.VMID)
			}
		}
	}
}
