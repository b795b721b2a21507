package reconciler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

// leaseCluster lists nodes; nothing else of Cluster is called by the lease.
type leaseCluster struct {
	Cluster
	nodes []NodeInfo
}

func (c leaseCluster) Nodes(context.Context) ([]NodeInfo, error) { return c.nodes, nil }

// leaseTable is the lease as the cluster file system keeps it, shared by
// the fake nodes, with what each node was asked.
type leaseTable struct {
	mu     sync.Mutex
	holder *LeaseClaim
	calls  []string
	// down are nodes that cannot be reached.
	down map[string]bool
	// others hold the lease for the first takes, one take each.
	others []Holder
	// renew is what renewals answer.
	renew error
}

type leaseNode struct {
	Node
	name string
	t    *leaseTable
}

func (t *leaseTable) of(name string) (Node, error) { return &leaseNode{name: name, t: t}, nil }

func (n *leaseNode) TakeLease(_ context.Context, c LeaseClaim) (*Holder, error) {
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	n.t.calls = append(n.t.calls, "take "+n.name)
	if n.t.down[n.name] {
		return nil, errors.New(n.name + ": connection refused")
	}
	if len(n.t.others) > 0 {
		h := n.t.others[0]
		n.t.others = n.t.others[1:]
		return nil, &LeaseHeldError{Holder: &h}
	}
	if n.t.holder != nil {
		return nil, &LeaseHeldError{Holder: &n.t.holder.Holder}
	}
	n.t.holder = &c
	return nil, nil
}

func (n *leaseNode) RenewLease(_ context.Context, c LeaseClaim) error {
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	n.t.calls = append(n.t.calls, "renew "+n.name)
	return n.t.renew
}

func (n *leaseNode) ReleaseLease(_ context.Context, c LeaseClaim) error {
	n.t.mu.Lock()
	defer n.t.mu.Unlock()
	n.t.calls = append(n.t.calls, "release "+n.name)
	if n.t.holder == nil || n.t.holder.Token != c.Token {
		return &LeaseLostError{Reason: "not its own"}
	}
	n.t.holder = nil
	return nil
}

func (t *leaseTable) took() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, c := range t.calls {
		if !strings.HasPrefix(c, "renew") {
			out = append(out, c)
		}
	}
	return out
}

var someone = Holder{Host: "ci-runner-3", PID: 4242, Command: "phoenix apply"}

func TestAcquireLeaseTriesTheOnlineNodesByName(t *testing.T) {
	table := &leaseTable{down: map[string]bool{"pve2": true}}
	cluster := leaseCluster{nodes: []NodeInfo{{Name: "pve3", Online: true}, {Name: "pve1"}, {Name: "pve2", Online: true}}}
	l, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"take pve2", "take pve3", "release pve3"}, table.took()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if l.Node() != "pve3" || table.holder != nil {
		t.Errorf("taken through %s; left %+v", l.Node(), table.holder)
	}

	table.down["pve3"] = true
	if _, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{}); err == nil ||
		!strings.Contains(err.Error(), "pve2: connection refused") || !strings.Contains(err.Error(), "pve3: connection refused") {
		t.Errorf("no node answers: %v", err)
	}
	if _, err := AcquireLease(context.Background(), leaseCluster{nodes: []NodeInfo{{Name: "pve1"}}}, table.of, someone, LeaseOptions{}); err == nil ||
		!strings.Contains(err.Error(), "no node of the cluster is online") {
		t.Errorf("no node online: %v", err)
	}
}

