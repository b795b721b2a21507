package reconciler

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

const healthSpecs = `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: web}
spec:
  vmid: 101
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  features: [site]
  health:
    - {name: alive, command: "systemctl is-active nginx", interval: 10s, retries: 2, onFailure: restart}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: idle}
spec:
  vmid: 102
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  state: stopped
  health: [{name: alive, tcp: "127.0.0.1:22"}]
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: site}
spec:
  config: {PORT: "8080"}
  steps: [{name: install, check: "test -f /srv/site", apply: "touch /srv/site"}]
  health: [{name: site, http: "http://127.0.0.1:8080/", interval: 10s, onFailure: reapply}]
`

// healthNode answers health scripts with the exit status set per check
// (0 when unset), and records them.
type healthNode struct {
	Node
	mu    sync.Mutex
	exit  map[string]int
	calls []Script
	vmids []int
}

func (n *healthNode) Exec(_ context.Context, vmid int, s Script) (Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, s)
	n.vmids = append(n.vmids, vmid)
	code := n.exit[strings.TrimPrefix(s.Name, HealthScriptPrefix)]
	return Result{ExitCode: code, Stdout: fmt.Sprintf("exit %d\nmore\n", code)}, nil
}

func (n *healthNode) set(check string, code int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.exit[check] = code
}

// rebootCluster records reboots.
type rebootCluster struct {
	Cluster
	mu      sync.Mutex
	reboots []int
	// untagged: the guest lost phoenix's tag since the pass saw it.
	untagged bool
}

func (c *rebootCluster) GuestConfig(context.Context, string, int) (Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.untagged {
		return Config{Values: map[string]string{"tags": "web"}}, nil
	}
	return Config{Values: map[string]string{"tags": ManagedTag}}, nil
}

func (c *rebootCluster) Reboot(_ context.Context, _ string, vmid int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reboots = append(c.reboots, vmid)
	return nil
}

func (c *rebootCluster) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reboots)
}

func healthRig(t *testing.T) (*spec.Resolution, *Observed, *Plan) {
	t.Helper()
	res := resolve(t, healthSpecs)
	obs := converged(res, "")
	obs.Guests[102].Status = "stopped"
	return res, obs, MakePlan(res, obs, PlanOptions{})
}

func TestHealthScript(t *testing.T) {
	res, _, _ := healthRig(t)
	web, _ := res.Guest("web")
	checks := res.HealthChecks(web)
	if len(checks) != 2 {
		t.Fatalf("checks: %+v", checks)
	}
	own, site := HealthScript(checks[0]), HealthScript(checks[1])
	if own.Name != "health/alive" || own.Phase != "check" || own.Body != "systemctl is-active nginx" || own.Timeout != 5*time.Second || len(own.Env) != 0 {
		t.Errorf("own check's script: %+v", own)
	}
	if site.Name != "health/site" || site.Body != healthProbeBody || site.Env["PHOENIX_HEALTH_HTTP"] != "http://127.0.0.1:8080/" ||
		site.Env["PHOENIX_HEALTH_TIMEOUT"] != "5" || site.Env["PHOENIX_HEALTH_FEATURE"] != "site" || site.Env["PORT"] != "8080" {
		t.Errorf("feature check's script: %+v", site)
	}
}

