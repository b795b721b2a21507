package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-multierror"

	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// The apply engine. It runs the plan as a graph: a template converges and is
// converted before its clones are cloned, clones of one source are made one
// at a time (Proxmox locks the source for the whole clone), and guests that do
// not depend on each other run at once, up to Parallelism.
//
// Each guest is converged level-triggered: observe it, plan it, do the first
// change, and again, until its plan is empty. Every step therefore starts
// from what is true now, which is what makes a crash at any moment harmless:
// the next run observes and continues. What has been achieved is written into
// the guest itself as soon as it is true: the phoenix-managed tag and the
// state block at creation (in the create or clone request), a feature record
// right after the feature verified.

// ApplyOptions tune the engine. Zero values take the defaults.
type ApplyOptions struct {
	PlanOptions
	// Parallelism bounds the guests converged at once (default 4).
	Parallelism int
	// Retry is the backoff for failures worth retrying: locks, timeouts,
	// dropped connections, a failed install step.
	Retry RetryPolicy
	// WaitTimeout bounds waiting for a started container's network and
	// devices (default 5 minutes).
	WaitTimeout time.Duration
	// Events receives progress; it is called from several goroutines.
	Events func(Event)
	// Now stamps feature records (default time.Now).
	Now func() time.Time
	// Stop, when closed, lets the steps in flight finish and starts no new
	// one: a clean exit on SIGTERM.
	Stop <-chan struct{}
	// Skip names guests to leave alone this time (backing off after failures).
	Skip map[string]string
}

// ErrStopped is the error of a guest left unfinished by a stop.
var ErrStopped = errors.New("stopped before converging")

// RetryPolicy is an exponential backoff with jitter.
type RetryPolicy struct {
	Initial, Max time.Duration
	// MaxElapsed gives up on one step after this long.
	MaxElapsed time.Duration
	// Attempts bounds the tries of a failing install step (default 4).
	Attempts int
}

// Event is one line of progress.
type Event struct {
	Time    time.Time
	Guest   string
	VMID    int
	Node    string
	Step    string // clone, update, install cuda-toolkit, cuda-toolkit/toolkit, ...
	Phase   string // check, apply, verify for script steps
	Outcome string // started, done, skipped, retrying, failed
	Elapsed time.Duration
	Err     error
}

// Outcomes of an Event.
const (
	Started  = "started"
	Done     = "done"
	Skipped  = "skipped"
	Retrying = "retrying"
	Failed   = "failed"
)

// GuestResult is what happened to one guest.
type GuestResult struct {
	Name       string
	VMID       int
	Created    bool
	Configured bool
	Installed  []string
	Deleted    bool
	// Err aggregates what went wrong (nil when the guest converged).
	Err error
}

// ApplyResult is the outcome of an apply.
type ApplyResult struct {
	Guests []GuestResult
}

// Failed reports whether any guest failed.
func (r *ApplyResult) Failed() bool {
	for _, g := range r.Guests {
		if g.Err != nil {
			return true
		}
	}
	return false
}

// Apply converges every guest the plan changes. One guest's failure stops
// that guest and the clones that depend on it; the others go on.
func Apply(ctx context.Context, cluster Cluster, nodes NodeOf, res *spec.Resolution, obs *Observed, plan *Plan, opts ApplyOptions) *ApplyResult {
	e := newEngine(cluster, nodes, res, obs, opts)
	return e.run(ctx, plan)
}

type engine struct {
	cluster Cluster
	nodes   NodeOf
	res     *spec.Resolution
	hosts   map[string]*HostObservation
	opts    ApplyOptions

	slots   chan struct{}
	mu      sync.Mutex
	sources map[int]*sync.Mutex    // per clone source: one clone at a time
	hostOps map[string]*sync.Mutex // per node: one host step (download) at a time
}

