package reconciler

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Health checks (spec/health.go) run inside running containers: a command,
// or an HTTP or TCP probe, each as the named script health/NAME through the
// node's Exec, under the check's timeout. phoenix status runs each once;
// phoenix run keeps a HealthRunner that runs them on their intervals,
// between and during passes, and carries out their policy: report, restart
// (a reboot through the API, with backoff) or reapply (the next pass
// installs the owning feature again).
//
// Only a guest that is managed, running and converged (the last pass left
// nothing to do on it) is checked: a check of a guest phoenix is still
// working on would report phoenix's work, and pct exec refuses a stopped
// container.

// CondHealthy is the condition of a guest with health checks: no check has
// failed Retries times in a row. A guest that is not Healthy is not Ready.
const CondHealthy = "Healthy"

// HealthScriptPrefix starts the name of every health check's script.
const HealthScriptPrefix = "health/"

//go:embed healthprobe.sh
var healthProbeBody string

// HealthScript is the script that runs a check once: its command, or the
// probe with the URL or host:port in the environment. A feature's check gets
// the feature's parameters, and every check the name of the feature that
// owns it (PHOENIX_HEALTH_FEATURE).
func HealthScript(c spec.EffectiveCheck) Script {
	env := map[string]string{}
	maps.Copy(env, c.Env)
	if c.Feature != "" {
		env["PHOENIX_HEALTH_FEATURE"] = c.Feature
	}
	body := c.Command
	switch {
	case c.HTTP != "":
		body, env["PHOENIX_HEALTH_HTTP"] = healthProbeBody, c.HTTP
	case c.TCP != "":
		body, env["PHOENIX_HEALTH_TCP"] = healthProbeBody, c.TCP
	}
	if body == healthProbeBody {
		env["PHOENIX_HEALTH_TIMEOUT"] = strconv.Itoa(int(math.Ceil(c.Timeout.Seconds())))
	}
	return Script{Name: HealthScriptPrefix + c.Name, Phase: "check", Body: body, Env: env, Timeout: c.Timeout}
}

// CheckResult is one run of a check.
type CheckResult struct {
	OK bool `json:"ok"`
	// ExitCode is the script's; -1 when it could not run (the node did not
	// answer, the container stopped).
	ExitCode int `json:"exitCode"`
	// Output is the first line it printed, or why it could not run.
	Output   string        `json:"output,omitempty"`
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration"`
}

// CheckStatus is what is known of one check of a guest.
type CheckStatus struct {
	Name string `json:"name"`
	// Feature owns the check; empty for the guest's own.
	Feature   string            `json:"feature,omitempty"`
	OnFailure spec.HealthAction `json:"onFailure"`
	Retries   int               `json:"retries"`
	Last      *CheckResult      `json:"last,omitempty"`
	// Failures are the runs that failed in a row; FailuresTotal every run
	// that failed since phoenix started.
	Failures      int `json:"failures"`
	FailuresTotal int `json:"failuresTotal"`
	// Healthy is Failures < Retries.
	Healthy bool `json:"healthy"`
}

// GuestHealth is the health of one guest with checks.
type GuestHealth struct {
	Name string `json:"name"`
	VMID int    `json:"vmid"`
	Node string `json:"node"`
	// NotChecked says why the checks do not run now (not running, not
	// converged, ...); empty while they do.
	NotChecked string        `json:"notChecked,omitempty"`
	Checks     []CheckStatus `json:"checks"`
	// LastAction is what the policy did last: a restart, a reapply asked.
	LastAction string `json:"lastAction,omitempty"`
}

// Healthy reports whether no check is unhealthy.
func (h GuestHealth) Healthy() bool {
	for _, c := range h.Checks {
		if !c.Healthy {
			return false
		}
	}
	return true
}

