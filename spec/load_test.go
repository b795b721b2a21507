package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadWalksDirectories(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "templates/base.yaml", header)
	write(t, dir, "apps/app.yml", doc("Container", "app", 101, "{template: base}", ""))
	write(t, dir, "apps/README.md", "not a spec")
	write(t, dir, ".git/config.yaml", "this: is not read")
	write(t, dir, "world.yaml", "apiVersion: sim.phoenix/v1alpha1\nkind: World\n")
	set, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []string{
		filepath.Join(dir, "apps/app.yml"), filepath.Join(dir, "templates/base.yaml"), filepath.Join(dir, "world.yaml"),
	}
	if diff := cmp.Diff(want, set.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(set.Guests) != 2 {
		t.Errorf("guests = %d, want 2", len(set.Guests))
	}
}

func TestLoadFilesAndDirectoriesTogether(t *testing.T) {
	dir := t.TempDir()
	base := write(t, dir, "a/base.txt", header) // a file named explicitly is read whatever its extension
	write(t, dir, "b/app.yaml", doc("Container", "app", 101, "{template: base}", ""))
	set, err := Load(base, filepath.Join(dir, "b"), base)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(set.Files) != 2 || len(set.Guests) != 2 {
		t.Errorf("files %v, guests %d: want 2 files (duplicates dropped), 2 guests", set.Files, len(set.Guests))
	}
}

func TestLoadPathErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "notes.txt", "x")
	cases := map[string]struct {
		paths []string
		want  string
	}{
		"no paths":           {nil, "no spec paths given"},
		"a missing path":     {[]string{filepath.Join(dir, "nope")}, "no such file or directory"},
		"a dir without yaml": {[]string{dir}, "no *.yaml or *.yml files"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(tc.paths...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadReportsEveryFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", "apiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: a}\nspec: {vmid: 1}\n")
	write(t, dir, "b.yaml", "key: [unclosed\n")
	write(t, dir, "c.yaml", header+"---\n"+header)
	_, err := Load(dir)
	var diags Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("Load = %v, want Diagnostics", err)
	}
	var got []string
	for _, d := range diags {
		got = append(got, filepath.Base(d.File)+":"+d.Field)
	}
	want := []string{
		"a.yaml:spec.vmid", "a.yaml:spec.from", "a.yaml:spec.node", "b.yaml:", "c.yaml:metadata.name", "c.yaml:spec.vmid",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s\n%v", diff, err)
	}
}

func TestYAMLFeatures(t *testing.T) {
	src := `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  defaults: {node: pve1, storage: local-lvm}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 100
  from: {ostemplate: "local:vztmpl/x.tar.zst"}
  resources: &big {cores: 8, memory: 16384}
  network: &nets
    - {name: eth0, ip: dhcp}
---
# comments and empty documents are fine
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  resources:
    <<: *big
    cores: 2
`
	set, err := Parse("anchors.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	res, err := Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	app, _ := res.Guest("app")
	if app.Settings.Cores != 2 || app.Settings.MemoryMiB != 16384 {
		t.Errorf("merge key: cores %d memory %d, want 2 and 16384", app.Settings.Cores, app.Settings.MemoryMiB)
	}
}

func TestAliasBombIsAnErrorNotAHang(t *testing.T) {
	// Merge keys expand where the decoder descends: each level merges the one
	// before ten times, 10^9 entries if expanded.
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("  featureConfig:\n    m0: &m0 {a: \"1\"}\n")
	for i := 1; i <= 9; i++ {
		prev := fmt.Sprintf("*m%d", i-1)
		fmt.Fprintf(&b, "    m%d: &m%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(prev+", ", 10), ", "))
	}
	b.WriteString("  resources: *m9\n")
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too large or too deeply aliased") {
		t.Fatalf("Parse = %v, want the alias budget error", err)
	}
}

func TestNullsMeanUnset(t *testing.T) {
	set, err := Parse("n.yaml", []byte(header+"  resources: {cores: null, memory: ~}\n  network:\n  tags: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := set.Guests[0]
	if g.Spec.Resources.Cores != nil || g.Spec.Resources.Memory != nil || g.Spec.Network != nil {
		t.Errorf("null fields decoded as set: %+v", g.Spec)
	}
	if g.Spec.Tags == nil || len(g.Spec.Tags) != 0 {
		t.Errorf("tags: [] decoded as %#v, want an empty non-nil list (it clears the parent's)", g.Spec.Tags)
	}
}
