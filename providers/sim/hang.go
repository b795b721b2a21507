package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Work that never ends by itself, and what bounds it.
//
// A Proxmox VE worker has no deadline of its own: fork_worker (pve-common
// src/PVE/RESTEnvironment.pm) runs it until it returns, and one blocked on a
// storage that stopped answering stays "running" in the task list for as
// long as it blocks. A script inside a container is a process there: pct
// exec (pve-container src/PVE/CLI/pct.pm) hands it to lxc-attach, and
// neither a dropped SSH session nor a signal to pct ends a process that is
// blocked or does not read its pipes; only what runs inside with it can
// (timeout(1), from coreutils src/timeout.c), or the container stopping.

// hangTaskRE is an entry of faults.hang.tasks: a task type, or type:vmid.
var hangTaskRE = regexp.MustCompile(`^[a-z]+(:[0-9]+)?$`)

// taskHangs reports whether a worker of this type for this id never ends.
// Call with c.mu held.
func (c *cluster) taskHangs(typ, id string) bool {
	for _, h := range c.world.Spec.Faults.Hang.Tasks {
		if h == typ || h == typ+":"+id {
			return true
		}
	}
	return false
}

// hangTask keeps a worker running until a reboot of its node kills it
// (interruptTasks) or the simulator closes. Call with c.mu held.
func (c *cluster) hangTask(t *task) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		<-c.ctx.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.running {
			c.finish(t, errors.New("interrupted by signal"))
		}
	}()
}

// SetTaskHang makes the workers that match (a task type, or type:vmid) hang
// from now on, or (on false) end as they would.
func (s *Sim) SetTaskHang(match string, on bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	h := &s.c.world.Spec.Faults.Hang
	h.Tasks = setMember(h.Tasks, match, on)
}

// SetScriptHang makes the apply of a named script hang from now on, or (on
// false) run as modelled.
func (s *Sim) SetScriptHang(name string, on bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	h := &s.c.world.Spec.Faults.Hang
	h.Scripts = setMember(h.Scripts, name, on)
}

// setMember returns a new list with v in it or not: the old one may be the
// world's, shared with the caller that built it.
func setMember(list []string, v string, on bool) []string {
	out := slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == v })
	if on {
		out = append(out, v)
	}
	return out
}

// timeoutCmd is timeout(1) as a command line gives it: coreutils
// src/timeout.c, in the short form busybox reads too:
// timeout [-k KILL] [-s SIGNAL] DURATION COMMAND [ARG]...
type timeoutCmd struct {
	limit, kill time.Duration
	signal      string
	// argv is the command line as given, for the journal.
	argv []string
}

// timeoutUsage is what timeout(1) prints before it exits 125: its own
// failure, before it ran anything.
const timeoutUsage = "Try 'timeout --help' for more information."

// splitTimeout takes a leading timeout(1) off an argv. A bad command line is
// what timeout says and exits 125 with.
func splitTimeout(argv []string) (*timeoutCmd, []string, string) {
	if len(argv) == 0 || argv[0] != "timeout" && argv[0] != "/usr/bin/timeout" {
		return nil, argv, ""
	}
	t := &timeoutCmd{signal: "TERM"}
	rest := argv[1:]
options:
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		opt := rest[0]
		rest = rest[1:]
		var val *string
		switch {
		case opt == "--":
			break options
		case opt == "-k" || opt == "-s":
			if len(rest) == 0 {
				return nil, nil, fmt.Sprintf("timeout: option requires an argument -- '%s'\n%s", opt[1:], timeoutUsage)
			}
			v := rest[0]
			rest = rest[1:]
			val = &v
		case strings.HasPrefix(opt, "--kill-after="), strings.HasPrefix(opt, "--signal="):
			_, v, _ := strings.Cut(opt, "=")
			val = &v
		case opt == "--foreground" || opt == "--preserve-status" || opt == "-v" || opt == "--verbose":
			continue
		default:
			return nil, nil, fmt.Sprintf("timeout: unrecognized option '%s'\n%s", opt, timeoutUsage)
		}
		if opt == "-s" || strings.HasPrefix(opt, "--signal=") {
			t.signal = strings.TrimPrefix(strings.ToUpper(*val), "SIG")
			continue
		}
		d, ok := parseInterval(*val)
		if !ok {
			return nil, nil, fmt.Sprintf("timeout: invalid time interval '%s'\n%s", *val, timeoutUsage)
		}
		t.kill = d
	}
	if len(rest) < 2 {
		return nil, nil, "timeout: missing operand\n" + timeoutUsage
	}
	d, ok := parseInterval(rest[0])
	if !ok {
		return nil, nil, fmt.Sprintf("timeout: invalid time interval '%s'\n%s", rest[0], timeoutUsage)
	}
	t.limit = d
	t.argv = argv[:len(argv)-len(rest)+1]
	return t, rest[1:], ""
}