func newEngine(cluster Cluster, nodes NodeOf, res *spec.Resolution, obs *Observed, opts ApplyOptions) *engine {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 4
	}
	if opts.Retry.Initial <= 0 {
		opts.Retry.Initial = time.Second
	}
	if opts.Retry.Max <= 0 {
		opts.Retry.Max = 30 * time.Second
	}
	if opts.Retry.MaxElapsed <= 0 {
		opts.Retry.MaxElapsed = 10 * time.Minute
	}
	if opts.Retry.Attempts <= 0 {
		opts.Retry.Attempts = 4
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Events == nil {
		opts.Events = func(Event) {}
	}
	return &engine{
		cluster: cluster, nodes: nodes, res: res, hosts: obs.Hosts, opts: opts,
		slots: make(chan struct{}, opts.Parallelism), sources: map[int]*sync.Mutex{}, hostOps: map[string]*sync.Mutex{},
	}
}

// job is one guest's work and the moment it is over.
type job struct {
	plan   GuestPlan
	done   chan struct{}
	result GuestResult
}

func (e *engine) run(ctx context.Context, plan *Plan) *ApplyResult {
	jobs := map[string]*job{}
	var order []*job
	for _, g := range plan.Guests {
		if g.Action == NoOp || len(g.Errors) > 0 || e.opts.Skip[g.Name] != "" {
			continue
		}
		j := &job{plan: g, done: make(chan struct{}), result: GuestResult{Name: g.Name, VMID: g.VMID}}
		jobs[g.Name] = j
		order = append(order, j)
	}
	var wg sync.WaitGroup
	for _, j := range order {
		wg.Go(func() {
			defer close(j.done)
			// A clone waits for its template's own work, without holding a slot.
			if parent, ok := jobs[j.plan.Parent]; ok && j.plan.Action != Delete {
				select {
				case <-parent.done:
				case <-ctx.Done():
					j.result.Err = ctx.Err()
					return
				}
				if parent.result.Err != nil {
					j.result.Err = fmt.Errorf("its template %s failed", parent.plan.Name)
					e.event(j.plan, "wait for "+parent.plan.Name, "", Failed, 0, j.result.Err)
					return
				}
			}
			select {
			case e.slots <- struct{}{}:
			case <-ctx.Done():
				j.result.Err = ctx.Err()
				return
			case <-e.opts.Stop:
				j.result.Err = ErrStopped
				return
			}
			defer func() { <-e.slots }()
			e.converge(ctx, j)
		})
	}
	wg.Wait()
	out := &ApplyResult{}
	for _, j := range order {
		out.Guests = append(out.Guests, j.result)
	}
	return out
}

func (e *engine) event(g GuestPlan, step, phase, outcome string, elapsed time.Duration, err error) {
	e.opts.Events(Event{Time: time.Now(), Guest: g.Name, VMID: g.VMID, Node: g.Node, Step: step, Phase: phase,
		Outcome: outcome, Elapsed: elapsed, Err: err})
}

// maxSteps bounds one guest's changes in one apply: a plan that keeps asking
// for the same change is a bug or a fight with someone else, not progress.
const maxSteps = 64

// converge observes, plans and does the first change of one guest until its
// plan is empty.
func (e *engine) converge(ctx context.Context, j *job) {
	var errs *multierror.Error
	step := ""
	defer func() {
		j.result.Err = errs.ErrorOrNil()
		if j.result.Err != nil && ctx.Err() == nil && !errors.Is(j.result.Err, ErrStopped) {
			e.recordError(ctx, j.plan, step, j.result.Err)
		}
	}()
	if j.plan.Action == Delete {
		if err := e.delete(ctx, j); err != nil {
			errs = multierror.Append(errs, err)
		}
		return
	}
	seen := map[string]int{}
	for range maxSteps {
		if err := ctx.Err(); err != nil {
			errs = multierror.Append(errs, err)
			return
		}
		select {
		case <-e.opts.Stop:
			errs = multierror.Append(errs, ErrStopped)
			return
		default:
		}
		obs, err := e.observe(ctx, j.plan)
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("observe: %w", err))
			return
		}
		gp, _ := PlanGuest(e.res, obs, j.plan.Name, e.opts.PlanOptions)
		if len(gp.Errors) > 0 {
			for _, msg := range gp.Errors {
				errs = multierror.Append(errs, errors.New(msg))
			}
			e.event(gp, "plan", "", Failed, 0, errs)
			return
		}
		if len(gp.Changes) == 0 {
			if og := obs.Guests[gp.VMID]; og != nil && og.State != nil && og.State.Error != nil {
				e.clearError(ctx, gp)
			}
			return
		}
		c := gp.Changes[0]
		key := stepName(c)
		step = key
		if seen[key]++; seen[key] > 3 {
			errs = multierror.Append(errs, fmt.Errorf("%s: still planned after being done %d times; something else changes the guest back", key, seen[key]-1))
			return
		}
		start := time.Now()
		e.event(gp, key, "", Started, 0, nil)
		err = e.execute(ctx, j, gp, c, obs)
		if err != nil {
			e.event(gp, key, "", Failed, time.Since(start), err)
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", key, err))
			return
		}
		e.event(gp, key, "", Done, time.Since(start), nil)
	}
	errs = multierror.Append(errs, fmt.Errorf("not converged after %d steps", maxSteps))
}

