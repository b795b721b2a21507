// Package sshd is a small SSH server for the simulated Proxmox cluster: it
// terminates real SSH connections (public-key auth, exec sessions, stdin,
// stdout/stderr, exit status, signals) and hands each remote command string
// to a Handler. It knows nothing about Proxmox; the simulator supplies the
// Handler.
//
// The point of speaking real SSH, rather than faking the client side, is that
// phoenix's production SSH code path (host-key checking, connection reuse,
// multiplexed sessions, cancellation) is exercised unchanged against the
// simulator, and that stock OpenSSH clients can talk to it too.
package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Handler runs one remote command and returns its exit status (only the low
// 8 bits are reported, as for a real process). ctx is cancelled when the
// command should stop: the client closed the session or sent a signal, the
// connection dropped, or the server is closing. context.Cause(ctx) says
// which (ErrSessionClosed, *SignalError, ErrServerClosed).
// Handlers must return promptly once ctx is done: Server.Close waits for
// them. A handler cancelled by Close has its return value dropped: the
// client sees the connection go away without an exit status, as when a real
// sshd shuts down.
type Handler func(ctx context.Context, s *Session) int

// Session is one exec request on a session channel.
type Session struct {
	// User is the user name the client authenticated as.
	User string
	// Command is the raw remote command string, exactly as the client sent
	// it. A real sshd hands it to the login shell; see
	// providers/internal/shellwords for splitting it the same way.
	Command string
	// Env holds the variables set by "env" requests before the exec; never
	// nil. It is not modified while the handler runs.
	Env map[string]string
	// Stdin is the client's input; it returns io.EOF once the client closes
	// its write side (or the session ends).
	Stdin io.Reader
	// Stdout and Stderr stream to the client as written. Writes block while
	// the client's window is full and fail once the session is gone.
	Stdout, Stderr io.Writer
	// RemoteAddr and LocalAddr are the TCP endpoints of the connection;
	// LocalAddr tells which simulated node the client dialled.
	RemoteAddr, LocalAddr net.Addr

	mu     sync.Mutex
	signal ssh.Signal
}

// Signal returns the first signal the client sent (e.g. ssh.SIGINT), or ""
// if none. When set, the exit status the client sees is 128 plus the
// signal's number, whatever the handler returns, as for a remote command
// killed by that signal.
func (s *Session) Signal() ssh.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signal
}

// Causes of a handler's context being cancelled, for use with
// context.Cause.
var (
	// ErrSessionClosed: the session channel went away before the command
	// finished, because the client closed it or the connection was lost.
	// (x/crypto/ssh closes every channel of a lost connection exactly as if
	// the client had closed it, so the two cannot be told apart reliably.)
	ErrSessionClosed = errors.New("sshd: session closed")
	// ErrServerClosed: Server.Close was called. Serve also returns it.
	ErrServerClosed = errors.New("sshd: server closed")
)

// SignalError is the context cause when the client sent a signal request.
type SignalError struct {
	Signal ssh.Signal
}

func (e *SignalError) Error() string { return "sshd: received signal " + string(e.Signal) }

// signalNumbers are the Linux numbers of the signals RFC 4254 names, used
// for the 128+n exit status a shell reports for a killed command.
var signalNumbers = map[ssh.Signal]int{
	ssh.SIGHUP: 1, ssh.SIGINT: 2, ssh.SIGQUIT: 3, ssh.SIGILL: 4,
	ssh.SIGABRT: 6, ssh.SIGFPE: 8, ssh.SIGKILL: 9, ssh.SIGUSR1: 10,
	ssh.SIGSEGV: 11, ssh.SIGUSR2: 12, ssh.SIGPIPE: 13, ssh.SIGALRM: 14,
	ssh.SIGTERM: 15,
}

// Config configures a Server.
type Config struct {
	// HostKey identifies the server; a fresh ed25519 key is generated when
	// nil (read it back with Server.HostKey).
	HostKey ssh.Signer
	// AuthorizedKeys are the client keys allowed to log in, as any user.
	// Only public-key authentication is offered.
	AuthorizedKeys []ssh.PublicKey
	// Handler runs each exec request. Required.
	Handler Handler
	// Logger receives connection and session events; nil discards them.
	Logger *slog.Logger
	// Signals says whether a signal request on a session is delivered
	// (cancelling the handler's context with a *SignalError) or refused
	// (answered false; the command runs on). nil delivers every signal
	// RFC 4254 names. OpenSSH's session_signal_req (session.c, since 7.9)
	// delivers HUP, INT, KILL, QUIT, TERM, USR1 and USR2 as killpg(2) on
	// the session's process group, but before 9.8 only with post-auth
	// privilege separation, which privsep_postauth (sshd.c) turned off for
	// a root login: there it logs "session signalling requires privilege
	// separation" and refuses.
	Signals func(s *Session, sig ssh.Signal) bool
}

