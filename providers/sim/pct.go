package sim

import (
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

// nodeCommand runs one remote command string on a node.
func (c *cluster) nodeCommand(ctx context.Context, nodeName, command string, stdout, stderr io.Writer) int {
	argv, err := shellwords.Split(command)
	if err != nil {
		fmt.Fprintf(stderr, "sh: 1: syntax error: %v\n", err)
		return 2
	}
	if len(argv) == 0 {
		return 0
	}
	if argv[0] == "pct" {
		return c.pct(ctx, nodeName, argv[1:], stdout, stderr)
	}
	return c.hostCommand(ctx, nodeName, argv, stdout, stderr)
}

func (c *cluster) pct(ctx context.Context, nodeName string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "ERROR: no command specified")
		return pctError
	}
	if len(args) < 2 {
		fmt.Fprintf(stderr, "400 not enough arguments\npct %s <vmid>\n", args[0])
		return pctError
	}
	vmid, err := strconv.Atoi(args[1])
	if err != nil || vmid < 100 {
		fmt.Fprintf(stderr, "400 Parameter verification failed.\nvmid: type check ('integer') failed - got '%s'\n", args[1])
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
		return c.guestExec(ctx, nodeName, vmid, rest, stdout, stderr)
	case "push":
		return c.pctPush(nodeName, vmid, args[2:], stderr)
	case "set":
		return c.pctSet(nodeName, vmid, args[2:], stderr)
	case "status":
		c.mu.Lock()
		defer c.mu.Unlock()
		g, aerr := c.lookup(nodeName, vmid)
		if aerr != nil {
			fmt.Fprintln(stderr, aerr.Reason)
			return pctError
		}
		fmt.Fprintf(stdout, "status: %s\n", g.status())
		return 0
	}
	fmt.Fprintf(stderr, "ERROR: unknown command 'pct %s'\n", args[0])
	return pctError
}

// runningGuest finds a running container on the node, or says what pct says.
func (c *cluster) runningGuest(nodeName string, vmid int, stderr io.Writer) (*guest, int) {
	g, aerr := c.lookup(nodeName, vmid)
	if aerr != nil {
		fmt.Fprintln(stderr, aerr.Reason)
		return nil, pctError
	}
	if g.run == nil {
		fmt.Fprintf(stderr, "container '%d' not running!\n", vmid)
		return nil, pctError
	}
	return g, 0
}

// guestExec runs argv inside a container: a named script
// ([env K=V...] /bin/sh -c BODY NAME [PHASE]) or one of a few plain commands.
func (c *cluster) guestExec(ctx context.Context, nodeName string, vmid int, argv []string, stdout, stderr io.Writer) int {
	env := map[string]string{}
	if argv[0] == "env" || argv[0] == "/usr/bin/env" {
		argv = argv[1:]
		for len(argv) > 0 && strings.Contains(argv[0], "=") && !strings.HasPrefix(argv[0], "=") {
			k, v, _ := strings.Cut(argv[0], "=")
			env[k] = v
			argv = argv[1:]
		}
		if len(argv) == 0 {
			return 0
		}
	}
	c.mu.Lock()
	g, code := c.runningGuest(nodeName, vmid, stderr)
	if g == nil {
		c.mu.Unlock()
		return code
	}
	n := c.node(nodeName)
	c.mu.Unlock()

	if (argv[0] == "/bin/sh" || argv[0] == "sh" || argv[0] == "/bin/bash" || argv[0] == "bash") && len(argv) >= 4 && argv[1] == "-c" {
		phase := ""
		if len(argv) >= 5 {
			phase = argv[4]
		}
		return c.runScript(ctx, &script{c: c, n: n, g: g, name: argv[3], phase: phase, body: argv[2], env: env}, stdout, stderr)
	}
	return c.plainGuestCommand(ctx, n, g, argv, stdout, stderr)
}

