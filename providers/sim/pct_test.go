package sim

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	proxmox "github.com/luthermonson/go-proxmox"
	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
)

// pct over SSH as Proxmox VE runs it (pve-container's PVE/CLI/pct.pm): one
// remote command string parsed by the node's shell, pct's own errors exit
// 255, the command's exit code otherwise.

func TestPctExec(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	// A word a careless provider would let the shell interpret.
	nasty := "it's \"quoted\"\nsecond line $(reboot); `id` && rm -rf / \\ $HOME *"
	cases := map[string]struct {
		node    string
		command string // sent as is
		code    int
		stdout  string
		stderr  string // exact; a trailing "*" makes it a prefix
	}{
		"a stopped CT": {
			node: "pve1", command: "pct exec 101 -- true",
			code: 255, stderr: "container '101' not running!\n",
		},
		"a stopped CT, with env words before the command": {
			node: "pve1", command: "pct exec 101 -- env A=b true",
			code: 255, stderr: "container '101' not running!\n",
		},
		// pct only sees the node's own config files: a CT elsewhere in the
		// cluster is as missing as one that never existed.
		"a CT of another node": {
			node: "pve1", command: "pct exec 200 -- true",
			code: 255, stderr: "Configuration file 'nodes/pve1/lxc/200.conf' does not exist\n",
		},
		"a CT that does not exist": {
			node: "pve1", command: "pct exec 999 -- true",
			code: 255, stderr: "Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n",
		},
		"the same CT on its own node": {
			node: "pve2", command: "pct exec 200 -- hostname", stdout: "elsewhere\n",
		},
		"the command's exit code, not pct's": {
			node: "pve1", command: "pct exec 100 -- false", code: 1,
		},
		"a command the CT does not have": {
			node: "pve1", command: "pct exec 100 -- nvidia-smi",
			code: 127, stderr: "sh: 1: nvidia-smi: not found\n",
		},
		"argv arrives as literal bytes": {
			node: "pve1", command: shellwords.Join([]string{"pct", "exec", "100", "--", "echo", nasty, "  two  spaces"}),
			stdout: nasty + "   two  spaces\n",
		},
		"an empty word stays a word": {
			node: "pve1", command: shellwords.Join([]string{"pct", "exec", "100", "--", "echo", "", "x"}),
			stdout: " x\n",
		},
		// What the node's shell would run as a second command, or expand,
		// is refused: the simulator never guesses at it.
		"an unquoted ; is refused": {
			node: "pve1", command: "pct exec 100 -- echo hi; reboot",
			code: 2, stderr: "sh: 1: syntax error: *",
		},
		"an unquoted $( is refused": {
			node: "pve1", command: "pct exec 100 -- echo $(reboot)",
			code: 2, stderr: "sh: 1: syntax error: *",
		},
		"an unquoted newline is refused": {
			node: "pve1", command: "pct exec 100 -- echo hi\nreboot",
			code: 2, stderr: "sh: 1: syntax error: *",
		},
		"a $ inside double quotes is refused": {
			node: "pve1", command: `pct exec 100 -- echo "$HOME"`,
			code: 2, stderr: "sh: 1: syntax error: *",
		},
		"sh -c without a script name": {
			node: "pve1", command: shellwords.Join([]string{"pct", "exec", "100", "--", "/bin/sh", "-c", "echo hi"}),
			code: 2, stderr: "phoenix-sim: sh -c BODY needs a script name after the body (sh -c BODY NAME PHASE): the simulator models scripts by name\n",
		},
		"no command": {
			node: "pve1", command: "pct exec 100 --", code: 255, stderr: "missing command\n",
		},
		"a vmid that is not a number": {
			node: "pve1", command: "pct exec abc -- true",
			code: 255, stderr: "400 Parameter verification failed.\nvmid: type check ('integer') failed - got 'abc'\npct exec <vmid> [<extra-args>] [OPTIONS]\n",
		},
		"a vmid below 100": {
			node: "pve1", command: "pct exec 99 -- true",
			code: 255, stderr: "400 Parameter verification failed.\nvmid: value must have a minimum value of 100\npct exec <vmid> [<extra-args>] [OPTIONS]\n",
		},
		"no vmid": {
			node: "pve1", command: "pct exec", code: 255, stderr: "400 not enough arguments\npct exec <vmid> [<extra-args>] [OPTIONS]\n",
		},
		"an unknown pct command": {
			node: "pve1", command: "pct enter 100", code: 255, stderr: "ERROR: unknown command 'pct enter'\n",
		},
		// LXC gives every CT the basic device nodes; GPUs only when passed.
		"a device node every CT has": {
			node: "pve1", command: "pct exec 102 -- test -c /dev/null",
		},
		"a GPU not passed through": {
			node: "pve1", command: "pct exec 102 -- test -c /dev/nvidia0", code: 1,
		},
		"a GPU passed through": {
			node: "pve1", command: "pct exec 100 -- test -c /dev/nvidia0",
		},
		"pct status of a running CT": {
			node: "pve1", command: "pct status 100", stdout: "status: running\n",
		},
		"pct status of a stopped CT": {
			node: "pve1", command: "pct status 101", stdout: "status: stopped\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := l.on(t)
			r := l.sh(tc.node, tc.command)
			if r.code != tc.code || r.stdout != tc.stdout {
				t.Errorf("%q: %v, want exit %d stdout %q", tc.command, r, tc.code, tc.stdout)
			}
			if prefix, ok := strings.CutSuffix(tc.stderr, "*"); ok {
				if !strings.HasPrefix(r.stderr, prefix) || !strings.HasSuffix(r.stderr, "\n") {
					t.Errorf("%q: stderr %q, want a line starting %q", tc.command, r.stderr, prefix)
				}
			} else if r.stderr != tc.stderr {
				t.Errorf("%q: stderr %q, want %q", tc.command, r.stderr, tc.stderr)
			}
		})
	}

	// Refused commands reached no CT; pct's own errors name the CT tried.
	refused := 0
	for _, e := range l.s.Journal() {
		if e.Kind == "exec" && e.Name == "sh" {
			refused++
			if e.OK || !strings.HasPrefix(e.Detail, "syntax error: ") || e.VMID != 0 {
				t.Errorf("refused command journaled as %+v", e)
			}
		}
	}
	if refused != 4 {
		t.Errorf("%d refused commands in the journal, want 4", refused)
	}
	for _, want := range []struct {
		vmid int
		line string
	}{
		{101, "pct exec failed: container '101' not running!"},
		{200, "pct exec failed: Configuration file 'nodes/pve1/lxc/200.conf' does not exist"},
		{100, "echo " + nasty + "   two  spaces ok"},
		{100, "nvidia-smi failed: sh: 1: nvidia-smi: not found"},
	} {
		if !slices.Contains(l.execs("pve1", want.vmid), want.line) {
			t.Errorf("journal of CT %d lacks %q: %q", want.vmid, want.line, l.execs("pve1", want.vmid))
		}
	}
}

