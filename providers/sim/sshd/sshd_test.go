package sshd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// listen opens a TCP listener on host:0. Simulated nodes live at 127.0.0.2,
// 127.0.0.3, ...; Linux routes all of 127/8 to loopback, other systems may
// not, so those tests skip rather than fail there.
func listen(t *testing.T, host string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		if host != "127.0.0.1" {
			t.Skipf("cannot bind %s (%v): simulated node addresses need 127/8 routed to loopback, as on Linux", host, err)
		}
		t.Fatal(err)
	}
	return l
}

type testServer struct {
	srv       *Server
	addrs     []string // host:port of each listener
	addr      string   // addrs[0]
	clientKey ssh.Signer
	clientPEM []byte
}

// startServer starts a Server with handler on a listener for each host and
// closes it at the end of the test.
func startServer(t *testing.T, handler Handler, hosts ...string) *testServer {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	clientKey, clientPEM, err := GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{AuthorizedKeys: []ssh.PublicKey{clientKey.PublicKey()}, Handler: handler})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, clientKey: clientKey, clientPEM: clientPEM}
	var wg sync.WaitGroup
	for _, h := range hosts {
		l := listen(t, h)
		ts.addrs = append(ts.addrs, l.Addr().String())
		wg.Go(func() {
			if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve(%s) = %v, want ErrServerClosed", l.Addr(), err)
			}
		})
	}
	ts.addr = ts.addrs[0]
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wg.Wait()
	})
	return ts
}

func (ts *testServer) dial(t *testing.T, addr string) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(ts.clientKey)},
		HostKeyCallback: ssh.FixedHostKey(ts.srv.PublicKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type result struct {
	stdout, stderr string
	status         int
}

// run runs cmd in a new session on c, feeding stdin if non-nil.
func run(t *testing.T, c *ssh.Client, cmd string, stdin io.Reader) result {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &stdout, &stderr, stdin
	status := exitStatus(t, sess.Run(cmd))
	return result{stdout.String(), stderr.String(), status}
}

// exitStatus converts Session.Run/Wait's error into an exit status.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitStatus()
	}
	t.Fatalf("session failed without an exit status: %v", err)
	return -1
}

// scriptHandler understands a tiny command language, enough to exercise the
// server: "exit N", "echo TEXT" (stdout), "warn TEXT" (stderr), "cat"
// (stdin to stdout), "upper" (stdin upper-cased), "env NAME", "whoami",
// "where" (local address), "panic".
func scriptHandler(ctx context.Context, s *Session) int {
	verb, arg, _ := strings.Cut(s.Command, " ")
	switch verb {
	case "exit":
		n, err := strconv.Atoi(arg)
		if err != nil {
			fmt.Fprintln(s.Stderr, err)
			return 2
		}
		return n
	case "echo":
		fmt.Fprint(s.Stdout, arg)
	case "warn":
		fmt.Fprint(s.Stderr, arg)
	case "both":
		fmt.Fprint(s.Stdout, "to stdout")
		fmt.Fprint(s.Stderr, "to stderr")
		return 1
	case "cat":
		if _, err := io.Copy(s.Stdout, s.Stdin); err != nil {
			return 1
		}
	case "sha256":
		h := sha256.New()
		n, err := io.Copy(h, s.Stdin)
		if err != nil {
			return 1
		}
		fmt.Fprintf(s.Stdout, "%d %x", n, h.Sum(nil))
	case "upper":
		b, err := io.ReadAll(s.Stdin)
		if err != nil {
			return 1
		}
		s.Stdout.Write(bytes.ToUpper(b))
	case "env":
		v, ok := s.Env[arg]
		if !ok {
			return 1
		}
		fmt.Fprint(s.Stdout, v)
	case "whoami":
		fmt.Fprint(s.Stdout, s.User)
	case "where":
		fmt.Fprint(s.Stdout, s.LocalAddr.(*net.TCPAddr).IP.String())
	case "raw":
		fmt.Fprint(s.Stdout, s.Command)
	case "panic":
		panic("boom")
	default:
		fmt.Fprintf(s.Stderr, "unknown command %q\n", s.Command)
		return 127
	}
	return 0
}