// runScript runs a named script after its modelled duration. A cancelled
// command (the client went away, or sent a signal) changes nothing.
func (c *cluster) runScript(ctx context.Context, x *script, stdout, stderr io.Writer) int {
	c.mu.Lock()
	d := c.world.Spec.Durations.Exec
	if x.phase != "check" && x.phase != "verify" {
		if sd, ok := c.world.Spec.Durations.Scripts[x.name]; ok {
			d = sd
		}
	}
	fault := x.phase != "check" && x.phase != "verify" && c.chance(c.world.Spec.Faults.Exec.Failure)
	c.mu.Unlock()
	if err := sleep(ctx, c.world.Scaled(d)); err != nil {
		return 130
	}
	c.mu.Lock()
	var code int
	if fault {
		code = x.fail(100, "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2107 (apt-get)")
	} else {
		// The guest may have been stopped or destroyed while the command ran.
		if x.g != nil && (c.guests[x.g.vmid] != x.g || x.g.run == nil) {
			code = x.fail(pctError, "container '%d' not running!", x.g.vmid)
		} else {
			code = x.run()
		}
	}
	vmid := 0
	if x.g != nil {
		vmid = x.g.vmid
	}
	c.journal.add(c.now(), Event{Node: x.n.Name, VMID: vmid, Kind: "exec", Name: x.name, Phase: x.phase, OK: code == 0,
		Detail: firstLine(strings.TrimSpace(x.err.String()))})
	c.mu.Unlock()
	_, _ = io.WriteString(stdout, x.out.String())
	_, _ = io.WriteString(stderr, x.err.String())
	return code
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
func (c *cluster) plainGuestCommand(ctx context.Context, n *node, g *guest, argv []string, stdout, stderr io.Writer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := &script{c: c, n: n, g: g, name: strings.Join(argv, " ")}
	code := 0
	switch {
	case slices.Equal(argv, []string{"cat", "/etc/os-release"}):
		x.out.WriteString(g.disk.osRelease())
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
	case argv[0] == "test" && len(argv) == 3 && (argv[1] == "-c" || argv[1] == "-e"):
		if !x.visible(argv[2]) {
			code = 1
		}
	case argv[0] == "true":
	case argv[0] == "false":
		code = 1
	case argv[0] == "hostname":
		fmt.Fprintln(&x.out, g.conf.vals["hostname"])
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

// procVersion is /proc/driver/nvidia/version for a driver version.
func procVersion(v string) string {
	return fmt.Sprintf("NVRM version: NVIDIA UNIX x86_64 Kernel Module  %s  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jul 17 20:30:36 UTC 2025\n"+
		"GCC version:  gcc version 14.2.0 (Debian 14.2.0-19)\n", v)
}

// pctPush copies a node file into a running container.
func (c *cluster) pctPush(nodeName string, vmid int, args []string, stderr io.Writer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var pos []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--perms", "--user", "--group":
			i++
		default:
			pos = append(pos, args[i])
		}
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "400 wrong number of arguments\npct push <vmid> <file> <destination> [OPTIONS]")
		return pctError
	}
	g, aerr := c.lookup(nodeName, vmid)
	if aerr != nil {
		fmt.Fprintln(stderr, aerr.Reason)
		return pctError
	}
	if g.run == nil {
		fmt.Fprintln(stderr, "can only push files to a running CT")
		return pctError
	}
	content, ok := c.node(nodeName).files[pos[0]]
	if !ok {
		// The copy runs as a task whose failure pct push does not turn into
		// an exit status: the file is missing and the exit code is 0.
		fmt.Fprintf(stderr, "failed to open %s for reading\n", pos[0])
		c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct push", OK: false, Detail: "failed to open " + pos[0]})
		return 0
	}
	g.disk.files[pos[1]] = content
	c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct push", OK: true, Detail: pos[0] + " -> " + pos[1]})
	return 0
}

// pctSet changes a container's config as root@pam, the way to set what API
// tokens may not (dev[n], features beyond nesting). It validates its options
// against the same API schema pct does.
func (c *cluster) pctSet(nodeName string, vmid int, args []string, stderr io.Writer) int {
	params := map[string]any{}
	for i := 0; i < len(args); i++ {
		k, ok := strings.CutPrefix(args[i], "--")
		if !ok || i+1 >= len(args) {
			fmt.Fprintf(stderr, "400 unable to parse option\npct set <vmid> [OPTIONS]\n")
			return pctError
		}
		if v, ok := params[k]; ok && k == "delete" {
			params[k] = v.(string) + "," + args[i+1]
		} else {
			params[k] = args[i+1]
		}
		i++
	}
	schema, err := pveapi.Load(pveapi.V91)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return pctError
	}
	m, pathParams, err := schema.Lookup("PUT", fmt.Sprintf("/nodes/%s/lxc/%d/config", nodeName, vmid))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return pctError
	}
	merged, verrs := pveapi.MergeParams(pathParams, params)
	if verrs == nil {
		verrs = m.Verify(merged)
	}
	if verrs != nil {
		fmt.Fprint(stderr, "400 "+verrs.Error()+"pct set <vmid> [OPTIONS]\n")
		return pctError
	}
	p := map[string]string{}
	for k, v := range merged {
		p[k] = paramString(v)
	}
	c.mu.Lock()
	_, aerr := c.setConfig(caller{user: "root@pam"}, nodeName, vmid, p)
	c.mu.Unlock()
	c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: "pct set", OK: aerr == nil,
		Detail: strings.Join(slices.Sorted(maps.Keys(params)), ",")})
	if aerr != nil {
		if aerr.Errors != nil {
			fmt.Fprint(stderr, "400 "+pveapi.Errors(aerr.Errors).Error()+"pct set <vmid> [OPTIONS]\n")
		} else {
			fmt.Fprintln(stderr, aerr.Reason)
		}
		return pctError
	}
	return 0
}
