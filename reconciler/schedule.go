package reconciler

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Scheduling: which ready work runs first, and how much runs at once.
//
//   - A guest is ready once its template and what it depends on converged.
//     Ready guests wait for a slot; a freed slot goes to the ready guest with
//     the longest remaining chain of expected work behind it: its own
//     changes, then the longest of what waits for it (its clones, made one
//     after another on the source's clone lock, and the guests that depend
//     on it). Short work never takes a slot the critical path needs.
//   - Work that waits for a lock (a clone for its source's clone lock, a
//     host step for its node, a download for its volume) gives its slot
//     back while it waits, and takes one again ahead of fresh work once it
//     holds the lock. The locks too go to the longest chain first.
//   - The slots are Parallelism in all (by default PerNodeConcurrency per
//     online node, at most MaxDefaultParallelism), and at most
//     PerNodeConcurrency on one node.
//   - A job that ends keeps its slot for a moment for the longest chain its
//     end made ready, ahead of shorter work already queued (passOn), unless
//     the chains it made ready fill every slot.
//   - Expected durations are built-in estimates per action and feature,
//     replaced by what the guests' records say the steps took on this
//     cluster, and by what this process measured (Durations, took.go).
//   - Clones of one source are made one at a time (clone_vm holds the
//     source's 'disk' lock throughout). Full clones to one storage need no
//     cap of their own: Proxmox VE holds the storage's lock only while it
//     allocates the new volume, not while it copies (pve-container
//     PVE/LXC.pm copy_volume, pve-storage PVE/Storage.pm vdisk_alloc).

const (
	// PerNodeConcurrency is how many guests one node converges at once: the
	// most tasks Proxmox's own bulk actions (startall, stopall, migrateall)
	// run at once on a node, get_max_workers in pve-manager
	// PVE/API2/Nodes.pm: the node's CPU threads less one, at most 8 (unless
	// datacenter.cfg's max_workers says otherwise). Nodes that run guests
	// have more than 8 threads.
	PerNodeConcurrency = 8
	// MaxDefaultParallelism caps the default derived from the cluster.
	MaxDefaultParallelism = 32
)

// DefaultParallelism is the parallelism of an apply on a cluster of the given
// online nodes: PerNodeConcurrency each, at most MaxDefaultParallelism.
func DefaultParallelism(onlineNodes int) int {
	return min(max(onlineNodes, 1)*PerNodeConcurrency, MaxDefaultParallelism)
}

// parallelismOf is the apply's total of slots: the option when set, else the
// default for the cluster's online nodes (the observation's, or where it
// listed none, the nodes the plan's guests are on).
func parallelismOf(set int, obs *Observed, plan *Plan) int {
	if set > 0 {
		return set
	}
	online := map[string]bool{}
	for _, n := range obs.Nodes {
		if n.Online {
			online[n.Name] = true
		}
	}
	if len(obs.Nodes) == 0 && plan != nil {
		for _, g := range plan.Guests {
			if g.Action != NoOp && g.Node != "" {
				online[g.Node] = true
			}
		}
	}
	return DefaultParallelism(len(online))
}

// Durations are the durations this phoenix measured for the plan's steps
// (an action, with its feature), which replace the built-in estimates when
// the engine orders work. One Durations lives as long as the process (the
// run loop keeps one across its passes); it is safe for concurrent use.
type Durations struct {
	mu sync.Mutex
	m  map[string]time.Duration
}

// NewDurations returns an empty set of measurements.
func NewDurations() *Durations { return &Durations{m: map[string]time.Duration{}} }

// observe adds a measurement: the estimate moves halfway to it, so that one
// outlier does not decide the next order alone.
func (d *Durations) observe(step string, took time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.m[step]; ok {
		took = (old + took) / 2
	}
	d.m[step] = took
}

// Get returns the measured duration of a step (stepName: "install vllm").
func (d *Durations) Get(step string) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[step]
	return v, ok
}

