package sim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
	"github.com/phoenixhv/phoenix/providers/pveapi"
)

// The commands a node accepts over SSH: what phoenix sends, parsed with real
// shell quoting rules and answered with pct's exit codes (255 for pct's own
// errors). Anything else is "command not found", never a guess.

// pctError is pct's exit status for its own failures.
const pctError = 255

// nodeCommand runs one remote command string on a node, stdin its standard
// input (what phoenix/stage-file keeps; nil for none). Output is held
// back and written once the command is done: a write to an SSH channel
// blocks while the client's window is full, and must never do so with the
// cluster lock held. Only a long script's progress lines go out as they are
// printed, from where no lock is held (see sleepPrinting).
func (c *cluster) nodeCommand(ctx context.Context, nodeName, command string, stdin io.Reader, stdout, stderr io.Writer) int {
	out, errOut := &heldOutput{w: stdout}, &heldOutput{w: stderr}
	code := c.nodeCommandBuffered(ctx, nodeName, command, stdin, out, errOut)
	out.flush()
	errOut.flush()
	return code
}

// heldOutput is a command's stdout or stderr on its way to the client: what
// is written to it is kept until flush sends it on.
type heldOutput struct {
	held bytes.Buffer
	w    io.Writer
}

func (h *heldOutput) Write(p []byte) (int, error) { return h.held.Write(p) }

// flush sends what was held to the client. Never call it with c.mu held.
func (h *heldOutput) flush() {
	if h.held.Len() > 0 {
		_, _ = h.w.Write(h.held.Bytes())
		h.held.Reset()
	}
}

func (c *cluster) nodeCommandBuffered(ctx context.Context, nodeName, command string, stdin io.Reader, stdout, stderr io.Writer) int {
	argv, err := shellwords.Split(command)
	if err != nil {
		// Refused, never interpreted: a caller that forgot to quote would
		// run something else on a real node. The journal shows the attempt.
		fmt.Fprintf(stderr, "sh: 1: syntax error: %v\n", err)
		c.journal.add(c.now(), Event{Node: nodeName, Kind: "exec", Name: "sh", OK: false, Detail: "syntax error: " + err.Error()})
		return 2
	}
	if len(argv) == 0 {
		return 0
	}
	if argv[0] == "pct" {
		return c.pct(ctx, nodeName, argv[1:], stdin, stdout, stderr)
	}
	return c.hostCommand(ctx, nodeName, argv, stdin, stdout, stderr)
}

// pctUsage is the synopsis pct prints after a parameter error.
var pctUsage = map[string]string{
	"exec":   "pct exec <vmid> [<extra-args>] [OPTIONS]",
	"push":   "pct push <vmid> <file> <destination> [OPTIONS]",
	"set":    "pct set <vmid> [OPTIONS]",
	"status": "pct status <vmid> [OPTIONS]",
}

func (c *cluster) pct(ctx context.Context, nodeName string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "ERROR: no command specified")
		return pctError
	}
	usage, known := pctUsage[args[0]]
	if !known {
		fmt.Fprintf(stderr, "ERROR: unknown command 'pct %s'\n", args[0])
		return pctError
	}
	if len(args) < 2 {
		fmt.Fprintf(stderr, "400 not enough arguments\n%s\n", usage)
		return pctError
	}
	// vmid is checked against the schema before pct does anything:
	// PVE::JSONSchema's messages, then the usage line.
	vmid, err := strconv.Atoi(args[1])
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "400 Parameter verification failed.\nvmid: type check ('integer') failed - got '%s'\n%s\n", args[1], usage)
		return pctError
	case vmid < 100:
		fmt.Fprintf(stderr, "400 Parameter verification failed.\nvmid: value must have a minimum value of 100\n%s\n", usage)
		return pctError
	case vmid > 999_999_999:
		fmt.Fprintf(stderr, "400 Parameter verification failed.\nvmid: value must have a maximum value of 999999999\n%s\n", usage)
		return pctError
	}
	switch args[0] {
	case "exec":
		rest := args[2:]
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			fmt.Fprintln(stderr, "missing command")
			return pctError
		}
		return c.guestExec(ctx, nodeName, vmid, rest, stdin, stdout, stderr)
	case "push":
		return c.pctPush(nodeName, vmid, args[2:], stderr)
	case "set":
		return c.pctSet(nodeName, vmid, args[2:], stderr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g, aerr := c.lookup(nodeName, vmid)
	if aerr != nil {
		return c.pctFailed(nodeName, vmid, "status", aerr.Reason, stderr)
	}
	fmt.Fprintf(stdout, "status: %s\n", g.status())
	return 0
}

