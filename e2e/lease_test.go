package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// The cluster-wide lease, through the real providers against the
// simulator's pmxcfs: one writer at a time, a holder named to whoever
// waits, and a dead holder's lease expiring by itself.

// leaseRig is the examples' cluster with pmxcfs's lock timeout shortened
// to timeout (0: Proxmox VE's two minutes), so that expiry is seen in a
// test.
func leaseRig(t *testing.T, timeout time.Duration) *rig {
	return newRig(t, func(w *sim.World) { w.Spec.LockTimeout = sim.Duration(timeout) })
}

// leaseOpts renews every renew and polls often. Tests that do not wait for
// an expiry keep Proxmox VE's timeout: a loaded machine may stall a
// renewal for seconds, and a holder takes its lease as lost after half the
// timeout without one.
func leaseOpts(timeout, renew time.Duration) reconciler.LeaseOptions {
	return reconciler.LeaseOptions{Timeout: timeout, Renew: renew, Poll: 100 * time.Millisecond}
}

// holder is a phoenix on a machine of its own.
func holder(host, command, specs string) reconciler.Holder {
	return reconciler.Holder{Host: host, PID: 4242, Command: command, Specs: specs}
}

// ledger records, in one order, when each writer took the lease, when it
// let it go, and when it began and ended each write: the proof that no two
// wrote at once.
type ledger struct {
	mu      sync.Mutex
	entries []string // "who what"
	took    map[string]chan struct{}
}

func newLedger() *ledger { return &ledger{took: map[string]chan struct{}{}} }

func (l *ledger) add(who, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, who+" "+what)
	if what == "took" {
		if ch := l.took[who]; ch != nil {
			close(ch)
			delete(l.took, who)
		}
	}
}

// tookNext returns a channel closed when who next takes the lease.
func (l *ledger) tookNext(who string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	l.took[who] = ch
	return ch
}

// check fails the test unless every write happened while its writer held
// the lease, and no two held it at once; it returns how often each took it.
func (l *ledger) check(t *testing.T) map[string]int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	holder, took, writes := "", map[string]int{}, 0
	for i, e := range l.entries {
		who, what, _ := strings.Cut(e, " ")
		switch {
		case what == "took" && holder != "":
			t.Errorf("entry %d: %s took the lease while %s held it", i+1, who, holder)
		case what == "took":
			holder = who
			took[who]++
		case what == "releasing":
			holder = ""
		case strings.HasPrefix(what, "write"):
			writes++
			if holder != who {
				t.Errorf("entry %d: %s: %s wrote while the lease was %q's", i+1, what, who, holder)
			}
		}
	}
	if writes == 0 {
		t.Error("nobody wrote: the ledger proves nothing")
	}
	return took
}

// writer is the cluster and nodes as one writer sees them: every change it
// makes is entered in the ledger as it begins and as it ends.
type writer struct {
	reconciler.Cluster
	who string
	l   *ledger
	r   *rig
}

func (r *rig) writer(who string, l *ledger) *writer {
	return &writer{Cluster: r.cluster, who: who, l: l, r: r}
}

func (w *writer) write(what string, f func() error) error {
	w.l.add(w.who, "write-begin "+what)
	defer w.l.add(w.who, "write-end "+what)
	return f()
}

func (w *writer) Create(ctx context.Context, req reconciler.CreateRequest) error {
	return w.write("create", func() error { return w.Cluster.Create(ctx, req) })
}

func (w *writer) Clone(ctx context.Context, req reconciler.CloneRequest) error {
	return w.write("clone", func() error { return w.Cluster.Clone(ctx, req) })
}

func (w *writer) SetConfig(ctx context.Context, node string, vmid int, set map[string]string, del []string, digest string) error {
	return w.write("config", func() error { return w.Cluster.SetConfig(ctx, node, vmid, set, del, digest) })
}

func (w *writer) Resize(ctx context.Context, node string, vmid int, disk, size string) error {
	return w.write("resize", func() error { return w.Cluster.Resize(ctx, node, vmid, disk, size) })
}

