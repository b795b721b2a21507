package nodecmd

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/reconciler"
)

func TestClassify(t *testing.T) {
	execArgv := []string{"pct", "exec", "101", "--", "env", "/bin/sh", "-c", "true", "x/y", "apply"}
	type want struct {
		err        bool
		kind       error
		notRunning bool
		transient  bool
		params     map[string]string
	}
	cases := map[string]struct {
		op   Op
		res  reconciler.Result
		want want
	}{
		"exec: script succeeded":    {OpExec, reconciler.Result{}, want{}},
		"exec: check not satisfied": {OpExec, reconciler.Result{ExitCode: 1}, want{}},
		"exec: script's own 255":    {OpExec, reconciler.Result{ExitCode: 255, Stderr: "fatal: something of mine\n"}, want{}},
		"exec: script printed pct's words before exiting 255": {OpExec,
			reconciler.Result{ExitCode: 255, Stderr: "container '101' not running!\nthen the script went on\n"}, want{}},
		"exec: container stopped": {OpExec, reconciler.Result{ExitCode: 255, Stderr: "container '101' not running!\n"},
			want{err: true, kind: reconciler.ErrRefused, notRunning: true}},
		"exec: container missing": {OpExec, reconciler.Result{ExitCode: 255, Stderr: "Configuration file 'nodes/pve1/lxc/101.conf' does not exist\n"},
			want{err: true, kind: reconciler.ErrNotFound}},
		"exec: container locked": {OpExec, reconciler.Result{ExitCode: 255, Stderr: "CT is locked (backup)\n"},
			want{err: true, kind: reconciler.ErrLocked, transient: true}},
		"exec: no quorum": {OpExec, reconciler.Result{ExitCode: 255, Stderr: "cluster not ready - no quorum?\n"},
			want{err: true, kind: reconciler.ErrUnavailable, transient: true}},
		"exec: pct refused its arguments": {OpExec, reconciler.Result{ExitCode: 255,
			Stderr: "400 Parameter verification failed.\nvmid: invalid format - value does not look like a valid VM ID\npct exec <vmid> [<extra-args>] [OPTIONS]\n"},
			want{err: true, kind: reconciler.ErrBadRequest, params: map[string]string{"vmid": "invalid format - value does not look like a valid VM ID"}}},
		"exec: no pct on the node": {OpExec, reconciler.Result{ExitCode: 127, Stderr: "bash: line 1: pct: command not found\n"},
			want{err: true, kind: reconciler.ErrRefused}},
		"exec: a command in the script not found": {OpExec, reconciler.Result{ExitCode: 127, Stderr: "sh: 1: nvcc: not found\n"}, want{}},
		"host: any exit is a result":              {OpHost, reconciler.Result{ExitCode: 255, Stderr: "container '101' not running!\n"}, want{}},
		"probe: failure":                          {OpProbe, reconciler.Result{ExitCode: 2, Stderr: "sh: 1: syntax error\n"}, want{err: true, kind: reconciler.ErrRefused}},
		"push: copied":                            {OpPush, reconciler.Result{}, want{}},
		"push: source missing yet exit 0": {OpPush, reconciler.Result{Stderr: "failed to open /var/lib/phoenix/x.run for reading\n"},
			want{err: true, kind: reconciler.ErrRefused}},
		"push: container stopped": {OpPush, reconciler.Result{ExitCode: 255, Stderr: "can only push files to a running CT\n"},
			want{err: true, kind: reconciler.ErrRefused, notRunning: true}},
		"set: done": {OpSet, reconciler.Result{}, want{}},
		// update_pct_config stats the device before it saves anything
		// (pve-container 556ddd3, 2024-04) and dies: pct prints the
		// message alone, no 400 and no parameter map.
		"set: bad device": {OpSet, reconciler.Result{ExitCode: 255, Stderr: "Device /dev/nope does not exist\n"},
			want{err: true, kind: reconciler.ErrRefused}},
		// The same message after the change was saved: a device in the
		// config vanished (nvidia-uvm not loaded since boot).
		"set: saved, then a vanished device": {OpSet, reconciler.Result{ExitCode: 255, Stderr: "Device /dev/nvidia-uvm does not exist\n"},
			want{err: true, kind: reconciler.ErrRefused}},
		"set: a 400 with a parameter map": {OpSet, reconciler.Result{ExitCode: 255,
			Stderr: "400 Parameter verification failed.\nnet1: unable to hotplug net1: bridge 'vmbr9' does not exist\npct set <vmid> [OPTIONS]\n"},
			want{err: true, kind: reconciler.ErrBadRequest, params: map[string]string{"net1": "unable to hotplug net1: bridge 'vmbr9' does not exist"}}},
		"set: unknown option": {OpSet, reconciler.Result{ExitCode: 255,
			Stderr: "Unknown option: gpus\n400 unable to parse option\npct set <vmid> [OPTIONS]\n"},
			want{err: true, kind: reconciler.ErrBadRequest, params: map[string]string{"gpus": "Unknown option: gpus"}}},
		"set: option without value": {OpSet, reconciler.Result{ExitCode: 255,
			Stderr: "Option dev0 requires an argument\n400 unable to parse option\npct set <vmid> [OPTIONS]\n"},
			want{err: true, kind: reconciler.ErrBadRequest, params: map[string]string{"dev0": "Option dev0 requires an argument"}}},
		"set: config lock timeout": {OpSet, reconciler.Result{ExitCode: 255, Stderr: "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout\n"},
			want{err: true, kind: reconciler.ErrLocked, transient: true}},
		"set: container missing": {OpSet, reconciler.Result{ExitCode: 255, Stderr: "Configuration file 'nodes/pve1/lxc/101.conf' does not exist\n"},
			want{err: true, kind: reconciler.ErrNotFound}},
		"set: something else": {OpSet, reconciler.Result{ExitCode: 255, Stderr: "unable to do that\n"}, want{err: true, kind: reconciler.ErrRefused}},
	}
	for name, tc := range cases {
		err := Classify(tc.op, "pve1", execArgv, tc.res)
		if (err != nil) != tc.want.err {
			t.Errorf("%s: error %v, want error: %v", name, err, tc.want.err)
			continue
		}
		if err == nil {
			continue
		}
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: %T is not a *CommandError", name, err)
		}
		if !errors.Is(err, tc.want.kind) {
			t.Errorf("%s: kind %v, want %v", name, ce.Kind, tc.want.kind)
		}
		if ce.NotRunning != tc.want.notRunning || reconciler.Retryable(err) != tc.want.transient {
			t.Errorf("%s: NotRunning %v Retryable %v, want %v %v", name, ce.NotRunning, reconciler.Retryable(err), tc.want.notRunning, tc.want.transient)
		}
		if tc.want.params != nil {
			if diff := cmp.Diff(tc.want.params, ce.Params); diff != "" {
				t.Errorf("%s: params (-want +got):\n%s", name, diff)
			}
		}
		if ce.ExitCode != tc.res.ExitCode || ce.Node != "pve1" {
			t.Errorf("%s: exit %d node %q", name, ce.ExitCode, ce.Node)
		}
		if !strings.Contains(err.Error(), strings.TrimSpace(strings.Split(tc.res.Stderr, "\n")[0])) {
			t.Errorf("%s: %q does not carry pct's words", name, err)
		}
	}
}