// record keeps the duration of each action that ended well.
func (d *Durations) record(ev Event) {
	if ev.Outcome == Done && ev.ActionLevel() && ev.Duration > 0 {
		d.observe(stepName(Change{Action: ev.Action, Feature: ev.Feature}), ev.Duration)
	}
}

// actionEstimates are the built-in expected durations of the actions, as a
// node with local LVM-thin storage takes them (the example world's figures):
// a start includes the wait for the network.
var actionEstimates = map[Action]time.Duration{
	Create: 25 * time.Second, Clone: 5 * time.Second, UpdateConfig: time.Second, Resize: 2 * time.Second,
	Start: 10 * time.Second, Restart: 12 * time.Second, Stop: 5 * time.Second, RenewIdentity: 3 * time.Second,
	InstallFeature: time.Minute, ReinstallFeature: time.Minute, UninstallFeature: 30 * time.Second,
	ConvertToTemplate: 5 * time.Second, Replace: 10 * time.Second, Delete: 5 * time.Second, Adopt: time.Second,
	Directory: time.Second, Firewall: time.Second, Download: time.Minute,
}

// fullCloneEstimate is a full clone's: it copies the disk.
const fullCloneEstimate = 45 * time.Second

// featureEstimates are the built-in features' installs on a gigabit link
// (the downloads are most of them); another feature takes InstallFeature's.
var featureEstimates = map[string]time.Duration{
	"base": 40 * time.Second, "nvidia-driver": 2 * time.Minute, "cuda-toolkit": 200 * time.Second,
	"docker": time.Minute, "nvidia-container-toolkit": 35 * time.Second, "ollama": 45 * time.Second,
	"vllm": 4 * time.Minute,
}

// estimate is the expected duration of one change: measured, or built in.
func estimate(res *spec.Resolution, g GuestPlan, c Change, measured *Durations) time.Duration {
	if measured != nil {
		if d, ok := measured.Get(stepName(c)); ok {
			return d
		}
	}
	switch {
	case c.Action == Clone && res != nil:
		if r, ok := res.Guest(g.Name); ok && r.Settings.CloneMode == spec.CloneFull {
			return fullCloneEstimate
		}
	case (c.Action == InstallFeature || c.Action == ReinstallFeature) && featureEstimates[c.Feature] > 0:
		return featureEstimates[c.Feature]
	}
	return cmp.Or(actionEstimates[c.Action], time.Second)
}

// rankJobs sets each job's rank: its expected work plus the longest chain of
// expected work behind it. A source's clones are made one after another, in
// rank order (the clone lock goes to the longest chain first), so the chain
// behind a template is the latest that one of them ends.
func (e *engine) rankJobs(order []*job, jobs map[string]*job) {
	clones := map[string][]*job{}
	dependents := map[string][]*job{}
	for _, j := range order {
		if j.plan.Action == Delete {
			continue
		}
		if _, ok := jobs[j.plan.Parent]; ok {
			clones[j.plan.Parent] = append(clones[j.plan.Parent], j)
		}
		for _, d := range j.plan.DependsOn {
			dependents[d] = append(dependents[d], j)
		}
	}
	const (
		unseen = iota
		visiting
		ranked
	)
	state := map[*job]int{}
	var rank func(j *job) time.Duration
	rank = func(j *job) time.Duration {
		switch state[j] {
		case ranked:
			return j.rank
		case visiting:
			return 0 // a cycle, which validation refuses: no hang here
		}
		state[j] = visiting
		var own, cloneStep time.Duration
		for _, c := range j.plan.Changes {
			d := estimate(e.res, j.plan, c, e.opts.Durations)
			own += d
			if c.Action == Clone {
				cloneStep = d
			}
		}
		j.work, j.cloneStep = own, cloneStep
		var tail time.Duration
		for _, d := range dependents[j.plan.Name] {
			tail = max(tail, rank(d))
		}
		cs := clones[j.plan.Name]
		for _, c := range cs {
			rank(c)
		}
		slices.SortStableFunc(cs, func(a, b *job) int { return cmp.Compare(b.rank, a.rank) })
		var cloned time.Duration
		for _, c := range cs {
			cloned += c.cloneStep
			tail = max(tail, cloned+c.rank-c.cloneStep)
		}
		j.rank = own + tail
		j.next = append(slices.Clone(cs), dependents[j.plan.Name]...)
		state[j] = ranked
		return j.rank
	}
	for _, j := range order {
		rank(j)
	}
}