func (w *writer) Start(ctx context.Context, node string, vmid int) error {
	return w.write("start", func() error { return w.Cluster.Start(ctx, node, vmid) })
}

func (w *writer) Shutdown(ctx context.Context, node string, vmid int) error {
	return w.write("shutdown", func() error { return w.Cluster.Shutdown(ctx, node, vmid) })
}

func (w *writer) Reboot(ctx context.Context, node string, vmid int) error {
	return w.write("reboot", func() error { return w.Cluster.Reboot(ctx, node, vmid) })
}

func (w *writer) ConvertToTemplate(ctx context.Context, node string, vmid int) error {
	return w.write("template", func() error { return w.Cluster.ConvertToTemplate(ctx, node, vmid) })
}

func (w *writer) Delete(ctx context.Context, node string, vmid int) error {
	return w.write("delete", func() error { return w.Cluster.Delete(ctx, node, vmid) })
}

func (w *writer) node(name string) (reconciler.Node, error) {
	n, err := w.r.node(name)
	if err != nil {
		return nil, err
	}
	return &writerNode{Node: n, w: w}, nil
}

// writerNode enters what runs in containers and what pct set changes.
type writerNode struct {
	reconciler.Node
	w *writer
}

func (n *writerNode) Exec(ctx context.Context, vmid int, s reconciler.Script) (res reconciler.Result, err error) {
	err = n.w.write("exec "+s.Name, func() error { res, err = n.Node.Exec(ctx, vmid, s); return err })
	return res, err
}

func (n *writerNode) SetConfig(ctx context.Context, vmid int, set map[string]string, del []string) error {
	return n.w.write("pct set", func() error { return n.Node.SetConfig(ctx, vmid, set, del) })
}

// leasedApply is phoenix apply as one writer: take the lease (waiting up
// to wait), observe, plan and apply under it, let it go.
func (r *rig) leasedApply(w *writer, wait time.Duration, opts reconciler.LeaseOptions) (*reconciler.ApplyResult, error) {
	ctx := context.Background()
	opts.Wait = wait
	lease, err := reconciler.AcquireLease(ctx, r.cluster, r.node, holder(w.who, "phoenix apply", ""), opts)
	if err != nil {
		return nil, err
	}
	w.l.add(w.who, "took")
	defer func() {
		w.l.add(w.who, "releasing")
		if err := lease.Release(ctx); err != nil {
			r.t.Errorf("%s: release: %v", w.who, err)
		}
	}()
	obs, err := reconciler.Observe(lease.Context(), w, w.node, r.res, reconciler.ObserveOptions{})
	if err != nil {
		return nil, err
	}
	plan := reconciler.MakePlan(r.res, obs, reconciler.PlanOptions{})
	return reconciler.Apply(lease.Context(), w, w.node, r.res, obs, plan, r.options()), nil
}

func wantConverged(t *testing.T, who string, res *reconciler.ApplyResult) {
	t.Helper()
	for _, g := range res.Guests {
		if g.Err != nil {
			t.Errorf("%s: %s: %v", who, g.Name, g.Err)
		}
	}
}