func stepName(c Change) string {
	if c.Feature != "" {
		return c.Action.String() + " " + c.Feature
	}
	return c.Action.String()
}

// observe reads one guest fresh, and its template when it is yet to be cloned.
func (e *engine) observe(ctx context.Context, g GuestPlan) (*Observed, error) {
	obs := &Observed{Guests: map[int]*ObservedGuest{}, Hosts: e.hosts}
	read := func(vmid int, node string) error {
		st, err := e.cluster.Status(ctx, node, vmid)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		cfg, err := e.cluster.GuestConfig(ctx, node, vmid)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		og := &ObservedGuest{GuestSummary: st, Config: cfg}
		og.Node = node
		og.Template = cfg.Values["template"] == "1"
		og.Tags = spec.NormalizeTags([]string{cfg.Values["tags"]})
		og.Managed = slices.Contains(og.Tags, ManagedTag)
		og.User, og.State, og.StateErr = ParseDescription(cfg.Values["description"])
		obs.Guests[vmid] = og
		return nil
	}
	if err := e.retry(ctx, g, "observe", func() error { return read(g.VMID, g.Node) }); err != nil {
		return nil, err
	}
	// The template matters only to a guest that is still to be cloned from it
	// (its records and whether it is converted); otherwise reading it would
	// double the reads of every step.
	if parent, ok := e.res.Guest(g.Parent); ok && obs.Guests[g.VMID] == nil {
		if err := e.retry(ctx, g, "observe "+parent.Name, func() error {
			return read(parent.VMID, parent.Settings.Node)
		}); err != nil {
			return nil, err
		}
	}
	return obs, nil
}

// retry runs op with the engine's backoff while its error is retryable.
func (e *engine) retry(ctx context.Context, g GuestPlan, step string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = e.opts.Retry.Initial, e.opts.Retry.Max, e.opts.Retry.MaxElapsed
	b.RandomizationFactor = 0.5
	err := backoff.RetryNotify(func() error {
		err := op()
		if err != nil && !Retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		e.event(g, step, "", Retrying, wait, err)
	})
	if ctx.Err() != nil && err != nil {
		return ctx.Err()
	}
	return err
}

