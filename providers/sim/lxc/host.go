package lxc

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheDir is where root file systems are kept between runs.
const DefaultCacheDir = "/var/cache/phoenix-sim"

// DefaultMirror is the Debian mirror used when the machine's apt sources name
// none.
const DefaultMirror = "http://deb.debian.org/debian"

// runRoot holds each Host's lxc path (container configs and logs).
const runRoot = "/run/phoenix-sim"

// Tools are the programs a Host runs.
var Tools = []string{"lxc-start", "lxc-stop", "lxc-attach", "lxc-info", "lxc-wait", "debootstrap", "nft", "ip", "cp"}

// Available says whether this machine can run real containers: nil, or an
// error naming what is missing (root, a tool).
func Available() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("real containers need %s (apt-get install lxc debootstrap nftables iproute2, as root)", strings.Join(missing, ", "))
	}
	return nil
}

// HostOptions configure Prepare.
type HostOptions struct {
	// CacheDir keeps the root file systems between runs (and, while a Host
	// lives, its containers' root file systems); default DefaultCacheDir.
	CacheDir string
	// Mirror is the Debian mirror, e.g. http://deb.debian.org/debian; its
	// security suite is the same host's debian-security path. Default: the
	// mirror the machine's own apt sources name for bookworm.
	Mirror string
	// Log receives a line per slow step (building the root file system);
	// nil discards them.
	Log io.Writer
}

// Host is a machine prepared to run containers: cached root file systems, a
// bridge and nftables table of its own, and the apt proxy containers reach
// the Debian archive through.
type Host struct {
	opts     HostOptions
	id       string // <pid>x<n>: names the bridge, table and directories
	bridge   string
	table    string
	subnet   netip.Prefix
	gateway  netip.Addr
	lxcPath  string // container configs and logs
	guestDir string // container root file systems
	rootfs   string // pristine, owned by host ids
	shifted  string // pristine, ids shifted by IDMapBase
	mirror   *url.URL
	proxy    *aptProxy

	mu         sync.Mutex
	cas        [][]byte
	containers map[string]*Container
	used       map[netip.Addr]bool
	forwards   map[int]int // gateway port -> 127.0.0.1 port
	closed     bool
}

var hostSeq atomic.Int64

// Prepare makes (or reuses) the root file systems, removes what killed runs
// left behind, and sets up this Host's bridge, nftables table and apt proxy.
func Prepare(ctx context.Context, o HostOptions) (*Host, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Mirror == "" {
		o.Mirror = machineMirror()
	}
	mirror, err := url.Parse(o.Mirror)
	if err != nil || (mirror.Scheme != "http" && mirror.Scheme != "https") || mirror.Host == "" {
		return nil, fmt.Errorf("mirror %q: want an http or https URL such as %s", o.Mirror, DefaultMirror)
	}
	mirror.Path = strings.TrimSuffix(mirror.Path, "/")
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, err
	}
	if err := ensureSubIDs(o.Log); err != nil {
		return nil, err
	}
	rootfs, shifted, err := ensureRootfs(ctx, o.CacheDir, mirror.String(), o.Log)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%dx%d", os.Getpid(), hostSeq.Add(1))
	h := &Host{
		opts:       o,
		id:         id,
		bridge:     bridgePrefix + id,
		table:      tablePrefix + strings.ReplaceAll(id, "x", "_"),
		lxcPath:    filepath.Join(runRoot, id),
		guestDir:   filepath.Join(o.CacheDir, "guests", id),
		rootfs:     rootfs,
		shifted:    shifted,
		mirror:     mirror,
		containers: map[string]*Container{},
		used:       map[netip.Addr]bool{},
		forwards:   map[int]int{},
	}
	if len(h.bridge) > 15 {
		return nil, fmt.Errorf("bridge name %s is longer than the kernel's 15 characters", h.bridge)
	}
	for _, d := range []string{h.lxcPath, h.guestDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := h.setupNetwork(ctx); err != nil {
		_ = h.removeDirs()
		return nil, err
	}
	proxy, err := startAptProxy(mirror.Hostname())
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	h.proxy = proxy
	if err := h.forward(proxy.port(), proxy.port()); err != nil {
		_ = h.Close()
		return nil, err
	}
	if mirror.Scheme == "http" {
		if err := h.forward(mirrorPort(mirror), proxy.port()); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	return h, nil
}

// Gateway is the bridge's address: the host as its containers see it.
func (h *Host) Gateway() string { return h.gateway.String() }

// Subnet is the Host's container network, e.g. 10.213.4.0/24.
func (h *Host) Subnet() string { return h.subnet.String() }

// Mirror is the Debian mirror containers' apt sources name.
func (h *Host) Mirror() string { return h.mirror.String() }

// Forward makes 127.0.0.1:port of this machine reachable from the Host's
// containers at Gateway():port, and returns that port. Servers in tests
// listen on 127.0.0.1 only; the bridge has route_localnet so that the DNAT to
// the loopback address is routed. The same address works from this machine
// too, so a URL given to containers can be fetched on the host as well.
func (h *Host) Forward(port int) (int, error) {
	if port <= 0 || port > 65535 {
		return 0, fmt.Errorf("forward port %d: want 1..65535", port)
	}
	if err := h.forward(port, port); err != nil {
		return 0, err
	}
	return port, nil
}

// ForwardAt makes 127.0.0.1:port reachable from the Host's containers at
// Gateway():gatewayPort: for a server that must be told its public address
// before it listens (and learns its port).
func (h *Host) ForwardAt(gatewayPort, port int) error {
	for _, p := range []int{gatewayPort, port} {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("forward port %d: want 1..65535", p)
		}
	}
	return h.forward(gatewayPort, port)
}