// TestLeaseTwoAppliesAtOnce: while one apply works, a second one that will
// not wait fails at once, naming the first; one that waits (--lock-timeout)
// is told whom it waits for and gets the lease once the first let it go.
// Never do both write.
func TestLeaseTwoAppliesAtOnce(t *testing.T) {
	t.Parallel()
	r := leaseRig(t, 0)
	l := newLedger()
	opts := leaseOpts(reconciler.DefaultLeaseTimeout, 100*time.Millisecond)
	took := l.tookNext("runner-a")
	first := make(chan *reconciler.ApplyResult, 1)
	go func() {
		res, err := r.leasedApply(r.writer("runner-a", l), 0, opts)
		if err != nil {
			t.Errorf("first apply: %v", err)
		}
		first <- res
	}()
	<-took

	_, err := r.leasedApply(r.writer("runner-b", l), 0, opts)
	var held *reconciler.LeaseHeldError
	if !errors.As(err, &held) || held.Holder == nil || held.Holder.Host != "runner-a" || held.Holder.Command != "phoenix apply" {
		t.Fatalf("second apply without waiting: %v, want the lease held by runner-a's apply", err)
	}
	if want := "the lease is held by phoenix apply (pid 4242 on runner-a) since "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start %q", err, want)
	}

	var waitedFor []string
	waiting := opts
	waiting.Waiting = func(h *reconciler.Holder) { waitedFor = append(waitedFor, h.String()) }
	res, err := r.leasedApply(r.writer("runner-c", l), time.Minute, waiting)
	if err != nil {
		t.Fatalf("third apply, waiting: %v", err)
	}
	wantConverged(t, "runner-c", res)
	if len(waitedFor) != 1 || !strings.HasPrefix(waitedFor[0], "phoenix apply (pid 4242 on runner-a) since ") {
		t.Errorf("the waiter was told %q, want runner-a's apply once", waitedFor)
	}
	if res := <-first; res != nil {
		wantConverged(t, "runner-a", res)
	}
	if took := l.check(t); took["runner-a"] != 1 || took["runner-b"] != 0 || took["runner-c"] != 1 {
		t.Errorf("leases taken: %v", took)
	}
	if _, p := r.plan(reconciler.PlanOptions{}); p.HasChanges() {
		t.Errorf("not converged:\n%s", planText(p))
	}
}

// passLease is a loop's lease hook for a writer, entered in the ledger.
func (r *rig) passLease(w *writer, specs string, opts reconciler.LeaseOptions) func(context.Context) (context.Context, func(), error) {
	hook := reconciler.LeaseEachPass(r.cluster, r.node, func() reconciler.Holder { return holder(w.who, "phoenix run", specs) }, opts)
	return func(ctx context.Context) (context.Context, func(), error) {
		lctx, release, err := hook(ctx)
		if err != nil {
			w.l.add(w.who, "refused")
			return nil, nil, err
		}
		w.l.add(w.who, "took")
		return lctx, func() { w.l.add(w.who, "releasing"); release() }, nil
	}
}

// leasedLoop is phoenix run as one writer, on its own specs.
func (r *rig) leasedLoop(w *writer, res *spec.Resolution, specs string, opts reconciler.LeaseOptions, passes *[]reconciler.PassInfo) *reconciler.Loop {
	apply := r.options()
	return reconciler.NewLoop(w, w.node, func() (*spec.Resolution, error) { return res, nil }, reconciler.LoopOptions{
		Apply: apply, Lease: r.passLease(w, specs, opts),
		Pass: func(info reconciler.PassInfo, _ *reconciler.Plan, _ *reconciler.ApplyResult, _ []reconciler.GuestStatus) {
			*passes = append(*passes, info)
		},
	})
}