func (e *engine) execute(ctx context.Context, j *job, g GuestPlan, c Change, obs *Observed) error {
	r, _ := e.res.Guest(g.Name)
	og := obs.Guests[g.VMID]
	switch c.Action {
	case Create:
		if err := e.create(ctx, g, r); err != nil {
			return err
		}
		j.result.Created = true
		return nil
	case Clone:
		if err := e.clone(ctx, g, r, obs); err != nil {
			return err
		}
		j.result.Created = true
		return nil
	case UpdateConfig:
		if err := e.update(ctx, g, og, c.Fields); err != nil {
			return err
		}
		j.result.Configured = true
		return nil
	case Resize:
		return e.retry(ctx, g, "resize", func() error {
			return e.cluster.Resize(ctx, g.Node, g.VMID, "rootfs", fmt.Sprintf("%dG", c.SizeGiB))
		})
	case Start:
		if err := e.retry(ctx, g, "start", func() error { return e.cluster.Start(ctx, g.Node, g.VMID) }); err != nil {
			return err
		}
		return e.waitInitialized(ctx, g, r)
	case Restart:
		if err := e.retry(ctx, g, "restart", func() error { return e.cluster.Reboot(ctx, g.Node, g.VMID) }); err != nil {
			return err
		}
		return e.waitInitialized(ctx, g, r)
	case InstallFeature, ReinstallFeature:
		if err := e.install(ctx, g, r, c.Feature, og); err != nil {
			return err
		}
		j.result.Installed = append(j.result.Installed, c.Feature)
		return nil
	case ConvertToTemplate:
		if og.Status == "running" {
			if err := e.retry(ctx, g, "shutdown", func() error { return e.cluster.Shutdown(ctx, g.Node, g.VMID) }); err != nil {
				return err
			}
		}
		return e.retry(ctx, g, "convert", func() error { return e.cluster.ConvertToTemplate(ctx, g.Node, g.VMID) })
	case Replace:
		// Destruction happens only where the approved plan showed it.
		if j.plan.Action != Replace {
			return fmt.Errorf("a replace of %s was not in the approved plan; run plan and apply again", g.Name)
		}
		return e.destroy(ctx, g, og)
	}
	return fmt.Errorf("the engine cannot %s", c.Action)
}

// rootOnly are the options Proxmox lets only a root@pam ticket set through the
// API; with any other session phoenix sets them with pct set on the node.
func rootOnly(key, value, before string) bool {
	switch {
	case strings.HasPrefix(key, "dev"), key == "hookscript":
		return true
	case key == "features":
		return featuresBeyondNesting(before, value)
	}
	return false
}

func featuresBeyondNesting(before, after string) bool {
	b, a := propString(before), propString(after)
	for _, k := range slices.Concat(slices.Collect(maps.Keys(b)), slices.Collect(maps.Keys(a))) {
		if k != "nesting" && b[k] != a[k] {
			return true
		}
	}
	return false
}

// createOptions are a new guest's options: what the spec sets, the managed
// tag and the state block, so that the guest is phoenix's from its first
// moment. Options only root may set come later, in the update.
func (e *engine) createOptions(r *spec.Resolved, state *State, user string) map[string]string {
	d, _ := desiredConfig(r, e.hosts[r.Settings.Node])
	opts := map[string]string{"unprivileged": boolString(d.unprivileged), "description": RenderDescription(user, state)}
	for k, v := range d.options {
		opts[k] = v
	}
	for i, n := range d.nics {
		opts["net"+strconv.Itoa(i)] = nicValue(n, "")
	}
	if len(d.features) > 0 && !featuresBeyondNesting("", printPropString(d.features)) {
		opts["features"] = printPropString(d.features)
	}
	return opts
}

func (e *engine) create(ctx context.Context, g GuestPlan, r *spec.Resolved) error {
	state := &State{V: 1, Name: r.Name, Kind: string(r.Kind)}
	req := CreateRequest{Node: g.Node, VMID: r.VMID, OSTemplate: r.Settings.OSTemplate, Storage: r.Settings.Storage,
		DiskGiB: r.Settings.DiskGiB, Options: e.createOptions(r, state, "")}
	err := e.retry(ctx, g, "create", func() error { return e.cluster.Create(ctx, req) })
	// After a dropped connection the create may have happened: the next
	// observation tells whose guest holds the VMID.
	if errors.Is(err, ErrAlreadyExists) {
		return nil
	}
	return err
}

