package reconciler

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// wideLabPlan is a plan shaped like e2e's wide lab: base, two GPU templates
// cloned from it, and 8 clones each of gpu-cuda (vLLM), gpu-docker (ollama)
// and base (docker hosts) over three nodes. took is each guest's fake work
// in units, its clone step cloneUnits of it: about as measured on the
// simulator at parallelism 8, which is not what the built-in estimates say
// (an ollama server takes 1.3 times its estimate, a docker host twice), so
// the ollama servers made ready by gpu-docker's end run until just after
// gpu-cuda's end, one of them in the place of another that ended.
func wideLabPlan() (*Plan, map[string]int) {
	clone := Change{Action: Clone}
	start := Change{Action: Start}
	install := func(f string) Change { return Change{Action: InstallFeature, Feature: f} }
	convert := Change{Action: ConvertToTemplate}
	plan := &Plan{Guests: []GuestPlan{
		{Name: "base", VMID: 900, Node: "pve1", Action: Create, Changes: []Change{{Action: Create}, start, install("base"), convert}},
		{Name: "gpu-cuda", VMID: 901, Node: "pve1", Parent: "base", Source: 900, Action: Clone,
			Changes: []Change{clone, start, install("nvidia-driver"), install("cuda-toolkit"), convert}},
		{Name: "gpu-docker", VMID: 902, Node: "pve1", Parent: "base", Source: 900, Action: Clone,
			Changes: []Change{clone, start, install("nvidia-driver"), install("docker"), install("nvidia-container-toolkit"), convert}},
	}}
	took := map[string]int{"base": 137, "gpu-cuda": 363, "gpu-docker": 251}
	for i := range 8 {
		for k, c := range []struct{ name, from, feature string }{
			{"vllm", "gpu-cuda", "vllm"}, {"ollama", "gpu-docker", "ollama"}, {"docker", "base", "docker"},
		} {
			name := fmt.Sprintf("%s-%d", c.name, i)
			plan.Guests = append(plan.Guests, GuestPlan{Name: name, VMID: 1000 + 100*k + i, Node: fmt.Sprintf("pve%d", i%3+1),
				Parent: c.from, Source: map[string]int{"gpu-cuda": 901, "gpu-docker": 902, "base": 900}[c.from], Action: Clone,
				Changes: []Change{clone, start, install(c.feature)}})
			took[name] = map[string]int{"vllm": 300, "ollama": 80, "docker": 120}[c.name]
		}
	}
	return plan, took
}

const cloneUnits = 5

// runFake applies the plan with fake work (unit long per unit of took): a
// clone holds its source's clone lock for its clone step, as converge does.
func runFake(t *testing.T, plan *Plan, took map[string]int, parallelism int, unit time.Duration) time.Duration {
	t.Helper()
	e := newEngine(nil, nil, nil, &Observed{}, ApplyOptions{Parallelism: parallelism})
	began := time.Now()
	e.work = func(ctx context.Context, j *job) {
		d := time.Duration(took[j.plan.Name]) * unit
		if lock := cloneLock(j); lock != "" {
			unlock, err := e.hold(ctx, lock)
			if err != nil {
				j.result.Err = err
				return
			}
			time.Sleep(cloneUnits * unit)
			unlock()
			d -= cloneUnits * unit
		}
		time.Sleep(d)
	}
	res := e.run(context.Background(), plan)
	if res.Failed() {
		t.Fatalf("the fake apply failed: %+v", res)
	}
	return time.Since(began)
}

// TestWideLabReachesTheBound: on a lab shaped like the wide lab at
// parallelism 8 the makespan is within 1.05x of the critical path (base,
// gpu-cuda, the 8 vLLM clone steps one after another, the last vLLM
// server's own work).
func TestWideLabReachesTheBound(t *testing.T) {
	plan, took := wideLabPlan()
	// Long enough units that the slots' settles (milliseconds each, on the
	// critical path at every clone) and a loaded machine's late wake-ups
	// stay small beside them.
	const unit = 5 * time.Millisecond
	path := time.Duration(took["base"]+took["gpu-cuda"]+8*cloneUnits+took["vllm-0"]-cloneUnits) * unit
	span := runFake(t, plan, took, 8, unit)
	ratio := float64(span) / float64(path)
	if ratio > 1.05 {
		t.Errorf("makespan %v is %.3fx the critical path %v, want at most 1.05x", span, ratio, path)
	}
	t.Logf("makespan %.3fx the critical path", ratio)
}