// slot is what one job holds of the engine's slots; it travels in the job's
// context so that a lock wait deep in an action can give it back.
type slot struct {
	node string
	rank time.Duration
	held bool
	// locked is the lock the job took before its slot (its source's
	// clone lock), until its clone takes it over (hold).
	locked string
}

type slotKey struct{}

// hold takes the lock of a thing ("clone 901", "host pve1"). When another
// holds it, the job gives its slot back while it waits, and takes one again
// ahead of fresh work once the lock is its. The returned func unlocks.
func (e *engine) hold(ctx context.Context, thing string) (func(), error) {
	l := e.lock(thing)
	s, _ := ctx.Value(slotKey{}).(*slot)
	var rank time.Duration
	if s != nil {
		rank = s.rank
		if s.locked == thing {
			s.locked = ""
			return func() { l.release("") }, nil
		}
	}
	if l.settle > 0 || !l.tryAcquire("") {
		if s != nil && s.held {
			s.held = false
			e.slots.release(s.node)
		}
		if err := l.acquire(ctx, nil, "", rank, false); err != nil {
			return nil, err
		}
	}
	if s != nil && !s.held {
		// Stop does not apply: the change that waited has started.
		if err := e.slots.acquire(ctx, nil, s.node, rank, true); err != nil {
			l.release("")
			return nil, err
		}
		s.held = true
	}
	return func() { l.release("") }, nil
}

// unlockUnused releases the lock a job took before its slot where its clone
// step did not take it over (the clone was there already).
func (e *engine) unlockUnused(ctx context.Context) {
	if s, _ := ctx.Value(slotKey{}).(*slot); s != nil && s.locked != "" {
		e.lock(s.locked).release("")
		s.locked = ""
	}
}

// lock returns the lock that serialises the engine's work on one thing: a
// clone source ("clone 901": Proxmox locks the source for the whole clone),
// a node's host steps ("host pve1": one download at a time).
func (e *engine) lock(thing string) *gate {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.locks[thing] == nil {
		e.locks[thing] = newGate(1, 0)
		if strings.HasPrefix(thing, "clone ") {
			// A template's clones wait for it together: the longest
			// chain among them gets the lock first.
			e.locks[thing].settle = slotSettle
		}
	}
	return e.locks[thing]
}

// gate is a counting semaphore, with at most perNode held for one node when
// perNode is set, whose waiters are served urgent first, then by the longest
// rank, then first come first served. With settle set, a free place is
// handed out that long after the first arrival rather than at once: the
// guests a converged template makes ready arrive together, and the longest
// chain among them must get the place, not the first to wake.
type gate struct {
	mu       sync.Mutex
	total    int
	perNode  int
	settle   time.Duration
	settling bool
	used     int
	usedOn   map[string]int
	queues   map[string]*waitQueue
	seq      uint64
	// kept are free places kept for a chain about to become ready
	// (keepFor): only a waiter of at least their rank, or an urgent one,
	// takes them until they lapse.
	kept []keptPlace
}

// keptPlace is a free place kept for work of at least rank until a moment.
type keptPlace struct {
	rank  time.Duration
	until time.Time
}

// slotSettle is the slots' settle: far below any action's duration, far
// above the time goroutines take to wake.
const slotSettle = 2 * time.Millisecond

func newGate(total, perNode int) *gate {
	return &gate{total: max(total, 1), perNode: perNode, usedOn: map[string]int{}, queues: map[string]*waitQueue{}}
}

// newSlots is the engine's slots.
func newSlots(total int) *gate {
	g := newGate(total, PerNodeConcurrency)
	g.settle = slotSettle
	return g
}

