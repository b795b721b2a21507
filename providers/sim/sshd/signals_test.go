package sshd

import (
	"errors"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSignalRefused: a signal Config.Signals refuses is answered false and
// does not cancel the handler, which goes on until the session closes, as
// OpenSSH before 9.8 treats a root login's signal request.
func TestSignalRefused(t *testing.T) {
	h := newBlockingHandler()
	clientKey, _, err := GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{AuthorizedKeys: []ssh.PublicKey{clientKey.PublicKey()}, Handler: h.handle,
		Signals: func(s *Session, sig ssh.Signal) bool { return s.User != "root" || sig == ssh.SIGKILL }})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t, "127.0.0.2")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	ts := &testServer{srv: srv, clientKey: clientKey}
	c := ts.dial(t, l.Addr().String())

	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"sleep 1000"})); !ok || err != nil {
		t.Fatalf("exec: %v %v", ok, err)
	}
	s := waitFor(t, h.started, "handler start")
	if ok, _ := ch.SendRequest("signal", true, ssh.Marshal(struct{ Signal string }{"TERM"})); ok {
		t.Error("refused TERM answered true")
	}
	select {
	case cause := <-h.causes:
		t.Fatalf("a refused signal cancelled the handler: %v", cause)
	default:
	}
	if got := s.Signal(); got != "" {
		t.Errorf("Session.Signal() = %q after a refused signal", got)
	}
	// A signal the hook lets through still ends it.
	if ok, _ := ch.SendRequest("signal", true, ssh.Marshal(struct{ Signal string }{"KILL"})); !ok {
		t.Error("KILL refused")
	}
	var se *SignalError
	if cause := waitFor(t, h.causes, "handler cancellation"); !errors.As(cause, &se) || se.Signal != ssh.SIGKILL {
		t.Errorf("cause = %v, want *SignalError{KILL}", cause)
	}
	_ = ch.Close()
}