func TestAcquireLeaseFailsAtOnceNamingTheHolder(t *testing.T) {
	since := time.Date(2026, 5, 1, 14, 3, 10, 0, time.Local)
	other := Holder{Host: "laptop", PID: 7, Command: "phoenix run", Since: since}
	table := &leaseTable{others: []Holder{other}}
	cluster := leaseCluster{nodes: []NodeInfo{{Name: "pve1", Online: true}}}
	calls := 0
	_, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{
		Now: func() time.Time { return since.Add(time.Hour) }, Waiting: func(*Holder) { calls++ }})
	var held *LeaseHeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrLeaseHeld) || calls != 0 {
		t.Fatalf("%v, %d waits", err, calls)
	}
	if want := "the lease is held by phoenix run (pid 7 on laptop) since 14:03:10"; err.Error() != want {
		t.Errorf("%q, want %q", err, want)
	}
	held.Now = since.Add(48 * time.Hour)
	held.Waited = 90 * time.Second
	if want := "the lease is held by phoenix run (pid 7 on laptop) since 2026-05-01 14:03:10 (waited 1m30s)"; held.Error() != want {
		t.Errorf("another day: %q, want %q", held.Error(), want)
	}
	held.Holder = nil
	if want := "the lease is held by another phoenix, which is taking it now (waited 1m30s)"; held.Error() != want {
		t.Errorf("nameless: %q, want %q", held.Error(), want)
	}
}

func TestAcquireLeaseWaitsAndSaysForWhom(t *testing.T) {
	a := Holder{Host: "a", PID: 1, Command: "phoenix apply", Since: time.Unix(100, 0)}
	b := Holder{Host: "b", PID: 2, Command: "phoenix run", Since: time.Unix(200, 0)}
	table := &leaseTable{others: []Holder{a, a, b}}
	cluster := leaseCluster{nodes: []NodeInfo{{Name: "pve1", Online: true}}}
	var told []string
	l, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{Wait: time.Hour, Poll: time.Millisecond,
		Waiting: func(h *Holder) { told = append(told, h.Host) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(context.Background()) }()
	if diff := cmp.Diff([]string{"a", "b"}, told); diff != "" {
		t.Errorf("told (-want +got):\n%s", diff)
	}
	if table.holder == nil || table.holder.Holder.Host != someone.Host || table.holder.Holder.Since.IsZero() {
		t.Errorf("holder %+v: want this one, with the time it took the lease", table.holder)
	}

	// A wait given up on says for whom.
	table2 := &leaseTable{others: []Holder{a, a, a, a, a, a, a, a}}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = AcquireLease(ctx, cluster, table2.of, someone, LeaseOptions{Wait: time.Hour, Poll: time.Hour,
		Waiting: func(*Holder) { cancel() }})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "(pid 1 on a)") {
		t.Errorf("cancelled wait: %v", err)
	}
}

func TestLeaseIsLostWhenRenewalsFail(t *testing.T) {
	cases := map[string]struct {
		renew error
		want  string
	}{
		"another took it": {renew: &LeaseLostError{Holder: &Holder{Host: "b", PID: 2, Command: "phoenix run"}, Reason: "it expired"},
			want: "the lease was lost: it expired; it is held by phoenix run (pid 2 on b) since "},
		"renewals fail for half the timeout": {renew: errors.New("pve1: Permission denied"),
			want: "the lease was lost: not renewed for "},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			table := &leaseTable{renew: tc.renew}
			cluster := leaseCluster{nodes: []NodeInfo{{Name: "pve1", Online: true}}}
			l, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{Timeout: 40 * time.Millisecond, Renew: 2 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			<-l.Context().Done()
			lost := l.Lost()
			if !errors.Is(lost, ErrLeaseLost) || !strings.HasPrefix(lost.Error(), tc.want) {
				t.Fatalf("lost: %v, want %q", lost, tc.want)
			}
			if err := l.Release(context.Background()); !errors.Is(err, ErrLeaseLost) {
				t.Errorf("release: %v", err)
			}
			if calls := table.took(); calls[len(calls)-1] != "take pve1" {
				t.Errorf("a lost lease was released: %v", calls)
			}
		})
	}
}

