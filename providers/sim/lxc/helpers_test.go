package lxc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// prepare returns a Host for the test, closed when it ends. Without root or
// the lxc tools the test is skipped, or fails where CI requires the tools.
func prepare(t *testing.T) *Host {
	t.Helper()
	if err := Available(); err != nil {
		testtool.Unable(t, "%v: this machine must run real containers", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	h, err := Prepare(ctx, HostOptions{CacheDir: os.Getenv("PHOENIX_SIM_CACHE"), Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sh runs a shell command in c and returns its output; a non-zero exit
// fails the test.
func sh(t *testing.T, c *Container, script string) string {
	t.Helper()
	out, code := shCode(t, c, script)
	if code != 0 {
		t.Fatalf("%s: %q exited %d:\n%s", c.Name(), script, code, out)
	}
	return out
}

func shCode(t *testing.T, c *Container, script string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out bytes.Buffer
	code, err := c.Attach(ctx, []string{"/bin/sh", "-c", script}, nil, nil, &out, &out)
	if err != nil {
		t.Fatalf("%s: %q: %v", c.Name(), script, err)
	}
	return out.String(), code
}

// started creates and starts a container and waits for systemd.
func started(t *testing.T, h *Host, name string, o ContainerOptions) *Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := h.Create(ctx, name, o)
	if err != nil {
		t.Fatal(err)
	}
	boot(t, c)
	return c
}

func boot(t *testing.T, c *Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	state, err := c.WaitBooted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if state != "running" {
		failed, _ := shCode(t, c, "systemctl --failed --no-legend")
		t.Fatalf("%s: systemd is %q, want running; failed units:\n%s", c.Name(), state, failed)
	}
}

// tlsServer serves body over HTTPS on 127.0.0.1 with a certificate for ip
// from a CA of its own, returned as PEM.
func tlsServer(t *testing.T, ip string, body string) (port int, caPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "phoenix lxc test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}},
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// plainServer listens on 127.0.0.1 and is never forwarded.
func plainServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("secret")) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}