// pctFailed reports one of pct's own errors: on stderr, with exit 255, and
// in the journal, where a test sees what phoenix tried against which CT.
func (c *cluster) pctFailed(nodeName string, vmid int, sub, msg string, stderr io.Writer) int {
	fmt.Fprintln(stderr, msg)
	c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct " + sub, OK: false, Detail: msg})
	return pctError
}

// runningGuest finds a running container on the node, or says what pct says.
// Call with c.mu held.
func (c *cluster) runningGuest(nodeName string, vmid int, sub, notRunning string, stderr io.Writer) (*guest, int) {
	g, aerr := c.lookup(nodeName, vmid)
	if aerr != nil {
		return nil, c.pctFailed(nodeName, vmid, sub, aerr.Reason, stderr)
	}
	if g.run == nil {
		return nil, c.pctFailed(nodeName, vmid, sub, notRunning, stderr)
	}
	return g, 0
}

func isShell(name string) bool {
	return slices.Contains([]string{"/bin/sh", "sh", "/bin/bash", "bash"}, name)
}

// splitEnv takes the leading env NAME=VALUE words off an argv.
func splitEnv(argv []string) (map[string]string, []string) {
	env := map[string]string{}
	if argv[0] != "env" && argv[0] != "/usr/bin/env" {
		return env, argv
	}
	argv = argv[1:]
	for len(argv) > 0 && strings.Contains(argv[0], "=") && !strings.HasPrefix(argv[0], "=") {
		k, v, _ := strings.Cut(argv[0], "=")
		env[k] = v
		argv = argv[1:]
	}
	return env, argv
}

// unnamedScript refuses sh -c BODY without a name: the model knows scripts
// by name only and will not guess what a body does.
func unnamedScript(argv []string, stderr io.Writer) (int, bool) {
	if len(argv) >= 2 && isShell(argv[0]) && argv[1] == "-c" && len(argv) < 4 {
		fmt.Fprintln(stderr, "phoenix-sim: sh -c BODY needs a script name after the body (sh -c BODY NAME PHASE): the simulator models scripts by name")
		return 2, true
	}
	return 0, false
}

// guestExec runs argv inside a container: a named script
// ([env K=V...] /bin/sh -c BODY NAME [PHASE]) or one of a few plain commands,
// with the session's standard input, as lxc-attach passes it on.
func (c *cluster) guestExec(ctx context.Context, nodeName string, vmid int, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c.mu.Lock()
	g, code := c.runningGuest(nodeName, vmid, "exec", fmt.Sprintf("container '%d' not running!", vmid), stderr)
	if g == nil {
		c.mu.Unlock()
		return code
	}
	n, boot := c.node(nodeName), g.run
	c.mu.Unlock()
	if c.real != nil {
		return c.realExec(ctx, nodeName, vmid, argv, stdin, stdout, stderr)
	}

	wrap, argv, usage := splitTimeout(argv)
	if usage != "" {
		fmt.Fprintln(stderr, usage)
		return 125
	}
	env, argv := splitEnv(argv)
	if len(argv) == 0 {
		return 0
	}
	if code, refused := unnamedScript(argv, stderr); refused {
		return code
	}
	if isShell(argv[0]) && len(argv) >= 4 && argv[1] == "-c" {
		phase := ""
		if len(argv) >= 5 {
			phase = argv[4]
		}
		return c.runScript(ctx, &script{c: c, n: n, g: g, boot: boot, name: argv[3], phase: phase, body: argv[2], env: env, wrap: wrap, stdin: stdin}, stdout, stderr)
	}
	return c.plainGuestCommand(n, g, argv, stdout, stderr)
}

