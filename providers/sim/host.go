package sim

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// hostCommand runs a command on the node itself: a named host script, or a
// plain read of what the kernel exposes about NVIDIA devices.
func (c *cluster) hostCommand(ctx context.Context, nodeName string, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
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
	c.mu.Lock()
	n := c.node(nodeName)
	c.mu.Unlock()
	if isShell(argv[0]) && len(argv) >= 4 && argv[1] == "-c" {
		phase := ""
		if len(argv) >= 5 {
			phase = argv[4]
		}
		x := &script{c: c, n: n, name: argv[3], phase: phase, body: argv[2], env: env, wrap: wrap, stdin: stdin}
		if m, known := builtinSteps[x.name]; known && !m.onNode || insideScripts[x.name] != nil {
			// The step's model needs a container; run on the node it would
			// change the wrong machine, so the caller has a bug to see.
			fmt.Fprintf(stderr, "phoenix-sim: %s runs inside a container (pct exec VMID -- ...), not on the node\n", x.name)
			c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, Phase: phase, OK: false, Detail: "container step run on the node"})
			return 2
		}
		if x.name == "phoenix/remove-raw-lxc" {
			return c.removeRawLXC(n, x, stderr)
		}
		if x.name == "phoenix/set-raw-lxc" {
			return c.setRawLXC(n, x, stderr)
		}
		if x.name == "phoenix/subids" {
			return c.subIDs(n, x, stdout)
		}
		if x.name == "phoenix/runfile-source" {
			return c.runfileSource(n, x, stdout)
		}
		if x.name == "phoenix/host-dirs" {
			return c.hostDirs(n, x, stdout)
		}
		if x.name == "phoenix/stage-file" {
			return c.stageFile(ctx, n, x, stderr)
		}
		if x.name == "phoenix/lease" {
			return c.leaseScript(n, x, stdout, stderr)
		}
		if x.name == "phoenix/host-probe" {
			c.mu.Lock()
			if c.chance(c.world.Spec.Faults.Exec.Scripts[x.name]) {
				// What a probe meets when the node's /sys is briefly unreadable
				// (a driver reloading): a failure that passes.
				c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, Phase: phase, OK: false, Detail: "injected failure"})
				c.mu.Unlock()
				_, _ = io.WriteString(stderr, "cat: /proc/driver/nvidia/version: Input/output error\n")
				return 1
			}
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
	case slices.Equal(argv, []string{"cat", "/sys/module/nvidia/version"}):
		if n.DriverVersion == "" {
			fmt.Fprintln(&errOut, "cat: /sys/module/nvidia/version: No such file or directory")
			code = 1
		} else {
			fmt.Fprintln(&out, n.DriverVersion)
		}
	case argv[0] == "true":
	case n.DriverVersion != "" && argv[0] == "nvidia-smi":
		for range n.GPUs {
			if slices.Contains(argv, "--query-gpu=driver_version") {
				fmt.Fprintln(&out, n.DriverVersion)
			} else {
				fmt.Fprintf(&out, "| NVIDIA-SMI %s   Driver Version: %s |\n", n.DriverVersion, n.DriverVersion)
			}
		}
	case n.DriverVersion != "" && argv[0] == "nvidia-modprobe" && slices.Contains(argv, "-u"):
		// What a oneshot unit before pve-guests.service runs so that
		// /dev/nvidia-uvm* exist when containers start. A new value, not a
		// write through the pointer, which the caller's World shares.
		loaded := true
		n.UVMLoaded = &loaded
	default:
		// A node without the driver has no NVIDIA tools either.
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
		fmt.Fprintf(&b, "device %s %d %d %o\n", d.path, d.major, d.minor, hostDeviceMode(d.path))
	}
	return b.String()
}

// removeRawLXC models the edit of a container's config file on the node
// (phoenix's own script, which takes Proxmox's config lock: here the
// cluster lock): the listed raw lines go from the current section.
func (c *cluster) removeRawLXC(n *node, x *script, stderr io.Writer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	vmid, _ := strconv.Atoi(x.env["PHOENIX_VMID"])
	g := c.guests[vmid]
	if g == nil || g.node != n.Name {
		fmt.Fprintf(stderr, "Configuration file '/etc/pve/lxc/%d.conf' does not exist\n", vmid)
		c.journal.add(c.now(), Event{Node: n.Name, VMID: vmid, Kind: "exec", Name: x.name, OK: false, Detail: "no such container"})
		return 2
	}
	drop := map[string]bool{}
	for _, l := range strings.Split(x.env["PHOENIX_LINES"], "\n") {
		drop[l] = true
	}
	g.conf.lxc = slices.DeleteFunc(g.conf.lxc, func(l [2]string) bool { return drop[l[0]+": "+l[1]] })
	c.journal.add(c.now(), Event{Node: n.Name, VMID: vmid, Kind: "exec", Name: x.name, OK: true})
	return 0
}

// runfileSource models phoenix's check of where a runfile will come from:
// the node's copy, or the first source that publishes the host's version.
func (c *cluster) runfileSource(n *node, x *script, stdout io.Writer) int {
	c.mu.Lock()
	var b strings.Builder
	if x.files()[x.env["NVIDIA_RUNFILE"]] != "" {
		b.WriteString("cached\n")
	} else {
		found := false
		for _, u := range runfileURLs(x.env) {
			if n.publishes(u, x.env["NVIDIA_VERSION"]) {
				fmt.Fprintf(&b, "tried %s 200\nfound %s\n", u, u)
				found = true
				break
			}
			fmt.Fprintf(&b, "tried %s 404\n", u)
		}
		if !found {
			b.WriteString("none\n")
		}
	}
	c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, OK: true})
	c.mu.Unlock()
	_, _ = io.WriteString(stdout, b.String())
	return 0
}

// hostDeviceMode is the mode of an NVIDIA node on a host: the driver makes
// its nodes 0666 (nvidia-modprobe's default; NVreg_DeviceFileMode), and the
// capability nodes under /dev/nvidia-caps 0400, readable by root only.
func hostDeviceMode(path string) int {
	if strings.HasPrefix(path, "/dev/nvidia-caps/") {
		return 0o400
	}
	return 0o666
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
