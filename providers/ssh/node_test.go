package ssh

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/internal/nodecmd"
	"github.com/phoenixhv/phoenix/reconciler"
)

func TestExecNamedScripts(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	n := c.node("pve1")

	// A script the simulator does not model: its check fails until its
	// apply has run. The body is full of what a shell would act on; it
	// must arrive as bytes, or the simulator (which parses the command
	// line with real quoting rules) refuses the line.
	s := reconciler.Script{Name: "test/quoting", Body: "echo 'it''s' \"$(rm -rf /)\" `id` \\\n ünïcødé 🔥; exit 3 # && || > /etc/passwd\n",
		Env: map[string]string{"QUOTE": "it's", "SUBST": "$(reboot)", "NL": "a\nb", "EMPTY": ""}}
	for _, step := range []struct {
		phase string
		want  int
	}{{"check", 1}, {"apply", 0}, {"check", 0}, {"verify", 0}} {
		s.Phase = step.phase
		res, err := n.Exec(ctx, 100, s)
		if err != nil || res.ExitCode != step.want {
			t.Fatalf("%s: %+v, %v; want exit %d", step.phase, res, err, step.want)
		}
	}
	var phases []string
	for _, e := range c.events("test/quoting") {
		if e.VMID != 100 || e.Node != "pve1" {
			t.Errorf("event on %s/%d", e.Node, e.VMID)
		}
		phases = append(phases, e.Phase)
	}
	if diff := cmp.Diff([]string{"check", "apply", "check", "verify"}, phases); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}

	// Parameters travel as environment variables: the download step finds
	// its URL and file name in them.
	dl := reconciler.Script{Name: "nvidia-driver/download", Phase: "apply", Body: "curl ...", Env: map[string]string{
		"NVIDIA_VERSION": "580.76.05", "NVIDIA_RUNFILE": "/var/lib/phoenix/NVIDIA-Linux-x86_64-580.76.05.run",
		"NVIDIA_URL": "https://download.nvidia.com/XFree86/Linux-x86_64/580.76.05/NVIDIA-Linux-x86_64-580.76.05.run"}}
	if res, err := n.ExecHost(ctx, dl); err != nil || res.ExitCode != 0 {
		t.Fatalf("download: %+v, %v", res, err)
	}
	dl.Phase = "check"
	if res, err := n.ExecHost(ctx, dl); err != nil || res.ExitCode != 0 {
		t.Errorf("download check after apply: %+v, %v", res, err)
	}
	// A failing step is a result with the step's own exit status and words.
	dl.Phase, dl.Env["NVIDIA_URL"] = "apply", "https://example.com/elsewhere.run"
	res, err := n.ExecHost(ctx, dl)
	if err != nil || res.ExitCode != 1 || !strings.Contains(res.Stderr, "tried https://example.com/elsewhere.run (curl: (22)") {
		t.Errorf("download from a bad URL: %+v, %v; want exit 1 naming the source tried", res, err)
	}

	// The container must see the devices it is told to wait for; it has
	// none passed through, so the check fails and says why.
	res, err = n.Exec(ctx, 100, reconciler.Script{Name: "phoenix/initialized", Phase: "check", Body: "test -c ...",
		Env: map[string]string{"PHOENIX_DEVICES": "/dev/nvidia0 /dev/nvidiactl"}})
	if err != nil || res.ExitCode != 1 {
		t.Errorf("initialized check without devices: %+v, %v; want exit 1", res, err)
	}
}

func TestArgvArrivesAsLiteralBytes(t *testing.T) {
	c := startCluster(t)
	n := c.node("pve1")
	words := []string{"it's", `"double"`, "$(rm -rf /)", "`id`", "${HOME}", "a\nb", "tab\there", "ünïcødé 🔥",
		"*", "?", "[a]", "~", "!", "#x", "a;b", "a&&b", "a|b", "<x>", "\\", "", " ", "--", "x=y", "'", "\x01\x7f"}
	argv, err := nodecmd.PctExecArgv(100, append([]string{"echo"}, words...)...)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code, err := n.run(ctxT(t), argv, nil, &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v; stderr %q", code, err, stderr.String())
	}
	if want := strings.Join(words, " ") + "\n"; stdout.String() != want {
		t.Errorf("echo printed\n%q\nwant\n%q", stdout.String(), want)
	}
}