// forward DNATs Gateway():from to 127.0.0.1:to, for containers and for this
// machine's own connections.
func (h *Host) forward(from, to int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errClosed
	}
	if dst, ok := h.forwards[from]; ok {
		if dst != to {
			return fmt.Errorf("forward port %d: already forwarded to 127.0.0.1:%d", from, dst)
		}
		return nil
	}
	rules := fmt.Sprintf("add rule inet %[1]s prerouting iifname %[2]q ip daddr %[3]s tcp dport %[4]d dnat ip to 127.0.0.1:%[5]d\n"+
		"add rule inet %[1]s output ip daddr %[3]s tcp dport %[4]d dnat ip to 127.0.0.1:%[5]d\n",
		h.table, h.bridge, h.gateway, from, to)
	if err := nftScript(context.Background(), rules); err != nil {
		return fmt.Errorf("forward port %d: %w", from, err)
	}
	h.forwards[from] = to
	return nil
}

// HTTPClient is a client of this machine that trusts the system's CAs and
// those given to TrustCA, for fetching on the host what containers fetch.
func (h *Host) HTTPClient() *http.Client {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	h.mu.Lock()
	for _, ca := range h.cas {
		pool.AppendCertsFromPEM(ca)
	}
	h.mu.Unlock()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 10 * time.Minute}
}

func mirrorPort(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// TrustCA adds a CA (PEM) that every container created afterwards trusts:
// it is placed in /usr/local/share/ca-certificates, where
// update-ca-certificates (run when ca-certificates installs) picks it up,
// and added to /etc/ssl/certs/ca-certificates.crt where that exists.
func (h *Host) TrustCA(pem []byte) error {
	if !strings.Contains(string(pem), "-----BEGIN CERTIFICATE-----") {
		return errors.New("trust CA: not a PEM certificate")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cas = append(h.cas, append([]byte(nil), pem...))
	return nil
}

var errClosed = errors.New("lxc host is closed")

// Close stops and removes every container, the bridge, the nftables table
// and the apt proxy. It is safe to call twice.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	cts := make([]*Container, 0, len(h.containers))
	for _, c := range h.containers {
		cts = append(cts, c)
	}
	h.mu.Unlock()
	var errs []error
	for _, c := range cts {
		if err := c.destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if h.proxy != nil {
		errs = append(errs, h.proxy.close())
	}
	errs = append(errs, h.teardownNetwork(context.Background()))
	errs = append(errs, h.removeDirs())
	return errors.Join(errs...)
}

func (h *Host) removeDirs() error {
	return errors.Join(os.RemoveAll(h.lxcPath), os.RemoveAll(h.guestDir))
}

// machineMirror is the first bookworm mirror in the machine's apt sources
// (one-line or deb822 format), or DefaultMirror.
func machineMirror() string {
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorIn(string(data)); m != "" {
			return m
		}
	}
	return DefaultMirror
}

// mirrorIn finds a URI serving the bookworm suite in an apt sources file.
func mirrorIn(text string) string {
	var uris []string
	suites := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			// A deb822 stanza ends.
			if suites && len(uris) > 0 {
				return uris[0]
			}
			uris, suites = nil, false
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case f[0] == "deb":
			// deb [options] URI suite components...
			rest := f[1:]
			if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
				for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
					rest = rest[1:]
				}
				if len(rest) > 0 {
					rest = rest[1:]
				}
			}
			if len(rest) >= 2 && rest[1] == "bookworm" {
				return strings.TrimSuffix(rest[0], "/")
			}
		case strings.EqualFold(f[0], "URIs:"):
			for _, u := range f[1:] {
				uris = append(uris, strings.TrimSuffix(u, "/"))
			}
		case strings.EqualFold(f[0], "Suites:"):
			for _, s := range f[1:] {
				if s == "bookworm" {
					suites = true
				}
			}
		}
	}
	if suites && len(uris) > 0 {
		return uris[0]
	}
	return ""
}

// securityMirror is the mirror's debian-security path: the classic security
// host is often unreachable where the mirror is, and apt then fails with "is
// not signed".
func securityMirror(mirror *url.URL) string {
	u := *mirror
	if strings.HasSuffix(u.Path, "/debian") {
		u.Path = strings.TrimSuffix(u.Path, "/debian") + "/debian-security"
	} else {
		u.Path += "-security"
	}
	return u.String()
}

// run runs a program and returns an error with its output when it fails.
func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out), nil
}

// ensureSubIDs gives root the id range unprivileged containers map to, as a
// Proxmox VE node's /etc/subuid and /etc/subgid do (root:100000:65536): when
// newuidmap is installed, LXC maps ids through it, and it refuses ranges the
// files do not grant.
func ensureSubIDs(log io.Writer) error {
	if _, err := exec.LookPath("newuidmap"); err != nil {
		return nil
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		if grantsRoot(string(data)) {
			continue
		}
		fmt.Fprintf(log, "lxc: granting root the ids %d..%d in %s, as on a Proxmox VE node\n", IDMapBase, IDMapBase+IDMapCount-1, f)
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("root:%d:%d\n", IDMapBase, IDMapCount)
		if len(data) > 0 && !strings.HasSuffix(string(data), "\n") {
			line = "\n" + line
		}
		_, err = fh.WriteString(line)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// grantsRoot says whether a subuid/subgid file gives root (by name or id 0)
// a range covering IDMapBase..IDMapBase+IDMapCount.
func grantsRoot(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != "root" && f[0] != "0") {
			continue
		}
		start, err1 := strconv.Atoi(f[1])
		count, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && start <= IDMapBase && start+count >= IDMapBase+IDMapCount {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
