package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/phoenixhv/phoenix/providers/sim/lxc"
)

// The real-guest backend: in a world with spec.realGuests, every container
// is a real LXC container on the machine running the simulator (see package
// lxc). The API, tasks, journal, locks and the node's side (host probe, the
// runfile on the node, raw lxc lines, the lease) stay modelled; what runs in a
// container is real: pct create copies the pristine Debian 12 root file
// system, a clone copies its source's (linked or full alike), start, stop,
// shutdown and reboot start and stop it, pct exec runs the argv with
// lxc-attach, pct push copies into it, destroy removes it. A task ends when
// its real work ends: the world's durations of container work are not waited.

// realGuests maps the cluster's containers to real ones.
type realGuests struct {
	host *lxc.Host
	own  bool // Prepared by the simulator, closed with it

	mu  sync.Mutex
	cts map[int]*lxc.Container
}

func newRealGuests(ctx context.Context, host *lxc.Host, o lxc.HostOptions) (*realGuests, error) {
	r := &realGuests{host: host, cts: map[int]*lxc.Container{}}
	if host == nil {
		h, err := lxc.Prepare(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("real guests: %w", err)
		}
		r.host, r.own = h, true
	}
	return r, nil
}

func (r *realGuests) close() error {
	r.mu.Lock()
	cts := r.cts
	r.cts = map[int]*lxc.Container{}
	r.mu.Unlock()
	var errs []error
	for _, ct := range cts {
		errs = append(errs, ct.Destroy())
	}
	if r.own {
		errs = append(errs, r.host.Close())
	}
	return errors.Join(errs...)
}

func (r *realGuests) container(vmid int) (*lxc.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ct := r.cts[vmid]
	if ct == nil {
		return nil, fmt.Errorf("phoenix-sim: CT %d has no real container", vmid)
	}
	return ct, nil
}

// Container is the real container of a CT in a real-guest world, for tests
// that look inside it; nil when there is none.
func (s *Sim) Container(vmid int) *lxc.Container {
	if s.c.real == nil {
		return nil
	}
	ct, _ := s.c.real.container(vmid)
	return ct
}

// LXCHost is the machine the real guests run on; nil in a model-only world.
func (s *Sim) LXCHost() *lxc.Host {
	if s.c.real == nil {
		return nil
	}
	return s.c.real.host
}

// unlocked runs f without the cluster lock, which the caller holds: a real
// container takes seconds to copy, start or stop, and the simulator serves
// meanwhile. What f's wait may have changed, the caller checks again.
func (c *cluster) unlocked(f func() error) error {
	c.mu.Unlock()
	defer c.mu.Lock()
	return f()
}

// realOptions are a CT config's LXC options: the id map, the host name,
// nesting and keyctl from features, and each devN as a device node with the
// simulated host's major and minor and the devN's mode and owner (0660,
// root's, unless it says otherwise; pve-container src/PVE/LXC.pm).
func realOptions(n *node, vals map[string]string) lxc.ContainerOptions {
	feat := propString(vals["features"], "")
	o := lxc.ContainerOptions{
		Unprivileged: vals["unprivileged"] == "1",
		Hostname:     vals["hostname"],
		Nesting:      feat["nesting"] == "1",
		Keyctl:       feat["keyctl"] == "1",
	}
	devs := n.devices()
	for _, k := range sortedDevKeys(vals) {
		path := devPath(vals[k])
		i := -1
		for j, d := range devs {
			if d.path == path {
				i = j
			}
		}
		if i < 0 {
			// A device every host has (/dev/fuse, ...) is not an NVIDIA
			// node the tests need: it is left out, not faked.
			continue
		}
		a := accessOf(vals[k])
		o.Devices = append(o.Devices, lxc.Device{Path: path, Major: uint32(devs[i].major), Minor: uint32(devs[i].minor),
			Mode: os.FileMode(a.mode & 0o777), UID: a.uid, GID: a.gid})
	}
	return o
}