// TestHealthProbe runs the probe script here, with each tool it may find
// in a guest, against a server that answers 200, 302, 404 and a closed port.
func TestHealthProbe(t *testing.T) {
	sh := testtool.Require(t, "sh")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			fmt.Fprintln(w, "Ollama is running")
		case "/moved":
			http.Redirect(w, r, "/", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	hostport := strings.TrimPrefix(srv.URL, "http://")
	// bin holds only the tools of one case, and what the script needs besides.
	bin := func(t *testing.T, tools ...string) string {
		dir := t.TempDir()
		for _, tool := range append(tools, "cut") {
			path := testtool.Require(t, tool)
			if err := os.Symlink(path, filepath.Join(dir, tool)); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	run := func(t *testing.T, path string, env ...string) (int, string) {
		cmd := exec.Command(sh, "-c", healthProbeBody, "health/x", "check")
		cmd.Env = append([]string{"PATH=" + path, "PHOENIX_HEALTH_TIMEOUT=2"}, env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, strings.TrimSpace(string(out))
	}
	for _, tool := range []string{"curl", "wget", "bash"} {
		t.Run("http with "+tool, func(t *testing.T) {
			path := bin(t, tool)
			for url, want := range map[string]int{srv.URL + "/": 0, srv.URL + "/moved": 0, srv.URL + "/nope": 1, "http://" + closed + "/": 1} {
				if tool == "bash" && strings.HasSuffix(url, "/moved") {
					want = 0 // bash reads the 302 itself: a 3xx is healthy
				}
				if code, out := run(t, path, "PHOENIX_HEALTH_HTTP="+url); code != want {
					t.Errorf("%s: exit %d (%s), want %d", url, code, out, want)
				}
			}
		})
	}
	t.Run("https without curl or wget", func(t *testing.T) {
		code, out := run(t, bin(t, "bash"), "PHOENIX_HEALTH_HTTP=https://"+hostport+"/")
		if code != 127 || !strings.Contains(out, "no curl or wget") {
			t.Errorf("exit %d: %s", code, out)
		}
	})
	t.Run("no tool at all", func(t *testing.T) {
		code, out := run(t, bin(t), "PHOENIX_HEALTH_HTTP="+srv.URL+"/")
		if code != 127 || !strings.Contains(out, "no probe tool in the guest") {
			t.Errorf("exit %d: %s", code, out)
		}
		code, out = run(t, bin(t), "PHOENIX_HEALTH_TCP="+hostport)
		if code != 127 || !strings.Contains(out, "no probe tool in the guest") {
			t.Errorf("tcp: exit %d: %s", code, out)
		}
	})
	for _, tool := range []string{"bash", "nc"} {
		t.Run("tcp with "+tool, func(t *testing.T) {
			path := bin(t, tool)
			if code, out := run(t, path, "PHOENIX_HEALTH_TCP="+hostport); code != 0 {
				t.Errorf("open port: exit %d (%s)", code, out)
			}
			if code, out := run(t, path, "PHOENIX_HEALTH_TCP="+closed); code != 1 || !strings.Contains(out, "cannot connect") {
				t.Errorf("closed port: exit %d (%s)", code, out)
			}
		})
	}
}

// TestHealthRunnerRestartsOnceThenBacksOff: a check with onFailure: restart
// reboots its guest once it failed retries times in a row, then not again
// for ActEvery intervals, then after twice that; a check that passes again
// ends it. A stopped guest is not checked.
func TestHealthRunnerRestartsOnceThenBacksOff(t *testing.T) {
	res, obs, plan := healthRig(t)
	node := &healthNode{exit: map[string]int{"alive": 3}}
	cluster := &rebootCluster{}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	results := map[string]int{}
	h := NewHealthRunner(cluster, func(string) (Node, error) { return node, nil }, HealthOptions{
		Now: func() time.Time { return now }, ActEvery: 3,
		Result: func(g string, st CheckStatus) {
			mu.Lock()
			defer mu.Unlock()
			results[g+"/"+st.Name]++
		},
	})
	h.Update(res, obs, plan)
	var restartsAt []int
	for i := range 12 {
		h.RunDue(context.Background())
		if n := cluster.count(); n > len(restartsAt) {
			restartsAt = append(restartsAt, i*10)
		}
		now = now.Add(10 * time.Second)
	}
	// Failures at 0 s and 10 s: the restart; then every 10 s, and the next
	// restart 30 s (3 intervals) later, the one after that 60 s later.
	if fmt.Sprint(restartsAt) != "[10 40 100]" {
		t.Errorf("restarts at %v s, want [10 40 100]", restartsAt)
	}
	for _, vmid := range node.vmids {
		if vmid != 101 {
			t.Fatalf("checked VMID %d: the stopped guest 102 must not be checked", vmid)
		}
	}
	snap := h.Snapshot()
	web := snap["web"]
	if web.Healthy() || web.Checks[0].Failures != 12 || web.Checks[0].Last.Output != "exit 3" || !strings.HasPrefix(web.LastAction, "restarted at") {
		t.Errorf("web after failing: %+v", web)
	}
	if idle := snap["idle"]; idle.NotChecked != "not running" || !idle.Healthy() {
		t.Errorf("idle: %+v", idle)
	}
	node.set("alive", 0)
	h.RunDue(context.Background())
	if web := h.Snapshot()["web"]; !web.Healthy() || web.Checks[0].Failures != 0 || web.Checks[0].FailuresTotal != 12 {
		t.Errorf("web after passing again: %+v", web)
	}
	if fmt.Sprint(results) != "map[web/alive:13 web/site:13]" {
		t.Errorf("results told: %v", results)
	}
	// Healthy again, the backoff starts over: the next failures restart
	// after retries runs.
	node.set("alive", 1)
	for range 2 {
		now = now.Add(10 * time.Second)
		h.RunDue(context.Background())
	}
	if cluster.count() != 4 {
		t.Errorf("%d restarts, want a fourth once healthy and failing again", cluster.count())
	}
}

// TestHealthRestartOnlyPhoenixsGuest: a guest that lost phoenix's tag since
// the pass saw it is not restarted, and the status says why.
func TestHealthRestartOnlyPhoenixsGuest(t *testing.T) {
	res, obs, plan := healthRig(t)
	node := &healthNode{exit: map[string]int{"alive": 3}}
	cluster := &rebootCluster{untagged: true}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	h := NewHealthRunner(cluster, func(string) (Node, error) { return node, nil }, HealthOptions{Now: func() time.Time { return now }})
	h.Update(res, obs, plan)
	for range 4 {
		h.RunDue(context.Background())
		now = now.Add(10 * time.Second)
	}
	if cluster.count() != 0 {
		t.Fatalf("%d reboots of a guest without phoenix's tag", cluster.count())
	}
	if web := h.Snapshot()["web"]; !strings.Contains(web.LastAction, "lost its phoenix-managed tag: not restarting it") {
		t.Errorf("last action %q", web.LastAction)
	}
}

// TestHealthReapplyPlansTheReinstall: a feature's check with onFailure:
// reapply that keeps failing asks for a pass, whose plan reinstalls the
// feature with the check as its reason, and whose apply runs the apply of
// steps whose check passes; a record made since answers the request.
func TestHealthReapplyPlansTheReinstall(t *testing.T) {
	res, obs, plan := healthRig(t)
	node := &healthNode{exit: map[string]int{"site": 7}}
	now := installedAt.Add(time.Hour)
	asked := 0
	h := NewHealthRunner(&rebootCluster{}, func(string) (Node, error) { return node, nil }, HealthOptions{Now: func() time.Time { return now }})
	h.setAskPass(func() { asked++ })
	h.Update(res, obs, plan)
	for range 3 {
		h.RunDue(context.Background())
		now = now.Add(10 * time.Second)
	}
	if asked != 1 {
		t.Fatalf("asked for %d passes, want 1", asked)
	}
	reapply := h.TakeReapply()
	if len(h.TakeReapply()) != 0 {
		t.Error("a request is handed to one pass only")
	}
	p := MakePlan(res, obs, PlanOptions{Reapply: reapply})
	g, _ := p.Guest("web")
	if len(g.Changes) != 1 || g.Changes[0].Action != ReinstallFeature || g.Changes[0].Feature != "site" || !g.Changes[0].Reapply ||
		g.Changes[0].Reason != "health check site failed 3 times in a row" {
		t.Fatalf("plan: %+v", g.Changes)
	}
	var text strings.Builder
	if err := p.WriteText(&text, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "reinstall site: health check site failed 3 times in a row") {
		t.Errorf("the plan does not show the reinstall:\n%s", text.String())
	}
	// The record of the reinstall is newer than the request: done.
	rec := obs.Guests[101].State.Features["site"]
	rec.At = now.Add(time.Second)
	obs.Guests[101].State.Features["site"] = rec
	if g, _ := MakePlan(res, obs, PlanOptions{Reapply: reapply}).Guest("web"); g.Action != NoOp {
		t.Errorf("reinstalled again after the reinstall: %+v", g.Changes)
	}
	// The engine runs the apply although the step's check passes.
	step := &checkPassesNode{}
	e := newEngine(nil, func(string) (Node, error) { return step, nil }, nil, &Observed{}, ApplyOptions{Retry: RetryPolicy{Attempts: 1}})
	s := features.Step{Name: "site/install", Check: "test -f /srv/site", Apply: "touch /srv/site"}
	for _, reapply := range []bool{false, true} {
		step.phases = nil
		if err := e.step(context.Background(), *g, Change{Action: ReinstallFeature, Feature: "site", Reapply: reapply}, step, s); err != nil {
			t.Fatal(err)
		}
		want := "[check]"
		if reapply {
			want = "[check apply]"
		}
		if fmt.Sprint(step.phases) != want {
			t.Errorf("reapply %v ran %v, want %v", reapply, step.phases, want)
		}
	}
}

// checkPassesNode passes every phase and records them.
type checkPassesNode struct {
	Node
	phases []string
}

func (n *checkPassesNode) Exec(_ context.Context, _ int, s Script) (Result, error) {
	n.phases = append(n.phases, s.Phase)
	return Result{}, nil
}

// TestWithHealthTakesReadyAway: a guest that is not Healthy is not Ready;
// one whose checks pass, or that has none, keeps its conditions.
func TestWithHealthTakesReadyAway(t *testing.T) {
	res, obs, plan := healthRig(t)
	statuses := Status(res, obs, plan)
	health := map[string]GuestHealth{"web": {Name: "web", Checks: []CheckStatus{
		{Name: "alive", Retries: 2, Failures: 2, Last: &CheckResult{ExitCode: 3, Output: "inactive"}},
		{Name: "site", Retries: 3, Failures: 1, Healthy: true, Last: &CheckResult{ExitCode: 1}},
	}}}
	out := WithHealth(statuses, health)
	for i, st := range out {
		conds := map[string]Condition{}
		for _, c := range st.Conditions {
			conds[c.Type] = c
		}
		switch st.Name {
		case "web":
			h := conds[CondHealthy]
			if h.Status || !strings.Contains(h.Message, "alive failed 2 times in a row (inactive)") || !strings.Contains(h.Message, "site failed 1 of 3") {
				t.Errorf("web Healthy: %+v", h)
			}
			if st.Ready() || st.Health == nil {
				t.Errorf("web is Ready while not Healthy: %+v", st)
			}
			if !statuses[i].Ready() {
				t.Error("WithHealth changed the statuses it was given")
			}
		default:
			if _, ok := conds[CondHealthy]; ok || st.Ready() != statuses[i].Ready() {
				t.Errorf("%s: %+v", st.Name, st.Conditions)
			}
		}
	}
}
