package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDeploymentID(t *testing.T) {
	cases := map[string]struct {
		cluster string
		want    string
	}{
		"no Cluster document":       {"", DefaultDeployment},
		"the Cluster's name":        {"apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: homelab}\nspec: {}\n---\n", "homelab"},
		"spec.deployment over name": {"apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: homelab}\nspec: {deployment: lab.gpu-2}\n---\n", "lab.gpu-2"},
		"a Cluster without a name":  {"apiVersion: phoenix/v1alpha1\nkind: Cluster\nspec: {}\n---\n", DefaultDeployment},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			set, err := Parse("test.yaml", []byte(tc.cluster+header))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Resolve(set)
			if err != nil {
				t.Fatal(err)
			}
			if set.DeploymentID() != tc.want || res.Deployment != tc.want {
				t.Errorf("deployment %q (resolved %q), want %q", set.DeploymentID(), res.Deployment, tc.want)
			}
		})
	}
}

func TestDeploymentIDIsValidated(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"a bad spec.deployment": {
			src:  "apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: homelab}\nspec:\n  deployment: team b\n",
			want: []problem{{5, "spec.deployment", `"team b" is not a deployment id`}},
		},
		"too long": {
			src:  "apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: homelab}\nspec:\n  deployment: " + long + "\n",
			want: []problem{{5, "spec.deployment", "1 to 63 letters"}},
		},
		"a name that cannot be the id": {
			src:  "apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata:\n  name: -lab-\nspec: {}\n",
			want: []problem{{4, "metadata.name", `"-lab-" is the deployment id (without spec.deployment)`}},
		},
		"such a name with spec.deployment": {
			src: "apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata:\n  name: -lab-\nspec: {deployment: lab}\n",
		},
		"adopt is a guest's boolean": {
			src:  header + "  adopt: yes please\n",
			want: []problem{{10, "spec.adopt", "expected true or false"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, problems(t, tc.src, tc.want), cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModified(t *testing.T) {
	dir := t.TempDir()
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(rel string, at time.Time) {
		t.Helper()
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", old)
	write("sub/b.yml", old.Add(time.Hour))
	write("notes.txt", old.Add(3*time.Hour))      // not a spec file
	write(".git/HEAD.yaml", old.Add(4*time.Hour)) // hidden: skipped, as Load skips it
	for _, d := range []string{filepath.Join(dir, "sub"), filepath.Join(dir, ".git"), dir} {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Modified(dir)
	if err != nil || !got.Equal(old.Add(time.Hour)) {
		t.Errorf("Modified = %v %v, want the newest spec file's time", got, err)
	}
	// A file moved out changes its directory.
	if err := os.Rename(filepath.Join(dir, "sub", "b.yml"), filepath.Join(t.TempDir(), "b.yml")); err != nil {
		t.Fatal(err)
	}
	if got, err := Modified(dir); err != nil || !got.After(old.Add(time.Hour)) {
		t.Errorf("after a file moved out: %v %v, want its directory's new time", got, err)
	}
	// A file named on its own counts its directory too: an rsync writes a
	// temporary file beside it, then renames it over the file.
	if err := os.WriteFile(filepath.Join(dir, ".a.yaml.x1y2z3"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Modified(filepath.Join(dir, "a.yaml")); err != nil || !got.After(old.Add(time.Hour)) {
		t.Errorf("a file: %v %v", got, err)
	}
	if _, err := Modified(filepath.Join(dir, "gone")); err == nil {
		t.Error("a missing path is not an error")
	}
}