// realTemplate checks that an OS template is one the real backend has: the
// pristine Debian 12 root file system stands for every Debian 12 template.
func realTemplate(ostemplate string) error {
	d := osFromTemplate(ostemplate)
	if d.id != "debian" || d.version != "12" {
		return fmt.Errorf("phoenix-sim: real guests are made from Debian 12 only, not %q (use a template such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst)", ostemplate)
	}
	return nil
}

// The lifecycle hooks below do nothing in a model-only world. Each is called
// with c.mu held, which it releases while the real work runs.

// realCreate makes the CT's container from the pristine root file system.
func (c *cluster) realCreate(g *guest, ostemplate string) error {
	if c.real == nil {
		return nil
	}
	if err := realTemplate(ostemplate); err != nil {
		return err
	}
	o := realOptions(c.node(g.node), g.conf.vals)
	vmid := g.vmid
	return c.unlocked(func() error {
		ct, err := c.real.host.Create(c.ctx, ctName(vmid), o)
		if err != nil {
			return err
		}
		c.real.mu.Lock()
		c.real.cts[vmid] = ct
		c.real.mu.Unlock()
		return nil
	})
}

// realClone copies the source's root file system for the new CT.
func (c *cluster) realClone(src, dst *guest) error {
	if c.real == nil {
		return nil
	}
	from, err := c.real.container(src.vmid)
	if err != nil {
		return err
	}
	o := realOptions(c.node(dst.node), dst.conf.vals)
	vmid := dst.vmid
	return c.unlocked(func() error {
		ct, err := c.real.host.Clone(c.ctx, from, ctName(vmid), o)
		if err != nil {
			return err
		}
		c.real.mu.Lock()
		c.real.cts[vmid] = ct
		c.real.mu.Unlock()
		return nil
	})
}

// realStart starts the CT's container with its current config.
func (c *cluster) realStart(g *guest) error {
	if c.real == nil {
		return nil
	}
	ct, err := c.real.container(g.vmid)
	if err != nil {
		return err
	}
	o := realOptions(c.node(g.node), g.conf.vals)
	return c.unlocked(func() error {
		if err := ct.Reconfigure(o); err != nil {
			return err
		}
		return ct.Start(c.ctx)
	})
}

// realStop stops the CT's container at once (pct stop, and the end of a
// shutdown or reboot: the guest's own shutdown is not waited for).
func (c *cluster) realStop(g *guest) error {
	if c.real == nil {
		return nil
	}
	ct, err := c.real.container(g.vmid)
	if err != nil {
		return err
	}
	return c.unlocked(func() error { return ct.Stop(c.ctx) })
}

// realDestroy removes the CT's container.
func (c *cluster) realDestroy(vmid int) error {
	if c.real == nil {
		return nil
	}
	ct, err := c.real.container(vmid)
	if err != nil {
		return nil // nothing real to remove
	}
	return c.unlocked(func() error {
		c.real.mu.Lock()
		delete(c.real.cts, vmid)
		c.real.mu.Unlock()
		return ct.Destroy()
	})
}

func ctName(vmid int) string { return "ct" + strconv.Itoa(vmid) }