func TestBasics(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		t.Run(host, func(t *testing.T) {
			ts := startServer(t, scriptHandler, host)
			c := ts.dial(t, ts.addr)
			tests := []struct {
				cmd   string
				stdin string
				want  result
			}{
				{cmd: "exit 0", want: result{status: 0}},
				{cmd: "exit 3", want: result{status: 3}},
				{cmd: "exit 255", want: result{status: 255}},
				{cmd: "exit 259", want: result{status: 3}},  // low 8 bits, like a real process
				{cmd: "exit -1", want: result{status: 255}}, // likewise
				{cmd: "echo hello world", want: result{stdout: "hello world"}},
				{cmd: "warn oops", want: result{stderr: "oops"}},
				{cmd: "both", want: result{stdout: "to stdout", stderr: "to stderr", status: 1}},
				{cmd: "cat", stdin: "line1\nline2\n", want: result{stdout: "line1\nline2\n"}},
				{cmd: "upper", stdin: "abc", want: result{stdout: "ABC"}},
				{cmd: "cat", want: result{}}, // no stdin: EOF at once
				{cmd: "whoami", want: result{stdout: "root"}},
				{cmd: "where", want: result{stdout: host}},
				{cmd: "raw  'a b'\t\"c\"\n$x", want: result{stdout: "raw  'a b'\t\"c\"\n$x"}},
				{cmd: "nope", want: result{stderr: "unknown command \"nope\"\n", status: 127}},
				{cmd: "panic", want: result{stderr: "sshd: handler panic: boom\n", status: 255}},
			}
			for _, tt := range tests {
				var stdin io.Reader
				if tt.stdin != "" {
					stdin = strings.NewReader(tt.stdin)
				}
				got := run(t, c, tt.cmd, stdin)
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(result{})); diff != "" {
					t.Errorf("%q: mismatch (-want +got):\n%s", tt.cmd, diff)
				}
			}
		})
	}
}

// TestLargeStreams pushes more than the SSH window (2 MiB by default) through
// stdin and stdout, so flow control on both directions is exercised.
func TestLargeStreams(t *testing.T) {
	ts := startServer(t, scriptHandler)
	c := ts.dial(t, ts.addr)
	data := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16) // 5 MiB
	got := run(t, c, "cat", bytes.NewReader(data))
	if got.status != 0 || got.stdout != string(data) {
		t.Errorf("cat of %d bytes: status %d, %d bytes back, equal=%v", len(data), got.status, len(got.stdout), got.stdout == string(data))
	}
	sum := sha256.Sum256(data)
	got = run(t, c, "sha256", bytes.NewReader(data))
	if want := fmt.Sprintf("%d %x", len(data), sum); got.stdout != want {
		t.Errorf("sha256 = %q, want %q", got.stdout, want)
	}
}

func TestEnv(t *testing.T) {
	ts := startServer(t, scriptHandler)
	c := ts.dial(t, ts.addr)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Setenv("LC_PHOENIX", "héllo wörld"); err != nil {
		t.Fatalf("Setenv: %v", err)
	}
	out, err := sess.Output("env LC_PHOENIX")
	if err != nil || string(out) != "héllo wörld" {
		t.Errorf("env LC_PHOENIX = %q, %v", out, err)
	}
	// Sessions do not share environments.
	if got := run(t, c, "env LC_PHOENIX", nil); got.status != 1 {
		t.Errorf("fresh session sees LC_PHOENIX: %+v", got)
	}
}

// TestMultipleListeners serves two simulated node addresses from one Server
// and checks a client on each reaches the handler with the right LocalAddr.
func TestMultipleListeners(t *testing.T) {
	hosts := []string{"127.0.0.2", "127.0.0.3"}
	ts := startServer(t, scriptHandler, hosts...)
	for i, addr := range ts.addrs {
		c := ts.dial(t, addr)
		if got := run(t, c, "where", nil); got.stdout != hosts[i] {
			t.Errorf("where via %s = %q, want %q", addr, got.stdout, hosts[i])
		}
	}
}

