package reconciler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// The lease: one writer at a time in the whole cluster. Every command that
// changes the cluster (apply, each pass of run) holds it; plan and status
// read without it. It lives in the cluster, not where phoenix runs, so two
// phoenix on two machines exclude each other too: it is a lock directory of
// Proxmox VE's cluster file system, which every node sees the same (see
// providers/internal/nodecmd/lease.sh for the facts it builds on). The
// cluster file system drops a lock nobody renewed for two minutes, so the
// lease of a phoenix that died passes to the next writer by itself.

// DefaultLeaseTimeout is how long pmxcfs keeps a lock directory nobody
// renews before it lets another take it over: CFS_LOCK_TIMEOUT in
// pve-cluster's src/pmxcfs/memdb.c, fixed at 120 s.
const DefaultLeaseTimeout = 120 * time.Second

// Holder names who holds the lease, for whoever waits for it.
type Holder struct {
	// Host is the machine phoenix runs on, PID its process.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Command is what holds it: "phoenix apply", "phoenix run".
	Command string `json:"command"`
	// Since is when it took the lease.
	Since time.Time `json:"since"`
	// Specs identifies the spec files the holder works from (a digest of
	// their contents), so that two loops on different specs can tell.
	Specs string `json:"specs,omitempty"`
	// Released is when the holder let the lease go; zero while it holds it.
	// Only the previous holder a new one finds has it.
	Released time.Time `json:"released,omitzero"`
}

// String names the holder: phoenix apply (pid 4242 on ci-runner-3) since
// 2026-05-01 14:03:10.
func (h Holder) String() string { return h.Describe(time.Time{}) }

// Describe names the holder, with the time alone when Since is on now's
// day: phoenix apply (pid 4242 on ci-runner-3) since 14:03:10.
func (h Holder) Describe(now time.Time) string {
	since := h.Since.Local()
	layout := "2006-01-02 15:04:05"
	if y, m, d := now.Local().Date(); !now.IsZero() && since.Year() == y && since.Month() == m && since.Day() == d {
		layout = "15:04:05"
	}
	return fmt.Sprintf("%s (pid %d on %s) since %s", h.Command, h.PID, h.Host, since.Format(layout))
}

// Check refuses a holder that cannot be written down for a waiter to read:
// an empty or multi-line field.
func (h Holder) Check() error {
	for _, f := range []struct{ name, v string }{{"host", h.Host}, {"command", h.Command}, {"specs", h.Specs}} {
		if f.v == "" && f.name != "specs" {
			return fmt.Errorf("lease holder: no %s", f.name)
		}
		if strings.ContainsAny(f.v, "\n\r\x00") {
			return fmt.Errorf("lease holder: %s %q is not one line", f.name, f.v)
		}
	}
	if h.PID <= 0 || h.Since.IsZero() {
		return fmt.Errorf("lease holder: pid %d, since %v: both must be set", h.PID, h.Since)
	}
	return nil
}

// LeaseClaim is one attempt at holding the lease: who, and the random token
// that lets only this holder renew and release it.
type LeaseClaim struct {
	Token  string
	Holder Holder
}

// LeaseNode takes the lease through one Proxmox node. The cluster file
// system makes the lease the same on every node, but only the node that
// took a lock may renew it.
type LeaseNode interface {
	// TakeLease takes the lease for the claim and returns who held it last
	// (nil when nobody did, or unknown). It fails with *LeaseHeldError while
	// another holds it.
	TakeLease(ctx context.Context, c LeaseClaim) (previous *Holder, err error)
	// RenewLease keeps the lease another full timeout. It fails with
	// *LeaseLostError when the lease is not the claim's any more.
	RenewLease(ctx context.Context, c LeaseClaim) error
	// ReleaseLease lets the lease go, if it is still the claim's; one that
	// was lost is left alone and reported with *LeaseLostError.
	ReleaseLease(ctx context.Context, c LeaseClaim) error
}

// ErrLeaseHeld is the kind of *LeaseHeldError; ErrLeaseLost of
// *LeaseLostError.
var (
	ErrLeaseHeld = errors.New("lease held by another")
	ErrLeaseLost = errors.New("lease lost")
)

// LeaseHeldError says who holds the lease. Holder is nil when the lock is
// there but names nobody: its holder is taking it at this moment.
type LeaseHeldError struct {
	Holder *Holder
	// Waited is how long the taker waited before giving up.
	Waited time.Duration
	// Now is when the holder was seen (to print its time compactly).
	Now time.Time
}

func (e *LeaseHeldError) Error() string {
	who := "another phoenix, which is taking it now"
	if e.Holder != nil {
		who = e.Holder.Describe(e.Now)
	}
	msg := "the lease is held by " + who
	if e.Waited > 0 {
		msg += fmt.Sprintf(" (waited %s)", e.Waited.Round(time.Second))
	}
	return msg
}

func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// LeaseLostError is a lease its holder cannot prove it still holds: another
// took it, it expired, or renewals failed for too long.
type LeaseLostError struct {
	// Holder is who holds it now, when known.
	Holder *Holder
	Reason string
}

