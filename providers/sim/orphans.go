package sim

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/sim/sshd"
)

// What ends a command phoenix stops, on a Proxmox VE node.
//
// phoenix (providers/ssh/run.go) stops a command by sending a "signal" TERM
// request on its session and then closing the session; a phoenix that is
// itself killed sends nothing and its TCP connection just goes away.
//
//   - The signal: OpenSSH's session_signal_req (openssh-portable session.c,
//     since 7.9) delivers it as killpg(2) on the session's process group,
//     which do_exec_no_pty's setsid(2) made. pct exec runs in that group and
//     execs lxc-attach (pve-container src/PVE/CLI/pct.pm, exec); without a
//     pty (stdfd_is_pty in lxc src/lxc/tools/lxc_attach.c is false over a
//     plain SSH command) lxc_attach (src/lxc/attach.c) never calls setsid or
//     setpgid, and clones the attached process with CLONE_PARENT, so the
//     command in the container is in the same process group and gets the
//     signal too. But before OpenSSH 9.8, privsep_postauth (sshd.c) turned
//     post-auth privilege separation off for a root login, and
//     session_signal_req then refused ("session signalling requires
//     privilege separation"). phoenix logs in as root: on Proxmox VE 8
//     (Debian bookworm, OpenSSH 9.2p1) the signal is refused; on 9 (trixie,
//     OpenSSH 10.0p1) it kills the command.
//   - The close, or a lost connection: session_close_by_channel (session.c)
//     sends the live child nothing ("delay detach of session"); only a pty
//     would hang up on it. chan_rcvd_oclose (nchan.c) shuts down the read
//     side of the command's output, so a command that writes afterwards
//     gets SIGPIPE; one that does not (most of an apt-get install, whose
//     output dpkg mostly writes at the end of each package) runs on to its
//     end in the container.
//
// One more hop: phoenix runs its steps under timeout(1), which moves itself
// and the script into a process group of their own (runsOn), so even a
// delivered signal misses them.
//
// So the model: a delivered signal kills a script that runs without
// timeout(1) before its effect (as runScript did all along); a script whose session ended otherwise runs on
// for the rest of its modelled duration and then has its effect, unless
// its container stopped or went away meanwhile (finishScript). The model
// does not kill it on a later write (SIGPIPE): that leaves a half-done
// dpkg, which the model has no state for; running on is the case phoenix
// must survive in any event (a re-run whose check runs before the old
// apply ended).

// signalDelivered is the simulated sshd's Config.Signals: whether the node's
// OpenSSH delivers a signal request on a session of user.
func (c *cluster) signalDelivered(s *sshd.Session, _ ssh.Signal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.User != "root" || versionAtLeastPatch(c.world.Spec.Version, 9, 0, 0)
}

// sessionGone reports whether a command's context ended because its
// session closed or its connection dropped, with no signal delivered: what
// the command does not notice.
func sessionGone(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), sshd.ErrSessionClosed)
}

// runsOn reports whether a script outlives the end of its command's
// context: when no signal was delivered (sessionGone), and when one was but
// the script runs under timeout(1), which put itself and the script in a
// process group of their own (coreutils src/timeout.c: setpgid (0, 0)
// unless --foreground), out of reach of sshd's killpg on the session's
// group: that kills pct's lxc-attach alone. phoenix bounds its steps with
// timeout(1) (providers/internal/nodecmd, bounded).
func runsOn(ctx context.Context, x *script) bool {
	var sig *sshd.SignalError
	return sessionGone(ctx) || x.wrap != nil && errors.As(context.Cause(ctx), &sig)
}

// runOn lets a script whose session ended go on where it runs for rest, the
// remainder of its modelled duration, and then have its effect; the journal
// says so twice (the session's end, then the effect). It returns at once;
// the simulator's Close ends the script where it is. What it returns nobody
// reads: the client is gone.
func (c *cluster) runOn(ctx context.Context, x *script, vmid int, fault bool, rest time.Duration) int {
	c.mu.Lock()
	c.journal.add(c.now(), Event{Node: x.n.Name, VMID: vmid, Kind: "exec", Name: x.name, Phase: x.phase, OK: false,
		Detail: "session ended: " + context.Cause(ctx).Error() + "; the script runs on"})
	c.wg.Add(1)
	held := c.holdStepLock(x, vmid)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer held()
		if sleep(c.ctx, rest) != nil {
			return // the simulator closed
		}
		x.orphan = true
		c.finishScript(x, vmid, fault)
	}()
	return pctError
}

