package spec

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSnapshotValidation(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"before, after, keep and a fixed name are valid": {
			src: container("  snapshots: {before: true, after: true, keep: 5, name: final-form}\n"),
		},
		"keep is 1..50, and the block asks for something": {
			src: container("  snapshots: {keep: 0}\n"),
			want: []problem{
				{17, "spec.snapshots.keep", "1..50, got 0"},
				{17, "spec.snapshots", "set before: true, after: true or both"},
			},
		},
		"the name is the after snapshot's, and one Proxmox takes": {
			src: container("  snapshots: {before: true, name: final-form}\n---\n" + `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app2}
spec:
  vmid: 102
  from: {template: base}
  snapshots: {after: true, name: "1st"}
`),
			want: []problem{
				{17, "spec.snapshots.name", "set after: true too"},
				{25, "spec.snapshots.name", `"1st" is not a Proxmox snapshot name`},
			},
		},
		"a clone of a container's snapshot": {
			src: container("  snapshots: {after: true, name: final-form}\n") + clone102("  from: {container: app, snapshot: final-form}\n  storage: local-lvm\n"),
		},
		"a clone of a container needs its snapshot, and is full": {
			src: container("") + clone102("  from: {container: app}\n  cloneMode: linked\n"),
			want: []problem{
				{23, "spec.from.snapshot", "only from a snapshot"},
				{24, "spec.cloneMode", "in full only"},
			},
		},
		"a template has no snapshots to clone": {
			src:  container("") + clone102("  from: {template: base, snapshot: final-form}\n"),
			want: []problem{{23, "spec.from.snapshot", "a Template has no snapshots"}},
		},
		"from.container names a Container": {
			src: container("") + clone102("  from: {container: base, snapshot: s1}\n") + clone103("  from: {container: nope, snapshot: s1}\n"),
			want: []problem{
				{23, "spec.from.container", "base is a Template"},
				{30, "spec.from.container", "no Container named nope"},
			},
		},
		"a Template takes no snapshots": {
			src:  header + "  snapshots: {after: true}\n",
			want: []problem{{10, "spec.snapshots", "Proxmox takes no snapshot of a template"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b problem) bool { return a == b })); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// clone102 and clone103 are Containers whose spec continues with extra at
// the line after their vmid (lines 23 and 30 after container("")).
func clone102(extra string) string {
	return "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: app2}\nspec:\n  vmid: 102\n" + extra
}

func clone103(extra string) string {
	return "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: app3}\nspec:\n  vmid: 103\n" + extra
}

func TestSnapshotKeep(t *testing.T) {
	var none *Snapshots
	five := 5
	if none.KeepCount() != DefaultSnapshotKeep || (&Snapshots{Keep: &five}).KeepCount() != 5 || none.Wanted() || !(&Snapshots{After: true}).Wanted() {
		t.Error("KeepCount or Wanted is wrong")
	}
}

// A clone of a container's snapshot has the container as its parent: it
// inherits the container's features as a clone of a template does, and
// is a full clone.
func TestCloneOfAContainerLineage(t *testing.T) {
	set, err := Parse("test.yaml", []byte(container("  features: [docker]\n  snapshots: {after: true, name: final-form}\n")+
		clone102("  from: {container: app, snapshot: final-form}\n  features: [ollama]\n")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := res.Guest("app2")
	if !ok {
		t.Fatal("app2 is not resolved")
	}
	if r.Parent != "app" || !cmp.Equal(r.Lineage, []string{"base", "app"}) || r.Settings.CloneMode != CloneFull {
		t.Errorf("parent %q lineage %v clone mode %q", r.Parent, r.Lineage, r.Settings.CloneMode)
	}
	for _, f := range []string{"base", "docker"} {
		if !slices.Contains(r.Inherited, f) || slices.Contains(r.Install, f) {
			t.Errorf("%s: inherited %v, installs %v", f, r.Inherited, r.Install)
		}
	}
	if !slices.Contains(r.Install, "ollama") {
		t.Errorf("installs %v, want its own ollama", r.Install)
	}
}