// TestKeptPlaceLapses: a place kept for a chain that does not come (it
// failed, or waits for something else after all) goes to whoever waits once
// the wait is over, and a longer chain that does come within it takes it
// ahead of shorter work queued before.
func TestKeptPlaceLapses(t *testing.T) {
	g := newSlots(1)
	if err := g.acquire(context.Background(), nil, "pve1", time.Hour, false); err != nil {
		t.Fatal(err)
	}
	short := make(chan time.Time, 1)
	go func() {
		if err := g.acquire(context.Background(), nil, "pve2", time.Second, false); err != nil {
			t.Error(err)
		}
		short <- time.Now()
	}()
	waitQueued(t, g, "pve2", 1)
	const wait = 100 * time.Millisecond
	kept := time.Now()
	g.keepFor("pve1", time.Hour, wait)
	select {
	case <-short:
		t.Fatal("shorter work took the kept place at once")
	case <-time.After(wait / 2):
	}
	select {
	case got := <-short:
		if d := got.Sub(kept); d < wait {
			t.Errorf("the kept place went to shorter work after %v, before its wait of %v", d, wait)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the place kept for a chain that never came was never given to the waiter: it idles")
	}
	g.release("pve2")

	// The chain comes within the wait: it takes the place, and the shorter
	// work queued before it waits for the next one.
	if err := g.acquire(context.Background(), nil, "pve1", time.Hour, false); err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := g.acquire(context.Background(), nil, "pve2", time.Second, false); err != nil {
			t.Error(err)
		}
		short <- time.Now()
	}()
	waitQueued(t, g, "pve2", 1)
	g.keepFor("pve1", time.Hour, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.acquire(ctx, nil, "pve3", time.Hour, false); err != nil {
		t.Fatalf("the chain the place was kept for did not get it: %v", err)
	}
	select {
	case <-short:
		t.Fatal("shorter work got a place while the only one is held")
	case <-time.After(20 * time.Millisecond):
	}
	g.release("pve3")
	<-short
	g.release("pve2")
	if g.used != 0 || len(g.kept) != 0 {
		t.Errorf("%d places used and %d kept after all left, want none", g.used, len(g.kept))
	}
}

// TestNoPlaceKeptForWhatStillWaits: a job's end keeps its place only for a
// guest that waits for nothing else; one that still waits for another
// dependency, or for one that failed, gets nothing kept (the place is not
// left idle), and a failed job keeps nothing.
func TestNoPlaceKeptForWhatStillWaits(t *testing.T) {
	e := newEngine(nil, nil, nil, &Observed{}, ApplyOptions{})
	mk := func(name string, deps ...string) *job {
		return &job{plan: GuestPlan{Name: name, DependsOn: deps, Changes: []Change{{Action: Create}}}, done: make(chan struct{})}
	}
	db, cache, web := mk("db"), mk("cache"), mk("web", "db", "cache")
	jobs := map[string]*job{"db": db, "cache": cache, "web": web}
	e.rankJobs([]*job{db, cache, web}, jobs)
	if got, _ := e.madeReady(db, jobs); got != nil {
		t.Errorf("db's end kept a place for %s, which still waits for cache", got.plan.Name)
	}
	cache.result.Err = fmt.Errorf("failed")
	close(cache.done)
	if got, _ := e.madeReady(db, jobs); got != nil {
		t.Errorf("db's end kept a place for %s, whose other dependency failed", got.plan.Name)
	}
	cache.result.Err = nil
	if got, _ := e.madeReady(db, jobs); got != web {
		t.Errorf("db's end, cache converged: kept for %v, want web", got)
	}
	db.result.Err = fmt.Errorf("failed")
	if got, _ := e.madeReady(db, jobs); got != nil {
		t.Errorf("a failed job kept a place for %s", got.plan.Name)
	}
}

// TestHandOverKeepsTheCriticalSlot: a template whose clone has the long
// chain ends while short work waits for a slot (parallelism 3: the
// template and two short jobs run, a third short job queues). Its slot
// goes to its clone, which reaches the queue a moment later, not to the
// short job queued before: the makespan is the template and its clone
// (400 units), where handing the slot to the short job makes it 450.
func TestHandOverKeepsTheCriticalSlot(t *testing.T) {
	plan := &Plan{Guests: []GuestPlan{
		{Name: "t", VMID: 900, Node: "pve1", Action: Create, Changes: []Change{{Action: Create}, {Action: ConvertToTemplate}}},
		{Name: "a", VMID: 1000, Node: "pve1", Parent: "t", Source: 900, Action: Clone,
			Changes: []Change{{Action: Clone}, {Action: InstallFeature, Feature: "vllm"}}},
	}}
	took := map[string]int{"t": 100, "a": 300}
	for i := range 3 {
		name := fmt.Sprintf("s%d", i)
		plan.Guests = append(plan.Guests, GuestPlan{Name: name, VMID: 1100 + i, Node: "pve1", Action: Create,
			Changes: []Change{{Action: Create}, {Action: Start}}})
		took[name] = 150
	}
	const unit = 3 * time.Millisecond
	path := time.Duration(took["t"]+took["a"]) * unit
	span := runFake(t, plan, took, 3, unit)
	ratio := float64(span) / float64(path)
	if ratio > 1.05 {
		t.Errorf("makespan %v is %.3fx the critical path %v, want at most 1.05x: short work took the template's slot", span, ratio, path)
	}
	t.Logf("makespan %.3fx the critical path", ratio)
}

// TestNoPlaceKeptWhenTheChainsFillTheSlots: a template whose end makes as
// many clones ready as there are slots keeps no place: short work kept out
// would wait for a whole chain to end.
func TestNoPlaceKeptWhenTheChainsFillTheSlots(t *testing.T) {
	tmpl := &job{plan: GuestPlan{Name: "t", Changes: []Change{{Action: Create}}}, done: make(chan struct{})}
	order := []*job{tmpl}
	jobs := map[string]*job{"t": tmpl}
	for i := range 2 {
		c := &job{plan: GuestPlan{Name: fmt.Sprintf("c%d", i), Parent: "t", Changes: []Change{{Action: Clone}}}, done: make(chan struct{})}
		order = append(order, c)
		jobs[c.plan.Name] = c
	}
	for _, c := range []struct {
		slots, kept int
	}{{2, 0}, {3, 1}} {
		e := newEngine(nil, nil, nil, &Observed{}, ApplyOptions{})
		e.rankJobs(order, jobs)
		e.slots = newSlots(c.slots)
		e.slots.tryAcquire("pve1")
		e.passOn(tmpl, "pve1", jobs)
		if len(e.slots.kept) != c.kept || e.slots.used != 0 {
			t.Errorf("%d slots, 2 clones made ready: %d places kept and %d used, want %d kept and none used", c.slots, len(e.slots.kept), e.slots.used, c.kept)
		}
	}
}