// message says what is wrong, or what the checks say.
func (h GuestHealth) message() string {
	var bad, ok []string
	for _, c := range h.Checks {
		switch {
		case c.Last == nil:
			ok = append(ok, c.Name+": not run yet")
		case !c.Healthy:
			bad = append(bad, fmt.Sprintf("%s failed %d times in a row (%s)", c.Name, c.Failures, orText(c.Last.Output, "exit "+strconv.Itoa(c.Last.ExitCode))))
		case !c.Last.OK:
			ok = append(ok, fmt.Sprintf("%s failed %d of %d (%s)", c.Name, c.Failures, c.Retries, orText(c.Last.Output, "exit "+strconv.Itoa(c.Last.ExitCode))))
		default:
			ok = append(ok, c.Name+": ok")
		}
	}
	msg := strings.Join(append(bad, ok...), "; ")
	if h.NotChecked != "" {
		msg = "not checked now: " + h.NotChecked + "; " + msg
	}
	if h.LastAction != "" {
		msg += "; " + h.LastAction
	}
	return msg
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// WithHealth adds the Healthy condition to the statuses of guests with
// checks, and takes Ready away from a guest that is not Healthy. It returns
// new statuses; those given are left as they are.
func WithHealth(statuses []GuestStatus, health map[string]GuestHealth) []GuestStatus {
	out := make([]GuestStatus, len(statuses))
	for i, st := range statuses {
		st.Conditions = slices.Clone(st.Conditions)
		out[i] = st
		h, ok := health[st.Name]
		if !ok || len(h.Checks) == 0 {
			continue
		}
		h.Checks = slices.Clone(h.Checks)
		out[i].Health = &h
		healthy := h.Healthy()
		cond := Condition{Type: CondHealthy, Status: healthy, Message: h.message()}
		at := slices.IndexFunc(out[i].Conditions, func(c Condition) bool { return c.Type == CondReady })
		if at < 0 {
			out[i].Conditions = append(out[i].Conditions, cond)
			continue
		}
		out[i].Conditions = slices.Insert(out[i].Conditions, at, cond)
		if ready := &out[i].Conditions[at+1]; !healthy && ready.Status {
			ready.Status, ready.Message = false, "not healthy"
		}
	}
	return out
}

// healthTarget is a guest with checks, and whether they run now.
type healthTarget struct {
	name, node string
	vmid       int
	checks     []spec.EffectiveCheck
	// why they do not run now; empty when they do.
	why string
}

// healthTargets lists the guests with checks from a pass's observation and
// the plan made from it (after its apply).
func healthTargets(res *spec.Resolution, obs *Observed, plan *Plan) []healthTarget {
	var out []healthTarget
	for _, r := range res.Guests {
		checks := res.HealthChecks(r)
		if len(checks) == 0 {
			continue
		}
		t := healthTarget{name: r.Name, node: r.Settings.Node, vmid: r.VMID, checks: checks}
		gp, _ := plan.Guest(r.Name)
		var og *ObservedGuest
		if gp != nil {
			t.vmid, t.node = gp.VMID, gp.Node
			og = obs.Guests[gp.VMID]
		}
		switch {
		case gp == nil || og == nil:
			t.why = "not created yet"
		case !og.Managed || gp.Foreign != "":
			t.why = "not this deployment's guest"
		case og.Template:
			t.why = "a template never runs"
		case og.Status != "running":
			t.why = "not running"
		case len(gp.Errors) > 0:
			t.why = "phoenix cannot converge it: " + gp.Errors[0].Message
		case gp.Action != NoOp:
			t.why = "not converged yet"
		}
		out = append(out, t)
	}
	return out
}

// runCheck runs a check once. Its wait is bounded a little past the
// check's own timeout, for a node that no longer answers.
func runCheck(ctx context.Context, nodes NodeOf, t healthTarget, c spec.EffectiveCheck, now func() time.Time) CheckResult {
	start := now()
	out := CheckResult{At: start, ExitCode: -1}
	node, err := nodes(t.node)
	if err != nil {
		out.Output = err.Error()
		return out
	}
	script := HealthScript(c)
	bctx, cancel := context.WithTimeout(ctx, c.Timeout+ScriptKillAfter+10*time.Second)
	defer cancel()
	res, err := node.Exec(bctx, t.vmid, script)
	out.Duration = now().Sub(start)
	switch {
	case err != nil:
		out.Output = "could not run: " + err.Error()
	case (res.ExitCode == exitTimedOut || res.ExitCode == exitKilled) && out.Duration >= c.Timeout:
		out.ExitCode = res.ExitCode
		out.Output = fmt.Sprintf("timed out after %v", c.Timeout)
	default:
		out.ExitCode = res.ExitCode
		out.OK = res.ExitCode == 0
		out.Output = firstOutputLine(res)
	}
	return out
}

// firstOutputLine is the first line a script printed, stdout first, cut to
// a length a status line holds.
func firstOutputLine(r Result) string {
	for _, s := range []string{r.Stdout, r.Stderr} {
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				if len(l) > 200 {
					l = l[:200] + "..."
				}
				return l
			}
		}
	}
	return ""
}