type waiter struct {
	urgent  bool
	rank    time.Duration
	seq     uint64
	granted chan struct{}
	gone    bool
}

// room reports whether a waiter of a rank may take a place on node now:
// one is free that is not kept for a longer chain.
func (g *gate) room(node string, rank time.Duration, urgent bool) bool {
	return g.used+g.keptAbove(rank, urgent) < g.total && (g.perNode <= 0 || g.usedOn[node] < g.perNode)
}

// keptAbove counts the places kept for chains longer than rank; lapsed ones
// are dropped. Urgent work (a job that holds a lock others wait for) is
// never kept out.
func (g *gate) keptAbove(rank time.Duration, urgent bool) int {
	now := time.Now()
	g.kept = slices.DeleteFunc(g.kept, func(k keptPlace) bool { return !now.Before(k.until) })
	if urgent {
		return 0
	}
	n := 0
	for _, k := range g.kept {
		if k.rank > rank {
			n++
		}
	}
	return n
}

// take gives a place on node to a waiter of rank; a kept place it may take
// (the longest such) is taken first.
func (g *gate) take(node string, rank time.Duration, urgent bool) {
	g.used++
	g.usedOn[node]++
	best := -1
	for i, k := range g.kept {
		if (urgent || k.rank <= rank) && (best < 0 || k.rank > g.kept[best].rank) {
			best = i
		}
	}
	if best >= 0 {
		g.kept = slices.Delete(g.kept, best, best+1)
	}
}

// cloneLock is the clone lock a job takes before its slot: that of its
// source, when it is to be cloned.
func cloneLock(j *job) string {
	if j.plan.Source == 0 || !slices.ContainsFunc(j.plan.Changes, func(c Change) bool { return c.Action == Clone }) {
		return ""
	}
	return fmt.Sprintf("clone %d", j.plan.Source)
}

// tryAcquire takes a place when one is free and nobody waits for it.
func (g *gate) tryAcquire(node string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.room(node, 0, false) {
		return false
	}
	g.take(node, 0, false)
	return true
}

// acquire waits for a place; a cancelled context or a closed stop gives up.
func (g *gate) acquire(ctx context.Context, stop <-chan struct{}, node string, rank time.Duration, urgent bool) error {
	g.mu.Lock()
	if g.settle == 0 && g.room(node, rank, urgent) {
		// Whoever waits has no room: it waits for another node, or all
		// places were taken when it came.
		g.take(node, rank, urgent)
		g.mu.Unlock()
		return nil
	}
	g.seq++
	w := &waiter{urgent: urgent, rank: rank, seq: g.seq, granted: make(chan struct{})}
	q := g.queues[node]
	if q == nil {
		q = &waitQueue{}
		g.queues[node] = q
	}
	heap.Push(q, w)
	if g.settle > 0 && !g.settling {
		g.settling = true
		time.AfterFunc(g.settle, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.settling = false
			g.dispatch()
		})
	}
	g.mu.Unlock()
	var err error
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-stop:
		err = ErrStopped
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-w.granted: // granted meanwhile: pass it on
		g.put(node, nil)
	default:
		w.gone = true
	}
	return err
}

// release gives a place back, to the best waiter that has room.
func (g *gate) release(node string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.put(node, nil)
}

// keepFor gives a place back but keeps it, for at most wait, for a waiter
// of at least rank: the head of the chain the place's holder just made
// ready, which reaches the queue a moment later (after its clone lock's and
// the slots' settle). A waiter already queued with a shorter chain must not
// take it in that moment; if the chain does not come within wait, the place
// goes to whoever waits.
func (g *gate) keepFor(node string, rank, wait time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.put(node, &keptPlace{rank: rank, until: time.Now().Add(wait)})
	time.AfterFunc(wait, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.dispatch() // the place lapsed: to whoever waits
	})
}

