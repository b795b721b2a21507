package nodecmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/reconciler"
)

// A script with a Timeout runs under timeout(1), where it runs: a dropped
// session does not end a process inside a container, timeout(1) does.

func TestBoundedArgv(t *testing.T) {
	s := reconciler.Script{Name: "cuda-toolkit/toolkit", Phase: "apply", Body: "apt-get install -y cuda-toolkit-12-8",
		Env: map[string]string{"CUDA_VERSION": "12.8"}, Timeout: 90*time.Minute + 500*time.Millisecond}
	got, err := ExecArgv(101, s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pct", "exec", "101", "--", "timeout", "-k", "30", "5401", "env", "CUDA_VERSION=12.8",
		"/bin/sh", "-c", "apt-get install -y cuda-toolkit-12-8", "cuda-toolkit/toolkit", "apply"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExecArgv (-want +got):\n%s", diff)
	}
	host, err := HostArgv(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[4:], host); diff != "" {
		t.Errorf("HostArgv (-want +got):\n%s", diff)
	}
	// Secrets stay redacted behind the wrapper.
	s.Env = map[string]string{"HF_TOKEN": "hf_secret"}
	argv, _ := ExecArgv(101, s)
	if r := RenderArgv(argv); r != "pct exec 101 -- timeout -k 30 5401 env HF_TOKEN=<redacted> /bin/sh -c <script: 36 bytes> cuda-toolkit/toolkit apply" {
		t.Errorf("RenderArgv = %s", r)
	}
}

// TestTimeoutStopsAHangingBody runs the wrapped argv with real shells: the
// body and what it started in the background are gone once the command
// returns (its stdout pipe closed: no process holds it), with timeout(1)'s
// status 124. A body that ends in time exits with its own status.
func TestTimeoutStopsAHangingBody(t *testing.T) {
	testtool.Require(t, "timeout")
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			path := testtool.Require(t, shell)
			run := func(body string) (int, string) {
				t.Helper()
				argv, err := HostArgv(reconciler.Script{Name: "test/hang", Phase: "apply", Body: body, Timeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				for i, w := range argv {
					if w == "/bin/sh" {
						argv[i] = path
					}
				}
				cmd := exec.Command(argv[0], argv[1:]...)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				// Wait returns once no process holds the output pipe; one
				// that outlived the timeout would hold it past this.
				cmd.WaitDelay = time.Minute
				err = cmd.Run()
				var exit *exec.ExitError
				switch {
				case errors.Is(err, exec.ErrWaitDelay):
					t.Fatalf("%q: a process outlived timeout(1) and held the output", body)
				case errors.As(err, &exit):
					return exit.ExitCode(), out.String()
				case err != nil:
					t.Fatal(err)
				}
				return 0, out.String()
			}
			if code, out := run("echo started; sleep 300 & sleep 300"); code != 124 || out != "started\n" {
				t.Errorf("hanging body: exit %d, output %q; want 124 after it printed started", code, out)
			}
			if code, _ := run("exit 3"); code != 3 {
				t.Errorf("body that exits 3: exit %d", code)
			}
		})
	}
}

// TestCommandsWithoutADeadlineGetOne: a command whose caller set no
// deadline (a probe in an observation) is bounded by CommandBound; a
// caller's own deadline is kept.
func TestCommandsWithoutADeadlineGetOne(t *testing.T) {
	var got time.Time
	var had bool
	o := Ops{Node: "pve1", Run: func(ctx context.Context, _ []string, _ io.Reader, _, _ io.Writer) (int, error) {
		got, had = ctx.Deadline()
		return 0, nil
	}}
	before := time.Now()
	if err := o.SetConfig(context.Background(), 101, map[string]string{"dev0": "/dev/nvidia0"}, nil); err != nil {
		t.Fatal(err)
	}
	if !had || got.Before(before.Add(CommandBound)) || got.After(time.Now().Add(CommandBound)) {
		t.Errorf("deadline %v (set %v), want %v from the call", got, had, CommandBound)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	want, _ := ctx.Deadline()
	if err := o.SetConfig(ctx, 101, map[string]string{"dev0": "/dev/nvidia0"}, nil); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(want) {
		t.Errorf("deadline %v, want the caller's %v", got, want)
	}
}
