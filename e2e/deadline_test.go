package e2e

import (
	"context"
	"errors"
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

// Deadlines: every wait has a bound, and what runs out of it fails its own
// guest, which backs off while the others converge.

// boundTasks gives the rig an API client whose task waits end after d.
func (r *rig) boundTasks(d time.Duration) {
	r.t.Helper()
	env := r.sim.Env()
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, r.res.Cluster)
	if err != nil {
		r.t.Fatal(err)
	}
	cfg.TaskPoll, cfg.TaskPollMax, cfg.TaskTimeout = 2*time.Millisecond, 50*time.Millisecond, d
	if r.cluster, err = proxmox.New(context.Background(), cfg, nil); err != nil {
		r.t.Fatal(err)
	}
}

// othersConverged fails the test unless every guest but the named one has
// nothing left to do.
func (r *rig) othersConverged(but string) {
	r.t.Helper()
	_, p := r.plan(reconciler.PlanOptions{})
	for _, g := range p.Guests {
		if g.Name != but && (g.Action != reconciler.NoOp || len(g.Errors) > 0) {
			r.t.Errorf("%s not converged: %v %v", g.Name, g.Action, g.Errors)
		}
	}
}

// TestHungTaskFailsItsGuestOnly: a start task that never ends fails nginx
// once its bound has passed, with a message that names the task; the other
// guests converge; the loop backs nginx off, and it converges once starts
// end again.
func TestHungTaskFailsItsGuestOnly(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Faults.Hang.Tasks = []string{"vzstart:960"} })
	r.boundTasks(time.Second)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	l := r.loop(reconciler.LoopOptions{BackoffInitial: time.Minute, Now: func() time.Time { return now }}, nil)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rep := l.Report()
	if rep.Pass.Failed != 1 {
		t.Fatalf("pass %+v: want nginx alone failed", rep.Pass)
	}
	got := rep.Backoff["nginx"]
	for _, want := range []string{"retries after", "(timeout: ", ":vzstart:960:", "(vzstart of CT 960) still running after 1s"} {
		if !strings.Contains(got, want) {
			t.Errorf("nginx backoff %q lacks %q", got, want)
		}
	}
	r.othersConverged("nginx")

	// Within the backoff nginx is left alone.
	from := r.lastSeq()
	now = now.Add(30 * time.Second)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, e := range r.events(from) {
		if e.VMID == 960 && (e.Kind == "task" || e.Kind == "exec") {
			t.Errorf("nginx worked on while backing off: %s %s %s", e.Kind, e.Name, e.Detail)
		}
	}
	// Starts end again: after the backoff nginx converges.
	r.sim.SetTaskHang("vzstart:960", false)
	now = now.Add(2 * time.Minute)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if rep := l.Report(); !rep.Pass.Converged() || len(rep.Backoff) != 0 {
		t.Errorf("after the backoff: %+v %v", rep.Pass, rep.Backoff)
	}
}

