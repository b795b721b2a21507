package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// Prune guards. A spec tree being deployed is not whole for a moment; the
// loop (phoenix run --prune) must not take that moment for a deployment that
// lost its guests, and apply --prune deletes no more than its limit at once.

// TestPruneLimitRefusesABulkDelete: a prune that would delete more of the
// deployment's guests at once than the limit deletes none of them; the plan
// says so with the count, and --prune-max lets it through.
func TestPruneLimitRefusesABulkDelete(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	// The containers' file is gone: vllm-qwen and ollama are in no spec
	// (nginx is protected). Two of the deployment's six guests is more than
	// the default limit, one.
	dir := copyExamples(t)
	if err := os.Remove(filepath.Join(dir, "containers.yaml")); err != nil {
		t.Fatal(err)
	}
	r.res = resolveDir(t, dir)
	_, p := r.plan(r.pruning().PlanOptions)
	want := "prune refused: it would delete 2 of the deployment's 6 guests at once, more than the default limit of 1 (a quarter of its guests, at least 1, at most 10); " +
		"nothing is deleted. If that is meant, run with --prune-max 2"
	for _, vmid := range []int{950, 955} {
		g := entry(p, vmid)
		if g == nil || g.Action != reconciler.NoOp || len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemFlag || g.Errors[0].Message != want {
			t.Errorf("guest %d: %+v", vmid, g)
		}
	}
	if !strings.Contains(planText(p), want) {
		t.Errorf("the text plan does not show the count:\n%s", planText(p))
	}
	r.mustNotDestroy(r.pruning())

	// With the limit raised, they go; the plan says how many of how many.
	opts := r.pruning()
	opts.PruneMax = 2
	_, p = r.plan(opts.PlanOptions)
	if g := entry(p, 950); g == nil || g.Action != reconciler.Delete ||
		!strings.HasSuffix(g.Changes[0].Reason, "(this prune deletes 2 of the deployment's 6 guests; the limit is 2)") {
		t.Fatalf("with --prune-max 2: %+v\n%s", g, planText(p))
	}
	from := r.lastSeq()
	r.apply(context.Background(), opts)
	if got := destroyed(r.events(from)); !slices.Contains(got, 950) || !slices.Contains(got, 955) {
		t.Errorf("destroyed %v, want 950 and 955", got)
	}
}

