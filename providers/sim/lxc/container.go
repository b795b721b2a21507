package lxc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ContainerOptions describe a container's LXC configuration.
type ContainerOptions struct {
	// Hostname is the container's host name; default its name. It is
	// written into /etc/hostname and /etc/hosts at every start, as Proxmox
	// VE does.
	Hostname string
	// Unprivileged maps the container's ids 0..65535 to IDMapBase.. on the
	// host (Proxmox VE's default id map).
	Unprivileged bool
	// Address is the container's static IPv4 address in the Host's subnet;
	// empty allocates the next free one.
	Address string
	// Nesting lets the container run containers (docker needs it), as
	// Proxmox VE's features: nesting=1.
	Nesting bool
	// Keyctl is Proxmox VE's features: keyctl=1 (the keyctl system calls
	// for docker in unprivileged containers). The seccomp profile here
	// does not filter keyctl, so it changes nothing; it is kept to say
	// what the container was asked for.
	Keyctl bool
	// Devices are character device nodes made in the container's /dev.
	Devices []Device
}

// Device is a character device node in a container, as Proxmox VE's devN: the
// node is made with mknod on the host and bind-mounted, so it exists with
// this mode and owner in privileged and unprivileged containers alike.
// Opening one fails when no driver on the machine serves the major.
type Device struct {
	Path         string // /dev/nvidia0
	Major, Minor uint32
	Mode         os.FileMode // permission bits, e.g. 0o666
	UID, GID     int         // inside the container
}