// CheckHealth runs every check of the guests that can be checked once, at
// once, for phoenix status: a check that fails this once is unhealthy (a
// one-shot has no runs in a row to count).
func CheckHealth(ctx context.Context, nodes NodeOf, res *spec.Resolution, obs *Observed, plan *Plan) map[string]GuestHealth {
	targets := healthTargets(res, obs, plan)
	out := map[string]GuestHealth{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, t := range targets {
		h := GuestHealth{Name: t.name, VMID: t.vmid, Node: t.node, NotChecked: t.why, Checks: make([]CheckStatus, len(t.checks))}
		for i, c := range t.checks {
			h.Checks[i] = CheckStatus{Name: c.Name, Feature: c.Feature, OnFailure: c.OnFailure, Retries: c.Retries, Healthy: true}
		}
		out[t.name] = h
		if t.why != "" {
			continue
		}
		for i, c := range t.checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				r := runCheck(ctx, nodes, t, c, time.Now)
				mu.Lock()
				defer mu.Unlock()
				// The slice, not out: the loop goes on writing the map.
				st := &h.Checks[i]
				st.Last = &r
				if !r.OK {
					st.Failures, st.FailuresTotal, st.Healthy = 1, 1, false
				}
			}()
		}
	}
	wg.Wait()
	return out
}

// ReapplyRequest asks a pass to install a feature again (PlanOptions.Reapply):
// why, and when it was asked; a record of the feature made since answers it.
type ReapplyRequest struct {
	Reason string
	Asked  time.Time
}

// HealthOptions tune a HealthRunner. Zero values take the defaults.
type HealthOptions struct {
	Log *slog.Logger
	Now func() time.Time
	// ActEvery is how many of a failing check's intervals at least pass
	// between two restarts or reapplies of a guest (default 5); the gap
	// doubles after each that did not make the guest healthy, up to
	// ActMax (default 1 h).
	ActEvery int
	ActMax   time.Duration
	// Parallelism bounds the checks run at once (default 4).
	Parallelism int
	// Result, when set, is told about every run (metrics).
	Result func(guest string, st CheckStatus)
}

// HealthRunner runs health checks on their intervals and carries out their
// policies. Update gives it the guests to check after each pass; Run runs
// it until its context ends.
type HealthRunner struct {
	cluster Cluster
	nodes   NodeOf
	opts    HealthOptions

	mu     sync.Mutex
	guests map[string]*guestChecks
	// wake tells Run that the schedule changed; askPass asks the loop for a
	// pass (a reapply), set by the loop.
	wake    chan struct{}
	askPass func()
}

type guestChecks struct {
	target healthTarget
	checks []*checkState
	// nextAct is the earliest time the policy may restart or reapply
	// again; acts counts those made since the guest was last healthy.
	nextAct    time.Time
	acts       int
	lastAction string
	reapply    map[string]ReapplyRequest
}

type checkState struct {
	check   spec.EffectiveCheck
	status  CheckStatus
	next    time.Time
	running bool
}

// NewHealthRunner makes a runner that runs checks through nodes and
// restarts guests through cluster.
func NewHealthRunner(cluster Cluster, nodes NodeOf, opts HealthOptions) *HealthRunner {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ActEvery <= 0 {
		opts.ActEvery = 5
	}
	if opts.ActMax <= 0 {
		opts.ActMax = time.Hour
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 4
	}
	return &HealthRunner{cluster: cluster, nodes: nodes, opts: opts, guests: map[string]*guestChecks{}, wake: make(chan struct{}, 1)}
}

