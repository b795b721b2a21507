// Package sim is an embedded Proxmox VE cluster for tests and demos: the real
// API wire (HTTPS with its own CA, token and ticket auth, requests checked
// against the published API schema, Proxmox's error texts in the status line),
// one SSH server per node accepting pct and host probes, and a model of the
// containers inside that fails the way real ones do: the network comes up late,
// GPUs are visible only if passed through before start, CUDA fails before a
// verified driver, a host driver upgrade breaks nvidia-smi in every container.
//
// It is a tool for testing, not a truth: what it accepts is checked against the
// real schema, and each behaviour it reproduces names the Proxmox VE source
// it follows.
package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/pveapi"
	"github.com/phoenixhv/phoenix/providers/sim/lxc"
	"github.com/phoenixhv/phoenix/providers/sim/sshd"
)

// Options say where the simulator listens and keeps its files.
type Options struct {
	// Listen is the API's address; default 127.0.0.1:0.
	Listen string
	// Dir receives the CA certificate, the SSH client key and known_hosts,
	// each readable by its owner only (0600). Default: a new temporary
	// directory (0700), removed by Close, or by Start when it fails.
	Dir string
	// TimeScale, when not zero, replaces the world's time scale (tests run
	// the example world fast).
	TimeScale float64
	// clock, when set, replaces the wall clock the simulator reads the time
	// from (tests move it on to let tickets expire).
	clock func() time.Time
	// Credentials, when set, are the ones the cluster accepts instead of
	// those of the world or generated ones (see Credentials).
	Credentials Credentials
	// LXCHost, in a world with realGuests, is the prepared machine the
	// containers run on, owned by the caller (who forwards its test
	// servers to it and gives it their CAs first). Nil: Start prepares
	// one with LXC and Close closes it.
	LXCHost *lxc.Host
	LXC     lxc.HostOptions
}

// Sim is a running simulated cluster.
type Sim struct {
	c        *cluster
	cancel   context.CancelFunc
	dir      string
	ownDir   bool
	api      *http.Server
	apiLn    net.Listener
	control  *http.Server
	ctlLn    net.Listener
	ssh      *sshd.Server
	sshPort  int
	env      map[string]string
	creds    Credentials
	closeErr error
	once     sync.Once
}

// Start builds the cluster from a world and serves it until Close.
func Start(world *World, opts Options) (_ *Sim, err error) {
	schema, err := loadSchema(world.Spec.Version)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{cancel: cancel, dir: opts.Dir, creds: opts.Credentials}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.dir == "" {
		// MkdirTemp makes it 0700: no other user gets to list it, let alone
		// open the key in it.
		if s.dir, err = os.MkdirTemp("", "phoenix-sim-"); err != nil {
			return nil, err
		}
		s.ownDir = true
	}
	w := *world
	w.Spec.Users = fillUsers(opts.Credentials.users(w.Spec.Users))
	if opts.TimeScale != 0 {
		w.Spec.TimeScale = opts.TimeScale
	}
	s.c = newCluster(ctx, &w)
	if opts.clock != nil {
		s.c.now = opts.clock
	}
	if s.c.configMethod, _, err = schema.Lookup("PUT", "/nodes/x/lxc/100/config"); err != nil {
		return nil, err
	}
	if w.Spec.RealGuests {
		if s.c.real, err = newRealGuests(ctx, opts.LXCHost, opts.LXC); err != nil {
			return nil, err
		}
	}

	tlsConf, err := s.writeCA()
	if err != nil {
		return nil, err
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if s.apiLn, err = net.Listen("tcp", listen); err != nil {
		return nil, err
	}
	// pveproxy speaks HTTP/1.1 only; an empty TLSNextProto keeps Go from
	// offering HTTP/2, under which the reason phrase would be lost.
	s.api = &http.Server{
		Handler: newAPIServer(s.c, schema), TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second,
		// A client that refuses the certificate is a client's business.
		ErrorLog:     log.New(io.Discard, "", 0),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() { _ = s.api.ServeTLS(s.apiLn, "", "") }()

	if err := s.startSSH(); err != nil {
		return nil, err
	}
	if s.ctlLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	s.control = &http.Server{Handler: s.controlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.control.Serve(s.ctlLn) }()

	tok := w.Spec.Users.Tokens[0]
	s.env = map[string]string{
		"PROXMOX_VE_ENDPOINT":        "https://" + s.apiLn.Addr().String() + "/",
		"PROXMOX_VE_API_TOKEN":       tok.ID + "=" + tok.Secret,
		"PROXMOX_VE_USERNAME":        "root@pam",
		"PROXMOX_VE_PASSWORD":        w.Spec.Users.RootPassword,
		"PROXMOX_VE_CA_FILE":         filepath.Join(s.dir, "ca.pem"),
		"PROXMOX_VE_SSH_USERNAME":    "root",
		"PROXMOX_VE_SSH_PRIVATE_KEY": filepath.Join(s.dir, "id_ed25519"),
		"PROXMOX_VE_SSH_KNOWN_HOSTS": filepath.Join(s.dir, "known_hosts"),
		"PROXMOX_VE_SSH_PORT":        strconv.Itoa(s.sshPort),
		"PHOENIX_SIM_URL":            "http://" + s.ctlLn.Addr().String(),
	}
	return s, nil
}

// loadSchema returns the API schema requests are checked against: the
// embedded one of the world's major release (8.3 for any 8.x, 9.1 for any
// 9.x), so that an 8.x world refuses what 9 added, as its pveproxy would. A
// world without a version is the default 9.1.2.
func loadSchema(version string) (*pveapi.Schema, error) {
	major, _, _ := strings.Cut(version, ".")
	switch major {
	case "", "9":
		return pveapi.Load(pveapi.V91)
	case "8":
		return pveapi.Load(pveapi.V83)
	}
	return nil, fmt.Errorf("version %q: the simulator has the API schemas of Proxmox VE 8 (8.3) and 9 (9.1) only", version)
}

func fillUsers(u Users) Users {
	if u.RootPassword == "" {
		u.RootPassword = randomHex(12)
	}
	if len(u.Tokens) == 0 {
		u.Tokens = []Token{{ID: "root@pam!phoenix"}}
	}
	u.Tokens = slices.Clone(u.Tokens)
	for i := range u.Tokens {
		if u.Tokens[i].Secret == "" {
			b := randomHex(16)
			u.Tokens[i].Secret = b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:32]
		}
	}
	return u
}

// writeCA makes a CA and a server certificate for the loopback addresses, and
// writes the CA so clients can verify TLS instead of skipping it.
func (s *Sim) writeCA() (*tls.Config, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "phoenix simulated Proxmox VE CA", Organization: []string{"phoenix-sim"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pve-sim"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, n := range s.c.nodes {
		leaf.IPAddresses = append(leaf.IPAddresses, net.ParseIP(n.ip))
		leaf.DNSNames = append(leaf.DNSNames, n.Name)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := writePrivate(filepath.Join(s.dir, "ca.pem"), caPEM); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}},
	}, nil
}