func TestLeaseReleaseStopsRenewingAndEndsTheContext(t *testing.T) {
	table := &leaseTable{}
	cluster := leaseCluster{nodes: []NodeInfo{{Name: "pve1", Online: true}}}
	l, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{Renew: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	table.mu.Lock()
	n := len(table.calls)
	table.mu.Unlock()
	if err := l.Release(context.Background()); err != nil {
		t.Errorf("second release: %v", err)
	}
	if l.Context().Err() == nil || l.Lost() != nil {
		t.Errorf("after release: context %v, lost %v", l.Context().Err(), l.Lost())
	}
	table.mu.Lock()
	defer table.mu.Unlock()
	if len(table.calls) != n || table.calls[n-1] != "release pve1" {
		t.Errorf("calls after release: %v", table.calls)
	}
}

func TestLeaseRefusesAHolderThatCannotBeWritten(t *testing.T) {
	cluster := leaseCluster{nodes: []NodeInfo{{Name: "pve1", Online: true}}}
	table := &leaseTable{}
	for _, h := range []Holder{{PID: 1, Command: "c"}, {Host: "h", Command: "c"}, {Host: "h\nx", PID: 1, Command: "c"}} {
		if _, err := AcquireLease(context.Background(), cluster, table.of, h, LeaseOptions{}); err == nil {
			t.Errorf("%+v accepted", h)
		}
	}
	if len(table.calls) != 0 {
		t.Errorf("nodes asked: %v", table.calls)
	}
}

// TestLoopPassWithoutTheLease: a pass whose lease is held by another
// changes nothing (not even the specs are read) and is a failure naming the
// holder, not a success.
func TestLoopPassWithoutTheLease(t *testing.T) {
	loaded := false
	held := &LeaseHeldError{Holder: &Holder{Host: "laptop", PID: 7, Command: "phoenix apply", Since: time.Now()}}
	l := NewLoop(nil, nil, func() (*spec.Resolution, error) { loaded = true; return nil, errors.New("unused") }, LoopOptions{
		Lease: func(context.Context) (context.Context, func(), error) { return nil, nil, held }})
	err := l.Pass(context.Background(), nil)
	rep := l.Report()
	if !errors.Is(err, ErrLeaseHeld) || loaded || rep.Pass == nil || rep.Pass.Converged() || !strings.Contains(rep.Pass.Error, "held by phoenix apply (pid 7 on laptop)") {
		t.Errorf("pass: %v, loaded %v, report %+v", err, loaded, rep.Pass)
	}
}

// TestLoopPassUnderALostLease: a pass whose lease is lost reports the loss.
func TestLoopPassUnderALostLease(t *testing.T) {
	released := false
	lost := &LeaseLostError{Reason: "not renewed for 1m0s"}
	l := NewLoop(nil, nil, func() (*spec.Resolution, error) { return nil, errors.New("cancelled meanwhile") }, LoopOptions{
		Lease: func(ctx context.Context) (context.Context, func(), error) {
			lctx, cancel := context.WithCancelCause(ctx)
			cancel(lost)
			return lctx, func() { released = true }, nil
		}})
	err := l.Pass(context.Background(), nil)
	if !errors.Is(err, ErrLeaseLost) || !released || !strings.Contains(l.Report().Pass.Error, "the lease was lost: not renewed") {
		t.Errorf("pass: %v, released %v, report %+v", err, released, l.Report().Pass)
	}
}

// TestAcquireLeaseTakesOverItsOwnLeftover: a lock this process left to the
// same token (a take whose answer was lost, a pass whose release failed) is
// let go and taken again; one of another token is not.
func TestAcquireLeaseTakesOverItsOwnLeftover(t *testing.T) {
	cluster := leaseCluster{nodes: []NodeInfo{{Name: "pve1", Online: true}}}
	const token = "0123456789abcdef"
	leftover := someone
	leftover.Since = time.Unix(100, 0)
	table := &leaseTable{holder: &LeaseClaim{Token: token, Holder: leftover}}
	l, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{Token: func() string { return token }})
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Release(context.Background())
	if diff := cmp.Diff([]string{"take pve1", "release pve1", "take pve1", "release pve1"}, table.took()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	table = &leaseTable{holder: &LeaseClaim{Token: "fedcba9876543210", Holder: leftover}}
	if _, err := AcquireLease(context.Background(), cluster, table.of, someone, LeaseOptions{Token: func() string { return token }}); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("another token's lock: %v", err)
	}
	if table.holder == nil || table.holder.Token != "fedcba9876543210" {
		t.Errorf("another token's lock was let go: %+v", table.holder)
	}
}
