package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
)

// startSlowSim serves the example world at a time scale where installs take
// long enough to be interrupted.
func startSlowSim(t *testing.T, edits ...func(*sim.World)) *sim.Sim {
	t.Helper()
	w, err := sim.LoadWorld("../../examples/homelab/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range edits {
		edit(w)
	}
	s, err := sim.Start(w, sim.Options{TimeScale: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	return s
}

// applyProcess runs phoenix apply as a process and hands its output over line
// by line.
type applyProcess struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	out   strings.Builder
	done  chan error
}

func startApply(t *testing.T, args ...string) *applyProcess {
	t.Helper()
	cmd := exec.Command(phoenixBinary(t), append([]string{"apply", "-f", "../../examples/homelab", "--auto-approve"}, args...)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &applyProcess{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { err := cmd.Wait(); _ = pw.Close(); p.done <- err }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

// waitFor reads lines until one contains text.
func (p *applyProcess) waitFor(t *testing.T, text string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, text) {
				return
			}
		case <-timeout:
			t.Fatalf("no line with %q within a minute:\n%s", text, p.output())
		}
	}
}

func (p *applyProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// wait returns the exit status.
func (p *applyProcess) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(2 * time.Minute):
		t.Fatalf("apply did not end:\n%s", p.output())
	}
	return -1
}

// TestApplyFirstSignalFinishesTheChangesInFlight: the first SIGINT says so,
// lets the changes in flight finish (none is cut off in the guest) and starts
// no new one; the next apply resumes and converges.
func TestApplyFirstSignalFinishesTheChangesInFlight(t *testing.T) {
	s := startSlowSim(t)
	p := startApply(t)
	p.waitFor(t, "ubuntu-2404-base (900 on pve1): create: done")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t)
	out := p.output()
	if code != 1 || !strings.Contains(out, "interrupt: stopping after the changes in flight") || !strings.Contains(out, "stopped before its next change") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	for _, e := range s.Journal() {
		if strings.HasPrefix(e.Detail, "cancelled") {
			t.Errorf("a step was cut off: %+v", e)
		}
	}
	if code, out, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--auto-approve", "--quiet"); code != 0 {
		t.Fatalf("the next apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := phoenix(t, "plan", "-f", "../../examples/homelab", "--detailed-exitcode"); code != 0 {
		t.Errorf("not converged after the next apply:\n%s", out)
	}
}

// TestApplySecondSignalAborts: a second SIGINT aborts the changes in flight,
// and the next apply still converges.
func TestApplySecondSignalAborts(t *testing.T) {
	// base/packages runs for 10 s: long enough to be in flight whatever the
	// machine's load.
	s := startSlowSim(t, func(w *sim.World) { w.Spec.Durations.Scripts["base/packages"] = sim.Duration(1000 * time.Second) })
	p := startApply(t)
	p.waitFor(t, "ubuntu-2404-base (900 on pve1): start: done")
	// Its check has said it is needed: its apply is in flight.
	deadline := time.Now().Add(time.Minute)
	for !slices.ContainsFunc(s.Journal(), func(e sim.Event) bool { return e.Name == "base/packages" && e.Phase == "check" }) {
		if time.Now().After(deadline) {
			t.Fatalf("base/packages never ran its check:\n%s", p.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "interrupt: stopping after the changes in flight")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t)
	out := p.output()
	if code != 1 || !strings.Contains(out, "aborting the changes in flight") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	// Cut off: killed, or (under timeout(1), out of reach of the signal
	// sshd delivers) left running on in the container (sim orphans.go).
	cut := false
	for _, e := range s.Journal() {
		cut = cut || strings.HasPrefix(e.Detail, "cancelled") || strings.HasPrefix(e.Detail, "session ended")
	}
	if !cut {
		t.Error("no step was cut off: the second signal did not abort")
	}
	if code, out, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--auto-approve", "--quiet"); code != 0 {
		t.Fatalf("the next apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := phoenix(t, "plan", "-f", "../../examples/homelab", "--detailed-exitcode"); code != 0 {
		t.Errorf("not converged after the next apply:\n%s", out)
	}
}

// TestRunOnceExitsOneWhenAGuestCannotConverge: run --once says and exits 1
// when the plan cannot converge a guest, not only when an apply fails.
func TestRunOnceExitsOneWhenAGuestCannotConverge(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	specs := copyExamples(t)
	editFile(t, specs+"/containers.yaml", "  gpus: [0]            # the template passes 0 and 1; this clone keeps only 0\n", "  gpus: [3]\n")
	code, _, errOut := phoenix(t, "run", "-f", specs, "--once", "--log-level", "info")
	if code != 1 || !strings.Contains(errOut, "not converged") || !strings.Contains(errOut, "guest=vllm-qwen") ||
		!strings.Contains(errOut, "kind=spec") || !strings.Contains(errOut, "GPU 3 is not on node pve1") {
		t.Errorf("run --once: exit %d\n%s", code, errOut)
	}
}

// editFile replaces old with new in a file, which must contain it.
func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