// startSSH serves every node on its own loopback address, all on one port,
// with a client key phoenix authenticates with and a known_hosts file.
func (s *Sim) startSSH() error {
	clientKey, clientPEM, err := s.creds.clientKey()
	if err != nil {
		return err
	}
	if err := writePrivate(filepath.Join(s.dir, "id_ed25519"), clientPEM); err != nil {
		return err
	}
	s.ssh, err = sshd.New(sshd.Config{
		AuthorizedKeys: []ssh.PublicKey{clientKey.PublicKey()},
		Signals:        s.c.signalDelivered, // which OpenSSH the node runs (orphans.go)
		Handler: func(ctx context.Context, sess *sshd.Session) int {
			host, _, _ := net.SplitHostPort(sess.LocalAddr.String())
			nodeName, ok := s.c.nodeAt(host)
			if !ok {
				fmt.Fprintf(sess.Stderr, "no simulated node at %s\n", host)
				return 255
			}
			if sess.User != "root" {
				fmt.Fprintln(sess.Stderr, "permission denied: pct and the host probes need root")
				return 1
			}
			return s.c.nodeCommand(ctx, nodeName, sess.Command, sess.Stdin, sess.Stdout, sess.Stderr)
		},
	})
	if err != nil {
		return err
	}
	var listeners []net.Listener
	for attempt := 0; attempt < 20 && listeners == nil; attempt++ {
		first, err := net.Listen("tcp", s.c.nodes[0].ip+":0")
		if err != nil {
			return fmt.Errorf("listen on %s (the simulator gives each node its own loopback address): %w", s.c.nodes[0].ip, err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		listeners = []net.Listener{first}
		for _, n := range s.c.nodes[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(n.ip, strconv.Itoa(port)))
			if err != nil {
				for _, l := range listeners {
					_ = l.Close()
				}
				listeners = nil
				break
			}
			listeners = append(listeners, l)
		}
		s.sshPort = port
	}
	if listeners == nil {
		return errors.New("no port free on every node address")
	}
	var hosts []string
	for _, l := range listeners {
		go func() { _ = s.ssh.Serve(l) }()
		hosts = append(hosts, l.Addr().String())
	}
	line := sshd.KnownHostsLine(hosts, s.ssh.PublicKey())
	return writePrivate(filepath.Join(s.dir, "known_hosts"), []byte(line+"\n"))
}

// writePrivate writes a file only its owner can read (0600). The CA and
// known_hosts are not secret, but no other user needs them, and one mode for
// the three leaves none to get wrong. The mode is set before the data goes in:
// OpenFile's applies only to a file it creates, and a Dir used before may hold
// one made with looser permissions.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// Env returns the variables that point phoenix (and terraform-provider-proxmox)
// at this cluster.
func (s *Sim) Env() map[string]string {
	out := map[string]string{}
	for k, v := range s.env {
		out[k] = v
	}
	return out
}

// ExportLines renders Env as shell export lines, sorted, values quoted.
func (s *Sim) ExportLines() string {
	var lines []string
	for k, v := range s.env {
		lines = append(lines, "export "+k+"='"+strings.ReplaceAll(v, "'", `'\''`)+"'")
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// Journal returns every event so far.
func (s *Sim) Journal() []Event { return s.c.journal.snapshot() }

// Close stops serving, waits for running tasks to end, and removes the
// files it made.
func (s *Sim) Close() error {
	s.once.Do(func() {
		s.cancel()
		var errs []error
		if s.api != nil {
			errs = append(errs, ignoreClosed(s.api.Close()))
		}
		if s.control != nil {
			errs = append(errs, ignoreClosed(s.control.Close()))
		}
		if s.ssh != nil {
			errs = append(errs, ignoreClosed(s.ssh.Close()))
		}
		if s.c != nil {
			s.c.wg.Wait()
			if s.c.real != nil {
				errs = append(errs, s.c.real.close())
			}
		}
		if s.ownDir {
			errs = append(errs, os.RemoveAll(s.dir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, sshd.ErrServerClosed) {
		return nil
	}
	return err
}
