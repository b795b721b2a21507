package spec

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func itoa(n int) string { return fmt.Sprint(n) }

// A cycle is named in clone order (each guest is cloned from the one
// before it), from its alphabetically first member, whatever the order of
// the documents and of the names.
func TestLineageCycleInCloneOrder(t *testing.T) {
	tmpl := func(name, from string, vmid int) string {
		return "---\napiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: " + name + "}\nspec: {vmid: " + itoa(vmid) + ", from: {template: " + from + "}}\n"
	}
	cases := map[string]struct {
		src  string
		want string
	}{
		// mid is cloned from zed, alpha from mid, zed from alpha.
		"names against the clone order": {tmpl("zed", "alpha", 100) + tmpl("alpha", "mid", 101) + tmpl("mid", "zed", 102), "alpha -> zed -> mid -> alpha"},
		"found from a guest below it":   {tmpl("x", "b", 100) + tmpl("b", "c", 101) + tmpl("c", "a", 102) + tmpl("a", "b", 103), "a -> c -> b -> a"},
		"two":                           {tmpl("q", "p", 100) + tmpl("p", "q", 101), "p -> q -> p"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.src))
			diags, _ := err.(Diagnostics)
			var cycles []string
			for _, d := range diags {
				if after, ok := strings.CutPrefix(d.Message, "cycle in the clone lineage: "); ok {
					cycles = append(cycles, after)
				}
			}
			if !cmp.Equal(cycles, []string{tc.want}) {
				t.Errorf("cycles %q, want %q (all: %v)", cycles, tc.want, err)
			}
		})
	}
}

// A lineage thousands of levels deep resolves, every guest with its whole
// lineage, root first.
func TestDeepLineageResolves(t *testing.T) {
	const levels = 3000
	res := validateAndResolve(t, parseChain(t, levels))
	if len(res.Guests) != levels {
		t.Fatalf("%d guests, want %d", len(res.Guests), levels)
	}
	leaf, _ := res.Guest(fmt.Sprintf("t%d", levels-1))
	if len(leaf.Lineage) != levels-1 || leaf.Lineage[0] != "t0" || leaf.Lineage[levels-2] != fmt.Sprintf("t%d", levels-2) {
		t.Fatalf("leaf lineage has %d entries, from %v", len(leaf.Lineage), leaf.Lineage[:min(3, len(leaf.Lineage))])
	}
	for i, r := range res.Guests {
		if r.Name != fmt.Sprintf("t%d", i) || len(r.Lineage) != i || (i > 0 && r.Lineage[i-1] != res.Guests[i-1].Name) {
			t.Fatalf("guest %d: %s with lineage of %d", i, r.Name, len(r.Lineage))
		}
		if want := []string{"base", "docker"}; i > 0 && !slices.Equal(r.Effective, want) {
			t.Fatalf("%s effective %v, want %v", r.Name, r.Effective, want)
		}
	}
	// The lineages share their storage; appending to one must not change
	// another.
	mid, _ := res.Guest("t10")
	_ = append(mid.Lineage, "intruder")
	if next, _ := res.Guest("t11"); next.Lineage[10] != "t10" {
		t.Fatalf("appending to t10's lineage changed t11's: %v", next.Lineage[8:])
	}
}

// The memory a validation and resolution take grows linearly with the
// lineage's depth: four times the levels take about four times the bytes
// (a quadratic copy of the chain would take sixteen).
func TestDeepLineageMemoryIsLinear(t *testing.T) {
	allocated := func(levels int) uint64 {
		set := parseChain(t, levels)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		validateAndResolve(t, set)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := allocated(1000), allocated(4000)
	if ratio := float64(large) / float64(small); ratio > 6 {
		t.Errorf("1000 levels allocate %d B, 4000 levels %d B: %.1fx for 4x the levels", small, large, ratio)
	}
}

// Lineages of a branching tree of templates, several levels deep on every
// branch, are each guest's ancestors, root first: clones of one template
// that extend its lineage do not write over each other's.
func TestBranchingLineages(t *testing.T) {
	var src []byte
	src = append(src, chainSpec(1)...)
	const guests = 400
	parentOf := func(i int) int { return int(uint32(i*2654435761)>>8) % i }
	for i := 1; i < guests; i++ {
		src = fmt.Appendf(src, "---\napiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: t%d}\nspec: {vmid: %d, from: {template: t%d}}\n",
			i, 100000+i, parentOf(i))
	}
	set, err := Parse("tree.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	res := validateAndResolve(t, set)
	for i := 1; i < guests; i++ {
		var want []string
		for p := parentOf(i); ; p = parentOf(p) {
			want = append(want, fmt.Sprintf("t%d", p))
			if p == 0 {
				break
			}
		}
		slices.Reverse(want)
		r, _ := res.Guest(fmt.Sprintf("t%d", i))
		if !slices.Equal(r.Lineage, want) {
			t.Fatalf("t%d lineage %v, want %v", i, r.Lineage, want)
		}
	}
}