func (e *LeaseLostError) Error() string {
	msg := "the lease was lost: " + e.Reason
	if e.Holder != nil {
		msg += "; it is held by " + e.Holder.String()
	}
	return msg
}

func (e *LeaseLostError) Is(target error) bool { return target == ErrLeaseLost }

// LeaseOptions tune taking and keeping the lease. Zero values take the
// defaults.
type LeaseOptions struct {
	// Wait is how long to wait for a lease another holds (--lock-timeout);
	// 0 fails at once, naming the holder.
	Wait time.Duration
	// Poll is the time between tries while waiting (default 2 s).
	Poll time.Duration
	// Timeout is how long the cluster keeps a lease nobody renews
	// (default DefaultLeaseTimeout, which is Proxmox VE's).
	Timeout time.Duration
	// Renew is the time between renewals (default Timeout/4). A holder whose
	// renewals have failed for Timeout/2 takes the lease as lost, well
	// before another may take it over.
	Renew time.Duration
	// Waiting, when set, is told who holds the lease when a wait starts and
	// each time the holder changes (nil: a holder taking it now).
	Waiting func(*Holder)
	Log     *slog.Logger
	Now     func() time.Time
	// Token makes the claim's token (default: 128 random bits in hex).
	Token func() string
}

func (o *LeaseOptions) defaults() {
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultLeaseTimeout
	}
	if o.Renew <= 0 {
		o.Renew = o.Timeout / 4
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Token == nil {
		o.Token = randomToken
	}
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// Lease is the lease, held. Its context ends when the lease is lost: the
// work done under it stops starting changes and says why.
type Lease struct {
	node     LeaseNode
	nodeName string
	claim    LeaseClaim
	previous *Holder
	opts     LeaseOptions

	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// AcquireLease takes the lease for h (its Since set to when it is taken)
// through the first online node (by name) that answers, trying the next
// when one cannot be reached. While
// another holds it, it waits up to opts.Wait, polling, then fails with
// *LeaseHeldError. The lease is renewed in the background until Release;
// its context derives from ctx.
func AcquireLease(ctx context.Context, cluster Cluster, nodes NodeOf, h Holder, opts LeaseOptions) (*Lease, error) {
	opts.defaults()
	start := opts.Now()
	h.Since = start
	if err := h.Check(); err != nil {
		return nil, err
	}
	claim := LeaseClaim{Token: opts.Token(), Holder: h}
	var seen *Holder
	waiting := false
	for {
		claim.Holder.Since = opts.Now()
		node, name, prev, err := takeOnce(ctx, cluster, nodes, claim)
		if err == nil {
			return hold(ctx, node, name, claim, prev, opts), nil
		}
		var held *LeaseHeldError
		if !errors.As(err, &held) {
			return nil, err
		}
		now := opts.Now()
		held.Now = now
		if waited := now.Sub(start); waited >= opts.Wait {
			held.Waited = waited
			return nil, held
		}
		if !waiting || !sameHolder(seen, held.Holder) {
			waiting, seen = true, held.Holder
			if opts.Waiting != nil {
				opts.Waiting(held.Holder)
			}
		}
		timer := time.NewTimer(min(opts.Poll, opts.Wait-now.Sub(start)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("waiting for %w: %w", held, ctx.Err())
		case <-timer.C:
		}
	}
}

func sameHolder(a, b *Holder) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Host == b.Host && a.PID == b.PID && a.Command == b.Command && a.Since.Equal(b.Since)
}

// takeOnce tries the online nodes in order of name until one answers.
func takeOnce(ctx context.Context, cluster Cluster, nodes NodeOf, claim LeaseClaim) (LeaseNode, string, *Holder, error) {
	infos, err := cluster.Nodes(ctx)
	if err != nil {
		return nil, "", nil, fmt.Errorf("lease: list nodes: %w", err)
	}
	infos = slices.DeleteFunc(slices.Clone(infos), func(n NodeInfo) bool { return !n.Online })
	slices.SortFunc(infos, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	if len(infos) == 0 {
		return nil, "", nil, errors.New("lease: no node of the cluster is online")
	}
	var errs []error
	for _, info := range infos {
		n, err := nodes(info.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		prev, err := n.TakeLease(ctx, claim)
		var held *LeaseHeldError
		if errors.As(err, &held) && held.Holder != nil && held.Holder.Host == claim.Holder.Host &&
			held.Holder.PID == claim.Holder.PID && held.Holder.Command == claim.Holder.Command {
			// This very process holds it: a take whose answer was lost (the
			// connection dropped after the lock was made), or a release that
			// failed. The token decides: only a lock left to this claim's
			// token is let go, then taken again.
			if n.ReleaseLease(ctx, claim) == nil {
				prev, err = n.TakeLease(ctx, claim)
			}
		}
		switch {
		case err == nil:
			return n, info.Name, prev, nil
		case errors.Is(err, ErrLeaseHeld), ctx.Err() != nil:
			return nil, "", nil, err
		}
		errs = append(errs, err)
	}
	return nil, "", nil, fmt.Errorf("lease: no node could take it: %w", errors.Join(errs...))
}

// hold starts renewing a lease taken at claim.Holder.Since (pmxcfs counts
// from a moment after that).
func hold(ctx context.Context, node LeaseNode, name string, claim LeaseClaim, prev *Holder, opts LeaseOptions) *Lease {
	lctx, cancel := context.WithCancelCause(ctx)
	l := &Lease{node: node, nodeName: name, claim: claim, previous: prev, opts: opts,
		ctx: lctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	opts.Log.Debug("lease taken", "node", name, "holder", claim.Holder.String())
	go l.renew(ctx, claim.Holder.Since)
	return l
}

// Context ends when the lease is lost (its cause a *LeaseLostError) or the
// context the lease was taken with ends.
func (l *Lease) Context() context.Context { return l.ctx }

// Lost returns why the lease was lost, or nil while it is held.
func (l *Lease) Lost() error {
	if err := context.Cause(l.ctx); errors.Is(err, ErrLeaseLost) {
		return err
	}
	return nil
}

// Previous is who held the lease before this holder, when known.
func (l *Lease) Previous() *Holder { return l.previous }

// Node is the node the lease was taken through.
func (l *Lease) Node() string { return l.nodeName }

// renew keeps the lease until Release, or until ctx ends: a holder whose
// context was cancelled without Release renews no more, and the lease
// expires as a dead holder's does.
func (l *Lease) renew(ctx context.Context, last time.Time) {
	defer close(l.done)
	ticker := time.NewTicker(l.opts.Renew)
	defer ticker.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		// A slow renewal still counts until the holder would give up: it is
		// given what is left of half the timeout.
		began := l.opts.Now()
		rctx, cancel := context.WithTimeout(ctx, max(last.Add(l.opts.Timeout/2).Sub(began), l.opts.Renew))
		err := l.node.RenewLease(rctx, l.claim)
		cancel()
		now := l.opts.Now()
		switch {
		case err == nil:
			// pmxcfs counted from when it saw the renewal, which is after
			// it began.
			last = began
			continue
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLeaseLost):
		case now.Sub(last) >= l.opts.Timeout/2:
			err = &LeaseLostError{Reason: fmt.Sprintf("not renewed for %s, and another may take it over after %s: %v",
				now.Sub(last).Round(time.Millisecond), l.opts.Timeout, err)}
		default:
			l.opts.Log.Warn("renewing the lease failed; trying again", "node", l.nodeName, "error", err)
			continue
		}
		l.opts.Log.Error("lease lost: starting no new change", "error", err)
		l.cancel(err)
		return
	}
}

// Release stops renewing and lets the lease go. Releasing twice does
// nothing the second time.
func (l *Lease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		if lost := l.Lost(); lost != nil {
			err = lost
			l.cancel(nil)
			return
		}
		err = l.node.ReleaseLease(ctx, l.claim)
		l.cancel(context.Canceled)
		if err != nil && !errors.Is(err, ErrLeaseLost) {
			err = fmt.Errorf("release the lease on %s (it expires by itself after %s): %w", l.nodeName, l.opts.Timeout, err)
		}
	})
	return err
}

// LeaseEachPass returns what LoopOptions.Lease takes: each pass takes the
// lease for holder() (waiting up to opts.Wait) and lets it go when it
// ends, so that another writer (a person's apply) gets in between passes.
// A previous holder that was another loop on other specs is logged: two
// loops on different specs undo each other's changes, pass after pass.
func LeaseEachPass(cluster Cluster, nodes NodeOf, holder func() Holder, opts LeaseOptions) func(context.Context) (context.Context, func(), error) {
	opts.defaults()
	// One token for every pass: a pass takes over a lease an earlier one
	// could not let go.
	token := opts.Token()
	opts.Token = func() string { return token }
	return func(ctx context.Context) (context.Context, func(), error) {
		h := holder()
		l, err := AcquireLease(ctx, cluster, nodes, h, opts)
		var held *LeaseHeldError
		if errors.As(err, &held) && held.Holder != nil && otherSpecs(*held.Holder, h) {
			err = fmt.Errorf("%w, on other specs (%s; these are %s)", err, held.Holder.Specs, h.Specs)
		}
		if err != nil {
			return nil, nil, err
		}
		if p := l.Previous(); p != nil && otherSpecs(*p, h) && (p.Host != h.Host || p.PID != h.PID) {
			opts.Log.Warn("another loop applied other specs before this pass: two loops on different specs undo each other's changes",
				"other", p.String(), "its_specs", p.Specs, "these_specs", h.Specs)
		}
		return l.Context(), func() {
			if err := l.Release(context.WithoutCancel(ctx)); err != nil {
				opts.Log.Warn("lease", "error", err)
			}
		}, nil
	}
}

// otherSpecs reports whether two holders are the same command on different
// specs.
func otherSpecs(a, b Holder) bool {
	return a.Command == b.Command && a.Specs != "" && b.Specs != "" && a.Specs != b.Specs
}