func TestHostProbe(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	p := c.pool(c.cfg)
	cases := map[string]struct {
		want   reconciler.HostInfo
		broken bool
	}{
		"pve1": {want: reconciler.HostInfo{DriverVersion: "580.76.05", PCIGPUs: 2, Devices: []reconciler.Device{
			{Path: "/dev/nvidia0", Major: 195, Minor: 0, Mode: 0o666}, {Path: "/dev/nvidia1", Major: 195, Minor: 1, Mode: 0o666},
			{Path: "/dev/nvidiactl", Major: 195, Minor: 255, Mode: 0o666}, {Path: "/dev/nvidia-modeset", Major: 195, Minor: 254, Mode: 0o666},
			{Path: "/dev/nvidia-uvm", Major: 511, Minor: 0, Mode: 0o666}, {Path: "/dev/nvidia-uvm-tools", Major: 511, Minor: 1, Mode: 0o666},
			{Path: "/dev/nvidia-caps/nvidia-cap1", Major: 509, Minor: 1, Mode: 0o400}, {Path: "/dev/nvidia-caps/nvidia-cap2", Major: 509, Minor: 2, Mode: 0o400},
		}}},
		// A GPU on PCI and no driver: nothing to pass through.
		"pve2": {want: reconciler.HostInfo{PCIGPUs: 1}, broken: true},
		// nvidia-uvm never loaded since boot: its nodes are missing.
		"pve3": {want: reconciler.HostInfo{DriverVersion: "570.172.08", PCIGPUs: 1, Devices: []reconciler.Device{
			{Path: "/dev/nvidia0", Major: 195, Minor: 0, Mode: 0o666}, {Path: "/dev/nvidiactl", Major: 195, Minor: 255, Mode: 0o666},
			{Path: "/dev/nvidia-modeset", Major: 195, Minor: 254, Mode: 0o666},
			{Path: "/dev/nvidia-caps/nvidia-cap1", Major: 509, Minor: 1, Mode: 0o400}, {Path: "/dev/nvidia-caps/nvidia-cap2", Major: 509, Minor: 2, Mode: 0o400},
		}}},
	}
	for name, tc := range cases {
		n, err := p.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := n.HostProbe(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
		if got.BrokenDriver() != tc.broken {
			t.Errorf("%s: BrokenDriver() = %v", name, got.BrokenDriver())
		}
	}
}

func TestPush(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	n := c.node("pve1")
	runfile := "/var/lib/phoenix/NVIDIA-Linux-x86_64-580.76.05.run"
	dl := reconciler.Script{Name: "nvidia-driver/download", Phase: "apply", Env: map[string]string{"NVIDIA_VERSION": "580.76.05",
		"NVIDIA_RUNFILE": runfile, "NVIDIA_URL": "https://download.nvidia.com/XFree86/Linux-x86_64/580.76.05/NVIDIA-Linux-x86_64-580.76.05.run"}}
	if res, err := n.ExecHost(ctx, dl); err != nil || res.ExitCode != 0 {
		t.Fatalf("download: %+v, %v", res, err)
	}
	if err := n.Push(ctx, 100, runfile, "/root/NVIDIA.run", 0o755); err != nil {
		t.Fatalf("push: %v", err)
	}
	if ev := c.events("pct push"); len(ev) != 1 || !ev[0].OK {
		t.Errorf("journal: %+v", ev)
	}

	// pct push exits 0 when it could not read the source; phoenix must not.
	err := n.Push(ctx, 100, "/var/lib/phoenix/missing.run", "/root/missing.run", 0o644)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 0 || !strings.Contains(err.Error(), "failed to open /var/lib/phoenix/missing.run for reading") {
		t.Errorf("push of a missing file: %v; want an error with pct's words and exit status 0", err)
	}
	if reconciler.Retryable(err) {
		t.Error("a missing source is retryable")
	}

	err = n.Push(ctx, 101, runfile, "/root/NVIDIA.run", 0o755)
	if !errors.As(err, &ce) || !ce.NotRunning || !errors.Is(err, reconciler.ErrRefused) {
		t.Errorf("push into a stopped container: %v; want NotRunning", err)
	}
	if err := n.Push(ctx, 999, runfile, "/root/x", 0o644); !errors.Is(err, reconciler.ErrNotFound) {
		t.Errorf("push into a missing container: %v; want ErrNotFound", err)
	}
}

func TestSetConfig(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	n := c.node("pve1")
	config := func() map[string]any {
		var conf map[string]any
		c.api("/nodes/pve1/lxc/100/config", &conf)
		return conf
	}
	if err := n.SetConfig(ctx, 100, map[string]string{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl,mode=0666"}, nil); err != nil {
		t.Fatal(err)
	}
	conf := config()
	if conf["dev0"] != "/dev/nvidia0" || conf["dev1"] != "/dev/nvidiactl,mode=0666" {
		t.Errorf("config after pct set: dev0=%v dev1=%v", conf["dev0"], conf["dev1"])
	}
	if err := n.SetConfig(ctx, 100, nil, []string{"dev1"}); err != nil {
		t.Fatal(err)
	}
	if conf := config(); conf["dev1"] != nil || conf["dev0"] != "/dev/nvidia0" {
		t.Errorf("config after delete: dev0=%v dev1=%v", conf["dev0"], conf["dev1"])
	}

	// A device the node does not have: since pve-container 556ddd3 pct dies
	// with the device check's own words, a refusal.
	err := n.SetConfig(ctx, 100, map[string]string{"dev2": "/dev/nvidia7"}, nil)
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, reconciler.ErrRefused) || reconciler.Retryable(err) {
		t.Fatalf("missing device: %v; want ErrRefused", err)
	}
	if !strings.Contains(err.Error(), "Device /dev/nvidia7 does not exist") {
		t.Errorf("missing device: %v; want pct's text", err)
	}
	// An option pct's schema does not have.
	err = n.SetConfig(ctx, 100, map[string]string{"gpus": "2"}, nil)
	if !errors.As(err, &ce) || !errors.Is(err, reconciler.ErrBadRequest) || ce.Params["gpus"] == "" {
		t.Errorf("unknown option: %v (params %v)", err, ce.Params)
	}
	if err := n.SetConfig(ctx, 999, map[string]string{"dev0": "/dev/nvidia0"}, nil); !errors.Is(err, reconciler.ErrNotFound) {
		t.Errorf("missing container: %v; want ErrNotFound", err)
	}
}

func TestPctFailures(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	n := c.node("pve1")
	s := reconciler.Script{Name: "test/any", Phase: "check", Body: "true"}

	_, err := n.Exec(ctx, 101, s)
	var ce *CommandError
	if !errors.As(err, &ce) || !ce.NotRunning || ce.ExitCode != 255 || !errors.Is(err, reconciler.ErrRefused) || reconciler.Retryable(err) {
		t.Errorf("exec in a stopped container: %v; want NotRunning", err)
	}
	if !strings.Contains(err.Error(), "container '101' not running!") || !strings.HasPrefix(err.Error(), "pve1: pct exec 101 -- env /bin/sh -c <script") {
		t.Errorf("message: %v", err)
	}
	if _, err := n.Exec(ctx, 999, s); !errors.Is(err, reconciler.ErrNotFound) {
		t.Errorf("exec in a missing container: %v; want ErrNotFound", err)
	}
	// 102 lives on pve2: pct on pve1 has no config for it.
	if _, err := n.Exec(ctx, 102, s); !errors.Is(err, reconciler.ErrNotFound) {
		t.Errorf("exec on the wrong node: %v; want ErrNotFound", err)
	}
}

func TestOneConnectionForConcurrentCommands(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	n := c.node("pve1")
	const commands = 20 // more than sshd's default MaxSessions of 10
	var wg sync.WaitGroup
	errs := make(chan error, commands)
	for i := range commands {
		wg.Go(func() {
			s := reconciler.Script{Name: "test/concurrent", Phase: "apply", Body: "true", Env: map[string]string{"I": string(rune('a' + i))}}
			res, err := n.Exec(ctx, 100, s)
			if err == nil && res.ExitCode != 0 {
				err = errors.New(res.Stderr)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := c.dials.Load(); got != 1 {
		t.Errorf("%d connections for %d concurrent commands; want 1", got, commands)
	}
	if got := len(c.events("test/concurrent")); got != commands {
		t.Errorf("%d commands ran; want %d", got, commands)
	}
	// Other nodes get their own connection.
	p := c.pool(c.cfg)
	n2, _ := p.Node("pve2")
	if _, err := n2.HostProbe(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.dials.Load(); got != 2 {
		t.Errorf("%d connections after a second node; want 2", got)
	}
}

func TestRedialAfterConnectionLoss(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	n := c.node("pve1")
	s := reconciler.Script{Name: "test/redial", Phase: "check", Body: "true"}
	if _, err := n.Exec(ctx, 100, s); err != nil {
		t.Fatal(err)
	}
	// The node goes away under the connection (a reboot, a reset).
	c.mu.Lock()
	_ = c.conns[0].Close()
	c.mu.Unlock()
	if _, err := n.Exec(ctx, 100, s); err != nil {
		t.Fatalf("after the connection died: %v", err)
	}
	if got := c.dials.Load(); got != 2 {
		t.Errorf("%d dials; want 2", got)
	}
}

func TestCancelLongScript(t *testing.T) {
	c := startCluster(t)
	n := c.node("pve1")
	s := reconciler.Script{Name: "test/slow", Phase: "apply", Body: "sleep 60"}
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := n.Exec(ctx, 100, s)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	// The simulator saw the command stop before its effect: nothing is
	// recorded, so the check still fails. It journals the stop once its
	// session has seen the signal.
	for deadline := time.Now().Add(5 * time.Second); len(c.events("test/slow")) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for _, e := range c.events("test/slow") {
		if e.OK {
			t.Errorf("the cancelled script completed: %+v", e)
		}
		// Where the simulator journals the cancellation, it says why: the
		// SIGTERM phoenix sent before closing the session.
		if !strings.Contains(e.Detail, "TERM") {
			t.Errorf("cancelled by something other than SIGTERM: %+v", e)
		}
	}
	s.Phase = "check"
	res, err := n.Exec(ctxT(t), 100, s)
	if err != nil || res.ExitCode != 1 {
		t.Errorf("check after the cancelled apply: %+v, %v; want exit 1", res, err)
	}
	if got := c.dials.Load(); got != 1 {
		t.Errorf("cancelling a command cost the connection: %d dials", got)
	}
}

func TestDialFailureIsTransient(t *testing.T) {
	c := startCluster(t)
	cfg := c.cfg
	cfg.Addresses = map[string]string{"gone": "127.0.0.1:1"}
	n, err := c.pool(cfg).Node("gone")
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.HostProbe(ctxT(t))
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, reconciler.ErrUnavailable) || !reconciler.Retryable(err) || ce.Node != "gone" {
		t.Errorf("dial to a closed port: %v; want a retryable ErrUnavailable", err)
	}
	if _, err := c.pool(c.cfg).Node("pve9"); err == nil {
		t.Error("a node without an address has a Node")
	}
}

func TestConnectionLostMidCommand(t *testing.T) {
	c := startCluster(t)
	n := c.node("pve1")
	errc := make(chan error, 1)
	running := make(chan struct{})
	var once sync.Once
	go func() {
		// Its first line of progress says the command runs.
		// test/stream runs 800 ms and prints its first line after 100 ms.
		_, err := n.Exec(ctxT(t), 100, reconciler.Script{Name: "test/stream", Phase: "apply", Body: "sleep 1",
			Output: func(string) { once.Do(func() { close(running) }) }})
		errc <- err
	}()
	// Wait until the command is running, then cut the connection under it.
	select {
	case <-running:
	case err := <-errc:
		t.Fatalf("the command ended before it printed: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the command printed nothing")
	}
	c.mu.Lock()
	_ = c.conns[0].Close()
	c.mu.Unlock()
	select {
	case err := <-errc:
		var ce *CommandError
		if !errors.As(err, &ce) || ce.ExitCode != -1 || !errors.Is(err, reconciler.ErrUnavailable) || !reconciler.Retryable(err) {
			t.Errorf("got %v; want a retryable error without exit status", err)
		}
		t.Logf("the error: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Exec did not return after its connection died")
	}
	// The next command gets a new connection.
	if _, err := n.HostProbe(ctxT(t)); err != nil {
		t.Errorf("after the loss: %v", err)
	}
}

// TestLeaseKeepsASessionOfItsOwn: feature steps that run long fill the
// connection's sessions; the lease's renewal must still get through at once,
// or the lease would be lost under a busy apply.
func TestLeaseKeepsASessionOfItsOwn(t *testing.T) {
	c := startCluster(t)
	c.sim.SetScriptHang("test/hang", true)
	n := c.node("pve1")
	busy, stop := context.WithCancel(ctxT(t))
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for range 12 { // more than the connection's sessions
		wg.Go(func() {
			_, _ = n.Exec(busy, 100, reconciler.Script{Name: "test/hang", Phase: "apply", Body: "sleep infinity"})
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(c.sim.Processes("pve1", 100)) < defaultMaxSessions-1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(c.sim.Processes("pve1", 100)); got != defaultMaxSessions-1 {
		t.Fatalf("%d steps running, want %d: one session is the lease's", got, defaultMaxSessions-1)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 20*time.Second)
	defer cancel()
	claim := reconciler.LeaseClaim{Token: "0123456789abcdef", Holder: reconciler.Holder{Host: "ci", PID: 1, Command: "phoenix apply", Since: time.Now().UTC()}}
	if _, err := n.TakeLease(ctx, claim); err != nil {
		t.Fatalf("take the lease beside busy steps: %v", err)
	}
	if err := n.RenewLease(ctx, claim); err != nil {
		t.Fatalf("renew the lease beside busy steps: %v", err)
	}
}