// TestConcurrentSessions runs 50 sessions at once on one connection, the way
// phoenix's client reuses one connection per node. Run with -race.
func TestConcurrentSessions(t *testing.T) {
	const n = 50
	var running, peak int
	var mu sync.Mutex
	gate := make(chan struct{})
	handler := func(ctx context.Context, s *Session) int {
		mu.Lock()
		running++
		peak = max(peak, running)
		if running == n {
			close(gate) // all n are in flight at the same time
		}
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		select {
		case <-gate:
		case <-ctx.Done():
			return 99
		}
		in, _ := io.ReadAll(s.Stdin)
		fmt.Fprintf(s.Stdout, "%s|%s", s.Command, in)
		fmt.Fprintf(s.Stderr, "err %s", s.Command)
		id, _ := strconv.Atoi(strings.TrimPrefix(s.Command, "job "))
		return id % 7
	}
	ts := startServer(t, handler, "127.0.0.2")
	c := ts.dial(t, ts.addr)

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sess, err := c.NewSession()
			if err != nil {
				t.Errorf("NewSession %d: %v", i, err)
				return
			}
			defer sess.Close()
			var stdout, stderr bytes.Buffer
			sess.Stdout, sess.Stderr = &stdout, &stderr
			sess.Stdin = strings.NewReader(fmt.Sprintf("input %d", i))
			err = sess.Run(fmt.Sprintf("job %d", i))
			status := 0
			var ee *ssh.ExitError
			if errors.As(err, &ee) {
				status = ee.ExitStatus()
			} else if err != nil {
				t.Errorf("job %d: %v", i, err)
				return
			}
			if want := fmt.Sprintf("job %d|input %d", i, i); stdout.String() != want {
				t.Errorf("job %d stdout = %q, want %q", i, stdout.String(), want)
			}
			if want := fmt.Sprintf("err job %d", i); stderr.String() != want {
				t.Errorf("job %d stderr = %q, want %q", i, stderr.String(), want)
			}
			if status != i%7 {
				t.Errorf("job %d status = %d, want %d", i, status, i%7)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("concurrent sessions did not finish")
	}
	if peak != n {
		t.Errorf("peak concurrency %d, want %d", peak, n)
	}
}

// TestConcurrentConnections has many clients, each on its own connection,
// run sessions at the same time against two simulated node addresses.
func TestConcurrentConnections(t *testing.T) {
	ts := startServer(t, scriptHandler, "127.0.0.2", "127.0.0.3")
	addrs := ts.addrs

	const clients, sessionsPer = 20, 5
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			addr := addrs[i%len(addrs)]
			c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
				User: fmt.Sprintf("user%d", i), Auth: []ssh.AuthMethod{ssh.PublicKeys(ts.clientKey)},
				HostKeyCallback: ssh.FixedHostKey(ts.srv.PublicKey()),
			})
			if err != nil {
				t.Errorf("client %d: dial %s: %v", i, addr, err)
				return
			}
			defer c.Close()
			var swg sync.WaitGroup
			for j := range sessionsPer {
				swg.Go(func() {
					sess, err := c.NewSession()
					if err != nil {
						t.Errorf("client %d session %d: %v", i, j, err)
						return
					}
					defer sess.Close()
					out, err := sess.Output("whoami")
					if want := fmt.Sprintf("user%d", i); err != nil || string(out) != want {
						t.Errorf("client %d session %d: whoami = %q, %v; want %q", i, j, out, err, want)
					}
				})
			}
			swg.Wait()
		})
	}
	wg.Wait()
}

// blockingHandler runs "sleep 1000" until its context is done: it reports
// the started session on started and the context's cause on causes, then
// returns 0. Any other command returns 0 at once.
type blockingHandler struct {
	started chan *Session
	causes  chan error
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{started: make(chan *Session, 100), causes: make(chan error, 100)}
}