func TestSSHNeedsRoot(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	conf := *l.sshConf
	conf.User = "phoenix"
	c, err := ssh.Dial("tcp", l.ips["pve1"]+":"+l.port, &conf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput("pct status 100")
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 1 || string(out) != "permission denied: pct and the host probes need root\n" {
		t.Errorf("pct as a non-root user: %q %v", out, err)
	}
}

func TestPctExecCancellation(t *testing.T) {
	t.Parallel()
	// The apply takes 1000 s of world time, 10 s at the lab's scale: it can
	// only end early by being cancelled.
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.Scripts = map[string]Duration{"base/packages": worldTime(1000 * time.Second)}
	})
	command := shellwords.Join(append([]string{"pct", "exec", "100", "--"}, scriptArgv("base/packages", "apply", aptBody)...))
	installed := func(l *lab) bool { return l.script("pve1", 100, "base/packages", "check", "dpkg -s curl").code == 0 }

	t.Run("SIGTERM", func(t *testing.T) {
		l := l.on(t)
		sess, err := l.conn("pve1").NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		if err := sess.Start(command); err != nil {
			t.Fatal(err)
		}
		// Signals are only taken once the exec request is answered, which
		// Start waited for: the command is running.
		if err := sess.Signal(ssh.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// A command killed by a signal exits 128+n, as the shell reports it.
		var exit *ssh.ExitError
		if err := sess.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 143 {
			t.Fatalf("after SIGTERM: %v, want exit status 143", err)
		}
		if installed(l) {
			t.Error("the cancelled apply changed the CT")
		}
		if !slices.Contains(l.execs("pve1", 100), "base/packages apply failed: cancelled: sshd: received signal TERM") {
			t.Errorf("journal %q", l.execs("pve1", 100))
		}
	})

	if n := l.countExecs("pve1", 100, "base/packages apply ok"); n != 0 {
		t.Errorf("%d successful applies in the journal", n)
	}
}