// runScript runs a named script after its modelled duration. A signal
// sshd delivers kills it before its effect; a client that went away without
// one leaves it running on to its effect (orphans.go).
func (c *cluster) runScript(ctx context.Context, x *script, stdout, stderr io.Writer) int {
	c.mu.Lock()
	d := c.world.Spec.Durations.Exec
	if x.phase != "check" && x.phase != "verify" {
		if sd, ok := c.world.Spec.Durations.Scripts[x.name]; ok {
			d = sd
		}
	}
	applying := x.phase != "check" && x.phase != "verify"
	fault := applying && (c.chance(c.world.Spec.Faults.Exec.Failure) || c.chance(c.world.Spec.Faults.Exec.Scripts[x.name]))
	hang := applying && slices.Contains(c.world.Spec.Faults.Hang.Scripts, x.name)
	c.mu.Unlock()
	// timeout(1) counts wall-clock time, not the world's: it cuts short a
	// script whose scaled duration is longer than its bound.
	if hang || x.wrap != nil && c.world.Scaled(d) > x.wrap.limit {
		return c.runUntilSignalled(ctx, x, stderr)
	}
	vmid := 0
	if x.g != nil {
		vmid = x.g.vmid
	}
	// A script cut short while it waits for the step lock runs on, and
	// waits on, where it runs: the model lets it have its effect after its
	// whole duration, not after the lock too.
	err := c.waitStepLock(ctx, x, stdout)
	start := time.Now()
	if err == nil {
		err = sleepPrinting(ctx, c.world.Scaled(d), x.phase, stdout)
	}
	if err != nil {
		if runsOn(ctx, x) {
			// No signal reached it: it runs on in the container (orphans.go).
			return c.runOn(ctx, x, vmid, fault, c.world.Scaled(d)-time.Since(start))
		}
		// Killed by a signal sshd delivered to its process group, or the
		// simulator closed:
		// nothing changed, and the journal says why, so a test can tell a
		// cancelled apply from one never sent.
		c.journal.add(c.now(), Event{Node: x.n.Name, VMID: vmid, Kind: "exec", Name: x.name, Phase: x.phase, OK: false,
			Detail: "cancelled: " + context.Cause(ctx).Error()})
		// Nobody reads this status: a client that closed the session gets
		// none, and one that sent a signal gets 128+n from sshd.
		return 128 + 15
	}
	code := c.finishScript(x, vmid, fault)
	_, _ = io.WriteString(stdout, x.out.String())
	_, _ = io.WriteString(stderr, x.err.String())
	return code
}

// finishScript applies a script's effect under the cluster lock, released
// even if a step model panics (sshd turns a panic into exit 255; a lock held
// by a dead handler would hang the whole simulator). The journal entry is
// written under the same lock, so the journal's order is the order the
// effects happened in.
func (c *cluster) finishScript(x *script, vmid int, fault bool) (code int) {
	code = pctError // what a panicking model is journaled as
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		detail := firstLine(strings.TrimSpace(x.err.String()))
		if x.orphan {
			detail = strings.TrimSuffix("finished after its session ended: "+detail, ": ")
		}
		c.journal.add(c.now(), Event{Node: x.n.Name, VMID: vmid, Kind: "exec", Name: x.name, Phase: x.phase, OK: code == 0,
			Detail: detail})
	}()
	switch {
	case fault:
		return x.fail(100, "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2107 (apt-get)")
	case x.g != nil && (c.guests[x.g.vmid] != x.g || x.g.run != x.boot):
		// The CT was stopped, restarted or destroyed while the command ran,
		// which killed it before its effect.
		return x.fail(pctError, "container '%d' not running!", x.g.vmid)
	}
	if code, ok := c.bodyExit(x); ok {
		return code
	}
	return x.run()
}