func (e *engine) clone(ctx context.Context, g GuestPlan, r *spec.Resolved, obs *Observed) error {
	parent, _ := e.res.Guest(r.Parent)
	src := obs.Guests[parent.VMID]
	if src == nil || !src.Template {
		return fmt.Errorf("template %s is not ready", r.Parent)
	}
	// The clone is born with its own identity and the template's records:
	// the records are what it inherits.
	state := &State{V: 1, Name: r.Name, Kind: string(r.Kind), Parent: r.Parent}
	if src.State != nil {
		state.Features = maps.Clone(src.State.Features)
	}
	req := CloneRequest{Node: parent.Settings.Node, SourceVMID: parent.VMID, NewID: r.VMID, Hostname: r.Name,
		Description: RenderDescription(src.User, state), Full: r.Settings.CloneMode == spec.CloneFull}
	if r.Settings.Node != parent.Settings.Node {
		req.Target = r.Settings.Node
	}
	if req.Full && r.Guest.Spec.Storage != "" {
		req.Storage = r.Settings.Storage
	}
	lock := e.sourceLock(parent.VMID)
	lock.Lock()
	defer lock.Unlock()
	err := e.retry(ctx, g, "clone", func() error { return e.cluster.Clone(ctx, req) })
	if errors.Is(err, ErrAlreadyExists) {
		return nil
	}
	return err
}

func (e *engine) sourceLock(vmid int) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sources[vmid] == nil {
		e.sources[vmid] = &sync.Mutex{}
	}
	return e.sources[vmid]
}

func (e *engine) hostLock(node string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hostOps[node] == nil {
		e.hostOps[node] = &sync.Mutex{}
	}
	return e.hostOps[node]
}

// update applies config fields: root-only ones through pct set on the node
// unless the session is root@pam's ticket, the rest through the API with the
// digest of what was observed.
func (e *engine) update(ctx context.Context, g GuestPlan, og *ObservedGuest, fields []FieldChange) error {
	set, del := map[string]string{}, []string{}
	rootSet, rootDel := map[string]string{}, []string{}
	for _, f := range fields {
		root := !e.cluster.RootSession() && rootOnly(f.Key, f.After, f.Before)
		switch {
		case f.After == "" && root:
			rootDel = append(rootDel, f.Key)
		case f.After == "":
			del = append(del, f.Key)
		case root:
			rootSet[f.Key] = f.After
		default:
			set[f.Key] = f.After
		}
	}
	if len(set) > 0 || len(del) > 0 {
		digest := og.Config.Digest
		err := e.retry(ctx, g, "update", func() error {
			err := e.cluster.SetConfig(ctx, g.Node, g.VMID, set, del, digest)
			if errors.Is(err, ErrConflict) {
				// Changed since observed: the next observation re-plans it.
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	if len(rootSet) > 0 || len(rootDel) > 0 {
		node, err := e.nodes(g.Node)
		if err != nil {
			return err
		}
		return e.retry(ctx, g, "pct set", func() error { return node.SetConfig(ctx, g.VMID, rootSet, rootDel) })
	}
	return nil
}

// waitInitialized polls the started container until its network and devices
// are there: checking once right after the start is the race this avoids.
func (e *engine) waitInitialized(ctx context.Context, g GuestPlan, r *spec.Resolved) error {
	d, _ := desiredConfig(r, e.hosts[r.Settings.Node])
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	return e.wait(ctx, g, node, features.Initialized(d.devices))
}

func (e *engine) wait(ctx context.Context, g GuestPlan, node Node, s features.Step) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.WaitTimeout)
	defer cancel()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = e.opts.Retry.Initial/4, e.opts.Retry.Max/4, 0
	var last string
	for {
		res, err := node.Exec(ctx, g.VMID, script(s, "check"))
		switch {
		case err == nil && res.ExitCode == 0:
			return nil
		case err == nil:
			last = strings.TrimSpace(res.Stderr)
		case !Retryable(err) && !errors.Is(err, ErrNotRunning):
			// Right after a start task ends pct may still find the
			// container not running: that is waited out too.
			return err
		default:
			last = err.Error()
		}
		d := b.NextBackOff()
		select {
		case <-time.After(d):
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: not ready after %v: %s", s.Name, e.opts.WaitTimeout, last)
			}
			return ctx.Err()
		}
	}
}

func script(s features.Step, phase string) Script {
	return Script{Name: s.Name, Phase: phase, Body: s.BodyFor(phase), Env: s.Env}
}

// install runs a feature's steps (check, apply unless the check passes,
// verify) and records it in the guest's state block once it verified.
func (e *engine) install(ctx context.Context, g GuestPlan, r *spec.Resolved, feature string, og *ObservedGuest) error {
	host := e.hosts[r.Settings.Node]
	d, _ := desiredConfig(r, host)
	fctx := features.Context{Guest: r, Params: r.Params[feature], Devices: d.devices, NVIDIA: e.res.Cluster.NVIDIA}
	if host != nil {
		fctx.DriverVersion = host.Info.DriverVersion
	}
	steps, err := features.Steps(e.res.Catalog, feature, fctx)
	if err != nil {
		return err
	}
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if err := e.step(ctx, g, node, s); err != nil {
			return err
		}
	}
	rec := recordFor(e.res, r, feature, host)
	rec.At = e.opts.Now().UTC()
	return e.record(ctx, g, feature, rec)
}