// withStepTimeout loads the examples with a timeout on nginx's install step.
func withStepTimeout(t *testing.T, timeout string) *spec.Resolution {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"cluster.yaml", "containers.yaml", "templates.yaml", "features/nginx.yaml"} {
		data, err := os.ReadFile(filepath.Join("../examples/homelab", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "features/nginx.yaml" {
			edited := strings.Replace(string(data), "      verify: nginx -v\n", "      verify: nginx -v\n      timeout: "+timeout+"\n", 1)
			if edited == string(data) {
				t.Fatal("the edit changed nothing")
			}
			data = []byte(edited)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := spec.LoadResolved(dir)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestHungStepIsStoppedInTheGuest: a step whose apply never exits is
// signalled inside the container when its timeout has passed (the process is
// gone from the container, not only from phoenix's view), fails nginx with a
// message that says so, and nginx backs off while the other guests converge.
func TestHungStepIsStoppedInTheGuest(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Faults.Hang.Scripts = []string{"nginx/install"} })
	r.res = withStepTimeout(t, "1s")
	var (
		mu   sync.Mutex
		seen [][]string
	)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	apply := r.options()
	apply.Heartbeat = 50 * time.Millisecond
	apply.Events = func(ev reconciler.Event) {
		// While the step runs, it is a process in the container.
		if ev.Step == "nginx/install" && ev.Phase == "apply" && ev.Outcome == reconciler.Running {
			mu.Lock()
			seen = append(seen, r.sim.Processes("pve1", 960))
			mu.Unlock()
		}
	}
	l := reconciler.NewLoop(r.cluster, r.node, func() (*spec.Resolution, error) { return r.res, nil },
		reconciler.LoopOptions{BackoffInitial: time.Minute, Now: func() time.Time { return now }, Apply: apply})
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rep := l.Report()
	if rep.Pass.Failed != 1 {
		t.Fatalf("pass %+v: want nginx alone failed", rep.Pass)
	}
	want := "step nginx/install apply ran out of its 1s and was stopped in the guest (SIGTERM))"
	if got := rep.Backoff["nginx"]; !strings.HasPrefix(got, "retries after") || !strings.Contains(got, "(timeout: ") || !strings.HasSuffix(got, want) {
		t.Errorf("nginx backoff %q, want a retry after %s", got, want)
	}
	mu.Lock()
	if !slices.ContainsFunc(seen, func(ps []string) bool { return slices.Equal(ps, []string{"nginx/install apply"}) }) {
		t.Errorf("processes in nginx while the step ran: %v, want nginx/install apply", seen)
	}
	mu.Unlock()
	if ps := r.sim.Processes("pve1", 960); len(ps) != 0 {
		t.Errorf("processes in nginx after the timeout: %v", ps)
	}
	timedOut := 0
	for _, e := range r.events(0) {
		if e.VMID == 960 && e.Name == "nginx/install" && e.Phase == "apply" {
			if !strings.HasPrefix(e.Detail, "timed out after 1s: timeout -k 30 1 sent SIGTERM") {
				t.Errorf("nginx/install apply: %+v, want it timed out", e)
			}
			timedOut++
		}
	}
	if timedOut != 1 {
		t.Errorf("nginx/install apply ran %d times, want once: a step that ran out is not tried again in the same pass", timedOut)
	}
	r.othersConverged("nginx")

	// The step heals; after its backoff nginx converges.
	r.sim.SetScriptHang("nginx/install", false)
	now = now.Add(2 * time.Minute)
	if err := l.Pass(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if rep := l.Report(); !rep.Pass.Converged() || len(rep.Backoff) != 0 {
		t.Errorf("after the backoff: %+v %v", rep.Pass, rep.Backoff)
	}
}

// flaky fails the first n calls of list the way a dropped connection does.
func flaky(n int, list ssh.Discover) (ssh.Discover, func() int) {
	var mu sync.Mutex
	calls := 0
	return func(ctx context.Context) (map[string]string, error) {
			mu.Lock()
			calls++
			c := calls
			mu.Unlock()
			if c <= n {
				return nil, &reconciler.APIError{Kind: reconciler.ErrUnavailable, Op: "GET /cluster/status",
					Message: "connection reset by peer", Transient: true}
			}
			return list(ctx)
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return calls
		}
}

// discoverNodes is /cluster/status as the node addresses SSH dials.
func (r *rig) discoverNodes(ctx context.Context) (map[string]string, error) {
	nodes, err := r.cluster.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range nodes {
		out[n.Name] = n.IP
	}
	return out, nil
}

// TestDiscoveryHeals: a pool that finds nodes through /cluster/status keeps
// no failure: the first lookup fails through its retries, the command after
// it finds the node; a node that joins the cluster later is found without a
// restart; and an apply whose first lookups fail converges.
func TestDiscoveryHeals(t *testing.T) {
	r := newRig(t, nil)
	env := r.sim.Env()
	cfg, err := ssh.ConfigFromEnv(func(k string) string { return env[k] }, r.res.Cluster.SSH)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := ssh.NewPool(cfg) // no address known: all come from discovery
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	list, calls := flaky(3, r.discoverNodes)
	pool.SetDiscovery(list, time.Hour)
	node, err := pool.Node("pve1")
	if err != nil {
		t.Fatalf("Node before any discovery: %v", err)
	}
	_, err = node.HostProbe(context.Background())
	if err == nil || !reconciler.Retryable(err) || !strings.Contains(err.Error(), "list the cluster's nodes") {
		t.Fatalf("probe while /cluster/status fails: %v, want a failure worth retrying", err)
	}
	if got := calls(); got != 3 {
		t.Errorf("%d lookups, want 3 (one and its retries)", got)
	}
	if _, err := node.HostProbe(context.Background()); err != nil {
		t.Fatalf("probe once /cluster/status answers: %v", err)
	}

	t.Run("a node that joins is found", func(t *testing.T) {
		if err := r.sim.JoinNode(sim.WorldNode{Name: "pve9", GPUs: 1, DriverVersion: "580.76.05"}); err != nil {
			t.Fatal(err)
		}
		n, err := pool.Node("pve9")
		if err != nil {
			t.Fatal(err)
		}
		info, err := n.HostProbe(context.Background())
		if err != nil || info.DriverVersion != "580.76.05" {
			t.Fatalf("probe of pve9: %+v %v", info, err)
		}
		n, err = pool.Node("pve404")
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.HostProbe(context.Background())
		if !errors.Is(err, reconciler.ErrNotFound) || reconciler.Retryable(err) || !strings.Contains(err.Error(), "pve404 is not a member of the cluster") {
			t.Errorf("probe of a node the cluster does not have: %v", err)
		}
	})

	t.Run("an apply converges through failed lookups", func(t *testing.T) {
		pool, err := ssh.NewPool(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pool.Close() })
		list, _ := flaky(5, r.discoverNodes)
		pool.SetDiscovery(list, 0)
		r.pool = pool
		r.mustConverge(r.options())
	})
}
