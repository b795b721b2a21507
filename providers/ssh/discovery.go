package ssh

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/providers/internal/nodecmd"
	"github.com/phoenixhv/phoenix/reconciler"
)

// Discover lists the cluster's nodes with the address each is reached at:
// what /cluster/status reports as their ip.
type Discover func(ctx context.Context) (map[string]string, error)

const (
	// DefaultRefresh is how long the addresses a discovery found are used
	// before the next dial looks again.
	DefaultRefresh = 5 * time.Minute
	// discoverTimeout bounds one lookup, retries included.
	discoverTimeout = 30 * time.Second
	// discoverAttempts and discoverBackoff are the retries of a lookup that
	// failed in a way that passes (a dropped connection, a 5xx).
	discoverAttempts = 3
	discoverBackoff  = 250 * time.Millisecond
)

// SetDiscovery makes the pool find the nodes the settings do not pin with
// list, when it dials them. Nothing that can heal is kept: a failed lookup
// is retried a few times, then reported as worth retrying, and the next dial
// looks again; the addresses found are used for refresh (default
// DefaultRefresh), until a dial to one of them fails, or until a node they
// do not name is asked for, whichever comes first. Call it before the first
// command.
func (p *Pool) SetDiscovery(list Discover, refresh time.Duration) {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disc = &discovery{list: list, refresh: refresh, now: time.Now, sem: make(chan struct{}, 1)}
}

// discovery is the addresses a lookup found, and when.
type discovery struct {
	list    Discover
	refresh time.Duration
	now     func() time.Time
	sem     chan struct{} // one lookup at a time

	mu    sync.Mutex
	addrs map[string]string
	at    time.Time
	stale bool
}

// invalidate makes the next dial look the addresses up again.
func (d *discovery) invalidate() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stale = true
}

// cached returns a node's address if the last lookup is recent, not known to
// be stale, and names the node.
func (d *discovery) cached(name string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.addrs == nil || d.stale || d.now().Sub(d.at) >= d.refresh {
		return "", false
	}
	a, ok := d.addrs[name]
	return a, ok && a != ""
}

// address returns a node's address, looking the cluster's nodes up when what
// is known does not serve.
func (d *discovery) address(ctx context.Context, name string) (string, error) {
	if a, ok := d.cached(name); ok {
		return a, nil
	}
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return "", nodecmd.TransportError(fmt.Errorf("ssh: find node %s: %w", name, ctx.Err()), reconciler.ErrUnavailable, true)
	}
	defer func() { <-d.sem }()
	// The lookup another dial just made may have the answer.
	if a, ok := d.cached(name); ok {
		return a, nil
	}
	addrs, err := d.lookup(ctx)
	if err != nil {
		return "", nodecmd.TransportError(fmt.Errorf("ssh: find node %s: list the cluster's nodes: %w", name, err),
			reconciler.ErrUnavailable, reconciler.Retryable(err) || ctx.Err() != nil)
	}
	d.mu.Lock()
	d.addrs, d.at, d.stale = addrs, d.now(), false
	d.mu.Unlock()
	a, ok := addrs[name]
	switch {
	case !ok:
		return "", nodecmd.TransportError(fmt.Errorf("ssh: node %s is not a member of the cluster (/cluster/status lists %s)",
			name, strings.Join(slices.Sorted(maps.Keys(addrs)), ", ")), reconciler.ErrNotFound, false)
	case a == "":
		// An offline node may be listed without its address.
		return "", nodecmd.TransportError(fmt.Errorf("ssh: /cluster/status gives node %s no address (is it offline?)", name),
			reconciler.ErrUnavailable, true)
	}
	return a, nil
}

// lookup lists the nodes, retrying a failure that passes.
func (d *discovery) lookup(ctx context.Context) (map[string]string, error) {
	wait := discoverBackoff
	for attempt := 1; ; attempt++ {
		addrs, err := d.list(ctx)
		if err == nil {
			return addrs, nil
		}
		if attempt == discoverAttempts || !reconciler.Retryable(err) {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		wait *= 2
	}
}
