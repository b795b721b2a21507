// Package ssh runs phoenix's commands on Proxmox VE nodes over SSH: named
// scripts inside containers (pct exec), files pushed into them (pct push),
// options only root@pam may set (pct set) and the host probe. Proxmox has no
// API for any of these.
//
// Each node gets one SSH connection, dialled on first use and shared by all
// of that node's commands as multiplexed sessions; a connection that died is
// dialled again once. Host keys are checked against a known_hosts file, with
// no trust on first use. Nodes whose address the settings do not pin are
// looked up in the cluster when dialled (see SetDiscovery).
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/phoenixhv/phoenix/providers/internal/nodecmd"
	"github.com/phoenixhv/phoenix/reconciler"
)

// CommandError is a command that failed as a command: pct refused it, or it
// reached no exit status. See reconciler's error kinds for what to branch on.
type CommandError = nodecmd.CommandError

const (
	defaultDialTimeout = 10 * time.Second
	defaultMaxSessions = 10
)

// Pool hands out one Node per cluster node and owns their connections.
type Pool struct {
	cfg    Config
	signer gossh.Signer // nil when the agent signs

	mu     sync.Mutex
	nodes  map[string]*Node
	closed bool

	// disc finds the addresses of the nodes the settings do not pin; nil
	// when every address is given (see SetDiscovery).
	disc *discovery
	// life ends when the pool closes: a lookup in flight stops then.
	life    context.Context
	endLife context.CancelFunc
}

// NewPool checks cfg and returns a Pool. Nothing is dialled until a command
// runs.
func NewPool(cfg Config) (*Pool, error) {
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("ssh: port %d is outside 1..65535", cfg.Port)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if cfg.DialContext == nil {
		cfg.DialContext = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	if cfg.KnownHostsFile == "" {
		return nil, errors.New("ssh: no known_hosts file: phoenix checks every node's host key and never trusts one on first use")
	}
	if _, err := knownhosts.New(cfg.KnownHostsFile); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ssh: known_hosts file %s does not exist: phoenix checks every node's host key against it. "+
			"Check each node's key, then add it: ssh-keyscan -p %d NODE-ADDRESS >> %s", cfg.KnownHostsFile, cfg.Port, cfg.KnownHostsFile)
	} else if err != nil {
		return nil, fmt.Errorf("ssh: known_hosts: %w", err)
	}
	p := &Pool{cfg: cfg, nodes: map[string]*Node{}}
	p.life, p.endLife = context.WithCancel(context.Background())
	switch {
	case len(cfg.PrivateKey) > 0:
		s, err := gossh.ParsePrivateKey(cfg.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("ssh: the private key %w", checkKey(cfg.PrivateKey))
		}
		p.signer = s
	case cfg.Agent == "":
		return nil, errors.New("ssh: neither a private key nor an ssh-agent socket")
	}
	return p, nil
}

// Node returns the Node for a cluster node, the same one every time. With
// discovery (SetDiscovery), a node the settings do not pin is looked up when
// it is dialled, so that a node that joined the cluster later is found.
func (p *Pool) Node(name string) (*Node, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("ssh: pool is closed")
	}
	if n := p.nodes[name]; n != nil {
		return n, nil
	}
	host, ok := p.cfg.Addresses[name]
	if (!ok || host == "") && p.disc == nil {
		return nil, fmt.Errorf("ssh: no address for node %q", name)
	}
	n := &Node{
		name:     name,
		addr:     p.hostPort(host),
		pool:     p,
		sessions: make(chan struct{}, p.cfg.MaxSessions),
		work:     make(chan struct{}, max(p.cfg.MaxSessions-1, 1)),
	}
	n.ops = nodecmd.Ops{Node: name, Run: n.runWork, OutputLimit: p.cfg.OutputLimit}
	n.leaseOps = nodecmd.Ops{Node: name, Run: n.run, OutputLimit: p.cfg.OutputLimit}
	p.nodes[name] = n
	return n, nil
}