// TestLeaseApplyDuringARunPass: an apply that comes during a pass of run
// fails naming the loop, or waits for the pass to end; a pass that comes
// during an apply changes nothing and fails naming the apply: not a
// success.
func TestLeaseApplyDuringARunPass(t *testing.T) {
	t.Parallel()
	r := leaseRig(t, 0)
	l := newLedger()
	opts := leaseOpts(reconciler.DefaultLeaseTimeout, 100*time.Millisecond)
	var passes []reconciler.PassInfo
	loop := r.leasedLoop(r.writer("runner-a", l), r.res, "", opts, &passes)

	took := l.tookNext("runner-a")
	passDone := make(chan error, 1)
	go func() { passDone <- loop.Pass(context.Background(), nil) }()
	<-took
	_, err := r.leasedApply(r.writer("laptop", l), 0, opts)
	if !errors.Is(err, reconciler.ErrLeaseHeld) || !strings.Contains(err.Error(), "held by phoenix run (pid 4242 on runner-a)") {
		t.Fatalf("apply during a pass: %v", err)
	}
	res, err := r.leasedApply(r.writer("laptop", l), time.Minute, opts)
	if err != nil {
		t.Fatalf("apply waiting for the pass: %v", err)
	}
	wantConverged(t, "laptop", res)
	if err := <-passDone; err != nil {
		t.Fatalf("the pass: %v", err)
	}

	// Now the apply holds the lease, and a pass comes.
	lease, err := reconciler.AcquireLease(context.Background(), r.cluster, r.node, holder("laptop", "phoenix apply", ""), opts)
	if err != nil {
		t.Fatal(err)
	}
	l.add("laptop", "took")
	err = loop.Pass(context.Background(), nil)
	l.add("laptop", "releasing")
	if rerr := lease.Release(context.Background()); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, reconciler.ErrLeaseHeld) || !strings.Contains(err.Error(), "held by phoenix apply (pid 4242 on laptop)") {
		t.Fatalf("a pass during an apply: %v", err)
	}
	last := passes[len(passes)-1]
	if last.Converged() || !strings.Contains(last.Error, "held by phoenix apply") || last.Changed != 0 {
		t.Errorf("the pass during an apply is reported %+v, want a failure naming the apply", last)
	}
	if took := l.check(t); took["runner-a"] != 1 || took["laptop"] != 2 {
		t.Errorf("leases taken: %v", took)
	}
}

// logged is a logger whose records a test reads.
type logged struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logged) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logged) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestLeaseTwoRunsOnDifferentSpecs: two loops on different versions of the
// specs (a rolling upgrade) never interleave inside a pass; a pass that
// finds the other loop's pass under way fails naming it and its other
// specs, and a loop that takes the lease after the other says that the two
// undo each other's changes.
func TestLeaseTwoRunsOnDifferentSpecs(t *testing.T) {
	t.Parallel()
	r := leaseRig(t, 0)
	v1 := r.res
	r.respec(specEdit{"containers.yaml", "    cores: 1\n    memory: 1024\n", "    cores: 2\n    memory: 1024\n"})
	v2 := r.res
	l := newLedger()
	var logs logged
	opts := leaseOpts(reconciler.DefaultLeaseTimeout, 100*time.Millisecond)
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	var passesA, passesB []reconciler.PassInfo
	a := r.leasedLoop(r.writer("runner-a", l), v1, "v1", opts, &passesA)
	b := r.leasedLoop(r.writer("runner-b", l), v2, "v2", opts, &passesB)

	ctx := context.Background()
	for round := range 2 {
		took := l.tookNext("runner-a")
		passDone := make(chan error, 1)
		go func() { passDone <- a.Pass(ctx, nil) }()
		<-took
		err := b.Pass(ctx, nil)
		want := "the lease is held by phoenix run (pid 4242 on runner-a) since "
		if !errors.Is(err, reconciler.ErrLeaseHeld) || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), ", on other specs (v1; these are v2)") {
			t.Fatalf("round %d: b's pass during a's: %v", round, err)
		}
		if err := <-passDone; err != nil {
			t.Fatalf("round %d: a's pass: %v", round, err)
		}
		if err := b.Pass(ctx, nil); err != nil {
			t.Fatalf("round %d: b's pass after a's: %v", round, err)
		}
	}
	for _, p := range passesB[0:1] {
		if p.Converged() || p.Error == "" {
			t.Errorf("b reported its pass during a's as %+v", p)
		}
	}
	// Each pass of each loop changed nginx back to its specs: the flip-flop
	// is there, and it is said.
	if got := strings.Count(logs.String(), "another loop applied other specs before this pass"); got < 3 {
		t.Errorf("%d warnings of the other loop's specs, want one per pass after the other's (3):\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "other=\"phoenix run (pid 4242 on runner-b) since ") || !strings.Contains(logs.String(), "its_specs=v2 these_specs=v1") {
		t.Errorf("the warning does not name the other loop and both specs:\n%s", logs.String())
	}
	if took := l.check(t); took["runner-a"] != 2 || took["runner-b"] != 2 {
		t.Errorf("leases taken: %v", took)
	}
}