// Update sets the guests to check from a pass: checks that are new are due
// at once, the others keep their results and schedule; guests and checks no
// longer in the specs are forgotten.
func (h *HealthRunner) Update(res *spec.Resolution, obs *Observed, plan *Plan) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.opts.Now()
	seen := map[string]bool{}
	for _, t := range healthTargets(res, obs, plan) {
		seen[t.name] = true
		g := h.guests[t.name]
		if g == nil || g.target.vmid != t.vmid {
			g = &guestChecks{}
			h.guests[t.name] = g
		}
		old := g.checks
		g.target, g.checks = t, nil
		for _, c := range t.checks {
			i := slices.IndexFunc(old, func(s *checkState) bool { return reflect.DeepEqual(s.check, c) })
			if i >= 0 {
				g.checks = append(g.checks, old[i])
				continue
			}
			g.checks = append(g.checks, &checkState{check: c, next: now,
				status: CheckStatus{Name: c.Name, Feature: c.Feature, OnFailure: c.OnFailure, Retries: c.Retries, Healthy: true}})
		}
	}
	for name := range h.guests {
		if !seen[name] {
			delete(h.guests, name)
		}
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Snapshot is what is known of every guest with checks, by name.
func (h *HealthRunner) Snapshot() map[string]GuestHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]GuestHealth{}
	for name, g := range h.guests {
		gh := GuestHealth{Name: name, VMID: g.target.vmid, Node: g.target.node, NotChecked: g.target.why, LastAction: g.lastAction}
		for _, c := range g.checks {
			st := c.status
			if st.Last != nil {
				last := *st.Last
				st.Last = &last
			}
			gh.Checks = append(gh.Checks, st)
		}
		out[name] = gh
	}
	return out
}

// TakeReapply returns the reinstalls the checks asked for, for the next
// pass's plan, and forgets them: a check that still fails asks again once
// its backoff has passed.
func (h *HealthRunner) TakeReapply() map[string]map[string]ReapplyRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]map[string]ReapplyRequest{}
	for name, g := range h.guests {
		if len(g.reapply) > 0 {
			out[name] = g.reapply
			g.reapply = nil
		}
	}
	return out
}

// Run runs the checks as they come due until ctx ends. It returns once
// every check it started has ended.
func (h *HealthRunner) Run(ctx context.Context) {
	for {
		wait := h.untilDue()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-h.wake:
			timer.Stop()
		case <-timer.C:
		}
		h.RunDue(ctx)
	}
}

// untilDue is the wait for the first check due, at most a minute.
func (h *HealthRunner) untilDue() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.opts.Now()
	wait := time.Minute
	for _, g := range h.guests {
		if g.target.why != "" {
			continue
		}
		for _, c := range g.checks {
			if !c.running {
				wait = max(min(wait, c.next.Sub(now)), 0)
			}
		}
	}
	return wait
}

// RunDue runs every check that is due, at once (up to Parallelism), records
// their results and carries out the policies they call for. It returns when
// they have ended.
func (h *HealthRunner) RunDue(ctx context.Context) {
	type job struct {
		g *guestChecks
		t healthTarget
		c *checkState
	}
	var jobs []job
	h.mu.Lock()
	now := h.opts.Now()
	for _, name := range slices.Sorted(maps.Keys(h.guests)) {
		g := h.guests[name]
		if g.target.why != "" {
			continue
		}
		for _, c := range g.checks {
			if !c.running && !now.Before(c.next) {
				c.running = true
				jobs = append(jobs, job{g, g.target, c})
			}
		}
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, h.opts.Parallelism)
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			r := runCheck(ctx, h.nodes, j.t, j.c.check, h.opts.Now)
			<-sem
			if ctx.Err() != nil {
				// Stopped with phoenix: no result, nothing to act on.
				h.mu.Lock()
				j.c.running = false
				h.mu.Unlock()
				return
			}
			h.record(ctx, j.g, j.c, r)
		}()
	}
	wg.Wait()
}

