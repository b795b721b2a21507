package ssh

import (
	"context"
	"maps"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// lookups is a Discover over fixed answers that counts its calls; answer
// may change between them.
type lookups struct {
	mu     sync.Mutex
	calls  int
	answer map[string]string
}

func (l *lookups) list(context.Context) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	return maps.Clone(l.answer), nil
}

func (l *lookups) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

func (l *lookups) set(name, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answer[name] = addr
}

// discoveryPool is a pool on the test cluster that knows no address but
// through discovery.
func (c *cluster) discoveryPool(l *lookups, refresh time.Duration) *Pool {
	c.t.Helper()
	cfg := c.cfg
	cfg.Addresses = nil
	p := c.pool(cfg)
	p.SetDiscovery(l.list, refresh)
	return p
}

// TestDiscoveryFollowsAMovedNode: a dial to the address the last lookup gave
// fails; the next dial looks again and reaches the node where it is now.
func TestDiscoveryFollowsAMovedNode(t *testing.T) {
	c := startCluster(t)
	// Nothing listens on this port of the node's address.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := net.JoinHostPort("127.0.0.1", strconv.Itoa(closed.Addr().(*net.TCPAddr).Port))
	_ = closed.Close()
	l := &lookups{answer: map[string]string{"pve1": gone}}
	n, err := c.discoveryPool(l, time.Hour).Node("pve1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.HostProbe(ctxT(t)); err == nil {
		t.Fatal("probe at an address where nothing listens succeeded")
	}
	l.set("pve1", c.cfg.Addresses["pve1"])
	if _, err := n.HostProbe(ctxT(t)); err != nil {
		t.Fatalf("probe after the node moved: %v", err)
	}
	if l.count() != 2 {
		t.Errorf("%d lookups, want 2: the failed dial makes the next one look again", l.count())
	}
	if got, want := n.address(), net.JoinHostPort(c.cfg.Addresses["pve1"], c.env["PROXMOX_VE_SSH_PORT"]); got != want {
		t.Errorf("address %s, want %s", got, want)
	}
}

// TestDiscoveryIsReused: what a lookup found serves the other nodes' dials
// until it is older than the refresh interval.
func TestDiscoveryIsReused(t *testing.T) {
	c := startCluster(t)
	l := &lookups{answer: maps.Clone(c.cfg.Addresses)}
	p := c.discoveryPool(l, time.Hour)
	now := time.Now()
	p.disc.now = func() time.Time { return now }
	for _, name := range []string{"pve1", "pve2"} {
		n, err := p.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.HostProbe(ctxT(t)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if l.count() != 1 {
		t.Errorf("%d lookups for two nodes within the refresh interval, want 1", l.count())
	}
	now = now.Add(time.Hour)
	n, err := p.Node("pve3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.HostProbe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if l.count() != 2 {
		t.Errorf("%d lookups after the refresh interval, want 2", l.count())
	}
}