// TestLeaseExpiresWhenItsHolderDies: a holder that renews keeps the lease
// past pmxcfs's timeout; one whose process died (its context ended, no
// release) renews no more, and once the timeout has passed the next writer
// gets the lease, told who held it.
func TestLeaseExpiresWhenItsHolderDies(t *testing.T) {
	t.Parallel()
	const timeout = 3 * time.Second
	r := leaseRig(t, timeout)
	opts := leaseOpts(timeout, 100*time.Millisecond)
	ctx, die := context.WithCancel(context.Background())
	defer die()
	dead, err := reconciler.AcquireLease(ctx, r.cluster, r.node, holder("runner-a", "phoenix apply", ""), opts)
	if err != nil {
		t.Fatal(err)
	}

	// Alive, it keeps the lease through two timeouts' worth of waiting.
	wait := opts
	wait.Wait = 2 * timeout
	_, err = reconciler.AcquireLease(context.Background(), r.cluster, r.node, holder("runner-b", "phoenix apply", ""), wait)
	var held *reconciler.LeaseHeldError
	if !errors.As(err, &held) || held.Holder == nil || held.Holder.Host != "runner-a" || held.Waited < 2*timeout {
		t.Fatalf("while the holder renews: %v", err)
	}
	if dead.Lost() != nil {
		t.Fatalf("the holder lost it: %v", dead.Lost())
	}

	die()
	wait.Wait = time.Minute
	next, err := reconciler.AcquireLease(context.Background(), r.cluster, r.node, holder("runner-b", "phoenix apply", ""), wait)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	defer func() { _ = next.Release(context.Background()) }()
	if p := next.Previous(); p == nil || p.Host != "runner-a" || !p.Released.IsZero() {
		t.Errorf("previous holder %+v, want runner-a, never released", p)
	}
	var taken []string
	for _, e := range r.sim.Journal() {
		if e.Name == "phoenix/lease" && e.Phase == "take" && strings.HasPrefix(e.Detail, "acquired") {
			taken = append(taken, e.Detail)
		}
	}
	if want := []string{"acquired phoenix apply (pid 4242 on runner-a)", "acquired phoenix apply (pid 4242 on runner-b)"}; fmt.Sprint(taken) != fmt.Sprint(want) {
		t.Errorf("takes in the journal: %q, want %q", taken, want)
	}
}

// TestLeaseLostStopsTheWork: a holder that cannot renew (its node lost
// quorum: /etc/pve is read-only) takes the lease as lost well before
// another could take it over; the work under it is cancelled and says why.
func TestLeaseLostStopsTheWork(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	r := leaseRig(t, timeout)
	var logs logged
	opts := leaseOpts(timeout, 100*time.Millisecond)
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	lease, err := reconciler.AcquireLease(context.Background(), r.cluster, r.node, holder("runner-a", "phoenix apply", ""), opts)
	if err != nil {
		t.Fatal(err)
	}
	if lease.Node() != "pve1" {
		t.Errorf("taken through %s, want the first online node by name, pve1", lease.Node())
	}
	off := false
	if err := r.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve2": {Online: &off}}}); err != nil {
		t.Fatal(err)
	}
	<-lease.Context().Done()
	var lost *reconciler.LeaseLostError
	if !errors.As(lease.Lost(), &lost) || !strings.Contains(lost.Reason, "not renewed for") || !strings.Contains(lost.Reason, "Permission denied") {
		t.Fatalf("lost: %v", lease.Lost())
	}
	if !errors.Is(context.Cause(lease.Context()), reconciler.ErrLeaseLost) {
		t.Errorf("the context ended for %v", context.Cause(lease.Context()))
	}
	if !strings.Contains(logs.String(), "lease lost: starting no new change") {
		t.Errorf("the loss is not said:\n%s", logs.String())
	}
	if err := lease.Release(context.Background()); !errors.Is(err, reconciler.ErrLeaseLost) {
		t.Errorf("release of a lost lease: %v", err)
	}
}
