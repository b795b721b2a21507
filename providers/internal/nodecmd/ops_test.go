package nodecmd

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/reconciler"
)

// fakeRunner records the argv it is given and answers with a canned result,
// printed in the chunks given (all at once without).
type fakeRunner struct {
	calls  [][]string
	res    reconciler.Result
	chunks []string // "1:" or "2:" and what to write to stdout or stderr
	err    error
}

func (f *fakeRunner) run(ctx context.Context, argv []string, _ io.Reader, stdout, stderr io.Writer) (int, error) {
	f.calls = append(f.calls, argv)
	_, _ = io.WriteString(stdout, f.res.Stdout)
	_, _ = io.WriteString(stderr, f.res.Stderr)
	for _, c := range f.chunks {
		w := stdout
		if strings.HasPrefix(c, "2:") {
			w = stderr
		}
		_, _ = io.WriteString(w, c[2:])
	}
	return f.res.ExitCode, f.err
}

func TestOpsBuildArgv(t *testing.T) {
	ctx := context.Background()
	f := &fakeRunner{}
	o := Ops{Node: "pve1", Run: f.run}
	if _, err := o.Exec(ctx, 100, reconciler.Script{Name: "a/b", Phase: "check", Body: "true"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.ExecHost(ctx, reconciler.Script{Name: "a/c", Body: "true", Env: map[string]string{"X": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := o.Push(ctx, 100, "/tmp/a", "/root/a", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := o.SetConfig(ctx, 100, map[string]string{"dev0": "/dev/nvidia0"}, []string{"dev1"}); err != nil {
		t.Fatal(err)
	}
	if err := o.SetConfig(ctx, 100, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"pct", "exec", "100", "--", "env", "/bin/sh", "-c", "true", "a/b", "check"},
		{"env", "X=1", "/bin/sh", "-c", "true", "a/c"},
		{"pct", "push", "100", "/tmp/a", "/root/a", "--perms", "0755"},
		{"pct", "set", "100", "--dev0", "/dev/nvidia0", "--delete", "dev1"},
		// Nothing to set runs nothing.
	}
	if diff := cmp.Diff(want, f.calls); diff != "" {
		t.Errorf("commands run (-want +got):\n%s", diff)
	}
	if _, err := o.Exec(ctx, 5, reconciler.Script{Name: "a/b"}); !errors.Is(err, reconciler.ErrBadRequest) || len(f.calls) != 4 {
		t.Errorf("a bad VMID: %v after %d calls; want ErrBadRequest and nothing run", err, len(f.calls))
	}
}

func TestOpsScriptExitIsAResult(t *testing.T) {
	f := &fakeRunner{res: reconciler.Result{ExitCode: 100, Stdout: "o", Stderr: "E: Unable to locate package x\n"}}
	o := Ops{Node: "pve1", Run: f.run}
	res, err := o.Exec(context.Background(), 100, reconciler.Script{Name: "a/b", Phase: "apply"})
	if err != nil || res != f.res {
		t.Errorf("got %+v, %v; want %+v and no error", res, err, f.res)
	}
}

func TestOpsHostProbe(t *testing.T) {
	f := &fakeRunner{res: reconciler.Result{Stdout: "driver 580.76.05\npci-gpus 1\ndevice /dev/nvidia0 195 0 666\n"}}
	o := Ops{Node: "pve1", Run: f.run}
	info, err := o.HostProbe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := reconciler.HostInfo{DriverVersion: "580.76.05", PCIGPUs: 1, Devices: []reconciler.Device{dev("/dev/nvidia0", 195, 0)}}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	f.res = reconciler.Result{Stdout: "driver 580.76.05\npci-gpus 1\ndevice /dev/nvidia0 c3 0 666\n"}
	var perr *ProbeError
	if _, err := o.HostProbe(context.Background()); !errors.As(err, &perr) || perr.Line != 3 || !strings.HasPrefix(err.Error(), "pve1: ") {
		t.Errorf("malformed output: %v", err)
	}
	f.res = reconciler.Result{ExitCode: 126, Stderr: "sh: permission denied\n"}
	var ce *CommandError
	if _, err := o.HostProbe(context.Background()); !errors.As(err, &ce) || ce.ExitCode != 126 {
		t.Errorf("failed probe: %v", err)
	}
}

func TestOpsTransportErrors(t *testing.T) {
	ctx := context.Background()
	f := &fakeRunner{err: io.ErrUnexpectedEOF}
	o := Ops{Node: "pve1", Run: f.run}
	_, err := o.Exec(ctx, 100, reconciler.Script{Name: "a/b"})
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, reconciler.ErrUnavailable) || !reconciler.Retryable(err) || ce.ExitCode != -1 ||
		!errors.Is(err, io.ErrUnexpectedEOF) || ce.Node != "pve1" || ce.Argv == nil {
		t.Errorf("lost connection: %#v", err)
	}

	hostKey := errors.New("host key mismatch")
	f.err = TransportError(hostKey, reconciler.ErrPermission, false)
	err = o.Push(ctx, 100, "/a", "/b", 0o644)
	if !errors.Is(err, reconciler.ErrPermission) || reconciler.Retryable(err) || !errors.Is(err, hostKey) ||
		!strings.HasPrefix(err.Error(), "pve1: pct push 100 /a /b --perms 0644: host key mismatch") {
		t.Errorf("refused host key: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f.err = nil
	n := len(f.calls)
	if _, err := o.ExecHost(cctx, reconciler.Script{Name: "a/b"}); !errors.Is(err, context.Canceled) || len(f.calls) != n {
		t.Errorf("cancelled context: %v, %d calls; want context.Canceled and nothing run", err, len(f.calls)-n)
	}
}

func TestOpsStreamScriptOutput(t *testing.T) {
	f := &fakeRunner{res: reconciler.Result{ExitCode: 3}, chunks: []string{"1:Unpacking cuda", "1:-toolkit ...\n", "2:W: slow mirror\n", "1:Progress: [ 50%]\r", "1:done"}}
	o := Ops{Node: "pve1", Run: f.run}
	var lines []string
	returned := false
	s := reconciler.Script{Name: "cuda/install", Phase: "apply", Output: func(line string) {
		if returned {
			t.Errorf("line %q after Exec returned", line)
		}
		lines = append(lines, line)
	}}
	res, err := o.Exec(context.Background(), 100, s)
	returned = true
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Unpacking cuda-toolkit ...", "W: slow mirror", "Progress: [ 50%]", "done"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	wantRes := reconciler.Result{ExitCode: 3, Stdout: "Unpacking cuda-toolkit ...\nProgress: [ 50%]\rdone", Stderr: "W: slow mirror\n"}
	if res != wantRes {
		t.Errorf("result %+v, want %+v", res, wantRes)
	}

	lines = nil
	returned = false
	if _, err := o.ExecHost(context.Background(), s); err != nil || len(lines) != len(want) {
		t.Errorf("on the host: %v, %q", err, lines)
	}
}

func TestOpsCancelledStopsTheLines(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	run := func(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
		_, _ = io.WriteString(stdout, "one\ntwo\nthree\n")
		cancel()
		return -1, ctx.Err()
	}
	var mu sync.Mutex
	calls := 0
	s := reconciler.Script{Name: "a/b", Phase: "apply", Output: func(string) {
		mu.Lock()
		calls++
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}}
	start := time.Now()
	res, err := Ops{Node: "pve1", Run: run}.Exec(ctx, 100, s)
	if !errors.Is(err, context.Canceled) || res != (reconciler.Result{}) {
		t.Errorf("got %+v, %v; want no result and context.Canceled", res, err)
	}
	mu.Lock()
	n := calls
	mu.Unlock()
	if d := time.Since(start); d > 120*time.Millisecond || n > 1 {
		t.Errorf("returned after %v and %d lines; want at most the line in progress", d, n)
	}
}