// Close closes every connection. Commands still running fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.endLife()
	nodes := make([]*Node, 0, len(p.nodes))
	for _, n := range p.nodes {
		nodes = append(nodes, n)
	}
	p.mu.Unlock()
	var errs []error
	for _, n := range nodes {
		if err := n.close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Node runs commands on one Proxmox node over its SSH connection.
type Node struct {
	name     string
	pool     *Pool
	ops      nodecmd.Ops
	sessions chan struct{} // one token per session open on the connection
	// work bounds the sessions of ordinary commands to one fewer than
	// sessions: the last one is the lease's, whose renewal must not queue
	// behind long feature steps (a lease not renewed in time is lost).
	work     chan struct{}
	leaseOps nodecmd.Ops

	mu sync.Mutex
	// addr is the host:port last dialled (or pinned); empty until a
	// discovered node is first dialled.
	addr    string
	client  *gossh.Client
	dialing *dial // the dial in progress, shared by everyone waiting for it
}

// dial is one connection attempt; done is closed when it has ended.
type dial struct {
	done   chan struct{}
	client *gossh.Client
	err    error
}

var _ reconciler.Node = (*Node)(nil)

// Name is the node's name in the cluster.
func (n *Node) Name() string { return n.name }

// Exec runs a named script inside a running container.
func (n *Node) Exec(ctx context.Context, vmid int, s reconciler.Script) (reconciler.Result, error) {
	return n.ops.Exec(ctx, vmid, s)
}

// ExecHost runs a named script on the node itself.
func (n *Node) ExecHost(ctx context.Context, s reconciler.Script) (reconciler.Result, error) {
	return n.ops.ExecHost(ctx, s)
}

// Push copies a file that is already on the node into a running container.
func (n *Node) Push(ctx context.Context, vmid int, src, dst string, mode os.FileMode) error {
	return n.ops.Push(ctx, vmid, src, dst, mode)
}

// WriteFile puts a file into a running container, its content sent on
// standard input.
func (n *Node) WriteFile(ctx context.Context, vmid int, f reconciler.FileWrite) error {
	return n.ops.WriteFile(ctx, vmid, f)
}

// HostProbe reports the node's NVIDIA driver, GPUs and device nodes.
func (n *Node) HostProbe(ctx context.Context) (reconciler.HostInfo, error) {
	return n.ops.HostProbe(ctx)
}

// SetConfig sets container options with pct set, as root on the node.
func (n *Node) SetConfig(ctx context.Context, vmid int, set map[string]string, del []string) error {
	return n.ops.SetConfig(ctx, vmid, set, del)
}

// RemoveRawLXC removes raw lxc.* lines from a container's config file.
func (n *Node) RemoveRawLXC(ctx context.Context, vmid int, lines [][2]string) error {
	return n.ops.RemoveRawLXC(ctx, vmid, lines)
}

// SetRawLXC sets the raw lxc.* keys phoenix owns in a container's config file.
func (n *Node) SetRawLXC(ctx context.Context, vmid int, keys map[string][]string) error {
	return n.ops.SetRawLXC(ctx, vmid, keys)
}

// FindRunfile says where a driver version's runfile will come from.
func (n *Node) FindRunfile(ctx context.Context, q reconciler.RunfileQuery) (reconciler.RunfileSource, error) {
	return n.ops.FindRunfile(ctx, q)
}

// TakeLease takes the cluster-wide lease through this node, or says who
// holds it.
func (n *Node) TakeLease(ctx context.Context, c reconciler.LeaseClaim) (*reconciler.Holder, error) {
	return n.leaseOps.TakeLease(ctx, c)
}

// RenewLease keeps the lease taken through this node another timeout.
func (n *Node) RenewLease(ctx context.Context, c reconciler.LeaseClaim) error {
	return n.leaseOps.RenewLease(ctx, c)
}

// ReleaseLease lets the lease go.
func (n *Node) ReleaseLease(ctx context.Context, c reconciler.LeaseClaim) error {
	return n.leaseOps.ReleaseLease(ctx, c)
}

// connection returns the node's connection, dialling it if there is none.
// Concurrent callers share one dial.
func (n *Node) connection(ctx context.Context) (*gossh.Client, error) {
	n.mu.Lock()
	if n.client != nil {
		c := n.client
		n.mu.Unlock()
		return c, nil
	}
	if n.pool.isClosed() {
		n.mu.Unlock()
		return nil, nodecmd.TransportError(errors.New("ssh: pool is closed"), reconciler.ErrRefused, false)
	}
	d := n.dialing
	if d == nil {
		d = &dial{done: make(chan struct{})}
		n.dialing = d
		// The dial outlives a caller that gives up, so the others waiting for
		// it still get a connection; DialTimeout bounds it.
		go n.dial(d)
	}
	n.mu.Unlock()
	select {
	case <-d.done:
		return d.client, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (n *Node) dial(d *dial) {
	addr, err := n.resolve()
	var c *gossh.Client
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.pool.cfg.DialTimeout)
		c, err = n.pool.connect(ctx, addr)
		cancel()
		if errors.Is(err, reconciler.ErrUnavailable) {
			// The node may have moved: look again before the next dial.
			n.pool.disc.invalidate()
		}
	}
	n.mu.Lock()
	n.dialing = nil
	n.addr = addr
	if err == nil {
		if n.pool.isClosed() {
			_ = c.Close()
			c, err = nil, nodecmd.TransportError(errors.New("ssh: pool is closed"), reconciler.ErrRefused, false)
		} else {
			n.client = c
			go n.watch(c)
		}
	}
	d.client, d.err = c, err
	n.mu.Unlock()
	close(d.done)
}

// address is the host:port the node was last dialled at (or is pinned to).
func (n *Node) address() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.addr == "" {
		return n.name
	}
	return n.addr
}