func (g *gate) put(node string, keep *keptPlace) {
	g.used--
	g.usedOn[node]--
	if g.usedOn[node] <= 0 {
		delete(g.usedOn, node)
	}
	if keep != nil {
		g.kept = append(g.kept, *keep)
	}
	g.dispatch()
}

// dispatch hands the free places to the best waiters that have room.
func (g *gate) dispatch() {
	for g.used < g.total {
		var best *waiter
		var bestNode string
		for n, q := range g.queues {
			for q.Len() > 0 && (*q)[0].gone {
				heap.Pop(q)
			}
			if q.Len() == 0 {
				delete(g.queues, n)
				continue
			}
			if g.perNode > 0 && g.usedOn[n] >= g.perNode {
				continue
			}
			if best == nil || before((*q)[0], best) {
				best, bestNode = (*q)[0], n
			}
		}
		if best == nil || g.used+g.keptAbove(best.rank, best.urgent) >= g.total {
			// Whoever waits next is kept out, and those after it
			// rank lower still.
			return
		}
		heap.Pop(g.queues[bestNode])
		g.take(bestNode, best.rank, best.urgent)
		close(best.granted)
	}
}

func before(a, b *waiter) bool {
	if a.urgent != b.urgent {
		return a.urgent
	}
	if a.rank != b.rank {
		return a.rank > b.rank
	}
	return a.seq < b.seq
}

// waitQueue is a heap of waiters, the next to serve first.
type waitQueue []*waiter

func (q waitQueue) Len() int           { return len(q) }
func (q waitQueue) Less(i, j int) bool { return before(q[i], q[j]) }
func (q waitQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *waitQueue) Push(x any)        { *q = append(*q, x.(*waiter)) }
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return w
}

// handOverWait bounds how long a place is kept for the chain its holder's
// end made ready. The chain's head reaches the slots' queue after its clone
// lock's settle and the slots' settle (2 x slotSettle, the estimate of its
// wait); a head that has not come by many times that (it failed, or waits
// for something else after all) must not keep the place any longer.
const handOverWait = 25 * slotSettle

// passOn gives the slot of a job that ended back. When its end made a chain
// ready (a clone of it, or a guest that depends on it, with nothing else
// left to wait for), the place is kept for the longest such chain for a
// moment: that chain reaches the queue a few milliseconds later, and
// shorter work already queued must not take the slot the critical path
// needs next.
//
// Not when the chains it made ready fill every slot (the wide lab at
// parallelism 8: gpu-cuda's end makes 8 vLLM clones ready): then shorter
// work kept out now waits for a whole chain to end, which lengthens the
// apply by more than letting it go first delays one chain by its own short
// work.
func (e *engine) passOn(j *job, node string, jobs map[string]*job) {
	if next, n := e.madeReady(j, jobs); next != nil && n < e.slots.total {
		e.slots.keepFor(node, next.rank, handOverWait)
		return
	}
	e.slots.release(node)
}

// madeReady is the longest chain that the end of j makes ready and how many
// it makes ready: nil when j failed, a stop came, or what waits for j waits
// for something else too.
func (e *engine) madeReady(j *job, jobs map[string]*job) (*job, int) {
	if j.result.Err != nil || e.stopped(context.Background()) != nil {
		return nil, 0
	}
	var best *job
	n := 0
	for _, next := range j.next {
		if next.plan.Action == Delete || !e.readyAfter(next, j, jobs) {
			continue
		}
		n++
		if best == nil || next.rank > best.rank {
			best = next
		}
	}
	return best, n
}

// readyAfter reports whether n waits for nothing but j: its template and
// what it depends on converged (or have nothing to do), none is left alone.
func (e *engine) readyAfter(n, j *job, jobs map[string]*job) bool {
	for _, name := range append([]string{n.plan.Parent}, n.plan.DependsOn...) {
		if name == "" || name == j.plan.Name {
			continue
		}
		if e.opts.Skip[name] != "" {
			return false
		}
		other, ok := jobs[name]
		if !ok {
			continue
		}
		select {
		case <-other.done:
			if other.result.Err != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}