func (h *blockingHandler) handle(ctx context.Context, s *Session) int {
	if s.Command != "sleep 1000" {
		return 0
	}
	h.started <- s
	<-ctx.Done()
	h.causes <- context.Cause(ctx)
	return 0
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestCancelWhenClientClosesSession(t *testing.T) {
	h := newBlockingHandler()
	ts := startServer(t, h.handle, "127.0.0.2")
	c := ts.dial(t, ts.addr)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("sleep 1000"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h.started, "handler start")
	start := time.Now()
	sess.Close()
	cause := waitFor(t, h.causes, "handler cancellation")
	if !errors.Is(cause, ErrSessionClosed) {
		t.Errorf("cause = %v, want ErrSessionClosed", cause)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancellation took %v", d)
	}
	// The connection stays usable for other sessions.
	if got := run(t, c, "x", nil); got.status != 0 {
		t.Errorf("session after a cancelled one: %+v", got)
	}
}

func TestCancelWhenConnectionDrops(t *testing.T) {
	h := newBlockingHandler()
	ts := startServer(t, h.handle)
	c := ts.dial(t, ts.addr)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("sleep 1000"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h.started, "handler start")
	c.Close() // drops the TCP connection under the session
	if cause := waitFor(t, h.causes, "handler cancellation"); !errors.Is(cause, ErrSessionClosed) {
		t.Errorf("cause = %v, want ErrSessionClosed", cause)
	}
}

func TestSignal(t *testing.T) {
	h := newBlockingHandler()
	ts := startServer(t, h.handle, "127.0.0.2")
	c := ts.dial(t, ts.addr)
	for _, tt := range []struct {
		sig  ssh.Signal
		want int
	}{
		{ssh.SIGINT, 130},
		{ssh.SIGTERM, 143},
		{ssh.SIGKILL, 137},
		{ssh.SIGHUP, 129},
	} {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Start("sleep 1000"); err != nil {
			t.Fatal(err)
		}
		s := waitFor(t, h.started, "handler start")
		// An unknown signal is ignored, as a real sshd would.
		if err := sess.Signal("BOGUS"); err != nil {
			t.Fatal(err)
		}
		if err := sess.Signal(tt.sig); err != nil {
			t.Fatal(err)
		}
		cause := waitFor(t, h.causes, "handler cancellation")
		var se *SignalError
		if !errors.As(cause, &se) || se.Signal != tt.sig {
			t.Errorf("%s: cause = %v, want *SignalError{%s}", tt.sig, cause, tt.sig)
		}
		if got := exitStatus(t, sess.Wait()); got != tt.want {
			t.Errorf("%s: exit status %d, want %d", tt.sig, got, tt.want)
		}
		if got := s.Signal(); got != tt.sig {
			t.Errorf("Session.Signal() = %q, want %q", got, tt.sig)
		}
		sess.Close()
	}
}

func TestAuth(t *testing.T) {
	ts := startServer(t, scriptHandler, "127.0.0.2")
	otherKey, _, err := GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	for name, auth := range map[string]ssh.AuthMethod{
		"wrong key": ssh.PublicKeys(otherKey),
		"password":  ssh.Password("hunter2"),
		"keyboard-interactive": ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
			return nil, nil
		}),
	} {
		c, err := ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{auth},
			HostKeyCallback: ssh.FixedHostKey(ts.srv.PublicKey()),
		})
		if err == nil {
			c.Close()
			t.Errorf("%s: login accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("%s: unexpected error %v", name, err)
		}
	}
	// Only publickey is advertised.
	c, err := ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.PasswordCallback(func() (string, error) {
			t.Error("client was asked for a password")
			return "", errors.New("no")
		})},
		HostKeyCallback: ssh.FixedHostKey(ts.srv.PublicKey()),
	})
	if err == nil {
		c.Close()
		t.Error("password login accepted")
	}
}

func TestKnownHosts(t *testing.T) {
	ts := startServer(t, scriptHandler, "127.0.0.2")
	line := KnownHostsLine([]string{ts.addr}, ts.srv.PublicKey())
	_, port, _ := net.SplitHostPort(ts.addr)
	if prefix := "[127.0.0.2]:" + port + " ssh-ed25519 AAAA"; !strings.HasPrefix(line, prefix) {
		t.Errorf("KnownHostsLine = %q, want prefix %q", line, prefix)
	}
	if got := KnownHostsLine([]string{"127.0.0.2:22"}, ts.srv.PublicKey()); !strings.HasPrefix(got, "127.0.0.2 ssh-ed25519 ") {
		t.Errorf("KnownHostsLine for port 22 = %q", got)
	}

	dir := t.TempDir()
	good := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(good, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherHost, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "known_hosts.bad")
	if err := os.WriteFile(bad, []byte(KnownHostsLine([]string{ts.addr}, otherHost.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	dial := func(file string) (*ssh.Client, error) {
		cb, err := knownhosts.New(file)
		if err != nil {
			t.Fatal(err)
		}
		return ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(ts.clientKey)},
			HostKeyCallback: cb,
		})
	}
	c, err := dial(good)
	if err != nil {
		t.Fatalf("dial with matching known_hosts: %v", err)
	}
	if got := run(t, c, "echo ok", nil); got.stdout != "ok" {
		t.Errorf("echo ok = %+v", got)
	}
	c.Close()

	c, err = dial(bad)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial with mismatched known_hosts: err = %v, want *knownhosts.KeyError with Want set", err)
	}
}