func TestPctPush(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	v := labDriver
	wantExit(t, "download", l.script("pve1", 0, "nvidia-driver/download", "apply", downloadBody, downloadEnv(v)...), 0)

	cases := map[string]struct {
		argv   []string
		code   int
		stderr string
	}{
		"a stopped CT": {
			argv: []string{"pct", "push", "101", nodeRunfile(v), guestRunfile(v)},
			code: 255, stderr: "can only push files to a running CT\n",
		},
		"a CT of another node": {
			argv: []string{"pct", "push", "200", nodeRunfile(v), guestRunfile(v)},
			code: 255, stderr: "Configuration file 'nodes/pve1/lxc/200.conf' does not exist\n",
		},
		"no destination": {
			argv: []string{"pct", "push", "100", nodeRunfile(v)},
			code: 255, stderr: "400 not enough arguments\npct push <vmid> <file> <destination> [OPTIONS]\n",
		},
		"an option pct push does not have": {
			argv: []string{"pct", "push", "100", nodeRunfile(v), guestRunfile(v), "--mode", "0755"},
			code: 255, stderr: "Unknown option: mode\n400 unable to parse option\npct push <vmid> <file> <destination> [OPTIONS]\n",
		},
		// pct push reports a source it cannot read on stderr and still
		// exits 0: a provider that trusts the exit code installs nothing.
		"a missing source file": {
			argv:   []string{"pct", "push", "100", "/var/lib/phoenix/missing.run", "/root/missing.run"},
			stderr: "failed to open /var/lib/phoenix/missing.run for reading\n",
		},
		"the runfile, with options": {
			argv: []string{"pct", "push", "100", nodeRunfile(v), guestRunfile(v), "--perms", "0755", "--user=root"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := l.on(t)
			r := l.run("pve1", tc.argv...)
			if diff := cmp.Diff(sshResult{code: tc.code, stderr: tc.stderr}, r, cmp.AllowUnexported(sshResult{})); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
	wantExit(t, "the missing file is absent in the CT", l.exec("pve1", 100, "test", "-f", "/root/missing.run"), 1)
	wantExit(t, "the runfile is in the CT", l.exec("pve1", 100, "test", "-f", guestRunfile(v)), 0)
	wantExit(t, "nowhere else in the CT", l.exec("pve1", 100, "test", "-f", nodeRunfile(v)), 1)
	wantExit(t, "nor in another CT", l.exec("pve1", 102, "test", "-f", guestRunfile(v)), 1)

	if diff := cmp.Diff([]string{"pct push failed: can only push files to a running CT"}, l.execs("pve1", 101)); diff != "" {
		t.Errorf("journal of CT 101 (-want +got):\n%s", diff)
	}
	got := l.execs("pve1", 100)
	for _, line := range []string{
		"pct push failed: failed to open /var/lib/phoenix/missing.run",
		"pct push ok",
	} {
		if !slices.Contains(got, line) {
			t.Errorf("journal of CT 100 lacks %q: %q", line, got)
		}
	}
}

func TestPctSet(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	const usage = "pct set <vmid> [OPTIONS]\n"
	cases := []struct {
		name   string
		node   string
		argv   []string
		code   int
		stderr string
	}{
		{
			name: "a value of the wrong type", node: "pve1", argv: []string{"pct", "set", "101", "--cores", "many"},
			code: 255, stderr: "400 Parameter verification failed.\ncores: type check ('integer') failed - got 'many'\n" + usage,
		},
		{
			name: "an option pct set does not have", node: "pve1", argv: []string{"pct", "set", "101", "--gpus", "2"},
			code: 255, stderr: "Unknown option: gpus\n400 unable to parse option\n" + usage,
		},
		{
			name: "an option without its value", node: "pve1", argv: []string{"pct", "set", "101", "--dev0"},
			code: 255, stderr: "Option dev0 requires an argument\n400 unable to parse option\n" + usage,
		},
		{
			name: "a word that is no option", node: "pve1", argv: []string{"pct", "set", "101", "dev0", "/dev/nvidia0"},
			code: 255, stderr: "400 too many arguments\n" + usage,
		},
		{name: "a GPU as root", node: "pve1", argv: []string{"pct", "set", "101", "--dev0", "/dev/nvidia0"}},
		{name: "the value after =", node: "pve1", argv: []string{"pct", "set", "101", "--dev1=/dev/nvidiactl,gid=44"}},
		{name: "a single dash and a boolean without value", node: "pve1", argv: []string{"pct", "set", "101", "-onboot", "-dev2", "/dev/nvidia-uvm"}},
		// Proxmox stats a dev path on the node before it saves anything
		// (update_pct_config since pve-container 556ddd3): a path the node
		// lacks dies there, and pct prints the message alone.
		{
			name: "a GPU the node does not have", node: "pve1", argv: []string{"pct", "set", "101", "--dev3", "/dev/nvidia7"},
			code: 255, stderr: "Device /dev/nvidia7 does not exist\n",
		},
		{
			name: "a GPU on a running CT whose node does not have it", node: "pve1", argv: []string{"pct", "set", "102", "--dev0", "/dev/nvidia2"},
			code: 255, stderr: "Device /dev/nvidia2 does not exist\n",
		},
		{
			name: "a GPU on a node without a driver", node: "pve2", argv: []string{"pct", "set", "200", "--dev0", "/dev/nvidia0"},
			code: 255, stderr: "Device /dev/nvidia0 does not exist\n",
		},
		{
			name: "a CT of another node", node: "pve1", argv: []string{"pct", "set", "200", "--onboot", "1"},
			code: 255, stderr: "Configuration file 'nodes/pve1/lxc/200.conf' does not exist\n",
		},
		{
			name: "nothing to set", node: "pve1", argv: []string{"pct", "set", "101"},
			code: 255, stderr: "no options specified\n",
		},
	}
	for _, tc := range cases {
		r := l.run(tc.node, tc.argv...)
		if diff := cmp.Diff(sshResult{code: tc.code, stderr: tc.stderr}, r, cmp.AllowUnexported(sshResult{})); diff != "" {
			t.Errorf("%s: %q (-want +got):\n%s", tc.name, tc.argv, diff)
		}
	}
	cfg := l.config("pve1", 101)
	got := map[string]any{"dev0": cfg["dev0"], "dev1": cfg["dev1"], "dev2": cfg["dev2"], "dev3": cfg["dev3"], "onboot": cfg["onboot"]}
	want := map[string]any{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl,gid=44", "dev2": "/dev/nvidia-uvm", "dev3": nil, "onboot": 1.0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config of 101 through the API (-want +got):\n%s", diff)
	}
	if _, ok := l.config("pve2", 200)["dev0"]; ok {
		t.Error("a refused dev entry reached the config of 200")
	}

	wantExit(t, "delete", l.run("pve1", "pct", "set", "101", "--delete", "dev1", "--delete", "dev2"), 0)
	if cfg := l.config("pve1", 101); cfg["dev1"] != nil || cfg["dev2"] != nil || cfg["dev0"] != "/dev/nvidia0" {
		t.Errorf("after --delete dev1 --delete dev2: %v", cfg)
	}

	// The same change through the API with the token is refused: only
	// root@pam may pass devices through, which is why phoenix uses pct set.
	err := l.token.Put(t.Context(), ctPath("pve1", 101, "/config"), map[string]any{"dev4": "/dev/nvidia1"}, nil)
	if !errors.Is(err, proxmox.ErrNotAuthorized) {
		t.Errorf("dev4 with the API token: %v, want go-proxmox's ErrNotAuthorized (a 403)", err)
	}

	// Options pct refuses never reach the config, nor the journal.
	if diff := cmp.Diff([]string{
		"pct set ok",
		"pct set ok",
		"pct set ok",
		"pct set failed: dev3",
		"pct set failed: ",
		"pct set ok",
	}, l.execs("pve1", 101)); diff != "" {
		t.Errorf("journal of CT 101 (-want +got):\n%s", diff)
	}
}

// TestPctExecOutlivesSession: a script whose session ends without a signal
// that sshd delivers runs on in the container to its effect (orphans.go):
// after the client closes the session, on any version; after SIGTERM, on
// Proxmox VE 8, whose OpenSSH refuses a root session's signals.
func TestPctExecOutlivesSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, version   string
		signal, timeout bool
		cause           string
	}{
		{"the client closes the session", "9.1.2", false, false, "sshd: session closed"},
		{"SIGTERM refused on PVE 8", "8.4.1", true, false, "sshd: session closed"},
		{"SIGTERM misses timeout's process group", "9.1.2", true, true, "sshd: received signal TERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 100 s of world time: 1 s at the lab's scale.
			l := startLab(t, "ssh-cluster.yaml", func(w *World) {
				w.Spec.Version = tc.version
				w.Spec.Durations.Scripts = map[string]Duration{"base/packages": worldTime(100 * time.Second)}
			})
			argv := append([]string{"pct", "exec", "100", "--"}, scriptArgv("base/packages", "apply", aptBody)...)
			if tc.timeout {
				argv = slices.Insert(argv, 4, "timeout", "-k", "10", "600")
			}
			command := shellwords.Join(argv)
			installed := func() bool { return l.script("pve1", 100, "base/packages", "check", "dpkg -s curl").code == 0 }
			sess, err := l.conn("pve1").NewSession()
			if err != nil {
				t.Fatal(err)
			}
			if err := sess.Start(command); err != nil {
				t.Fatal(err)
			}
			if tc.signal {
				if err := sess.Signal(ssh.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			if err := sess.Close(); err != nil {
				t.Fatal(err)
			}
			l.poll("the session's end in the journal", func() bool {
				return slices.Contains(l.execs("pve1", 100), "base/packages apply failed: session ended: "+tc.cause+"; the script runs on")
			})
			if installed() {
				t.Error("installed before the script's duration was up")
			}
			l.poll("the script's effect", func() bool {
				return slices.ContainsFunc(l.s.Journal(), func(e Event) bool {
					return e.VMID == 100 && e.Name == "base/packages" && e.Phase == "apply" && e.OK && e.Detail == "finished after its session ended"
				})
			})
			if !installed() {
				t.Error("the script that ran on left curl uninstalled")
			}
		})
	}
}

// A built-in step takes the container's step lock (prelude.sh): a check
// sent while a step of an earlier, lost session still runs waits for it and
// then sees its work done, saying on stdout that it waited.
func TestStepLockWaitsForTheStepThatRanOn(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.Scripts = map[string]Duration{"base/packages": worldTime(100 * time.Second)}
	})
	locked := "phoenix_step_lock\n" + aptBody
	sess, err := l.conn("pve1").NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start(shellwords.Join(append([]string{"pct", "exec", "100", "--"}, scriptArgv("base/packages", "apply", locked)...))); err != nil {
		t.Fatal(err)
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	l.poll("the session's end in the journal", func() bool {
		return slices.Contains(l.execs("pve1", 100), "base/packages apply failed: session ended: sshd: session closed; the script runs on")
	})
	// Without the lock, a check looks at once, and finds nothing yet.
	if r := l.script("pve1", 100, "base/packages", "check", "dpkg -s curl"); r.code == 0 {
		t.Fatalf("a check without the lock: %v, want curl not yet installed", r)
	}
	r := l.script("pve1", 100, "base/packages", "check", "phoenix_step_lock\ndpkg -s curl")
	if r.code != 0 || !strings.Contains(r.stdout, "waiting for a phoenix step of an earlier run") {
		t.Errorf("a check with the lock: %v, want it to wait for the apply and find curl", r)
	}
}