// attachRunningOn runs argv in a real container as pct exec would: a signal
// sshd delivers, or the simulator closing, kills it (its process group,
// lxc.Container.Attach); a session that ends without one leaves it running:
// attachRunningOn then returns at once with ranOn set, and done gets its
// outcome when it ends (or the simulator closes, which kills it).
// detach is called before it returns with ranOn: from then on the command
// must write nowhere the session's handler still owns.
func (c *cluster) attachRunningOn(ctx context.Context, ct attacher, argv []string, stdin io.Reader, stdout, stderr io.Writer,
	detach func(), done func(code int, err error)) (code int, err error, ranOn bool) {
	kill, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	type outcome struct {
		code int
		err  error
	}
	out := make(chan outcome, 1)
	go func() {
		code, err := ct.Attach(kill, argv, nil, stdin, stdout, stderr)
		out <- outcome{code, err}
	}()
	select {
	case o := <-out:
		stop(nil)
		return o.code, o.err, false
	case <-ctx.Done():
	}
	if !sessionGone(ctx) || c.ctx.Err() != nil {
		stop(context.Cause(ctx))
		o := <-out
		if o.err == nil {
			o.err = context.Cause(ctx)
		}
		// A command that ended by itself just then still reports the
		// cancellation, as realExec's caller expects of a cancelled ctx.
		return o.code, o.err, false
	}
	detach()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		var o outcome
		select {
		case o = <-out:
		case <-c.ctx.Done():
			stop(errors.New("the simulator closed"))
			o = <-out
		}
		stop(nil)
		done(o.code, o.err)
	}()
	return 0, nil, true
}

// attacher runs a command in a container: lxc.Container.
type attacher interface {
	Attach(ctx context.Context, argv []string, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// cutWriter passes writes on until cut, and discards them after. A real
// command whose session closed gets SIGPIPE on its next write instead
// (orphans.go); the simulated command's output has nowhere to go once its
// handler returned.
type cutWriter struct {
	mu  sync.Mutex
	w   io.Writer
	off bool
}

func (c *cutWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off {
		return len(p), nil
	}
	return c.w.Write(p)
}

// cut waits for a write under way, then stops passing writes on.
func (c *cutWriter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = true
}

// The step lock: every built-in feature step takes a lock in its container
// before it looks at anything (reconciler/features/prelude.sh,
// phoenix_step_lock: flock(1) on /run/phoenix/step.lock, released when the
// step's shell ends), so a step of a later run waits for one an earlier
// run's lost session left running. The model runs no bodies: it recognises
// the prelude's function in a script's body, and makes a script that takes
// the lock wait for the ones that run on holding it.
const stepLockMarker = "phoenix_step_lock"

func takesStepLock(x *script) bool {
	return x.g != nil && strings.Contains(x.body, stepLockMarker)
}

// holdStepLock records, under c.mu, that x runs on holding the step lock
// of its container, if it takes it; the function returned releases it.
func (c *cluster) holdStepLock(x *script, vmid int) func() {
	if !takesStepLock(x) {
		return func() {}
	}
	ch := make(chan struct{})
	if c.stepLocks == nil {
		c.stepLocks = map[int][]chan struct{}{}
	}
	c.stepLocks[vmid] = append(c.stepLocks[vmid], ch)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stepLocks[vmid] = slices.DeleteFunc(c.stepLocks[vmid], func(h chan struct{}) bool { return h == ch })
		close(ch)
	}
}

// waitStepLock waits, before x runs, for the scripts that hold its
// container's step lock, saying so on stdout as the prelude does; it fails
// only when ctx ends first.
func (c *cluster) waitStepLock(ctx context.Context, x *script, stdout io.Writer) error {
	if !takesStepLock(x) {
		return nil
	}
	c.mu.Lock()
	held := slices.Clone(c.stepLocks[x.g.vmid])
	c.mu.Unlock()
	if len(held) > 0 {
		_, _ = io.WriteString(stdout, "waiting for a phoenix step of an earlier run that still runs in this container\n")
	}
	for _, ch := range held {
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-c.ctx.Done():
			return errors.New("the simulator closed")
		}
	}
	return nil
}