// Progress lines: a script's apply or uninstall that runs at least
// progressMin prints one every progressSteps-th of its duration, as apt does
// while it installs, so a client sees it is alive.
const (
	progressMin   = 200 * time.Millisecond
	progressSteps = 8
	progressWidth = 40
)

// sleepPrinting sleeps for a script's duration as sleep does, printing
// progress lines on stdout while it does. It runs without c.mu held, so the
// lines go out to the client as they are printed, after whatever stdout held
// before them; a cancelled script stops printing.
func sleepPrinting(ctx context.Context, d time.Duration, phase string, stdout io.Writer) error {
	if d < progressMin || (phase != "apply" && phase != "uninstall") {
		return sleep(ctx, d)
	}
	start := time.Now()
	for i := 1; i < progressSteps; i++ {
		if err := sleep(ctx, time.Until(start.Add(d*time.Duration(i)/progressSteps))); err != nil {
			return err
		}
		_, _ = io.WriteString(stdout, progressLine(i*100/progressSteps))
		if h, ok := stdout.(*heldOutput); ok {
			h.flush()
		}
	}
	return sleep(ctx, time.Until(start.Add(d)))
}

// progressLine is the line apt prints (dpkg's progress, without a terminal
// to redraw it in place) when it is pct percent done.
func progressLine(pct int) string {
	done := pct * progressWidth / 100
	return fmt.Sprintf("Progress: [%3d%%] [%s%s]\n", pct, strings.Repeat("#", done), strings.Repeat(".", progressWidth-done))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// plainGuestCommand answers the few ordinary commands worth modelling.
func (c *cluster) plainGuestCommand(n *node, g *guest, argv []string, stdout, stderr io.Writer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := &script{c: c, n: n, g: g, name: strings.Join(argv, " ")}
	code := 0
	switch {
	case slices.Equal(argv, []string{"cat", "/etc/os-release"}):
		x.out.WriteString(g.disk.osRelease())
	case slices.Equal(argv, []string{"cat", "/etc/ssh/ssh_host_ed25519_key.pub"}):
		if g.disk.hostKeys == "" {
			code = x.fail(1, "cat: /etc/ssh/ssh_host_ed25519_key.pub: No such file or directory")
		} else {
			fmt.Fprintf(&x.out, "ssh-ed25519 %s root@%s\n", g.disk.hostKeys, g.conf.vals["hostname"])
		}
	case slices.Equal(argv, []string{"cat", "/etc/machine-id"}):
		fmt.Fprintln(&x.out, g.disk.machineID)
	case slices.Equal(argv, []string{"cat", "/proc/driver/nvidia/version"}):
		if n.DriverVersion == "" {
			code = x.fail(1, "cat: /proc/driver/nvidia/version: No such file or directory")
		} else {
			x.out.WriteString(procVersion(n.DriverVersion))
		}
	case argv[0] == "nvidia-smi":
		msg, rc := x.nvidiaSMI()
		if rc != 0 {
			code = x.fail(rc, "%s", msg)
			break
		}
		for range x.gpusVisible() {
			if slices.Contains(argv, "--query-gpu=driver_version") {
				fmt.Fprintln(&x.out, n.DriverVersion)
			} else {
				fmt.Fprintf(&x.out, "| NVIDIA-SMI %s   Driver Version: %s |\n", n.DriverVersion, n.DriverVersion)
			}
		}
	case (argv[0] == "nvcc" || argv[0] == "/usr/local/cuda/bin/nvcc") && len(argv) == 2 && argv[1] == "--version":
		if g.disk.cuda == "" {
			code = x.fail(127, "sh: 1: %s: not found", argv[0])
		} else {
			fmt.Fprintf(&x.out, "Cuda compilation tools, release %s, V%s.61\n", g.disk.cuda, g.disk.cuda)
		}
	case argv[0] == "test" && len(argv) == 3 && argv[1] == "-c":
		if !x.visible(argv[2]) && !slices.Contains(containerDevices, argv[2]) {
			code = 1
		}
	case argv[0] == "test" && len(argv) == 3 && (argv[1] == "-f" || argv[1] == "-s"):
		if _, ok := g.disk.files[argv[2]]; !ok {
			code = 1
		}
	case argv[0] == "test" && len(argv) == 3 && argv[1] == "-e":
		if _, ok := g.disk.files[argv[2]]; !ok && !x.visible(argv[2]) && !slices.Contains(containerDevices, argv[2]) {
			code = 1
		}
	case argv[0] == "true":
	case argv[0] == "false":
		code = 1
	case argv[0] == "hostname":
		// pve-container's Setup::Base::set_hostname writes the part before
		// the first dot to /etc/hostname (the whole name goes to /etc/hosts).
		name, _, _ := strings.Cut(g.conf.vals["hostname"], ".")
		fmt.Fprintln(&x.out, name)
	case argv[0] == "echo":
		fmt.Fprintln(&x.out, strings.Join(argv[1:], " "))
	default:
		code = x.fail(127, "sh: 1: %s: not found", argv[0])
	}
	c.journal.add(c.now(), Event{Node: n.Name, VMID: g.vmid, Kind: "exec", Name: x.name, OK: code == 0,
		Detail: firstLine(strings.TrimSpace(x.err.String()))})
	_, _ = io.WriteString(stdout, x.out.String())
	_, _ = io.WriteString(stderr, x.err.String())
	return code
}

// containerDevices are the device nodes LXC creates in every container,
// passed through or not.
var containerDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/console", "/dev/ptmx"}

// procVersion is /proc/driver/nvidia/version for a driver version.
func procVersion(v string) string {
	return fmt.Sprintf("NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jul 17 20:30:36 UTC 2025\n"+
		"GCC version:  gcc version 14.2.0 (Debian 14.2.0-19)\n", v)
}

// optKind is how pct's command line takes an option.
type optKind int

const (
	optString optKind = iota // --name value, --name=value
	optBool                  // the value is optional: --name alone means 1
	optList                  // may repeat; the values join with commas
)

// getOptions parses pct's options as PVE::JSONSchema::get_options does with
// Getopt::Long: "--name value", "--name=value" and "-name" alike, words that
// are not options are the positional arguments in order, "--" ends the
// options. kind says whether pct knows an option at all. A failure is what
// pct prints before the usage line.
func getOptions(args []string, kind func(name string) (optKind, bool)) (map[string]string, []string, string) {
	opts := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			name, ok = strings.CutPrefix(a, "-")
		}
		if !ok || name == "" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(name, "=")
		k, known := kind(name)
		if !known {
			return nil, nil, "Unknown option: " + name + "\n400 unable to parse option"
		}
		if !hasVal {
			next := i+1 < len(args)
			switch {
			case k == optBool && (!next || strings.HasPrefix(args[i+1], "-")):
				// Getopt's optional value is taken only when the next
				// word does not look like an option.
				val = "1"
			case !next:
				return nil, nil, "Option " + name + " requires an argument\n400 unable to parse option"
			default:
				val = args[i+1]
				i++
			}
		}
		if old, ok := opts[name]; ok && k == optList {
			val = old + "," + val
		}
		opts[name] = val
	}
	return opts, pos, ""
}