// copyExamples copies the example specs into a directory of the test's.
func copyExamples(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "specs")
	for _, name := range []string{"cluster.yaml", "templates.yaml", "containers.yaml", "features/nginx.yaml"} {
		b, err := os.ReadFile(filepath.Join("../examples/homelab", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), string(b))
	}
	return dir
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func resolveDir(t *testing.T, dir string) *spec.Resolution {
	t.Helper()
	res, err := spec.LoadResolved(dir)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// pruneLoop is phoenix run --prune over a spec directory, with a clock the
// test moves. The limit on one prune is raised out of the way: what these
// tests check is the loop's own guard.
type pruneLoop struct {
	*reconciler.Loop
	t     *testing.T
	r     *rig
	now   time.Time
	plans []*reconciler.Plan
	infos []reconciler.PassInfo
}

func (r *rig) pruneLoop(t *testing.T, dir string) *pruneLoop {
	l := &pruneLoop{t: t, r: r, now: time.Now()}
	opts := r.pruning()
	opts.PruneMax = 100
	l.Loop = reconciler.NewLoop(r.cluster, r.node, func() (*spec.Resolution, error) { return spec.LoadResolved(dir) }, reconciler.LoopOptions{
		Apply: opts, Now: func() time.Time { return l.now },
		SpecsModified: func() (time.Time, error) { return spec.Modified(dir) },
		Pass: func(info reconciler.PassInfo, p *reconciler.Plan, _ *reconciler.ApplyResult, _ []reconciler.GuestStatus) {
			l.infos, l.plans = append(l.infos, info), append(l.plans, p)
		},
	})
	return l
}

// pass runs one pass; triggered runs it as a file event would.
func (l *pruneLoop) pass(triggered bool) reconciler.PassInfo {
	l.t.Helper()
	if triggered {
		l.Trigger()
	}
	if err := l.Pass(context.Background(), nil); err != nil {
		l.t.Fatalf("pass: %v", err)
	}
	return l.infos[len(l.infos)-1]
}

// held checks that the last pass held back the deletion of the given
// guests, which the half-deployed specs do not name.
func (l *pruneLoop) held(reason string, vmids ...int) {
	l.t.Helper()
	info, p := l.infos[len(l.infos)-1], l.plans[len(l.plans)-1]
	if !strings.Contains(info.PruneHeld, reason) {
		l.t.Errorf("pass %+v: want the prune held back because %s", info, reason)
	}
	for _, vmid := range vmids {
		if g := entry(p, vmid); g == nil || g.Action != reconciler.NoOp || len(g.Notes) == 0 || !strings.Contains(g.Notes[0], "this pass deletes nothing") {
			l.t.Errorf("guest %d in a held pass: %+v", vmid, g)
		}
	}
}

// converged runs the first pass, which makes every guest.
func (l *pruneLoop) converged() int {
	l.t.Helper()
	if info := l.pass(false); !info.Converged() {
		l.t.Fatalf("first pass: %+v", info)
	}
	return l.r.lastSeq()
}

// intact checks that nothing was destroyed since from and every guest of the
// examples exists.
func (l *pruneLoop) intact(from int) {
	l.t.Helper()
	if d := destroyed(l.r.events(from)); len(d) > 0 {
		l.t.Errorf("destroyed %v during a partial deploy", d)
	}
	for _, vmid := range []int{900, 901, 902, 950, 955, 960} {
		if !l.r.exists(vmid) {
			l.t.Errorf("guest %d is gone", vmid)
		}
	}
}

// TestLoopPrunesNothingDuringAFileMove: containers.yaml moved from one folder
// to another in two steps (out, then in: a move across filesystems, or a
// deploy tool's) leaves a moment with no containers. Neither the pass the
// file event starts nor the next full pass prunes in it; once the tree has
// been unchanged for the grace period, a full pass prunes, and finds nothing
// to prune. A container taken out on purpose goes then.
func TestLoopPrunesNothingDuringAFileMove(t *testing.T) {
	r := newRig(t, nil)
	dir := copyExamples(t)
	mkdir(t, filepath.Join(dir, "apps"))
	rename(t, filepath.Join(dir, "containers.yaml"), filepath.Join(dir, "apps", "containers.yaml"))
	l := r.pruneLoop(t, dir)
	from := l.converged()

	// Out of apps/, not yet in web/.
	aside := filepath.Join(t.TempDir(), "containers.yaml")
	rename(t, filepath.Join(dir, "apps", "containers.yaml"), aside)
	l.pass(true)
	l.held("started by a change to the spec files", 950, 955)
	l.pass(false)
	l.held("the spec files changed 0s ago", 950, 955)
	mkdir(t, filepath.Join(dir, "web"))
	web := filepath.Join(dir, "web", "containers.yaml")
	rename(t, aside, web)
	l.pass(true)
	l.now = l.now.Add(reconciler.DefaultPruneGrace + time.Minute)
	if info := l.pass(false); info.PruneHeld != "" || !info.Converged() {
		t.Errorf("after the grace period: %+v", info)
	}
	l.intact(from)

	writeFile(t, web, withoutDocument(t, readFile(t, web), "ollama"))
	from = r.lastSeq()
	l.pass(true)
	l.held("started by a change to the spec files", 955)
	l.now = l.now.Add(reconciler.DefaultPruneGrace + time.Minute)
	l.pass(false)
	if d := slices.Compact(slices.Sorted(slices.Values(destroyed(r.events(from))))); !slices.Equal(d, []int{955}) {
		t.Errorf("ollama, out of the specs for the grace period, was not pruned alone: destroyed %v\n%s", d, planText(l.plans[len(l.plans)-1]))
	}
}

// TestLoopPrunesNothingDuringAPartialWrite: containers.yaml written in place
// (rsync --inplace style) holds for a moment its first document only, a
// valid spec set without two containers. phoenix started in that moment (a
// restart, a cron --once) sees files modified a moment ago; a file event
// starts a pass that never prunes; once the file is whole and the tree has
// been unchanged for the grace period, nothing is left to prune.
func TestLoopPrunesNothingDuringAPartialWrite(t *testing.T) {
	r := newRig(t, nil)
	dir := copyExamples(t)
	from := r.pruneLoop(t, dir).converged()

	file := filepath.Join(dir, "containers.yaml")
	whole := readFile(t, file)
	writeFile(t, file, whole[:strings.Index(whole, "\n---\n")+1])
	l := r.pruneLoop(t, dir)
	l.pass(false)
	l.held("the spec files changed 0s ago", 955)
	l.pass(true)
	l.held("started by a change to the spec files", 955)
	writeFile(t, file, whole)
	l.pass(true)
	l.now = l.now.Add(reconciler.DefaultPruneGrace + time.Minute)
	if info := l.pass(false); info.PruneHeld != "" || !info.Converged() {
		t.Errorf("after the grace period: %+v", info)
	}
	l.intact(from)
}

// TestLoopPrunesNothingAcrossACheckout: the spec directory swapped for a
// checkout of another branch that lacks a container, prepared earlier (its
// files are old), and swapped back. No file event arrives (a watch follows
// the directory that was moved away) and no file is new: the loop sees that
// the specs changed, and waits the grace period from then.
func TestLoopPrunesNothingAcrossACheckout(t *testing.T) {
	r := newRig(t, nil)
	root := t.TempDir()
	current := filepath.Join(root, "current")
	if err := os.Rename(copyExamples(t), current); err != nil {
		t.Fatal(err)
	}
	branch := filepath.Join(root, "branch")
	if err := os.Rename(copyExamples(t), branch); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(branch, "containers.yaml")
	writeFile(t, file, withoutDocument(t, readFile(t, file), "ollama"))
	l := r.pruneLoop(t, current)
	old := l.now.Add(-time.Hour)
	ageTree(t, branch, old)
	ageTree(t, current, old)
	from := l.converged()

	swap := func(in string) string {
		t.Helper()
		out := filepath.Join(root, "previous-"+filepath.Base(in))
		if err := os.Rename(current, out); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(in, current); err != nil {
			t.Fatal(err)
		}
		return out
	}
	l.now = l.now.Add(time.Minute)
	back := swap(branch)
	l.pass(false)
	l.held("the spec files changed 0s ago", 955)
	l.now = l.now.Add(2 * time.Minute)
	l.pass(false)
	l.held("the spec files changed 2m0s ago", 955)
	swap(back)
	l.pass(false)
	l.now = l.now.Add(reconciler.DefaultPruneGrace + time.Minute)
	if info := l.pass(false); info.PruneHeld != "" || !info.Converged() {
		t.Errorf("after the grace period: %+v", info)
	}
	l.intact(from)
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withoutDocument drops the YAML document whose metadata.name is name.
func withoutDocument(t *testing.T, text, name string) string {
	t.Helper()
	docs := strings.Split(text, "\n---\n")
	kept := slices.DeleteFunc(slices.Clone(docs), func(d string) bool { return strings.Contains(d, "\n  name: "+name+"\n") })
	if len(kept) != len(docs)-1 {
		t.Fatalf("no one document named %s", name)
	}
	return strings.Join(kept, "\n---\n")
}

// ageTree sets every file's and directory's modification time under dir.
func ageTree(t *testing.T, dir string, at time.Time) {
	t.Helper()
	var paths []string
	if err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		paths = append(paths, path)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Deepest first: touching a directory's entries would not change it,
	// but keep the order safe all the same.
	slices.Reverse(paths)
	for _, p := range paths {
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
}
