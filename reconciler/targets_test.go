package reconciler

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// targetSpecs: a root template, a template cloned from it, a container
// cloned from that, and a container on another root that depends on it.
const targetSpecs = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec: {vmid: 900, node: pve1, storage: local-lvm, from: {ostemplate: "local:vztmpl/ubuntu.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu-base}
spec: {vmid: 901, from: {template: base}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: other-base}
spec: {vmid: 910, node: pve1, storage: local-lvm, from: {ostemplate: "local:vztmpl/debian.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: ca}
spec: {vmid: 960, from: {template: other-base}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: vllm}
spec: {vmid: 950, from: {template: gpu-base}, dependsOn: [ca]}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: web}
spec: {vmid: 970, from: {template: base}}
`

func TestTargetClosure(t *testing.T) {
	res := resolve(t, targetSpecs)
	cases := map[string]struct {
		reason  string
		targets []string
		want    []string
	}{
		"root": {"a root template needs nothing", []string{"base"}, []string{"base"}},
		"clone chain": {"a clone needs every template of its lineage", []string{"web"},
			[]string{"base", "web"}},
		"dependsOn with its template": {"a dependency comes with its own lineage", []string{"vllm"},
			[]string{"base", "ca", "gpu-base", "other-base", "vllm"}},
		"dependency alone": {"a dependency does not pull in what depends on it", []string{"ca"},
			[]string{"ca", "other-base"}},
		"several": {"targets add up, each guest once", []string{"web", "ca", "web"},
			[]string{"base", "ca", "other-base", "web"}},
		"unknown": {"a name no spec defines adds nothing", []string{"nope"}, []string{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(TargetClosure(res, tc.targets)))
			if got == nil {
				got = []string{}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s: TargetClosure(%v) (-want, +got):\n%s", tc.reason, tc.targets, diff)
			}
		})
	}
}

func TestResolveTargets(t *testing.T) {
	res := resolve(t, targetSpecs)
	cases := map[string]struct {
		names   []string
		want    []string
		wantErr string
	}{
		"case ignored, specs' order, once": {names: []string{"WEB", "gpu-base", "web"}, want: []string{"gpu-base", "web"}},
		"unknown with a close name": {names: []string{"vlm"},
			wantErr: `--target: no Template or Container named "vlm" (did you mean vllm?) in the specs`},
		"every unknown name": {names: []string{"web", "postgres", "cz"},
			wantErr: `--target: no Template or Container named "postgres", "cz" (did you mean ca?) in the specs`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ResolveTargets(res, tc.names)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want, +got):\n%s", diff)
			}
		})
	}
}

// TestMakePlanTargeted: a targeted plan holds the closure only, says so,
// and prunes nothing even when asked to.
func TestMakePlanTargeted(t *testing.T) {
	res := examples(t)
	obs := converged(res, "580.76.05")
	// A guest of the deployment that no spec names: pruned by a whole run.
	orphan := *obs.Guests[960]
	orphan.VMID, orphan.Name = 990, "old"
	obs.Guests[990] = &orphan
	if whole := MakePlan(res, obs, PlanOptions{Prune: true}); whole.Targeted != nil || !slices.ContainsFunc(whole.Guests, func(g GuestPlan) bool { return g.VMID == 990 }) {
		t.Fatalf("the whole plan lacks the orphan, or says it is targeted: %+v", whole)
	}
	plan := MakePlan(res, obs, PlanOptions{Prune: true, Targets: []string{"ollama"}})
	var names []string
	for _, g := range plan.Guests {
		names = append(names, g.Name)
	}
	if diff := cmp.Diff([]string{"ubuntu-2404-base", "gpu-base", "docker-gpu", "ollama"}, names); diff != "" {
		t.Errorf("planned guests (-want, +got):\n%s", diff)
	}
	if diff := cmp.Diff(&Targeting{Targets: []string{"ollama"}, Planned: 4, Total: 6}, plan.Targeted); diff != "" {
		t.Errorf("Targeted (-want, +got):\n%s", diff)
	}
	var b strings.Builder
	if err := plan.WriteText(&b, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "Targeted (ollama): 4 of 6 guests; the others are not planned.\nNo changes. The targeted guests match the specs.\n"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("text plan ends:\n%s\nwant the end:\n%s", b.String(), want)
	}
}