func TestRefusedRequests(t *testing.T) {
	ts := startServer(t, scriptHandler)
	c := ts.dial(t, ts.addr)

	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty-req accepted")
	}
	if err := sess.Shell(); err == nil {
		t.Error("shell accepted")
	}
	sess.Close()

	sess, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem accepted")
	}
	sess.Close()

	_, _, err = c.OpenChannel("direct-tcpip", nil)
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != ssh.UnknownChannelType {
		t.Errorf("direct-tcpip channel: err = %v, want UnknownChannelType", err)
	}

	// At the channel level: a second exec, and env after exec, are refused.
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	exec := func(cmd string) bool {
		ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !exec("cat") {
		t.Fatal("first exec refused")
	}
	if exec("echo again") {
		t.Error("second exec on one channel accepted")
	}
	if ok, _ := ch.SendRequest("env", true, ssh.Marshal(struct{ Name, Value string }{"A", "b"})); ok {
		t.Error("env after exec accepted")
	}
	if ok, _ := ch.SendRequest("signal", true, ssh.Marshal(struct{ Signal string }{"BOGUS"})); ok {
		t.Error("unknown signal accepted")
	}
	ch.CloseWrite()
	io.Copy(io.Discard, ch)
}

func TestNewValidation(t *testing.T) {
	key, _, err := GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}}); err == nil {
		t.Error("New without Handler succeeded")
	}
	if _, err := New(Config{Handler: scriptHandler}); err == nil {
		t.Error("New without AuthorizedKeys succeeded")
	}
	host, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{HostKey: host, AuthorizedKeys: []ssh.PublicKey{key.PublicKey()}, Handler: scriptHandler})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.PublicKey().Marshal(), host.PublicKey().Marshal()) {
		t.Error("configured host key not used")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of an unused server: %v", err)
	}
	if err := s.Serve(listen(t, "127.0.0.1")); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
	}
}

func TestGenerateClientKeyPEM(t *testing.T) {
	signer, pemBytes, err := GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pemBytes, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n")) {
		t.Errorf("PEM does not look like an OpenSSH private key:\n%s", pemBytes)
	}
	parsed, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(parsed.PublicKey().Marshal(), signer.PublicKey().Marshal()) {
		t.Error("PEM holds a different key than the signer")
	}
}

// TestCloseWithLiveSessions closes the server under running handlers and
// connected clients: Close must cancel the handlers, wait for them, and
// leave no goroutines behind.
func TestCloseWithLiveSessions(t *testing.T) {
	before := runtime.NumGoroutine()

	h := newBlockingHandler()
	clientKey, _, err := GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{AuthorizedKeys: []ssh.PublicKey{clientKey.PublicKey()}, Handler: h.handle})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, clientKey: clientKey}
	serveDone := make(chan error, 2)
	for _, host := range []string{"127.0.0.1", "127.0.0.1"} {
		l := listen(t, host)
		ts.addr = l.Addr().String()
		go func() { serveDone <- srv.Serve(l) }()
	}

	const conns, perConn = 3, 4
	var clients []*ssh.Client
	var sessions []*ssh.Session
	for range conns {
		c, err := ssh.Dial("tcp", ts.addr, &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(clientKey)},
			HostKeyCallback: ssh.FixedHostKey(srv.PublicKey()),
		})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		for range perConn {
			sess, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			if err := sess.Start("sleep 1000"); err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, sess)
		}
	}
	// A session that never sends exec, and a raw TCP connection that never
	// finishes the handshake: Close must not wait on either.
	idle, err := clients[0].NewSession()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for range conns * perConn {
		waitFor(t, h.started, "handler start")
	}

	closed := make(chan error)
	go func() { closed <- srv.Close() }()
	if err := waitFor(t, closed, "Close"); err != nil {
		t.Errorf("Close: %v", err)
	}
	for range conns * perConn {
		if cause := waitFor(t, h.causes, "handler cancellation"); !errors.Is(cause, ErrServerClosed) {
			t.Errorf("cause = %v, want ErrServerClosed", cause)
		}
	}
	for range 2 {
		if err := waitFor(t, serveDone, "Serve to return"); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	}
	for _, sess := range sessions {
		// No exit status: the command did not finish, it was cut off.
		var ee *ssh.ExitError
		if err := sess.Wait(); err == nil || errors.As(err, &ee) {
			t.Errorf("session cut off by Close: Wait = %v, want an error without exit status", err)
		}
	}
	idle.Close()
	for _, c := range clients {
		c.Close()
	}
	raw.Close()
	if err := srv.Close(); err != nil { // idempotent
		t.Errorf("second Close: %v", err)
	}

	// Client-side goroutines wind down asynchronously; give them a moment.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after Close\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