// record keeps a result and carries out the check's policy.
func (h *HealthRunner) record(ctx context.Context, g *guestChecks, c *checkState, r CheckResult) {
	log := h.opts.Log
	h.mu.Lock()
	now := h.opts.Now()
	c.running = false
	c.next = now.Add(c.check.Interval)
	st := &c.status
	st.Last = &r
	was := st.Healthy
	if r.OK {
		st.Failures = 0
	} else {
		st.Failures++
		st.FailuresTotal++
	}
	st.Healthy = st.Failures < st.Retries
	guest, target := g.target.name, g.target
	switch {
	case was && !st.Healthy:
		log.Warn("health check failing", "guest", guest, "vmid", target.vmid, "check", c.check.Name, "failures", st.Failures, "output", r.Output, "onFailure", string(c.check.OnFailure))
	case !was && st.Healthy:
		log.Info("health check passes again", "guest", guest, "vmid", target.vmid, "check", c.check.Name)
	case !r.OK:
		log.Debug("health check failed", "guest", guest, "check", c.check.Name, "failures", st.Failures, "output", r.Output)
	}
	if h.allHealthy(g) {
		g.acts, g.nextAct = 0, time.Time{}
	}
	act := !st.Healthy && c.check.OnFailure != spec.HealthReport && !now.Before(g.nextAct)
	var reason string
	if act {
		gap := c.check.Interval * time.Duration(h.opts.ActEvery) << min(g.acts, 20)
		if gap > h.opts.ActMax || gap <= 0 {
			gap = h.opts.ActMax
		}
		g.acts++
		g.nextAct = now.Add(gap)
		reason = fmt.Sprintf("health check %s failed %d times in a row", c.check.Name, st.Failures)
	}
	status := *st
	h.mu.Unlock()
	if h.opts.Result != nil {
		h.opts.Result(guest, status)
	}
	if !act {
		return
	}
	switch c.check.OnFailure {
	case spec.HealthRestart:
		log.Warn("restarting the guest", "guest", guest, "vmid", target.vmid, "reason", reason)
		// Checked once more right before: a guest that lost phoenix's tag
		// since the pass observed it is not phoenix's to restart.
		cfg, err := h.cluster.GuestConfig(ctx, target.node, target.vmid)
		if err == nil && !managedTags(cfg.Values["tags"]) {
			err = withKind(ErrorChanged, fmt.Errorf("it lost its %s tag: not restarting it", ManagedTag))
		}
		if err == nil {
			err = h.cluster.Reboot(ctx, target.node, target.vmid)
		}
		h.mu.Lock()
		if err != nil {
			g.lastAction = fmt.Sprintf("restart failed at %s (%s): %v", now.Format(time.RFC3339), reason, err)
			log.Error("restart failed", "guest", guest, "vmid", target.vmid, "error", err)
		} else {
			g.lastAction = fmt.Sprintf("restarted at %s: %s", now.Format(time.RFC3339), reason)
			// The guest boots: its checks come due an interval from now.
			for _, o := range g.checks {
				o.next = h.opts.Now().Add(o.check.Interval)
			}
		}
		h.mu.Unlock()
	case spec.HealthReapply:
		log.Warn("asking the next pass to install the feature again", "guest", guest, "vmid", target.vmid, "feature", c.check.Feature, "reason", reason)
		h.mu.Lock()
		if g.reapply == nil {
			g.reapply = map[string]ReapplyRequest{}
		}
		g.reapply[c.check.Feature] = ReapplyRequest{Reason: reason, Asked: now}
		g.lastAction = fmt.Sprintf("reapply of %s asked at %s: %s", c.check.Feature, now.Format(time.RFC3339), reason)
		ask := h.askPass
		h.mu.Unlock()
		if ask != nil {
			ask()
		}
	}
}

func (h *HealthRunner) allHealthy(g *guestChecks) bool {
	for _, c := range g.checks {
		if !c.status.Healthy || c.status.Failures > 0 {
			return false
		}
	}
	return true
}

// setAskPass sets how the runner asks the loop for a pass.
func (h *HealthRunner) setAskPass(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.askPass = f
}