func TestCommandErrorRedacts(t *testing.T) {
	s := reconciler.Script{Name: "registry/login", Phase: "apply", Body: "echo \"$REGISTRY_PASSWORD\" | docker login --password-stdin\n",
		Env: map[string]string{"REGISTRY_PASSWORD": "hunter2", "API_TOKEN": "tok-123", "SSH_KEY": "-----BEGIN", "client_secret": "s3",
			"NVIDIA_VERSION": "580.76.05"}}
	argv, err := ExecArgv(101, s)
	if err != nil {
		t.Fatal(err)
	}
	e := &CommandError{Node: "pve1", Argv: argv, ExitCode: 255, Stderr: "container '101' not running!\n"}
	msg := e.Error()
	for _, secret := range []string{"hunter2", "tok-123", "-----BEGIN", "s3", "docker login"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error shows %q: %s", secret, msg)
		}
	}
	want := "pve1: pct exec 101 -- env API_TOKEN=<redacted> NVIDIA_VERSION=580.76.05 REGISTRY_PASSWORD=<redacted> SSH_KEY=<redacted> " +
		"client_secret=<redacted> /bin/sh -c <script: 58 bytes> registry/login apply: exit status 255: container '101' not running!"
	if msg != want {
		t.Errorf("Error()\n got %s\nwant %s", msg, want)
	}
	// The argv itself is kept whole, for whoever needs to rerun it.
	if !strings.Contains(strings.Join(e.Argv, " "), "hunter2") {
		t.Error("Argv lost the real value")
	}
}

func TestCommandErrorMultiLineStderr(t *testing.T) {
	e := &CommandError{Node: "pve1", Argv: []string{"pct", "set", "101", "--dev0", "/dev/x"}, ExitCode: 255,
		Stderr: "400 Parameter verification failed.\ndev0: bad\npct set <vmid> [OPTIONS]\n"}
	want := "pve1: pct set 101 --dev0 /dev/x: exit status 255:\n  400 Parameter verification failed.\n  dev0: bad\n  pct set <vmid> [OPTIONS]"
	if got := e.Error(); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	e = &CommandError{Node: "pve1", Argv: []string{"pct", "status", "101"}, ExitCode: -1, Err: errors.New("ssh: connection reset")}
	if got, want := e.Error(), "pve1: pct status 101: ssh: connection reset"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTail(t *testing.T) {
	var lines []string
	for i := range 100 {
		lines = append(lines, strings.Repeat("x", i))
	}
	got := Tail(strings.Join(lines, "\n") + "\n")
	if n := len(strings.Split(got, "\n")); n != 20 {
		t.Errorf("%d lines kept, want 20", n)
	}
	if !strings.HasSuffix(got, strings.Repeat("x", 99)) {
		t.Error("the last line is not kept")
	}
	long := strings.Repeat("y", 10000) + "\nthe end"
	if got := Tail(long); got != "the end" {
		t.Errorf("Tail of a huge line then a short one = %.40q", got)
	}
}
