package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rule is one of the design's dependency rules. Packages in the tree from may
// import no package in a forbidden tree, save those in an allowed tree and,
// from test files, those in a tree of allowedInTests. A tree is a path
// relative to the module: the package there and every package below it; ""
// is the whole module. Packages outside the module are not judged.
type rule struct {
	name           string // as the error message quotes it
	from           string
	forbidden      []string
	allowed        []string
	allowedInTests []string
}

// rules are the design's list of imports that must never be. e2e/ is in none: it is where real
// providers, the simulator and the reconciler meet.
var rules = []rule{
	{
		name:           "spec/ imports nothing of phoenix (its tests may use hack/ helpers)",
		from:           "spec",
		forbidden:      []string{""},
		allowed:        []string{"spec"},
		allowedInTests: []string{"hack"},
	},
	{
		name:      "reconciler/ imports no provider and not cmd/",
		from:      "reconciler",
		forbidden: []string{"providers", "cmd"},
	},
	{
		name:      "providers/sim imports neither the reconciler (nor the feature catalog) nor providers/proxmox",
		from:      "providers/sim",
		forbidden: []string{"reconciler", "providers/proxmox"},
	},
	{
		name:      "providers/proxmox does not import the simulator",
		from:      "providers/proxmox",
		forbidden: []string{"providers/sim"},
	},
}

// fileKind says which files of a package an import is in: the rules hold
// over test code too, and some allow more there.
type fileKind int

const (
	sourceFiles fileKind = iota
	testFiles            // _test.go files of the package itself
	xtestFiles           // _test.go files of the external package pkg_test
)

// importEdge is one import of a package of the module.
type importEdge struct {
	pkg, imports string // full import paths
	in           fileKind
}

// importer names the importing package as Go's tools would: the package, its
// tests, or its external test package.
func (e importEdge) importer() string {
	switch e.in {
	case testFiles:
		return e.pkg + " (its _test.go files)"
	case xtestFiles:
		return e.pkg + "_test"
	}
	return e.pkg
}

// violations returns a message for each import that breaks a rule, naming the
// importing package, the imported one and the rule.
func violations(module string, rules []rule, edges []importEdge) []string {
	var out []string
	for _, e := range edges {
		from, ok := inModule(module, e.pkg)
		if !ok {
			continue
		}
		to, ok := inModule(module, e.imports)
		if !ok {
			continue
		}
		for _, r := range rules {
			if r.breaks(from, to, e.in) {
				out = append(out, fmt.Sprintf("%s imports %s, against the rule %q", e.importer(), e.imports, r.name))
			}
		}
	}
	return out
}

func (r rule) breaks(from, to string, in fileKind) bool {
	if !inTree(r.from, from) || !slices.ContainsFunc(r.forbidden, treeHolds(to)) {
		return false
	}
	if slices.ContainsFunc(r.allowed, treeHolds(to)) {
		return false
	}
	return in == sourceFiles || !slices.ContainsFunc(r.allowedInTests, treeHolds(to))
}

// inModule returns a package's path relative to the module, and whether it
// is in the module at all.
func inModule(module, pkg string) (string, bool) {
	if pkg == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(pkg, module+"/")
	return rel, ok
}

// inTree reports whether the module-relative package path rel is in tree.
func inTree(tree, rel string) bool {
	return tree == "" || rel == tree || strings.HasPrefix(rel, tree+"/")
}

func treeHolds(rel string) func(tree string) bool {
	return func(tree string) bool { return inTree(tree, rel) }
}

// TestDependencyRules checks every import of every package of the module,
// tests' included, against the rules.
func TestDependencyRules(t *testing.T) {
	module, pkgs, edges := moduleImports(t)
	for _, r := range rules {
		// A rule whose trees hold no package (one was moved or renamed)
		// would pass for ever without checking anything.
		for _, tree := range append([]string{r.from}, r.forbidden...) {
			if !slices.ContainsFunc(pkgs, func(p string) bool { rel, _ := inModule(module, p); return inTree(tree, rel) }) {
				t.Errorf("rule %q names %s/%s, which holds no package of the module: update the rule", r.name, module, tree)
			}
		}
	}
	for _, v := range violations(module, rules, edges) {
		t.Error(v)
	}
}