// realExec runs argv in the CT's container with lxc-attach, as pct exec
// does: the argv unchanged (phoenix's env K=V... /bin/sh -c BODY NAME PHASE,
// under timeout or not), output passed on as it comes. The journal records
// it as the model's runs are: by script name and phase, or by the command.
func (c *cluster) realExec(ctx context.Context, nodeName string, vmid int, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name, phase := commandName(argv)
	ct, err := c.real.container(vmid)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return pctError
	}
	var tail tailWriter
	so, se := &cutWriter{w: flushing{stdout}}, &cutWriter{w: flushing{stderr}}
	detach := func() { so.cut(); se.cut() }
	code, err, ranOn := c.attachRunningOn(ctx, ct, argv, stdin, so, io.MultiWriter(se, &tail), detach, func(code int, err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		detail := "finished after its session ended: " + tail.last()
		if err != nil {
			detail = "after its session ended: " + err.Error()
		}
		c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: name, Phase: phase, OK: err == nil && code == 0, Detail: detail})
	})
	c.mu.Lock()
	if ranOn {
		defer c.mu.Unlock()
		c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: name, Phase: phase, OK: false,
			Detail: "session ended: " + context.Cause(ctx).Error() + "; the command runs on"})
		return pctError
	}
	defer c.mu.Unlock()
	switch {
	case err != nil && ctx.Err() != nil:
		c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: name, Phase: phase, OK: false,
			Detail: "cancelled: " + context.Cause(ctx).Error()})
		return 128 + 15
	case err != nil:
		fmt.Fprintln(stderr, err)
		c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: name, Phase: phase, OK: false, Detail: err.Error()})
		return pctError
	}
	c.journal.add(c.now(), Event{Node: nodeName, VMID: vmid, Kind: "exec", Name: name, Phase: phase, OK: code == 0, Detail: tail.last()})
	return code
}

// commandName is what the journal calls a command: a script's name and
// phase, or the command line.
func commandName(argv []string) (name, phase string) {
	_, rest, _ := splitTimeout(argv)
	if len(rest) > 0 {
		_, rest = splitEnv(rest)
	}
	if len(rest) >= 4 && isShell(rest[0]) && rest[1] == "-c" {
		if len(rest) >= 5 {
			phase = rest[4]
		}
		return rest[3], phase
	}
	return strings.Join(rest, " "), ""
}

// flushing passes each write on to the client at once: a real command's
// output is not held back, as no cluster lock is held while it runs.
type flushing struct{ w io.Writer }

func (f flushing) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if h, ok := f.w.(*heldOutput); ok {
		h.flush()
	}
	return n, err
}

// tailWriter keeps the last line of what was written, for the journal.
type tailWriter struct{ buf []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailWriter) last() string {
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return lines[len(lines)-1]
}

// realPush copies a node file into the CT's container with pct push's
// options: --perms (read as pct reads it: pctPerms; default 0644, what
// pct's umask leaves of a new file's 0666), --user and --group (names
// resolved inside the container; default root).
func (c *cluster) realPush(vmid int, content, dst string, opts map[string]string) error {
	if c.real == nil {
		return nil
	}
	ct, err := c.real.container(vmid)
	if err != nil {
		return err
	}
	mode := uint64(0o644)
	if p, ok := opts["perms"]; ok {
		var msg string
		if mode, msg = pctPerms(p); msg != "" {
			return fmt.Errorf("%s", msg)
		}
		mode &= 0o7777
	}
	user, group := opts["user"], opts["group"]
	if user == "" {
		user = "root"
	}
	if group == "" {
		group = "root"
	}
	return c.unlocked(func() error {
		return ct.PushOwned(strings.NewReader(content), dst, os.FileMode(mode), user, group)
	})
}

// realRunfile downloads a runfile on the node for real: a real guest runs
// it, so the node's copy must be the bytes the source serves, not a model's
// name for them. Called with c.mu held, for a source on this machine (the
// tests' stand-in server); a digest given is enforced.
func (c *cluster) realRunfile(url, wantSHA256 string) (string, error) {
	client := c.real.host.HTTPClient()
	var body []byte
	err := c.unlocked(func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("curl: (22) The requested URL returned error: %d", resp.StatusCode)
		}
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		return "", err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return "", fmt.Errorf("%s is empty", url)
	}
	if wantSHA256 != "" && sha256Hex(body) != wantSHA256 {
		return "", fmt.Errorf("sha256 of %s does not match %s: not installing it", url, wantSHA256)
	}
	return string(body), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// realRunfileOK is the download step's check on the node in a real-guest
// world: the runfile is there, and matches the digest when one is given.
func (x *script) realRunfileOK() bool {
	content := x.files()[x.env["NVIDIA_RUNFILE"]]
	if content == "" {
		return false
	}
	want := x.env["NVIDIA_SHA256"]
	return want == "" || sha256Hex([]byte(content)) == want
}