// handshakeTimeout bounds how long a connection may take to authenticate,
// so a client that connects and stalls does not pin a goroutine forever.
const handshakeTimeout = 30 * time.Second

// Server is an SSH server. It may serve several listeners at once (one per
// simulated node address) and is safe for concurrent use.
type Server struct {
	config  *ssh.ServerConfig
	hostKey ssh.Signer
	handler Handler
	signals func(*Session, ssh.Signal) bool
	log     *slog.Logger

	// ctx is cancelled by Close; every connection and session derives from it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	closed    bool
	listeners map[*net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // Serve calls and connection goroutines
}

// New checks cfg and returns a Server ready to Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("sshd: Config.Handler is required")
	}
	if len(cfg.AuthorizedKeys) == 0 {
		return nil, errors.New("sshd: Config.AuthorizedKeys is empty; nobody could log in")
	}
	hostKey := cfg.HostKey
	if hostKey == nil {
		var err error
		if hostKey, err = GenerateHostKey(); err != nil {
			return nil, err
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Copy the wire forms so later changes to the caller's slice cannot
	// change who may log in.
	authorized := make([][]byte, len(cfg.AuthorizedKeys))
	for i, k := range cfg.AuthorizedKeys {
		if k == nil {
			return nil, fmt.Errorf("sshd: Config.AuthorizedKeys[%d] is nil", i)
		}
		authorized[i] = k.Marshal()
	}

	s := &Server{
		hostKey:   hostKey,
		handler:   cfg.Handler,
		signals:   cfg.Signals,
		log:       logger,
		listeners: make(map[*net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.config = &ssh.ServerConfig{
		// PublicKeyCallback is also consulted for keys the client merely
		// offers; the library verifies the signature before accepting.
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			wire := key.Marshal()
			for _, a := range authorized {
				if subtle.ConstantTimeCompare(a, wire) == 1 {
					return &ssh.Permissions{Extensions: map[string]string{
						"pubkey-fp": ssh.FingerprintSHA256(key),
					}}, nil
				}
			}
			s.log.Debug("sshd: public key refused", "user", meta.User(),
				"remote", meta.RemoteAddr().String(), "fingerprint", ssh.FingerprintSHA256(key))
			return nil, errors.New("public key not authorized")
		},
		// No PasswordCallback or KeyboardInteractiveCallback: the library
		// then refuses those methods and does not advertise them.
		ServerVersion: "SSH-2.0-phoenix_sim_sshd",
	}
	s.config.AddHostKey(hostKey)
	return s, nil
}

// HostKey returns the server's host key signer (generated by New if the
// Config had none).
func (s *Server) HostKey() ssh.Signer { return s.hostKey }

// PublicKey returns the host's public key, e.g. for KnownHostsLine.
func (s *Server) PublicKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// Serve accepts connections on l until l fails or Close is called, in which
// case it returns ErrServerClosed. It may be called concurrently for several
// listeners. Serve takes ownership of l and closes it.
func (s *Server) Serve(l net.Listener) error {
	key := &l
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[key] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, key)
		s.mu.Unlock()
		l.Close()
	}()

	s.log.Debug("sshd: serving", "addr", l.Addr().String())
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			return fmt.Errorf("sshd: accept on %s: %w", l.Addr(), err)
		}
		if !s.trackConn(c) {
			c.Close()
			return ErrServerClosed
		}
		go s.serveConn(c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// trackConn registers c so Close can interrupt it; it reports false once the
// server is closed. Each tracked connection holds one wg count.
func (s *Server) trackConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// Close stops all listeners, cancels every running handler (cause
// ErrServerClosed), drops all connections and waits until every handler
// and internal goroutine has returned. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	// Cancel before closing connections, so handlers see ErrServerClosed
	// rather than the ErrSessionClosed that dropping connections would cause.
	s.cancel(ErrServerClosed)
	var errs []error
	for l := range s.listeners {
		if err := (*l).Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// serveConn runs the SSH protocol on one TCP connection until it ends.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()

	c.SetDeadline(time.Now().Add(handshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		s.log.Debug("sshd: handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	log := s.log.With("user", sconn.User(), "remote", c.RemoteAddr().String(), "local", c.LocalAddr().String())
	log.Debug("sshd: connection established")

	// The mux goroutine blocks delivering to chans and reqs, so both must be
	// drained until the connection ends (which closes them).
	var wg sync.WaitGroup
	wg.Go(func() { ssh.DiscardRequests(reqs) }) // keepalives, forwarding: refused
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels are supported")
			continue
		}
		wg.Go(func() { s.serveSession(sconn, nc, log) })
	}
	// chans is closed once the connection is gone; by then the mux has
	// closed every channel too, which ends each session's request loop.
	wg.Wait()
	log.Debug("sshd: connection closed")
}

// serveSession runs one session channel: it collects env requests, runs the
// handler on exec, relays signals and closing to the handler's context, and
// reports the exit status.
func (s *Server) serveSession(conn *ssh.ServerConn, nc ssh.NewChannel, log *slog.Logger) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)

	sess := &Session{
		User:       conn.User(),
		Env:        make(map[string]string),
		Stdin:      ch,
		Stdout:     ch,
		Stderr:     ch.Stderr(),
		RemoteAddr: conn.RemoteAddr(),
		LocalAddr:  conn.LocalAddr(),
	}
	var exited chan int // nil (blocks in select) until the handler starts

	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				// The client closed the channel, or the connection went
				// away (the mux closes every channel then).
				cause := error(ErrSessionClosed)
				if s.ctx.Err() != nil {
					cause = context.Cause(s.ctx)
				}
				cancel(cause)
				if exited != nil {
					<-exited
				}
				ch.Close()
				return
			}
			switch req.Type {
			case "env":
				var kv struct{ Name, Value string }
				ok := exited == nil && ssh.Unmarshal(req.Payload, &kv) == nil
				if ok {
					sess.Env[kv.Name] = kv.Value
				}
				req.Reply(ok, nil)
			case "exec":
				var cmd struct{ Command string }
				if exited != nil || ssh.Unmarshal(req.Payload, &cmd) != nil {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				sess.Command = cmd.Command
				exited = make(chan int, 1)
				go func() { exited <- s.runHandler(ctx, sess, log) }()
			case "signal":
				var sig struct{ Signal string }
				known := false
				if ssh.Unmarshal(req.Payload, &sig) == nil {
					_, known = signalNumbers[ssh.Signal(sig.Signal)]
				}
				if exited == nil || !known || s.signals != nil && !s.signals(sess, ssh.Signal(sig.Signal)) {
					req.Reply(false, nil)
					continue
				}
				sess.mu.Lock()
				if sess.signal == "" {
					sess.signal = ssh.Signal(sig.Signal)
				}
				sess.mu.Unlock()
				cancel(&SignalError{Signal: ssh.Signal(sig.Signal)})
				req.Reply(true, nil)
			default:
				// shell, pty-req, subsystem, x11-req, ...: a simulated node
				// only runs commands.
				req.Reply(false, nil)
			}
		case code := <-exited:
			if sig := sess.Signal(); sig != "" {
				code = 128 + signalNumbers[sig]
			}
			if s.ctx.Err() == nil {
				// Same order as OpenSSH: EOF, exit-status, close.
				ch.CloseWrite()
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code) & 0xff}))
			}
			// else the server is closing and cancelled the handler: whatever
			// it returned is not the command's real outcome, so, as when a
			// real sshd goes down, the client gets no exit status at all.
			ch.Close()
			cancel(nil)
			// Keep draining until the client acknowledges the close, or the
			// mux would block delivering a late request.
			for req := range reqs {
				req.Reply(false, nil)
			}
			return
		}
	}
}