// TestDependencyRulesCatchForbiddenImports feeds the check imports made up to
// break a rule, and some that look alike but break none, so that a rule that
// can no longer fail does not pass unnoticed.
func TestDependencyRulesCatchForbiddenImports(t *testing.T) {
	const m = "github.com/phoenixhv/phoenix"
	cases := map[string]struct {
		edge importEdge
		want []string
	}{
		"the reconciler importing the simulator": {
			edge: importEdge{pkg: m + "/reconciler", imports: m + "/providers/sim"},
			want: []string{m + `/reconciler imports ` + m + `/providers/sim, against the rule "reconciler/ imports no provider and not cmd/"`},
		},
		"the feature catalog's tests importing a provider": {
			edge: importEdge{pkg: m + "/reconciler/features", imports: m + "/providers/ssh", in: testFiles},
			want: []string{m + `/reconciler/features (its _test.go files) imports ` + m + `/providers/ssh, against the rule "reconciler/ imports no provider and not cmd/"`},
		},
		"the reconciler importing the CLI": {
			edge: importEdge{pkg: m + "/reconciler", imports: m + "/cmd/phoenix"},
			want: []string{m + `/reconciler imports ` + m + `/cmd/phoenix, against the rule "reconciler/ imports no provider and not cmd/"`},
		},
		"the simulator's external tests importing the feature catalog": {
			edge: importEdge{pkg: m + "/providers/sim/sshd", imports: m + "/reconciler/features", in: xtestFiles},
			want: []string{m + `/providers/sim/sshd_test imports ` + m + `/reconciler/features, against the rule "providers/sim imports neither the reconciler (nor the feature catalog) nor providers/proxmox"`},
		},
		"the simulator importing the API adapter": {
			edge: importEdge{pkg: m + "/providers/sim", imports: m + "/providers/proxmox"},
			want: []string{m + `/providers/sim imports ` + m + `/providers/proxmox, against the rule "providers/sim imports neither the reconciler (nor the feature catalog) nor providers/proxmox"`},
		},
		"the API adapter's tests importing the simulator": {
			edge: importEdge{pkg: m + "/providers/proxmox", imports: m + "/providers/sim", in: testFiles},
			want: []string{m + `/providers/proxmox (its _test.go files) imports ` + m + `/providers/sim, against the rule "providers/proxmox does not import the simulator"`},
		},
		"the spec importing a provider": {
			edge: importEdge{pkg: m + "/spec", imports: m + "/providers/pveapi"},
			want: []string{m + `/spec imports ` + m + `/providers/pveapi, against the rule "spec/ imports nothing of phoenix (its tests may use hack/ helpers)"`},
		},
		"the spec's own code importing a hack/ helper": {
			edge: importEdge{pkg: m + "/spec", imports: m + "/hack/testtool"},
			want: []string{m + `/spec imports ` + m + `/hack/testtool, against the rule "spec/ imports nothing of phoenix (its tests may use hack/ helpers)"`},
		},
		"the spec's tests importing a hack/ helper": {
			edge: importEdge{pkg: m + "/spec", imports: m + "/hack/testtool", in: testFiles},
		},
		"the spec's external tests importing the spec": {
			edge: importEdge{pkg: m + "/spec", imports: m + "/spec", in: xtestFiles},
		},
		"the reconciler importing the spec": {
			edge: importEdge{pkg: m + "/reconciler", imports: m + "/spec"},
		},
		"the end-to-end tests importing everything": {
			edge: importEdge{pkg: m + "/e2e", imports: m + "/providers/sim", in: testFiles},
		},
		"a package whose path only starts like a ruled one": {
			edge: importEdge{pkg: m + "/providers/proxmoxv2", imports: m + "/providers/sim"},
		},
		"an import from another module that starts like phoenix's": {
			edge: importEdge{pkg: m + "/reconciler", imports: m + "-sim/providers/sim"},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := violations(m, rules, []importEdge{c.edge})
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("violations (-want, +got):\n%s", diff)
			}
		})
	}
}

// listedPackage is what `go list -json` says of a package, as far as the
// rules need it.
type listedPackage struct {
	Dir, ImportPath                    string
	Module                             *struct{ Path string }
	Imports, TestImports, XTestImports []string
	IgnoredGoFiles                     []string
	Error                              *struct{ Err string }
}

// moduleImports lists the module's packages from its root and returns the
// module path, the packages and every import they make, tests' included.
func moduleImports(t *testing.T) (module string, pkgs []string, edges []importEdge) {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Fatalf("the go command: %v", err)
	}
	root := moduleRoot(t, goTool)
	cmd := exec.Command(goTool, "list", "-e", "-json", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v", root, stderrOf(err))
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		switch {
		case p.Module == nil:
			t.Fatalf("go list %s: in no module", p.ImportPath)
		case module != "" && p.Module.Path != module:
			t.Fatalf("go list %s: in module %s, not %s", p.ImportPath, p.Module.Path, module)
		}
		module = p.Module.Path
		pkgs = append(pkgs, p.ImportPath)
		edges = append(edges, edgesOf(p.ImportPath, p.Imports, sourceFiles)...)
		edges = append(edges, edgesOf(p.ImportPath, p.TestImports, testFiles)...)
		edges = append(edges, edgesOf(p.ImportPath, p.XTestImports, xtestFiles)...)
		edges = append(edges, ignoredFileImports(t, p)...)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages in %s: %v", len(pkgs), root, pkgs)
	}
	return module, pkgs, edges
}

// moduleRoot is the directory of the go.mod that the test's working directory
// belongs to.
func moduleRoot(t *testing.T, goTool string) string {
	t.Helper()
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", stderrOf(err))
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatalf("go env GOMOD: the test does not run inside a module (%q)", gomod)
	}
	return filepath.Dir(gomod)
}

func edgesOf(pkg string, imports []string, in fileKind) []importEdge {
	edges := make([]importEdge, 0, len(imports))
	for _, imp := range imports {
		edges = append(edges, importEdge{pkg: pkg, imports: imp, in: in})
	}
	return edges
}

// ignoredFileImports reads the imports of the files go list left out for
// their build constraints (another OS, a build tag): the rules hold for them
// too, and go list reports no imports of theirs.
func ignoredFileImports(t *testing.T, p listedPackage) []importEdge {
	t.Helper()
	var edges []importEdge
	fset := token.NewFileSet()
	for _, name := range p.IgnoredGoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Errorf("%s: %v", p.ImportPath, err)
			continue
		}
		in := sourceFiles
		switch {
		case strings.HasSuffix(f.Name.Name, "_test"):
			in = xtestFiles
		case strings.HasSuffix(name, "_test.go"):
			in = testFiles
		}
		for _, spec := range f.Imports {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				t.Errorf("%s: import %s: %v", filepath.Join(p.Dir, name), spec.Path.Value, err)
				continue
			}
			edges = append(edges, importEdge{pkg: p.ImportPath, imports: path, in: in})
		}
	}
	return edges
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Sprintf("%v\n%s", err, ee.Stderr)
	}
	return err.Error()
}
