package suite

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/providers/ssh"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// rig is the suite's cluster: the simulator on one backend, the spec set
// (files by name, rewritten as scenarios change them) and phoenix's
// providers connected to it.
type rig struct {
	t       *testing.T
	b       Backend
	sim     *sim.Sim
	dir     string
	files   map[string]string
	res     *spec.Resolution
	cluster *proxmox.Client
	pool    *ssh.Pool
	log     *logBuffer
}

func newRig(t *testing.T, b Backend) *rig {
	t.Helper()
	w, err := sim.ParseWorld([]byte(worldText))
	if err != nil {
		t.Fatal(err)
	}
	s := b.Start(t, w)
	r := &rig{t: t, b: b, sim: s, dir: t.TempDir(), files: map[string]string{}, log: &logBuffer{}}
	r.respec(map[string]string{"cluster.yaml": clusterText, "features.yaml": featuresText, "guests.yaml": guestsText})
	r.cluster, r.pool = Connect(t, s.Env(), r.res, slog.New(slog.NewTextHandler(r.log, nil)))
	// What phoenix logged, for a failure's reader.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("phoenix's log (last 16 KiB):\n%s", r.log.tail(16<<10))
		}
	})
	return r
}

// respec replaces spec files (an empty text removes one) and resolves the
// set again.
func (r *rig) respec(files map[string]string) {
	r.t.Helper()
	for name, text := range files {
		path := filepath.Join(r.dir, name)
		if text == "" {
			delete(r.files, name)
			if err := os.Remove(path); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		r.files[name] = text
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	res, err := spec.LoadResolved(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	r.res = res
}

func (r *rig) node(name string) (reconciler.Node, error) { return r.pool.Node(name) }

func (r *rig) options() reconciler.ApplyOptions {
	return reconciler.ApplyOptions{
		Parallelism: 4,
		Retry:       reconciler.RetryPolicy{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: time.Minute, Attempts: 3},
		WaitTimeout: 2 * time.Minute,
		Log:         slog.New(slog.NewTextHandler(r.log, nil)),
		Events: func(e reconciler.Event) {
			fmt.Fprintf(r.log, "event %s %s %s %s %s: %s %v\n", e.Guest, e.Action, e.Step, e.Phase, e.Outcome, e.Output, e.Err)
		},
	}
}

// plan observes and plans.
func (r *rig) plan(opts reconciler.PlanOptions) (*reconciler.Observed, *reconciler.Plan) {
	r.t.Helper()
	obs, err := reconciler.Observe(context.Background(), r.cluster, r.node, r.res, reconciler.ObserveOptions{Log: slog.New(slog.NewTextHandler(r.log, nil))})
	if err != nil {
		r.t.Fatalf("observe: %v", err)
	}
	return obs, reconciler.MakePlan(r.res, obs, opts)
}

// apply plans and applies once.
func (r *rig) apply(ctx context.Context, opts reconciler.ApplyOptions) *reconciler.ApplyResult {
	r.t.Helper()
	obs, plan := r.plan(opts.PlanOptions)
	return reconciler.Apply(ctx, r.cluster, r.node, r.res, obs, plan, opts)
}

// mustConverge applies and fails the test unless every guest converged and
// the plan afterwards is empty.
func (r *rig) mustConverge(opts reconciler.ApplyOptions) {
	r.t.Helper()
	for _, g := range r.apply(context.Background(), opts).Guests {
		if g.Err != nil {
			r.t.Errorf("%s: %v", g.Name, g.Err)
		}
	}
	if _, p := r.plan(opts.PlanOptions); p.HasChanges() || p.HasErrors() {
		r.t.Fatalf("not converged after apply:\n%s", planText(p))
	}
}

// statuses are every specified guest's conditions now, by name.
func (r *rig) statuses() map[string]reconciler.GuestStatus {
	r.t.Helper()
	obs, p := r.plan(reconciler.PlanOptions{})
	out := map[string]reconciler.GuestStatus{}
	for _, st := range reconciler.Status(r.res, obs, p) {
		out[st.Name] = st
	}
	return out
}

// allReady fails the test for each specified guest that is not Ready.
func (r *rig) allReady() {
	r.t.Helper()
	for name, st := range r.statuses() {
		if !st.Ready() {
			r.t.Errorf("%s is not Ready: %+v", name, st.Conditions)
		}
	}
}

func (r *rig) lastSeq() int {
	j := r.sim.Journal()
	if len(j) == 0 {
		return 0
	}
	return j[len(j)-1].Seq
}

// events is the journal after seq.
func (r *rig) events(from int) []sim.Event {
	var out []sim.Event
	for _, e := range r.sim.Journal() {
		if e.Seq > from {
			out = append(out, e)
		}
	}
	return out
}

// writes lists what changed the cluster after seq: API calls other than
// GET, tasks, and the apply phase of any script.
func (r *rig) writes(from int) []string {
	var out []string
	for _, e := range r.events(from) {
		if e.Kind == "api" && !strings.HasPrefix(e.Name, "GET ") || e.Kind == "task" || e.Kind == "exec" && e.Phase == "apply" {
			out = append(out, fmt.Sprintf("%s %d %s %s", e.Kind, e.VMID, e.Name, e.Phase))
		}
	}
	return out
}

// applied counts the apply phases of a script the journal shows after
// seq, by VMID: all of them, and those that succeeded.
func (r *rig) applied(from int, name string) (all, ok map[int]int) {
	all, ok = map[int]int{}, map[int]int{}
	for _, e := range r.events(from) {
		if e.Kind == "exec" && e.Name == name && e.Phase == "apply" {
			all[e.VMID]++
			if e.OK {
				ok[e.VMID]++
			}
		}
	}
	return all, ok
}

// exists reports whether the cluster lists a VMID.
func (r *rig) exists(vmid int) bool {
	r.t.Helper()
	guests, err := r.cluster.Guests(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return slices.ContainsFunc(guests, func(g reconciler.GuestSummary) bool { return g.VMID == vmid })
}

func planText(p *reconciler.Plan) string {
	var b strings.Builder
	_ = p.WriteText(&b, reconciler.TextOptions{})
	return b.String()
}

// logBuffer collects phoenix's log from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Destroyed lists the VMIDs the journal shows destroyed (or asked to be).
func Destroyed(events []sim.Event) []int {
	var out []int
	for _, e := range events {
		if e.Kind == "task" && e.Name == "vzdestroy" || e.Kind == "api" && strings.HasPrefix(e.Name, "DELETE ") {
			out = append(out, e.VMID)
		}
	}
	return out
}
