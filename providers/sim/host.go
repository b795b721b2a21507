package sim

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// hostCommand runs a command on the node itself: a named host script, or a
// plain read of what the kernel exposes about NVIDIA devices.
func (c *cluster) hostCommand(ctx context.Context, nodeName string, argv []string, stdout, stderr io.Writer) int {
	env := map[string]string{}
	if argv[0] == "env" || argv[0] == "/usr/bin/env" {
		argv = argv[1:]
		for len(argv) > 0 && strings.Contains(argv[0], "=") {
			k, v, _ := strings.Cut(argv[0], "=")
			env[k] = v
			argv = argv[1:]
		}
		if len(argv) == 0 {
			return 0
		}
	}
	c.mu.Lock()
	n := c.node(nodeName)
	c.mu.Unlock()
	if (argv[0] == "/bin/sh" || argv[0] == "sh") && len(argv) >= 4 && argv[1] == "-c" {
		phase := ""
		if len(argv) >= 5 {
			phase = argv[4]
		}
		x := &script{c: c, n: n, name: argv[3], phase: phase, body: argv[2], env: env}
		if x.name == "phoenix/host-probe" {
			c.mu.Lock()
			x.out.WriteString(hostProbe(n))
			c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, Phase: phase, OK: true})
			c.mu.Unlock()
			_, _ = io.WriteString(stdout, x.out.String())
			return 0
		}
		return c.runScript(ctx, x, stdout, stderr)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	var out, errOut strings.Builder
	code := 0
	switch {
	case slices.Equal(argv, []string{"cat", "/proc/driver/nvidia/version"}):
		if n.DriverVersion == "" {
			fmt.Fprintln(&errOut, "cat: /proc/driver/nvidia/version: No such file or directory")
			code = 1
		} else {
			out.WriteString(procVersion(n.DriverVersion))
		}
	case slices.Equal(argv, []string{"cat", "/proc/devices"}):
		out.WriteString(procDevices(n))
	case len(argv) >= 4 && argv[0] == "stat" && argv[1] == "-c" && argv[2] == "%n %t %T":
		// stat prints majors and minors in hex.
		devs := n.devices()
		for _, p := range argv[3:] {
			i := slices.IndexFunc(devs, func(d hostDevice) bool { return d.path == p })
			if i < 0 {
				fmt.Fprintf(&errOut, "stat: cannot statx '%s': No such file or directory\n", p)
				code = 1
				continue
			}
			fmt.Fprintf(&out, "%s %x %x\n", p, devs[i].major, devs[i].minor)
		}
	case argv[0] == "true":
	default:
		fmt.Fprintf(&errOut, "bash: line 1: %s: command not found\n", argv[0])
		code = 127
	}
	c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: strings.Join(argv, " "), OK: code == 0,
		Detail: firstLine(strings.TrimSpace(errOut.String()))})
	_, _ = io.WriteString(stdout, out.String())
	_, _ = io.WriteString(stderr, errOut.String())
	return code
}

// hostProbe is the output of phoenix's host probe script: the driver
// version, the NVIDIA GPUs on the PCI bus, and every NVIDIA device node with
// its real major and minor.
func hostProbe(n *node) string {
	var b strings.Builder
	driver := n.DriverVersion
	if driver == "" {
		driver = "none"
	}
	fmt.Fprintf(&b, "driver %s\npci-gpus %d\n", driver, n.GPUs)
	for _, d := range n.devices() {
		fmt.Fprintf(&b, "device %s %d %d\n", d.path, d.major, d.minor)
	}
	return b.String()
}

// procDevices is /proc/devices: character majors, nvidia-uvm's dynamic.
func procDevices(n *node) string {
	var b strings.Builder
	b.WriteString("Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  5 /dev/tty\n 10 misc\n")
	if n.DriverVersion != "" {
		b.WriteString("195 nvidia-frontend\n")
		if *n.UVMLoaded {
			fmt.Fprintf(&b, "%d nvidia-uvm\n", n.UVMMajor)
		}
		fmt.Fprintf(&b, "%d nvidia-caps\n", n.CapsMajor)
	}
	b.WriteString("\nBlock devices:\n  7 loop\n  8 sd\n253 device-mapper\n")
	return b.String()
}