// Container is one LXC container of a Host.
type Container struct {
	h       *Host
	name    string // host name, as the simulator knows the guest
	lxcName string // unique on the machine
	dir     string // lxcPath/lxcName: config and log
	rootfs  string
	addr    netip.Addr

	mu   sync.Mutex
	opts ContainerOptions
	gone bool
}

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$`)

// Create makes a container from the pristine Debian 12 root file system (the
// id-shifted copy when o.Unprivileged). It is not started.
func (h *Host) Create(ctx context.Context, name string, o ContainerOptions) (*Container, error) {
	src := h.rootfs
	if o.Unprivileged {
		src = h.shifted
	}
	return h.newContainer(ctx, name, o, src, true)
}

// Clone makes a container whose root file system is a copy of src's: what
// src installed is on the clone's disk. A clone is privileged or not as its
// source is (Proxmox VE copies the config); o.Unprivileged must agree.
func (h *Host) Clone(ctx context.Context, src *Container, name string, o ContainerOptions) (*Container, error) {
	if src == nil || src.h != h {
		return nil, fmt.Errorf("clone %s: the source is not a container of this host", name)
	}
	src.mu.Lock()
	gone, unpriv := src.gone, src.opts.Unprivileged
	src.mu.Unlock()
	if gone {
		return nil, fmt.Errorf("clone %s from %s: the source has been destroyed", name, src.name)
	}
	if o.Unprivileged != unpriv {
		return nil, fmt.Errorf("clone %s from %s: unprivileged=%t, but the source's is %t", name, src.name, o.Unprivileged, unpriv)
	}
	return h.newContainer(ctx, name, o, src.rootfs, false)
}

func (h *Host) newContainer(ctx context.Context, name string, o ContainerOptions, srcRootfs string, pristine bool) (*Container, error) {
	if !namePattern.MatchString(name) {
		return nil, fmt.Errorf("container name %q: want a host name (letters, digits, dots, dashes)", name)
	}
	for _, d := range o.Devices {
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	if _, dup := h.containers[name]; dup {
		h.mu.Unlock()
		return nil, fmt.Errorf("container %s exists", name)
	}
	addr, err := h.allocate(o.Address)
	if err != nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	lxcName := "phx" + h.id + "-" + name
	c := &Container{
		h:       h,
		name:    name,
		lxcName: lxcName,
		dir:     filepath.Join(h.lxcPath, lxcName),
		rootfs:  filepath.Join(h.guestDir, lxcName, "rootfs"),
		addr:    addr,
		opts:    o,
	}
	c.opts.Address = addr.String()
	c.opts.Devices = append([]Device(nil), o.Devices...)
	h.containers[name] = c
	cas := append([][]byte(nil), h.cas...)
	h.mu.Unlock()

	err = func() error {
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			return err
		}
		if err := copyTree(ctx, srcRootfs, c.rootfs); err != nil {
			return err
		}
		if err := c.writeIdentity(pristine, cas); err != nil {
			return err
		}
		return c.writeConfig()
	}()
	if err != nil {
		_ = c.destroy()
		return nil, fmt.Errorf("create container %s: %w", name, err)
	}
	return c, nil
}

// allocate reserves want, or the next free address; h.mu is held.
func (h *Host) allocate(want string) (netip.Addr, error) {
	if want != "" {
		a, err := netip.ParseAddr(strings.SplitN(want, "/", 2)[0])
		if err != nil {
			return netip.Addr{}, fmt.Errorf("address %q: %w", want, err)
		}
		last := a.As4()[3]
		if !a.Is4() || !h.subnet.Contains(a) || last == 0 || last == 255 {
			return netip.Addr{}, fmt.Errorf("address %s is not a host address in %s", a, h.subnet)
		}
		if h.used[a] {
			return netip.Addr{}, fmt.Errorf("address %s is in use", a)
		}
		h.used[a] = true
		return a, nil
	}
	for a := h.gateway.Next(); h.subnet.Contains(a) && a.As4()[3] != 255; a = a.Next() {
		if !h.used[a] {
			h.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %s", h.subnet)
}

// Name is the container's name on its Host.
func (c *Container) Name() string { return c.name }

// hostname is the host name the container gets; c.mu is held.
func (c *Container) hostname() string {
	if c.opts.Hostname != "" {
		return c.opts.Hostname
	}
	return c.name
}

// Address is the container's IPv4 address.
func (c *Container) Address() string { return c.addr.String() }

// Rootfs is the container's root file system on the host, for reading what
// is on its disk (ids there are the host's: shifted when unprivileged).
func (c *Container) Rootfs() string { return c.rootfs }

// Options are the container's current options.
func (c *Container) Options() ContainerOptions {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.opts
	o.Devices = append([]Device(nil), c.opts.Devices...)
	return o
}

// Reconfigure changes the host name, nesting, keyctl and devices; they take effect at the
// next start, as a pending change does in Proxmox VE. The id map and address
// cannot change.
func (c *Container) Reconfigure(o ContainerOptions) error {
	for _, d := range o.Devices {
		if err := d.check(); err != nil {
			return fmt.Errorf("container %s: %w", c.name, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return fmt.Errorf("container %s has been destroyed", c.name)
	}
	if o.Unprivileged != c.opts.Unprivileged {
		return fmt.Errorf("container %s: unprivileged cannot change", c.name)
	}
	if o.Address != "" && o.Address != c.opts.Address {
		return fmt.Errorf("container %s: address cannot change", c.name)
	}
	c.opts.Nesting, c.opts.Keyctl, c.opts.Hostname = o.Nesting, o.Keyctl, o.Hostname
	c.opts.Devices = append([]Device(nil), o.Devices...)
	return c.writeConfigLocked()
}

// hostID maps an id inside the container to the host.
func (c *Container) hostID(id int) int {
	if c.opts.Unprivileged {
		return id + IDMapBase
	}
	return id
}

// writeIdentity writes what Proxmox VE writes into a container at setup: its
// host name, /etc/hosts, resolv.conf, the apt sources and proxy, and the
// trusted CAs. The sources and CAs go only into containers made from the
// pristine tree; a clone keeps its source's.
func (c *Container) writeIdentity(pristine bool, cas [][]byte) error {
	if err := c.writeNetworkFiles(); err != nil {
		return err
	}
	var files []struct{ path, data string }
	if c.h.mirror.Scheme == "https" || net.ParseIP(c.h.mirror.Hostname()) != nil {
		// A name in /etc/hosts cannot lead an https mirror or an address
		// to the gateway: apt goes through the proxy instead.
		files = append(files, struct{ path, data string }{"etc/apt/apt.conf.d/01phoenix-sim-proxy",
			fmt.Sprintf("Acquire::http::Proxy \"http://%[1]s:%[2]d/\";\nAcquire::https::Proxy \"http://%[1]s:%[2]d/\";\n", c.h.gateway, c.h.proxy.port())})
	}
	if pristine {
		m := c.h.mirror.String()
		files = append(files, struct{ path, data string }{"etc/apt/sources.list", fmt.Sprintf(
			"deb %s bookworm main contrib\ndeb %s bookworm-updates main contrib\n# security updates\ndeb %s bookworm-security main contrib\n",
			m, m, securityMirror(c.h.mirror))})
		for i, ca := range cas {
			files = append(files, struct{ path, data string }{fmt.Sprintf("usr/local/share/ca-certificates/phoenix-sim-%d.crt", i), string(ca)})
		}
	}
	for _, f := range files {
		if err := c.writeFile(f.path, []byte(f.data), 0o644); err != nil {
			return err
		}
	}
	// Proxmox VE's container setup masks the kernel file system mounts a
	// container may not make (unprivileged, they fail and leave systemd
	// degraded).
	for _, unit := range []string{"sys-kernel-config.mount", "sys-kernel-debug.mount"} {
		link := filepath.Join(c.rootfs, "etc/systemd/system", unit)
		_ = os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return err
		}
		if err := os.Lchown(link, c.hostID(0), c.hostID(0)); err != nil {
			return err
		}
	}
	if pristine && len(cas) > 0 {
		bundle := filepath.Join(c.rootfs, "etc/ssl/certs/ca-certificates.crt")
		if exists(bundle) {
			f, err := os.OpenFile(bundle, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.Write(bytes.Join(cas, nil))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// writeNetworkFiles writes /etc/hostname, /etc/hosts, /etc/resolv.conf and
// /etc/network/interfaces, as Proxmox VE's container setup
// (PVE::LXC::Setup::Debian) does before every start; c.mu is held or
// the container is not yet shared.
func (c *Container) writeNetworkFiles() error {
	name := c.hostname()
	// Setup::Base::set_hostname: /etc/hostname holds the part before the
	// first dot; systemd makes it the host name at boot.
	short, _, _ := strings.Cut(name, ".")
	files := []struct{ path, data string }{
		{"etc/hostname", short + "\n"},
		// The mirror's name leads to the gateway, where the archive proxy
		// answers: it is the one name a container resolves.
		{"etc/hosts", fmt.Sprintf("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n%s\t%s\n",
			name, c.h.gateway, c.h.mirror.Hostname())},
		// No resolver: only the archive and forwarded ports on the gateway
		// are reachable, so there is nothing else to resolve.
		{"etc/resolv.conf", "# phoenix sim: containers reach only the Debian archive and the gateway\n"},
		{"etc/network/interfaces", fmt.Sprintf("auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n\taddress %s\n\tgateway %s\n",
			netip.PrefixFrom(c.addr, 24), c.h.gateway)},
	}
	for _, f := range files {
		if err := c.writeFile(f.path, []byte(f.data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes a file into the stopped container's root file system,
// owned by its root. A directory on the way that is a symbolic link (which
// would resolve on the host, outside the container) is refused.
func (c *Container) writeFile(rel string, data []byte, mode os.FileMode) error {
	p := filepath.Join(c.rootfs, rel)
	for dir := filepath.Dir(p); dir != c.rootfs && strings.HasPrefix(dir, c.rootfs); dir = filepath.Dir(dir) {
		if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("write /%s: %s is a symbolic link", rel, strings.TrimPrefix(dir, c.rootfs))
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// A symbolic link (resolv.conf often is one) is replaced, not followed.
	_ = os.Remove(p)
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Lchown(p, c.hostID(0), c.hostID(0))
}

func (d Device) check() error {
	clean := path.Clean(d.Path)
	if !strings.HasPrefix(clean, "/dev/") || clean != d.Path {
		return fmt.Errorf("device %q: want a path under /dev", d.Path)
	}
	if d.Mode&^0o777 != 0 {
		return fmt.Errorf("device %s: mode %o has more than permission bits", d.Path, d.Mode)
	}
	if d.UID < 0 || d.UID >= IDMapCount || d.GID < 0 || d.GID >= IDMapCount {
		return fmt.Errorf("device %s: uid/gid %d/%d out of 0..%d", d.Path, d.UID, d.GID, IDMapCount-1)
	}
	return nil
}

func (c *Container) writeConfig() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeConfigLocked()
}

// writeConfigLocked renders the LXC config and makes the device nodes.
func (c *Container) writeConfigLocked() error {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	line("lxc.uts.name", c.hostname())
	line("lxc.include", "/usr/share/lxc/config/debian.common.conf")
	if c.opts.Unprivileged {
		line("lxc.include", "/usr/share/lxc/config/debian.userns.conf")
		line("lxc.idmap", fmt.Sprintf("u 0 %d %d", IDMapBase, IDMapCount))
		line("lxc.idmap", fmt.Sprintf("g 0 %d %d", IDMapBase, IDMapCount))
	}
	if c.opts.Nesting {
		line("lxc.include", "/usr/share/lxc/config/nesting.conf")
	}
	// The machine has no AppArmor; the profiles the includes name would
	// fail to load.
	line("lxc.apparmor.profile", "unconfined")
	// systemd powers off on SIGRTMIN+4; lxc's default (SIGPWR) only starts
	// sigpwr.target.
	line("lxc.signal.halt", "SIGRTMIN+4")
	line("lxc.rootfs.path", "dir:"+c.rootfs)
	line("lxc.net.0.type", "veth")
	line("lxc.net.0.link", c.h.bridge)
	line("lxc.net.0.flags", "up")
	line("lxc.net.0.name", "eth0")
	// The address is configured inside, by ifupdown's networking.service
	// from /etc/network/interfaces (writeNetworkFiles), as Proxmox VE sets
	// up a Debian container: the default route appears once the container
	// has booted that far, not before its init runs.
	line("lxc.log.file", filepath.Join(c.dir, "lxc.log"))
	line("lxc.log.level", "WARN")

	devDir := filepath.Join(c.dir, "dev")
	if err := os.RemoveAll(devDir); err != nil {
		return err
	}
	if len(c.opts.Devices) > 0 {
		if err := os.MkdirAll(devDir, 0o755); err != nil {
			return err
		}
	}
	for i, d := range c.opts.Devices {
		node := filepath.Join(devDir, fmt.Sprintf("dev%d", i))
		if err := unix.Mknod(node, unix.S_IFCHR|uint32(d.Mode), int(unix.Mkdev(d.Major, d.Minor))); err != nil {
			return fmt.Errorf("device %s: mknod: %w", d.Path, err)
		}
		// mknod applies the umask.
		if err := unix.Chmod(node, uint32(d.Mode)); err != nil {
			return err
		}
		if err := os.Chown(node, c.hostID(d.UID), c.hostID(d.GID)); err != nil {
			return err
		}
		line("lxc.cgroup.devices.allow", fmt.Sprintf("c %d:%d rwm", d.Major, d.Minor))
		line("lxc.mount.entry", fmt.Sprintf("%s %s none bind,optional,create=file 0 0", node, strings.TrimPrefix(d.Path, "/")))
	}
	return os.WriteFile(filepath.Join(c.dir, "config"), []byte(b.String()), 0o644)
}

// lxc runs an lxc tool for this container.
func (c *Container) lxc(ctx context.Context, tool string, args ...string) (string, error) {
	return output(ctx, tool, append([]string{"-P", c.h.lxcPath, "-n", c.lxcName}, args...)...)
}

// Start starts the container and returns once LXC reports it RUNNING (its
// init has started; systemd may still be booting: see WaitBooted).
func (c *Container) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return fmt.Errorf("container %s has been destroyed", c.name)
	}
	if c.runningLocked() {
		return nil
	}
	if err := c.writeConfigLocked(); err != nil {
		return err
	}
	if err := c.writeNetworkFiles(); err != nil {
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	logPath := filepath.Join(c.dir, "lxc.log")
	_ = os.Remove(logPath)
	if _, err := c.lxc(ctx, "lxc-start", "-d"); err != nil {
		return fmt.Errorf("start %s: %w%s", c.name, err, logTail(logPath))
	}
	if _, err := c.lxc(ctx, "lxc-wait", "-s", "RUNNING", "-t", "60"); err != nil {
		return fmt.Errorf("start %s: %w%s", c.name, err, logTail(logPath))
	}
	return nil
}

func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return "\nlxc log:\n" + string(data)
}

// WaitBooted waits until systemd in the container has finished booting and
// returns its state (running, or degraded when a unit failed).
func (c *Container) WaitBooted(ctx context.Context) (string, error) {
	var out bytes.Buffer
	// systemctl needs systemd's bus, which appears a moment after init
	// starts; the loop runs in the container, bounded by ctx.
	script := `while [ ! -S /run/systemd/private ]; do sleep 0.1; done; exec systemctl is-system-running --wait`
	_, err := c.Attach(ctx, []string{"/bin/sh", "-c", script}, nil, nil, &out, &out)
	state := strings.TrimSpace(out.String())
	if err != nil {
		return state, err
	}
	return state, nil
}

// Stop kills the container at once, as pct stop does.
func (c *Container) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(ctx)
}

func (c *Container) stopLocked(ctx context.Context) error {
	if !c.runningLocked() {
		return nil
	}
	if _, err := c.lxc(ctx, "lxc-stop", "-k"); err != nil && c.runningLocked() {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	return nil
}

// Shutdown asks the container's init to power off and waits up to timeout,
// then kills it, as pct shutdown --forceStop does.
func (c *Container) Shutdown(ctx context.Context, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.runningLocked() {
		return nil
	}
	secs := max(int(timeout/time.Second), 1)
	if _, err := c.lxc(ctx, "lxc-stop", "-t", itoa(secs)); err != nil && c.runningLocked() {
		return c.stopLocked(ctx)
	}
	return nil
}

// Running says whether the container is running.
func (c *Container) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked()
}

func (c *Container) runningLocked() bool {
	if c.gone {
		return false
	}
	out, err := c.lxc(context.Background(), "lxc-info", "-s", "-H")
	return err == nil && strings.TrimSpace(out) == "RUNNING"
}

// DefaultEnv is the environment Attach gives a command when env is nil: what
// a root login shell on a Proxmox VE node passes through pct exec.
var DefaultEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
}

// ErrNotRunning is returned by Attach and Push on a stopped container.
var ErrNotRunning = errors.New("container is not running")

// Attach runs argv in the container with lxc-attach, as pct exec does, with
// exactly env as its environment (DefaultEnv when nil), and returns its exit
// status. An error means the command could not be run at all.
func (c *Container) Attach(ctx context.Context, argv []string, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("attach: empty command")
	}
	if !c.Running() {
		return 0, fmt.Errorf("attach %s: %w", c.name, ErrNotRunning)
	}
	if env == nil {
		env = DefaultEnv
	}
	args := append([]string{"-P", c.h.lxcPath, "-n", c.lxcName, "--keep-env", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "lxc-attach", args...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// lxc-attach does not pass a signal on (without a pty it only waits,
	// lxc src/lxc/attach.c), but the command it runs in the container
	// stays in its process group (no setsid or setpgid; the attached
	// process is cloned with CLONE_PARENT): SIGTERM to the group, as
	// OpenSSH's killpg on a signal request, reaches it. Cancelling only
	// lxc-attach would leave the command running in the container.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ctx.Err() != nil {
			return exit.ExitCode(), ctx.Err()
		}
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("attach %s: %w", c.name, err)
	}
	return 0, nil
}

// Push copies src to dst in the running container, owned by the container's
// root with mode, as pct push does. dst's directory must exist.
func (c *Container) Push(src io.Reader, dst string, mode os.FileMode) error {
	return c.PushOwned(src, dst, mode, "0", "0")
}

// PushOwned is Push with an owner (pct push --user --group): a name or a
// numeric id, resolved inside the container.
func (c *Container) PushOwned(src io.Reader, dst string, mode os.FileMode, user, group string) error {
	if !path.IsAbs(dst) {
		return fmt.Errorf("push to %q: want an absolute path", dst)
	}
	if mode&^0o7777 != 0 {
		return fmt.Errorf("push to %s: mode %o has more than permission bits", dst, mode)
	}
	var stderr bytes.Buffer
	// Written inside the container, so that its links resolve there.
	script := `umask 077 && cat > "$1" && chown "$3:$4" "$1" && chmod "$2" "$1"`
	code, err := c.Attach(context.Background(), []string{"/bin/sh", "-c", script, "push", dst, fmt.Sprintf("%o", mode), user, group},
		nil, src, io.Discard, &stderr)
	if err != nil {
		return fmt.Errorf("push to %s: %w", dst, err)
	}
	if code != 0 {
		return fmt.Errorf("push to %s: exit %d: %s", dst, code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Destroy stops the container and removes it and its root file system.
func (c *Container) Destroy() error {
	return c.destroy()
}

func (c *Container) destroy() error {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return nil
	}
	err := c.stopLocked(context.Background())
	c.gone = true
	c.mu.Unlock()
	err = errors.Join(err, os.RemoveAll(filepath.Dir(c.rootfs)), os.RemoveAll(c.dir))
	h := c.h
	h.mu.Lock()
	if h.containers[c.name] == c {
		delete(h.containers, c.name)
	}
	delete(h.used, c.addr)
	h.mu.Unlock()
	if err != nil {
		return fmt.Errorf("destroy %s: %w", c.name, err)
	}
	return nil
}

// Container returns the Host's container with that name, or nil.
func (h *Host) Container(name string) *Container {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.containers[name]
}