// positional takes pct's positional arguments after the vmid, or says why not.
func positional(pos []string, want int) string {
	switch {
	case len(pos) < want:
		return "400 not enough arguments"
	case len(pos) > want:
		return "400 too many arguments"
	}
	return ""
}

// pctPush copies a node file into a running container, with the mode and
// owner --perms, --user and --group give it (guestfiles.go, pushMeta), into
// a directory that must exist.
func (c *cluster) pctPush(nodeName string, vmid int, args []string, stderr io.Writer) int {
	opts, pos, msg := getOptions(args, func(name string) (optKind, bool) {
		return optString, name == "perms" || name == "user" || name == "group"
	})
	if msg == "" {
		msg = positional(pos, 2)
	}
	if msg != "" {
		fmt.Fprintf(stderr, "%s\n%s\n", msg, pctUsage["push"])
		return pctError
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g, code := c.runningGuest(nodeName, vmid, "push", "can only push files to a running CT", stderr)
	if g == nil {
		return code
	}
	content, ok := c.node(nodeName).files[pos[0]]
	if !ok {
		// The copy runs as a task whose failure pct push does not turn into
		// an exit status: the file is missing and the exit code is 0.
		fmt.Fprintf(stderr, "failed to open %s for reading\n", pos[0])
		c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct push", OK: false, Detail: "failed to open " + pos[0]})
		return 0
	}
	if c.real == nil {
		meta, msg := g.disk.pushMeta(pos[1], opts)
		if msg != "" {
			// create_file dies in the same worker: exit 0 again.
			fmt.Fprintln(stderr, msg)
			c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct push", OK: false, Detail: msg})
			return 0
		}
		g.disk.fileMeta = with(g.disk.fileMeta, pos[1], meta)
	} else if err := c.realPush(vmid, content, pos[1], opts); err != nil {
		return c.pctFailed(nodeName, vmid, "push", err.Error(), stderr)
	}
	g.disk.files[pos[1]] = content
	c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct push", OK: true, Detail: pos[0] + " -> " + pos[1]})
	return 0
}

// pctSet changes a container's config as root@pam, the way to set what API
// tokens may not (dev[n], features beyond nesting). It takes the options of
// PUT .../config and validates them against the same API schema pct does.
func (c *cluster) pctSet(nodeName string, vmid int, args []string, stderr io.Writer) int {
	usage := pctUsage["set"]
	m := c.configMethod
	if m == nil {
		fmt.Fprintln(stderr, "phoenix-sim: no API schema for pct set")
		return pctError
	}
	opts, pos, msg := getOptions(args, func(name string) (optKind, bool) {
		// node and vmid come from the host and the command line, not options.
		p, ok := m.Property(name)
		switch {
		case !ok || name == "node" || name == "vmid":
			return 0, false
		case p.Type == "boolean":
			return optBool, true
		case p.Type == "array" || strings.HasSuffix(p.Format, "-list"):
			return optList, true
		}
		return optString, true
	})
	if msg == "" {
		msg = positional(pos, 0)
	}
	if msg != "" {
		fmt.Fprintf(stderr, "%s\n%s\n", msg, usage)
		return pctError
	}
	params := map[string]any{}
	for k, v := range opts {
		params[k] = v
	}
	merged, verrs := pveapi.MergeParams(map[string]string{"node": nodeName, "vmid": strconv.Itoa(vmid)}, params)
	if verrs == nil {
		verrs = m.Verify(merged)
	}
	if verrs != nil {
		fmt.Fprint(stderr, "400 "+verrs.Error()+usage+"\n")
		return pctError
	}
	p := map[string]string{}
	for k, v := range merged {
		p[k] = paramString(v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, aerr := c.setConfig(caller{user: "root@pam"}, nodeName, vmid, p)
	c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct set", OK: aerr == nil,
		Detail: strings.Join(slices.Sorted(maps.Keys(opts)), ",")})
	switch {
	case aerr == nil:
		return 0
	case aerr.Errors != nil:
		fmt.Fprint(stderr, "400 "+pveapi.Errors(aerr.Errors).Error()+usage+"\n")
	default:
		fmt.Fprintln(stderr, aerr.Reason)
	}
	return pctError
}