// resolve returns the address to dial: the pinned one, or the one the
// cluster reports now. It runs in the shared dial, bounded by its own
// timeout, so that a caller that gives up leaves the others their answer.
func (n *Node) resolve() (string, error) {
	p := n.pool
	if host := p.cfg.Addresses[n.name]; host != "" {
		return p.hostPort(host), nil
	}
	ctx, cancel := context.WithTimeout(p.life, discoverTimeout)
	defer cancel()
	host, err := p.disc.address(ctx, n.name)
	if err != nil {
		return "", err
	}
	return p.hostPort(host), nil
}

// hostPort adds the SSH port to an address that has none.
func (p *Pool) hostPort(host string) string {
	if host == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(p.cfg.Port))
}

// watch forgets a connection once it has died, so the next command dials
// a new one instead of failing on the dead one.
func (n *Node) watch(c *gossh.Client) {
	_ = c.Wait()
	n.forget(c)
}

func (n *Node) forget(c *gossh.Client) {
	n.mu.Lock()
	if n.client == c {
		n.client = nil
	}
	n.mu.Unlock()
	_ = c.Close()
}

func (n *Node) close() error {
	n.mu.Lock()
	c := n.client
	n.client = nil
	n.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// connect dials addr and runs the SSH handshake, checking the host key.
func (p *Pool) connect(ctx context.Context, addr string) (*gossh.Client, error) {
	// known_hosts is read at every dial: a key added while phoenix runs (the
	// fix the unknown-host error suggests) counts at once.
	hostKeys, err := knownhosts.New(p.cfg.KnownHostsFile)
	if err != nil {
		return nil, nodecmd.TransportError(fmt.Errorf("ssh: known_hosts: %w", err), reconciler.ErrRefused, false)
	}
	auth, closeAgent, err := p.auth()
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	conf := &gossh.ClientConfig{
		User:              p.cfg.User,
		Auth:              auth,
		HostKeyCallback:   p.checkHostKey(hostKeys),
		HostKeyAlgorithms: hostKeyAlgorithms(hostKeys, addr),
	}
	conn, err := p.cfg.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nodecmd.TransportError(fmt.Errorf("ssh: dial %s: %w", addr, err), reconciler.ErrUnavailable, true)
	}
	// The handshake has no context of its own: a deadline bounds it, and
	// closing the connection ends it when ctx does.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	sconn, chans, reqs, err := gossh.NewClientConn(conn, addr, conf)
	if !stop() || err != nil {
		_ = conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, handshakeError(addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return gossh.NewClient(sconn, chans, reqs), nil
}

// auth returns the authentication methods: the configured key, or the
// agent's keys (the agent connection is closed once the handshake is done).
func (p *Pool) auth() ([]gossh.AuthMethod, func(), error) {
	if p.signer != nil {
		return []gossh.AuthMethod{gossh.PublicKeys(p.signer)}, func() {}, nil
	}
	c, err := net.Dial("unix", p.cfg.Agent)
	if err != nil {
		return nil, nil, nodecmd.TransportError(fmt.Errorf("ssh: ssh-agent at %s: %w", p.cfg.Agent, err), reconciler.ErrRefused, false)
	}
	ag := agent.NewClient(c)
	return []gossh.AuthMethod{gossh.PublicKeysCallback(ag.Signers)}, func() { _ = c.Close() }, nil
}

// HostKeyError is a node whose host key is not the one known_hosts holds
// for it, or which known_hosts does not list at all.
type HostKeyError struct {
	Addr           string // host:port as dialled
	KnownHostsFile string
	Fingerprint    string // SHA256 fingerprint of the key the node presented
	// Changed: known_hosts holds another key for the node (a reinstalled
	// node, or someone in between); false: the node is not listed.
	Changed bool
	Known   []string // "file:line" of the keys known_hosts holds for it
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("ssh: HOST KEY OF %s HAS CHANGED: it presented %s, which does not match %s (%v). "+
			"Someone may be intercepting the connection, or the node was reinstalled. "+
			"Verify the new key on the node (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) before replacing the old entry",
			e.Addr, e.Fingerprint, e.KnownHostsFile, e.Known)
	}
	host, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("ssh: %s is not in %s (it presented %s): phoenix does not trust hosts on first use. "+
		"Check the key on the node, then add it: ssh-keyscan -p %s %s >> %s",
		e.Addr, e.KnownHostsFile, e.Fingerprint, port, host, e.KnownHostsFile)
}

// checkHostKey wraps the known_hosts callback to explain a refusal.
func (p *Pool) checkHostKey(hostKeys gossh.HostKeyCallback) gossh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		err := hostKeys(hostname, remote, key)
		var kerr *knownhosts.KeyError
		var rerr *knownhosts.RevokedError
		switch {
		case errors.As(err, &kerr):
			e := &HostKeyError{Addr: hostname, KnownHostsFile: p.cfg.KnownHostsFile,
				Fingerprint: gossh.FingerprintSHA256(key), Changed: len(kerr.Want) > 0}
			for _, k := range kerr.Want {
				e.Known = append(e.Known, fmt.Sprintf("%s:%d", k.Filename, k.Line))
			}
			return e
		case errors.As(err, &rerr):
			return fmt.Errorf("ssh: %s presented a revoked host key (%s:%d)", hostname, rerr.Revoked.Filename, rerr.Revoked.Line)
		}
		return err
	}
}

