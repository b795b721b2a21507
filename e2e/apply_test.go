package e2e

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/e2e/suite"
	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/providers/ssh"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// rig is the examples' cluster in the simulator, with the real providers
// talking to it over HTTPS and SSH.
type rig struct {
	t       testing.TB
	sim     *sim.Sim
	res     *spec.Resolution
	cluster *proxmox.Client
	pool    *ssh.Pool
	// creds are the canary credentials the rig runs with; out collects
	// what phoenix wrote, to look for them in (canary_test.go).
	creds sim.Credentials
	out   *outputs
}

func newRig(t *testing.T, edit func(*sim.World)) *rig { return newRigTB(t, edit) }

func newRigTB(t testing.TB, edit func(*sim.World)) *rig { return newRigAuth(t, edit, false) }

// newRigAuth connects with root@pam's password (a ticket) instead of the
// token when ticket is set.
func newRigAuth(t testing.TB, edit func(*sim.World), ticket bool) *rig {
	t.Helper()
	return newRigAt(t, examplesDir, edit, ticket)
}

// examplesDir is the example homelab's spec set, with its world.yaml.
const examplesDir = "../examples/homelab"

// newRigAt is a rig for the spec set in dir, on the simulator of the
// world.yaml beside its specs.
func newRigAt(t testing.TB, dir string, edit func(*sim.World), ticket bool) *rig {
	t.Helper()
	w, err := sim.LoadWorld(filepath.Join(dir, "world.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w.Spec.TimeScale = 0.002
	w.Spec.Latency = 0
	if edit != nil {
		edit(w)
	}
	if err := sim.CheckWorld(w); err != nil {
		t.Fatal(err)
	}
	creds, err := sim.CanaryCredentials()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(w, sim.Options{Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	res, err := spec.LoadResolved(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := s.Env()
	// The key itself, as terraform-provider-proxmox users give it.
	env[ssh.EnvPrivateKey] = string(creds.ClientKey)
	if ticket {
		delete(env, proxmox.EnvToken)
	}
	out := &outputs{}
	client, pool := suite.Connect(t, env, res, out.logger())
	r := &rig{t: t, sim: s, res: res, cluster: client, pool: pool, creds: creds, out: out}
	// Cleanups run last-in first-out: this one while the simulator serves.
	t.Cleanup(r.checkLeaks)
	return r
}

func (r *rig) node(name string) (reconciler.Node, error) { return r.pool.Node(name) }

func (r *rig) options() reconciler.ApplyOptions {
	return reconciler.ApplyOptions{
		Parallelism: 4,
		Retry:       reconciler.RetryPolicy{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: time.Minute, Attempts: 6},
		WaitTimeout: time.Minute,
		Log:         r.out.logger(), Events: r.out.event,
	}
}

// plan observes and plans.
func (r *rig) plan(opts reconciler.PlanOptions) (*reconciler.Observed, *reconciler.Plan) {
	r.t.Helper()
	obs, err := reconciler.Observe(context.Background(), r.cluster, r.node, r.res, reconciler.ObserveOptions{Log: r.out.logger()})
	if err != nil {
		r.t.Fatalf("observe: %v", err)
	}
	plan := reconciler.MakePlan(r.res, obs, opts)
	r.recordPlan(plan)
	return obs, plan
}

// apply plans and applies once, and checks that the apply kept to the plan
// (checkContract).
func (r *rig) apply(ctx context.Context, opts reconciler.ApplyOptions) *reconciler.ApplyResult {
	r.t.Helper()
	obs, plan := r.plan(opts.PlanOptions)
	from := r.lastSeq()
	res := reconciler.Apply(ctx, r.cluster, r.node, r.res, obs, plan, opts)
	r.recordApply(obs, plan, res)
	r.checkContract(plan, res, from)
	return res
}

func (r *rig) mustConverge(opts reconciler.ApplyOptions) {
	r.t.Helper()
	res := r.apply(context.Background(), opts)
	for _, g := range res.Guests {
		if g.Err != nil {
			r.t.Errorf("%s: %v", g.Name, g.Err)
		}
	}
	if _, p := r.plan(opts.PlanOptions); p.HasChanges() || p.HasErrors() {
		var b strings.Builder
		_ = p.WriteText(&b, reconciler.TextOptions{})
		r.t.Fatalf("not converged after apply:\n%s", b.String())
	}
}

// events returns the journal from seq on.
func (r *rig) events(from int) []sim.Event {
	var out []sim.Event
	for _, e := range r.sim.Journal() {
		if e.Seq > from {
			out = append(out, e)
		}
	}
	return out
}

func (r *rig) lastSeq() int {
	j := r.sim.Journal()
	if len(j) == 0 {
		return 0
	}
	return j[len(j)-1].Seq
}

// first returns the seq of the first event that matches, or 0.
func first(events []sim.Event, match func(sim.Event) bool) int {
	for _, e := range events {
		if match(e) {
			return e.Seq
		}
	}
	return 0
}

func execOK(vmid int, name, phase string) func(sim.Event) bool {
	return func(e sim.Event) bool {
		return e.Kind == "exec" && e.VMID == vmid && e.Name == name && e.Phase == phase && e.OK
	}
}

func TestApplyExamplesFromEmpty(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	j := r.events(0)

	for _, g := range r.res.Guests {
		// Driver installed and verified before anything of CUDA, on every guest
		// that installs both.
		if slices.Contains(g.Install, spec.FeatureNVIDIADriver) {
			verified := first(j, execOK(g.VMID, "nvidia-driver/userspace", "verify"))
			installed := first(j, execOK(g.VMID, "nvidia-driver/userspace", "apply"))
			if verified == 0 || installed == 0 {
				t.Errorf("%s: the userspace driver was not installed and verified", g.Name)
			}
			if cuda := first(j, func(e sim.Event) bool {
				return e.VMID == g.VMID && e.Kind == "exec" && strings.HasPrefix(e.Name, "cuda-toolkit/") && e.Phase == "apply"
			}); cuda != 0 && cuda < verified {
				t.Errorf("%s: CUDA (seq %d) before the driver was verified (seq %d)", g.Name, cuda, verified)
			}
			// Devices configured before the container started for the driver, and
			// seen inside before the driver step.
			devices := first(j, func(e sim.Event) bool { return e.VMID == g.VMID && e.Name == "pct set" && e.OK })
			visible := first(j, func(e sim.Event) bool {
				return e.VMID == g.VMID && e.Name == "phoenix/initialized" && e.OK
			})
			if devices == 0 || visible == 0 || devices > visible || visible > installed {
				t.Errorf("%s: devices set at %d, visible at %d, driver installed at %d", g.Name, devices, visible, installed)
			}
		}
		// Nothing a guest inherited is installed on it again.
		for _, f := range g.Inherited {
			if seq := first(j, func(e sim.Event) bool {
				return e.VMID == g.VMID && e.Kind == "exec" && strings.HasPrefix(e.Name, f+"/") && e.Phase == "apply"
			}); seq != 0 {
				t.Errorf("%s inherited %s, yet installed it (seq %d)", g.Name, f, seq)
			}
		}
		// A template is converted before its first clone.
		if g.IsTemplate() && len(g.Children) > 0 {
			converted := first(j, func(e sim.Event) bool {
				return e.Kind == "task" && e.Name == "vztemplate" && e.VMID == g.VMID && e.Detail == "OK"
			})
			cloned := first(j, func(e sim.Event) bool {
				return e.Kind == "api" && e.Name == fmt.Sprintf("POST /nodes/%s/lxc/%d/clone", g.Settings.Node, g.VMID)
			})
			if converted == 0 || cloned == 0 || cloned < converted {
				t.Errorf("%s converted at %d, first cloned at %d", g.Name, converted, cloned)
			}
		}
	}

	t.Run("a second apply writes nothing and installs nothing", func(t *testing.T) {
		from := r.lastSeq()
		res := r.apply(context.Background(), r.options())
		if len(res.Guests) != 0 {
			t.Errorf("second apply worked on %d guests", len(res.Guests))
		}
		for _, e := range r.events(from) {
			if e.Kind == "api" && !strings.HasPrefix(e.Name, "GET ") || e.Kind == "exec" && e.Phase == "apply" || e.Kind == "task" {
				t.Errorf("second apply: %s %s %s", e.Kind, e.Name, e.Phase)
			}
		}
	})

	t.Run("a clone given GPU 1 of a template with GPUs 0,1 has only GPU 1", func(t *testing.T) {
		cfg, err := r.cluster.GuestConfig(context.Background(), "pve1", 955)
		if err != nil {
			t.Fatal(err)
		}
		var devs []string
		for k, v := range cfg.Values {
			if strings.HasPrefix(k, "dev") {
				devs = append(devs, v)
			}
		}
		slices.Sort(devs)
		// Passed with the host nodes' mode, so that every user inside
		// (ollama's service user) reaches the GPU.
		want := []string{"/dev/nvidia-modeset,mode=0666", "/dev/nvidia-uvm,mode=0666", "/dev/nvidia-uvm-tools,mode=0666",
			"/dev/nvidia1,mode=0666", "/dev/nvidiactl,mode=0666"}
		if !slices.Equal(devs, want) {
			t.Errorf("ollama's devices %v, want %v", devs, want)
		}
	})
}

func TestApplyWaitsOutTheStartRace(t *testing.T) {
	r := newRig(t, func(w *sim.World) {
		// A network that takes long to come up, devices that take long to appear.
		w.Spec.Durations.NetworkUp = [2]sim.Duration{sim.Duration(20 * time.Second), sim.Duration(30 * time.Second)}
		w.Spec.Durations.DevicesVisible = [2]sim.Duration{sim.Duration(25 * time.Second), sim.Duration(35 * time.Second)}
	})
	r.mustConverge(r.options())
	j := r.events(0)
	waited := 0
	for _, e := range j {
		if e.Name == "phoenix/initialized" && !e.OK {
			waited++
		}
		if e.Kind == "exec" && e.Phase == "apply" && !e.OK {
			t.Errorf("%d %s failed: %s (the race was not waited out)", e.VMID, e.Name, e.Detail)
		}
	}
	if waited == 0 {
		t.Error("no failed readiness check: the slow start was not exercised")
	}
}

func ptr[T any](v T) *T { return &v }

// fingerprint is a cluster's end state, without what differs by chance (MAC
// addresses, digests, install times).
func (r *rig) fingerprint() map[int]string {
	out := map[int]string{}
	var guests []reconciler.GuestSummary
	r.read(func() (err error) { guests, err = r.cluster.Guests(context.Background()); return err })
	for _, g := range guests {
		var cfg reconciler.Config
		r.read(func() (err error) { cfg, err = r.cluster.GuestConfig(context.Background(), g.Node, g.VMID); return err })
		var lines []string
		for _, k := range slices.Sorted(maps.Keys(cfg.Values)) {
			v := cfg.Values[k]
			switch {
			case k == "description":
				_, st, _ := reconciler.ParseDescription(v)
				if st != nil {
					for _, f := range slices.Sorted(maps.Keys(st.Features)) {
						rec := st.Features[f]
						lines = append(lines, fmt.Sprintf("record %s vmid=%d version=%s params=%v", f, rec.VMID, rec.Version, rec.Params))
					}
				}
				continue
			case strings.HasPrefix(k, "net"):
				v = strings.Join(slices.DeleteFunc(strings.Split(v, ","), func(p string) bool { return strings.HasPrefix(p, "hwaddr=") }), ",")
			}
			lines = append(lines, k+"="+v)
		}
		out[g.VMID] = g.Status + "\n" + strings.Join(lines, "\n")
	}
	return out
}

// read retries a read through injected faults.
func (r *rig) read(fn func() error) {
	r.t.Helper()
	for range 50 {
		err := fn()
		if err == nil {
			return
		}
		if !reconciler.Retryable(err) {
			r.t.Fatal(err)
		}
	}
	r.t.Fatal("read failed 50 times")
}

func TestFaultsConvergeToTheSameEndState(t *testing.T) {
	clean := newRig(t, nil)
	clean.mustConverge(clean.options())
	want := clean.fingerprint()

	faulty := newRig(t, func(w *sim.World) {
		w.Spec.Faults.API = sim.APIFaults{Error500: 0.07, LockTimeout: 0.07, DropConnection: 0.06}
		w.Spec.Faults.Exec.Failure = 0.1
	})
	// Faults may fail one apply; run again, as the loop would.
	for range 3 {
		res := faulty.apply(context.Background(), faulty.options())
		if !res.Failed() {
			break
		}
	}
	faulty.mustConverge(faulty.options())
	got := faulty.fingerprint()
	for vmid, w := range want {
		if got[vmid] != w {
			t.Errorf("guest %d differs after faults:\n--- clean\n%s\n--- faulty\n%s", vmid, w, got[vmid])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d guests after faults, %d without", len(got), len(want))
	}
}

func TestAFailingGuestDoesNotStopTheOthers(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.Faults.Exec.Scripts = map[string]float64{"nginx/install": 1} })
	res := r.apply(context.Background(), r.options())
	var failed []string
	for _, g := range res.Guests {
		if g.Err != nil {
			failed = append(failed, g.Name)
			if !strings.Contains(g.Err.Error(), "nginx/install apply exited 100") || !strings.Contains(g.Err.Error(), "Could not get lock") {
				t.Errorf("%s failed without its cause: %v", g.Name, g.Err)
			}
		}
	}
	if !slices.Equal(failed, []string{"nginx"}) {
		t.Errorf("failed guests %v, want only nginx", failed)
	}
	_, p := r.plan(reconciler.PlanOptions{})
	for _, g := range p.Guests {
		if g.Name != "nginx" && g.Action != reconciler.NoOp {
			t.Errorf("%s not converged: %v", g.Name, g.Action)
		}
	}
}

// TestCrashAndRerun kills the apply at different moments and runs it again:
// the end state is the same, no guest is made twice, nothing that finished is
// installed again.
func TestCrashAndRerun(t *testing.T) {
	for _, after := range []time.Duration{150 * time.Millisecond, 600 * time.Millisecond, 1500 * time.Millisecond} {
		t.Run(after.String(), func(t *testing.T) {
			r := newRig(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), after)
			r.apply(ctx, r.options())
			cancel()
			r.mustConverge(r.options())
			applied := map[string]int{}
			creates := map[string]int{}
			for _, e := range r.events(0) {
				if e.Kind == "exec" && e.Phase == "apply" && e.OK {
					applied[fmt.Sprintf("%d %s", e.VMID, e.Name)]++
				}
				if e.Kind == "task" && (e.Name == "vzcreate" || e.Name == "vzclone") && strings.HasPrefix(e.Detail, "started") {
					creates[e.Detail[strings.Index(e.Detail, ":"):]]++
				}
			}
			for step, n := range applied {
				// Each file write stages its own copy on the node; the
				// writes themselves are the guests' phoenix/file.
				if n > 1 && !strings.HasSuffix(step, "phoenix/initialized") && step != "0 phoenix/stage-file" {
					t.Errorf("%s applied %d times", step, n)
				}
			}
			guests, _ := r.cluster.Guests(context.Background())
			if len(guests) != len(r.res.Guests)+1 { // + the unmanaged pihole
				t.Errorf("%d guests, want %d", len(guests), len(r.res.Guests)+1)
			}
		})
	}
}

// TestRootTicketSetsDevicesThroughTheAPI: with root@pam's ticket the
// passthrough goes through the API; with a token it went through pct set.
func TestRootTicketSetsDevicesThroughTheAPI(t *testing.T) {
	r := newRigAuth(t, nil, true)
	r.mustConverge(r.options())
	viaAPI := 0
	for _, e := range r.events(0) {
		if e.Name == "pct set" {
			t.Errorf("pct set used with a root ticket: %+v", e)
		}
		if e.Kind == "api" && e.OK && e.Name == "PUT /nodes/pve1/lxc/901/config" {
			viaAPI++
		}
	}
	if viaAPI == 0 {
		t.Error("no config update of gpu-base through the API")
	}
}

// TestRunfileDigest: a configured sha256 is checked when the node downloads
// the runfile; a wrong one stops the GPU guests and nothing else.
func TestRunfileDigest(t *testing.T) {
	good := newRig(t, nil)
	good.res.Cluster.NVIDIA.SHA256 = map[string]string{"580.76.05": sim.RunfileSHA256("580.76.05")}
	good.mustConverge(good.options())

	bad := newRig(t, nil)
	bad.res.Cluster.NVIDIA.SHA256 = map[string]string{"580.76.05": strings.Repeat("0", 64)}
	opts := bad.options()
	opts.Retry.Attempts = 1
	res := bad.apply(context.Background(), opts)
	failed := map[string]string{}
	for _, g := range res.Guests {
		if g.Err != nil {
			failed[g.Name] = g.Err.Error()
		}
	}
	if !strings.Contains(failed["gpu-base"], "does not match") {
		t.Errorf("gpu-base: %q, want the digest mismatch", failed["gpu-base"])
	}
	if _, ok := failed["nginx"]; ok || len(failed) != 4 {
		t.Errorf("failed %v: want gpu-base and the three guests cloned from it", failed)
	}
}
