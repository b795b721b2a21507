package spec

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// chainSpec is a lineage levels deep: a root Template created from an OS
// template, each next Template cloned from the one before, a Container at
// the end. Every level lists a feature and sets a parameter, so that feature
// sets and parameters travel the whole chain.
func chainSpec(levels int) []byte {
	var b strings.Builder
	b.WriteString(`apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: t0}
spec:
  vmid: 100000
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  features: [base]
  network: [{name: eth0, ip: dhcp}]
`)
	for i := 1; i < levels; i++ {
		kind := "Template"
		if i == levels-1 {
			kind = "Container"
		}
		fmt.Fprintf(&b, `---
apiVersion: phoenix/v1alpha1
kind: %s
metadata: {name: t%d}
spec:
  vmid: %d
  from: {template: t%d}
  features: [docker]
`, kind, i, 100000+i, i-1)
	}
	return []byte(b.String())
}

// validateAndResolve is what a load does after decoding: validation, then
// the resolution the reconciler works from.
func validateAndResolve(tb testing.TB, set *Set) *Resolution {
	if diags := validate(set); len(diags) > 0 {
		tb.Fatalf("validate: %v", diags)
	}
	res, err := Resolve(set)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

func parseChain(tb testing.TB, levels int) *Set {
	set, err := Parse("chain.yaml", chainSpec(levels))
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

// BenchmarkDeepLineage validates and resolves lineages of thousands of
// levels. B/op divided by the levels stays flat when memory is linear in the
// lineage's size.
func BenchmarkDeepLineage(b *testing.B) {
	for _, levels := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("levels=%d", levels), func(b *testing.B) {
			set := parseChain(b, levels)
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for b.Loop() {
				validateAndResolve(b, set)
			}
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N)/float64(levels), "B/level")
		})
	}
}
