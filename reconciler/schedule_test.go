package reconciler

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// served acquires one place of g for each (name, rank) after the gate was
// filled, and returns the names in the order the places were handed out as
// the holder releases them one by one.
func served(t *testing.T, g *gate, node string, waiters []string, ranks map[string]time.Duration, urgent map[string]bool) []string {
	t.Helper()
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for _, name := range waiters {
		wg.Go(func() {
			if err := g.acquire(context.Background(), nil, node, ranks[name], urgent[name]); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			g.release(node)
		})
	}
	waitQueued(t, g, node, len(waiters))
	g.release(node) // the holder's place: each waiter passes it on in turn
	wg.Wait()
	return order
}

// waitQueued waits until n waiters queue for node.
func waitQueued(t *testing.T, g *gate, node string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		q := 0
		if g.queues[node] != nil {
			q = g.queues[node].Len()
		}
		g.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGateServesLongestRankFirst(t *testing.T) {
	g := newGate(1, 0)
	if !g.tryAcquire("") {
		t.Fatal("an empty gate refused")
	}
	ranks := map[string]time.Duration{"short": time.Second, "long": time.Hour, "middle": time.Minute, "resumed": 0}
	got := served(t, g, "", []string{"short", "long", "middle", "resumed"}, ranks, map[string]bool{"resumed": true})
	if want := []string{"resumed", "long", "middle", "short"}; !slices.Equal(got, want) {
		t.Errorf("served %v, want %v (urgent first, then the longest chain)", got, want)
	}
}

func TestGatePerNodeLimit(t *testing.T) {
	g := newGate(3, 1)
	if !g.tryAcquire("pve1") {
		t.Fatal("pve1's first place refused")
	}
	if g.tryAcquire("pve1") {
		t.Fatal("a second place on pve1 with a limit of one per node")
	}
	if !g.tryAcquire("pve2") {
		t.Fatal("pve2 refused while the gate has room")
	}
	// A waiter for pve1 does not keep pve3 from the last place.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.acquire(ctx, nil, "pve1", time.Hour, false) }()
	waitQueued(t, g, "pve1", 1)
	if !g.tryAcquire("pve3") {
		t.Fatal("pve3 refused while only pve1 is full")
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled wait succeeded")
	}
	g.release("pve2")
	if g.used != 2 {
		t.Errorf("%d places used, want 2: a cancelled waiter took one", g.used)
	}
}

func TestGateStopGivesUp(t *testing.T) {
	g := newGate(1, 0)
	g.tryAcquire("")
	stop := make(chan struct{})
	close(stop)
	if err := g.acquire(context.Background(), stop, "", 0, false); err != ErrStopped {
		t.Fatalf("acquire after a stop: %v, want ErrStopped", err)
	}
	g.release("")
	if !g.tryAcquire("") {
		t.Fatal("the stopped waiter kept the place")
	}
}

// TestLockWaiterFreesItsSlot: a clone waiting for its source's clone lock
// gives its slot back while it waits, so that other work runs; once it has
// the lock it takes a slot again ahead of fresh work.
func TestLockWaiterFreesItsSlot(t *testing.T) {
	e := newEngine(nil, nil, nil, &Observed{}, ApplyOptions{Parallelism: 1})
	e.slots = newGate(1, PerNodeConcurrency)
	source := e.lock("clone 900")
	if !source.tryAcquire("") {
		t.Fatal("the clone lock is taken")
	}
	if err := e.slots.acquire(context.Background(), nil, "pve1", time.Minute, false); err != nil {
		t.Fatal(err)
	}
	s := &slot{node: "pve1", rank: time.Minute, held: true}
	ctx := context.WithValue(context.Background(), slotKey{}, s)
	held := make(chan func(), 1)
	go func() {
		unlock, err := e.hold(ctx, "clone 900")
		if err != nil {
			t.Error(err)
		}
		held <- unlock
	}()
	// Other work gets the only slot while the clone waits for the lock.
	other, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.slots.acquire(other, nil, "pve1", time.Second, false); err != nil {
		t.Fatalf("the lock waiter kept its slot: %v", err)
	}
	// Fresh work with a longer chain queues for the slot too.
	fresh := make(chan struct{})
	go func() {
		if err := e.slots.acquire(context.Background(), nil, "pve1", time.Hour, false); err != nil {
			t.Error(err)
		}
		close(fresh)
	}()
	waitQueued(t, e.slots, "pve1", 1)
	source.release("") // the clone gets the lock and queues for a slot, urgent
	waitQueued(t, e.slots, "pve1", 2)
	e.slots.release("pve1")
	unlock := <-held
	if !s.held {
		t.Fatal("the clone holds the lock but no slot")
	}
	select {
	case <-fresh:
		t.Fatal("fresh work took the slot before the clone that holds the lock")
	default:
	}
	unlock()
	e.slots.release("pve1")
	<-fresh
}

// TestRankLongChainBeforeShortClones: a template's clone with a long install
// behind it ranks above its short siblings, a template above its clones, and
// a chain of dependsOn adds up.
func TestRankLongChainBeforeShortClones(t *testing.T) {
	plan := func(name, parent string, deps []string, changes ...Change) *job {
		return &job{plan: GuestPlan{Name: name, Parent: parent, DependsOn: deps, Changes: changes}}
	}
	clone := Change{Action: Clone}
	order := []*job{
		plan("base", "", nil, Change{Action: Create}, Change{Action: InstallFeature, Feature: "base"}, Change{Action: ConvertToTemplate}),
		plan("short-1", "base", nil, clone, Change{Action: Start}),
		plan("short-2", "base", nil, clone, Change{Action: Start}),
		plan("gpu", "base", nil, clone, Change{Action: InstallFeature, Feature: "nvidia-driver"}, Change{Action: ConvertToTemplate}),
		plan("vllm", "gpu", nil, clone, Change{Action: InstallFeature, Feature: "vllm"}),
		plan("web", "", []string{"db"}, Change{Action: Create}),
		plan("db", "", nil, Change{Action: Create}),
	}
	jobs := map[string]*job{}
	for _, j := range order {
		jobs[j.plan.Name] = j
	}
	e := newEngine(nil, nil, nil, &Observed{}, ApplyOptions{})
	e.rankJobs(order, jobs)
	rank := func(name string) time.Duration { return jobs[name].rank }
	if !(rank("gpu") > rank("short-1") && rank("short-1") == rank("short-2")) {
		t.Errorf("gpu %v, short-1 %v, short-2 %v: the long chain must rank first", rank("gpu"), rank("short-1"), rank("short-2"))
	}
	if want := actionEstimates[Clone] + featureEstimates["nvidia-driver"] + actionEstimates[ConvertToTemplate] + rank("vllm"); rank("gpu") != want {
		t.Errorf("gpu ranks %v, want %v (its work and its clone's chain)", rank("gpu"), want)
	}
	if want := rank("base") - jobs["base"].work; want != rank("gpu") {
		t.Errorf("behind base: %v, want gpu's chain %v (made first of its clones)", want, rank("gpu"))
	}
	if rank("db") != rank("web")+actionEstimates[Create] {
		t.Errorf("db %v, web %v: what web waits for ranks its own work more", rank("db"), rank("web"))
	}
	// Measured durations replace the estimates.
	d := NewDurations()
	d.record(Event{Action: InstallFeature, Feature: "vllm", Outcome: Done, Duration: time.Hour})
	e = newEngine(nil, nil, nil, &Observed{}, ApplyOptions{Durations: d})
	e.rankJobs(order, jobs)
	if rank("vllm") != actionEstimates[Clone]+time.Hour {
		t.Errorf("vllm ranks %v with a measured install of 1h", rank("vllm"))
	}
}

// TestManyClonesOfOneSourceAddUp: clones are made one after another, so the
// chain behind a template with many short clones is at least their sum.
func TestManyClonesOfOneSourceAddUp(t *testing.T) {
	order := []*job{{plan: GuestPlan{Name: "t", Changes: []Change{{Action: Create}}}}}
	for _, n := range []string{"a", "b", "c", "d"} {
		order = append(order, &job{plan: GuestPlan{Name: n, Parent: "t", Changes: []Change{{Action: Clone}}}})
	}
	jobs := map[string]*job{}
	for _, j := range order {
		jobs[j.plan.Name] = j
	}
	e := newEngine(nil, nil, nil, &Observed{}, ApplyOptions{})
	e.rankJobs(order, jobs)
	if want := actionEstimates[Create] + 4*actionEstimates[Clone]; jobs["t"].rank != want {
		t.Errorf("t ranks %v, want %v", jobs["t"].rank, want)
	}
}

func TestDefaultParallelism(t *testing.T) {
	three := &Observed{Nodes: []NodeInfo{{Name: "a", Online: true}, {Name: "b", Online: true}, {Name: "c", Online: true}, {Name: "d"}}}
	for _, c := range []struct {
		set  int
		obs  *Observed
		plan *Plan
		want int
	}{
		{0, three, nil, 3 * PerNodeConcurrency},
		{5, three, nil, 5},
		{0, &Observed{}, &Plan{Guests: []GuestPlan{{Node: "a", Action: Create}, {Node: "b", Action: Create}, {Node: "c"}}}, 2 * PerNodeConcurrency},
		{0, &Observed{}, nil, PerNodeConcurrency},
		{0, &Observed{Nodes: make([]NodeInfo, 0, 10)}, nil, PerNodeConcurrency},
	} {
		if got := parallelismOf(c.set, c.obs, c.plan); got != c.want {
			t.Errorf("parallelismOf(%d, %v nodes): %d, want %d", c.set, len(c.obs.Nodes), got, c.want)
		}
	}
	if got := DefaultParallelism(10); got != MaxDefaultParallelism {
		t.Errorf("10 nodes: %d, want the cap %d", got, MaxDefaultParallelism)
	}
}

// TestSlotsSettle: work that becomes ready at once (the clones of a template
// that just converged) is served by rank, not by which goroutine woke first,
// even while places are free.
func TestSlotsSettle(t *testing.T) {
	g := newSlots(1)
	g.settle = 200 * time.Millisecond // the test machine may be slow to start goroutines
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	ranks := map[string]time.Duration{"short": time.Second, "long": time.Hour, "middle": time.Minute}
	for _, name := range []string{"short", "middle", "long"} {
		wg.Go(func() {
			if err := g.acquire(context.Background(), nil, "pve1", ranks[name], false); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			g.release("pve1")
		})
	}
	wg.Wait()
	if want := []string{"long", "middle", "short"}; !slices.Equal(order, want) {
		t.Errorf("served %v, want %v", order, want)
	}
}
