package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/internal/nodecmd"
	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
	"github.com/phoenixhv/phoenix/reconciler"
)

// cancelGrace is how long a cancelled command's session may take to close
// before run returns anyway: a dead node must not hold up the caller.
const cancelGrace = 2 * time.Second

// runWork is the Runner behind Node's ordinary operations: run, within the
// sessions left beside the one kept for the lease.
func (n *Node) runWork(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	select {
	case n.work <- struct{}{}:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	defer func() { <-n.work }()
	return n.run(ctx, argv, stdin, stdout, stderr)
}

// run is the Runner behind Node's lease operations, and under runWork, of
// all: one session on the node's connection, the argv quoted into the one
// command string SSH carries, stdin sent on the session's standard input
// (nil: end of file at once).
func (n *Node) run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	select {
	case n.sessions <- struct{}{}:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	release := func() { <-n.sessions }
	sess, err := n.newSession(ctx)
	if err != nil {
		release()
		return -1, err
	}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	// The node's login shell (root's bash on Proxmox VE) parses this string:
	// every word is quoted, so it reaches pct as the argv it was.
	if err := sess.Start(shellwords.Join(argv)); err != nil {
		_ = sess.Close()
		release()
		return -1, fmt.Errorf("ssh: start command on %s: %w", n.address(), err)
	}
	done := make(chan error, 1)
	go func() {
		// Wait returns once the output has been copied to the writers too.
		err := sess.Wait()
		_ = sess.Close()
		release()
		done <- err
	}()
	select {
	case err := <-done:
		return exitStatus(err)
	case <-ctx.Done():
		// SIGTERM as kill(1) sends it, so the command may clean up; then the
		// close hangs up its pipes. Both are best effort on a real node (an
		// sshd older than OpenSSH 7.9 ignores signals); phoenix's steps are
		// idempotent, so a command that runs on is harmless.
		_ = sess.Signal(gossh.SIGTERM)
		_ = sess.Close()
		select {
		case <-done:
		case <-time.After(cancelGrace):
		}
		return -1, ctx.Err()
	}
}

// exitStatus turns how a session ended into an exit status, or into an
// error when it ended without one.
func exitStatus(err error) (int, error) {
	var exit *gossh.ExitError
	var missing *gossh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		// A command killed by a signal reports 128+signal, as a shell does.
		return exit.ExitStatus(), nil
	case errors.As(err, &missing):
		return -1, nodecmd.TransportError(errors.New("ssh: the connection ended before the command's exit status arrived; it may or may not have run to the end"),
			reconciler.ErrUnavailable, true)
	}
	return -1, nodecmd.TransportError(fmt.Errorf("ssh: %w", err), reconciler.ErrUnavailable, true)
}

// newSession opens a session on the node's connection. A connection that
// has died since its last use is dialled again, once.
func (n *Node) newSession(ctx context.Context) (*gossh.Session, error) {
	for attempt := 0; ; attempt++ {
		c, err := n.connection(ctx)
		if err != nil {
			return nil, err
		}
		s, err := n.openSession(ctx, c)
		if err == nil {
			return s, nil
		}
		var refused *gossh.OpenChannelError
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &refused):
			// The server is alive and said no (sshd's MaxSessions lower
			// than ours): the connection stays, the command may be retried.
			return nil, nodecmd.TransportError(fmt.Errorf("ssh: %s refused a session: %w", n.address(), err), reconciler.ErrUnavailable, true)
		case attempt > 0:
			return nil, nodecmd.TransportError(fmt.Errorf("ssh: open session on %s: %w", n.address(), err), reconciler.ErrUnavailable, true)
		}
		n.forget(c)
	}
}

// openSession is NewSession bounded by ctx and by the dial timeout: over a
// connection whose peer vanished without a reset it would wait for TCP to
// give up, minutes later. A connection that does not answer in time is
// taken for dead and closed.
func (n *Node) openSession(ctx context.Context, c *gossh.Client) (*gossh.Session, error) {
	type opened struct {
		s   *gossh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := c.NewSession()
		ch <- opened{s, err}
	}()
	timer := time.NewTimer(n.pool.cfg.DialTimeout)
	defer timer.Stop()
	abandon := func() {
		go func() {
			if o := <-ch; o.s != nil {
				_ = o.s.Close()
			}
		}()
	}
	select {
	case o := <-ch:
		return o.s, o.err
	case <-ctx.Done():
		// Only this command gives up; the connection serves the others.
		abandon()
		return nil, ctx.Err()
	case <-timer.C:
		// Closing the connection ends the pending open (and whatever else
		// was waiting on a peer that is gone).
		n.forget(c)
		abandon()
		return nil, errors.New("no answer from the server")
	}
}