// hostKeyAlgorithms are the key types known_hosts holds for addr. The client
// must ask for those: a node has several host keys, and if it presented one
// of a type known_hosts does not list, the check would report a changed key
// for a node whose key never changed. Nil (any type) for an unknown host,
// which is refused anyway.
func hostKeyAlgorithms(hostKeys gossh.HostKeyCallback, addr string) []string {
	// Asking with a key no file can hold makes the callback list the known
	// ones in its KeyError.
	err := hostKeys(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	var kerr *knownhosts.KeyError
	if !errors.As(err, &kerr) {
		return nil
	}
	var algos []string
	for _, k := range kerr.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor lists the signature algorithms that prove a key of a type:
// an RSA key signs with SHA-2 (OpenSSH 8.8+ refuses ssh-rsa) or SHA-1.
func algorithmsFor(keyType string) []string {
	if keyType == gossh.KeyAlgoRSA {
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a public key of a type no known_hosts line has.
type probeKey struct{}

func (probeKey) Type() string                          { return "phoenix-probe" }
func (probeKey) Marshal() []byte                       { return []byte("phoenix-probe") }
func (probeKey) Verify([]byte, *gossh.Signature) error { return errors.New("not a key") }

// handshakeError classifies a failed handshake: a refused host key or
// login is permanent; anything else (a node rebooting, a timeout) passes.
func handshakeError(addr string, err error) error {
	var hk *HostKeyError
	switch {
	case errors.As(err, &hk):
		return nodecmd.TransportError(hk, reconciler.ErrPermission, false)
	case isAuthError(err):
		return nodecmd.TransportError(fmt.Errorf("ssh: %s refused the login: %w", addr, err), reconciler.ErrPermission, false)
	}
	return nodecmd.TransportError(fmt.Errorf("ssh: handshake with %s: %w", addr, err), reconciler.ErrUnavailable, true)
}

// isAuthError reports a login the node refused; x/crypto says so only in
// its message.
func isAuthError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}