// runHandler calls the handler, turning a panic into exit status 255 with
// the panic on the session's stderr: one broken simulated command should
// fail that command, not take down the whole simulated cluster.
func (s *Server) runHandler(ctx context.Context, sess *Session, log *slog.Logger) (code int) {
	log = log.With("command", sess.Command)
	log.Debug("sshd: exec")
	defer func() {
		if p := recover(); p != nil {
			log.Error("sshd: handler panicked", "panic", p, "stack", string(debug.Stack()))
			fmt.Fprintf(sess.Stderr, "sshd: handler panic: %v\n", p)
			code = 255
		}
		log.Debug("sshd: exit", "status", code)
	}()
	return s.handler(ctx, sess)
}

// KnownHostsLine returns a known_hosts line for key at addrs (host:port
// pairs), in the form OpenSSH writes: "[127.0.0.2]:2222 ssh-ed25519 AAAA..."
// for non-default ports, a bare host for port 22.
func KnownHostsLine(addrs []string, key ssh.PublicKey) string {
	return knownhosts.Line(addrs, key)
}

// GenerateHostKey returns a fresh ed25519 host key.
func GenerateHostKey() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sshd: generate host key: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

// GenerateClientKey returns a fresh ed25519 client key, both as a signer and
// as an unencrypted OpenSSH-format PEM private key (what ssh-keygen writes),
// which OpenSSH's ssh -i and ssh.ParsePrivateKey both read.
func GenerateClientKey() (ssh.Signer, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("sshd: generate client key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "phoenix-sim")
	if err != nil {
		return nil, nil, fmt.Errorf("sshd: encode client key: %w", err)
	}
	return signer, pem.EncodeToMemory(block), nil
}