// step runs one step: a wait is polled; otherwise check, and when the check
// fails, push and apply (retried), then verify.
func (e *engine) step(ctx context.Context, g GuestPlan, node Node, s features.Step) error {
	if s.Wait {
		start := time.Now()
		err := e.wait(ctx, g, node, s)
		e.event(g, s.Name, "check", outcome(err, Done), time.Since(start), err)
		return err
	}
	if s.Where == features.OnHost {
		lock := e.hostLock(g.Node)
		lock.Lock()
		defer lock.Unlock()
	}
	run := func(phase string) (Result, error) {
		start := time.Now()
		var res Result
		err := e.retry(ctx, g, s.Name, func() error {
			var err error
			if s.Where == features.OnHost {
				res, err = node.ExecHost(ctx, script(s, phase))
			} else {
				res, err = node.Exec(ctx, g.VMID, script(s, phase))
			}
			return err
		})
		ok := err == nil && res.ExitCode == 0
		switch {
		case err != nil:
			e.event(g, s.Name, phase, Failed, time.Since(start), err)
		case phase == "check" && !ok:
			e.event(g, s.Name, phase, "needed", time.Since(start), nil)
		case !ok:
			e.event(g, s.Name, phase, Failed, time.Since(start), stepError(s, phase, res))
		case phase == "check":
			e.event(g, s.Name, phase, Skipped, time.Since(start), nil)
		default:
			e.event(g, s.Name, phase, Done, time.Since(start), nil)
		}
		return res, err
	}
	res, err := run("check")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		if err := e.applyStep(ctx, g, node, s, run); err != nil {
			return err
		}
	}
	if !s.HasVerify() {
		return nil
	}
	res, err = run("verify")
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return stepError(s, "verify", res)
	}
	return nil
}