// parseInterval reads timeout(1)'s DURATION: a non-negative number with an
// optional suffix s, m, h or d.
func parseInterval(s string) (time.Duration, bool) {
	unit := time.Second
	switch {
	case strings.HasSuffix(s, "s"):
		s = strings.TrimSuffix(s, "s")
	case strings.HasSuffix(s, "m"):
		s, unit = strings.TrimSuffix(s, "m"), time.Minute
	case strings.HasSuffix(s, "h"):
		s, unit = strings.TrimSuffix(s, "h"), time.Hour
	case strings.HasSuffix(s, "d"):
		s, unit = strings.TrimSuffix(s, "d"), 24*time.Hour
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || s == "" || strings.ContainsAny(s, "+-eEnN") {
		return 0, false
	}
	return time.Duration(f * float64(unit)), true
}

// proc is a script that runs on where it was started, whether or not the
// session that started it is still there.
type proc struct {
	node string
	g    *guest // nil on the node itself
	boot *runState
	name string
	// phase is the script's phase argument (apply, ...).
	phase string
	// killAt is when timeout(1) ends it; zero when nothing will.
	killAt time.Time
	ended  bool
}

// alive reports whether the process still runs: not ended, not yet killed by
// its timeout, and its container still in the run it started in. Call with
// c.mu held.
func (c *cluster) alive(p *proc) bool {
	switch {
	case p.ended:
		return false
	case !p.killAt.IsZero() && !c.now().Before(p.killAt):
		return false
	case p.g != nil && (c.guests[p.g.vmid] != p.g || p.g.run != p.boot):
		return false
	}
	return true
}

// Processes lists the scripts still running in a container (vmid 0: on the
// node itself) that the simulator models as processes: those that hang, and
// those cut short by a timeout(1) they run under. Each is "NAME PHASE", as
// ps shows sh -c BODY NAME PHASE.
func (s *Sim) Processes(node string, vmid int) []string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	var out []string
	live := s.c.procs[:0]
	for _, p := range s.c.procs {
		if !s.c.alive(p) {
			continue
		}
		live = append(live, p)
		pv := 0
		if p.g != nil {
			pv = p.g.vmid
		}
		if p.node == node && pv == vmid {
			out = append(out, strings.TrimSpace(p.name+" "+p.phase))
		}
	}
	s.c.procs = live
	return out
}

// runUntilSignalled runs a script that does not end by itself in time: one
// that hangs, or whose modelled duration is longer than the timeout(1) it
// runs under. It is a process where it runs until timeout(1) signals it,
// which then exits 124 (a script that dies of SIGTERM, as these do); without
// timeout(1), it outlives the session that started it.
func (c *cluster) runUntilSignalled(ctx context.Context, x *script, stderr io.Writer) int {
	vmid := 0
	if x.g != nil {
		vmid = x.g.vmid
	}
	p := &proc{node: x.n.Name, g: x.g, boot: x.boot, name: x.name, phase: x.phase}
	var fire <-chan time.Time
	c.mu.Lock()
	if x.wrap != nil {
		p.killAt = c.now().Add(x.wrap.limit)
		timer := time.NewTimer(x.wrap.limit)
		defer timer.Stop()
		fire = timer.C
	}
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	select {
	case <-fire:
		c.mu.Lock()
		defer c.mu.Unlock()
		p.ended = true
		if x.g != nil && (c.guests[x.g.vmid] != x.g || x.g.run != x.boot) {
			return x.failNow(c, vmid, stderr, pctError, fmt.Sprintf("container '%d' not running!", x.g.vmid))
		}
		c.journal.add(c.now(), Event{Node: x.n.Name, VMID: vmid, Kind: "exec", Name: x.name, Phase: x.phase, OK: false,
			Detail: fmt.Sprintf("timed out after %v: %s sent SIG%s", x.wrap.limit, strings.Join(x.wrap.argv, " "), x.wrap.signal)})
		return 124
	case <-ctx.Done():
		// The session is gone; the process is not. Nobody reads this
		// status (see runScript).
		c.journal.add(c.now(), Event{Node: x.n.Name, VMID: vmid, Kind: "exec", Name: x.name, Phase: x.phase, OK: false,
			Detail: "session ended: " + context.Cause(ctx).Error() + "; the script runs on"})
		return 128 + 15
	case <-c.ctx.Done():
		return pctError
	}
}

// failNow writes a failure to stderr and the journal at once. Call with c.mu
// held; it writes to a held output only (see nodeCommand).
func (x *script) failNow(c *cluster, vmid int, stderr io.Writer, code int, msg string) int {
	fmt.Fprintln(stderr, msg)
	c.journal.add(c.now(), Event{Node: x.n.Name, VMID: vmid, Kind: "exec", Name: x.name, Phase: x.phase, OK: false, Detail: msg})
	return code
}