// applyStep pushes the step's file and runs its apply, trying again a few
// times: install scripts are idempotent, and the usual failures (a dpkg lock
// held by unattended-upgrades, a mirror hiccup) pass.
func (e *engine) applyStep(ctx context.Context, g GuestPlan, node Node, s features.Step, run func(string) (Result, error)) error {
	var last error
	for attempt := range e.opts.Retry.Attempts {
		if attempt > 0 {
			wait := e.opts.Retry.Initial << (attempt - 1)
			e.event(g, s.Name, "apply", Retrying, wait, last)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if s.Push != nil {
			p := s.Push
			if err := e.retry(ctx, g, "push "+p.Src, func() error {
				return node.Push(ctx, g.VMID, p.Src, p.Dst, os.FileMode(p.Mode))
			}); err != nil {
				return err
			}
		}
		res, err := run("apply")
		if err != nil {
			return err
		}
		if res.ExitCode == 0 {
			return nil
		}
		last = stepError(s, "apply", res)
	}
	return last
}

func outcome(err error, ok string) string {
	if err != nil {
		return Failed
	}
	return ok
}

// stepError is a script's failure, with the end of what it said.
func stepError(s features.Step, phase string, res Result) error {
	msg := strings.TrimSpace(res.Stderr)
	if msg == "" {
		msg = strings.TrimSpace(res.Stdout)
	}
	if lines := strings.Split(msg, "\n"); len(lines) > 5 {
		msg = strings.Join(lines[len(lines)-5:], "\n")
	}
	return fmt.Errorf("%s %s exited %d: %s", s.Name, phase, res.ExitCode, msg)
}

// record writes a feature record into the guest's state block as soon as the
// feature verified.
func (e *engine) record(ctx context.Context, g GuestPlan, feature string, rec FeatureRecord) error {
	r, _ := e.res.Guest(g.Name)
	return e.retry(ctx, g, "record "+feature, func() error {
		return e.updateState(ctx, g, func(s *State) bool {
			if s.Features == nil {
				s.Features = map[string]FeatureRecord{}
			}
			s.Features[feature] = rec
			return true
		}, &State{V: 1, Name: r.Name, Kind: string(r.Kind), Parent: r.Parent})
	})
}

// recordError writes a guest's failure into its state block, so that phoenix
// status can tell it later without state of its own. It is best effort: the
// failure is reported anyway.
func (e *engine) recordError(ctx context.Context, g GuestPlan, step string, err error) {
	msg := err.Error()
	if len(msg) > 1000 {
		msg = msg[:1000] + "..."
	}
	_ = e.updateState(ctx, g, func(s *State) bool {
		s.Error = &StateError{At: e.opts.Now().UTC(), Step: step, Message: msg}
		return true
	}, nil)
}

func (e *engine) clearError(ctx context.Context, g GuestPlan) {
	_ = e.updateState(ctx, g, func(s *State) bool {
		changed := s.Error != nil
		s.Error = nil
		return changed
	}, nil)
}

// updateState reads a managed guest's state block, changes it and writes it
// back, keeping the user's text, with the digest it read. A guest without a
// block gets fresh when given, else is left alone.
func (e *engine) updateState(ctx context.Context, g GuestPlan, change func(*State) bool, fresh *State) error {
	cfg, err := e.cluster.GuestConfig(ctx, g.Node, g.VMID)
	if err != nil {
		return err
	}
	if !slices.Contains(spec.NormalizeTags([]string{cfg.Values["tags"]}), ManagedTag) {
		return nil
	}
	user, state, _ := ParseDescription(cfg.Values["description"])
	if state == nil {
		if fresh == nil {
			return nil
		}
		state = fresh
	}
	if !change(state) {
		return nil
	}
	return e.cluster.SetConfig(ctx, g.Node, g.VMID, map[string]string{"description": RenderDescription(user, state)}, nil, cfg.Digest)
}

// destroy stops and deletes a guest that is replaced.
func (e *engine) destroy(ctx context.Context, g GuestPlan, og *ObservedGuest) error {
	if og == nil {
		return nil
	}
	if og.Config.Values["protection"] == "1" {
		return fmt.Errorf("%s has protection: 1; phoenix never deletes it", g.Name)
	}
	if og.Status == "running" {
		if err := e.retry(ctx, g, "shutdown", func() error { return e.cluster.Shutdown(ctx, g.Node, g.VMID) }); err != nil {
			return err
		}
	}
	return e.retry(ctx, g, "delete", func() error { return e.cluster.Delete(ctx, g.Node, g.VMID) })
}

// delete removes a managed guest no spec wants (--prune).
func (e *engine) delete(ctx context.Context, j *job) error {
	g := j.plan
	start := time.Now()
	e.event(g, "delete", "", Started, 0, nil)
	st, err := e.cluster.Status(ctx, g.Node, g.VMID)
	if errors.Is(err, ErrNotFound) {
		j.result.Deleted = true
		return nil
	}
	if err != nil {
		return err
	}
	cfg, err := e.cluster.GuestConfig(ctx, g.Node, g.VMID)
	if err != nil {
		return err
	}
	if !slices.Contains(spec.NormalizeTags([]string{cfg.Values["tags"]}), ManagedTag) {
		return fmt.Errorf("%s lost its %s tag: not deleting it", g.Name, ManagedTag)
	}
	err = e.destroy(ctx, g, &ObservedGuest{GuestSummary: st, Config: cfg})
	e.event(g, "delete", "", outcome(err, Done), time.Since(start), err)
	j.result.Deleted = err == nil
	return err
}
