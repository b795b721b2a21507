package proxmox

import (
	"bufio"
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
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

const (
	testTokenID = "root@pam!phoenix"
	testSecret  = "0b5e7c1e-secret-never-shown"
	testUser    = "root@pam"
	testPass    = "password-never-shown"
)

// TestFirstContactFailsFast points New at local servers that are not the
// Proxmox VE API, or refuse the credentials, and checks that each mistake
// comes back at once, in one line that names the endpoint, the cause and the
// variable to check, and that nothing would retry it.
func TestFirstContactFailsFast(t *testing.T) {
	ca := newTestCA(t)
	local := ca.leaf(t, "127.0.0.1")
	html404 := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html><body>404 page not found</body></html>")
	}
	cases := map[string]struct {
		server   func(t *testing.T) string // its address
		caFile   bool                      // trust the test CA
		password bool                      // log in instead of using the token
		want     []string
		kind     error
	}{
		"nothing listens on the port": {
			server: closedPort,
			want:   []string{"connection refused: nothing listens on 127.0.0.1:", EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"the port speaks plain HTTP": {
			server: func(t *testing.T) string { return plainHTTP(t, html404) },
			want:   []string{"the port speaks plain HTTP, not HTTPS", EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"the certificate's authority is unknown": {
			server: func(t *testing.T) string { return httpsServer(t, local, versionHandler) },
			want:   []string{"signed by an authority phoenix does not trust", EnvCAFile, EnvInsecure},
			kind:   reconciler.ErrUnavailable,
		},
		"the certificate names another host": {
			server: func(t *testing.T) string { return httpsServer(t, ca.leaf(t, "pve.example"), versionHandler) },
			caFile: true,
			want:   []string{"certificate is for pve.example, not 127.0.0.1", EnvEndpoint, EnvInsecure},
			kind:   reconciler.ErrUnavailable,
		},
		"the port does not speak TLS (an SSH server)": {
			server: func(t *testing.T) string { return rawServer(t, nil, false, "SSH-2.0-OpenSSH_9.6\r\n") },
			want:   []string{`does not speak TLS: its answer begins "SSH-2"`, EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"the server hangs up at once": {
			server: func(t *testing.T) string { return rawServer(t, nil, false, "") },
			want:   []string{"the server closed the connection during the TLS handshake", EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"the server speaks TLS but not HTTP": {
			server: func(t *testing.T) string { return rawServer(t, &local, true, "SSH-2.0-OpenSSH_9.6\r\n") },
			caFile: true,
			want:   []string{"the server does not speak HTTP", EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"another web server answers 404 in HTML": {
			server: func(t *testing.T) string { return httpsServer(t, local, html404) },
			caFile: true,
			want:   []string{"GET /version answered 404 Not Found with text/html, not the Proxmox VE API", EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"another web server answers 501": {
			server: func(t *testing.T) string {
				return httpsServer(t, local, func(w http.ResponseWriter, _ *http.Request) {
					http.Error(w, "not implemented", http.StatusNotImplemented)
				})
			},
			caFile: true,
			want:   []string{"answered 501 Not Implemented with text/plain, not the Proxmox VE API", EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"another web server answers 200 in HTML": {
			server: func(t *testing.T) string {
				return httpsServer(t, local, func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					fmt.Fprint(w, "<!doctype html><title>router</title>")
				})
			},
			caFile: true,
			want:   []string{"answered 200 OK with text/html, not the Proxmox VE API", EnvEndpoint},
			kind:   reconciler.ErrUnavailable,
		},
		"the login is answered by another web server": {
			server:   func(t *testing.T) string { return httpsServer(t, local, html404) },
			caFile:   true,
			password: true,
			want:     []string{"POST /access/ticket answered 404 Not Found with text/html, not the Proxmox VE API", EnvEndpoint},
			kind:     reconciler.ErrUnavailable,
		},
		"the token is refused": {
			server: func(t *testing.T) string { return rawServer(t, &local, true, pveAnswer(401, "No ticket")) },
			caFile: true,
			want:   []string{"the API token was refused: 401 No ticket", EnvToken},
			kind:   reconciler.ErrPermission,
		},
		"the password is refused": {
			server:   func(t *testing.T) string { return rawServer(t, &local, true, pveAnswer(401, "authentication failure")) },
			caFile:   true,
			password: true,
			want:     []string{"the login was refused: 401 authentication failure", EnvUsername, EnvPassword},
			kind:     reconciler.ErrPermission,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, tc.server(t))
			if tc.caFile {
				cfg.CAFile = ca.file
			}
			if tc.password {
				cfg.TokenID, cfg.TokenSecret, cfg.Username, cfg.Password = "", "", testUser, testPass
			}
			start := time.Now()
			_, err := New(context.Background(), cfg, nil)
			took := time.Since(start)
			t.Logf("%v: %v", took.Round(time.Millisecond), err)
			if err == nil {
				t.Fatal("New succeeded")
			}
			msg := err.Error()
			for _, want := range append([]string{cfg.Endpoint}, tc.want...) {
				if !strings.Contains(msg, want) {
					t.Errorf("the error does not say %q: %s", want, msg)
				}
			}
			for _, secret := range []string{testSecret, testPass} {
				if strings.Contains(msg, secret) {
					t.Errorf("the error shows a secret: %s", msg)
				}
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, ": 0 ") {
				t.Errorf("want one line without a status 0: %q", msg)
			}
			if reconciler.Retryable(err) || !errors.Is(err, tc.kind) {
				t.Errorf("%v: retryable %t, want a permanent %v", err, reconciler.Retryable(err), tc.kind)
			}
			if took > 5*time.Second {
				t.Errorf("New took %v: a connection mistake must fail at once", took)
			}
		})
	}
}

// TestFirstContactLetsPassWhatMayPass: a failure Proxmox VE reports as
// transient, or a request dropped once the connection was up, is no mistake in
// the configuration: New warns and leaves it to the reconciler's retries.
func TestFirstContactLetsPassWhatMayPass(t *testing.T) {
	ca := newTestCA(t)
	local := ca.leaf(t, "127.0.0.1")
	cases := map[string]struct {
		answer string
		want   string
	}{
		"Proxmox VE reports a transient failure": {
			answer: pveAnswer(500, "cluster not ready - no quorum?"),
			want:   "GET /version: 500 cluster not ready - no quorum?",
		},
		"the request is dropped after the handshake": {
			want: "GET /version: the server closed the connection",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, rawServer(t, &local, true, tc.answer))
			cfg.CAFile = ca.file
			var logs strings.Builder
			if _, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
				t.Fatalf("New: %v", err)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), tc.want) {
				t.Errorf("want a warning with %q, logged:\n%s", tc.want, logs.String())
			}
		})
	}
}

// TestFirstContactTimesOut: a server that takes the connection but does not
// answer is busy, not misconfigured; one that never completes the connection
// is not the API.
func TestFirstContactTimesOut(t *testing.T) {
	cfg := Config{Endpoint: "https://10.0.0.9:8006/api2/json", TokenID: testTokenID, TokenSecret: testSecret}
	late := &url.Error{Op: "Get", URL: cfg.Endpoint + "/version", Err: context.DeadlineExceeded}
	cases := map[string]struct {
		connected bool
		want      string
		retryable bool
	}{
		"connected, no answer": {connected: true, want: "GET /version: no answer within 10s", retryable: true},
		"never connected":      {want: "https://10.0.0.9:8006/api2/json: no connection within 10s (check PROXMOX_VE_ENDPOINT)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			capt := &capture{}
			capt.connected.Store(tc.connected)
			err := contactError(cfg, "GET /version", capt, late)
			if err.Error() != tc.want || reconciler.Retryable(err) != tc.retryable || !errors.Is(err, reconciler.ErrUnavailable) {
				t.Errorf("%v (retryable %t), want %q (retryable %t)", err, reconciler.Retryable(err), tc.want, tc.retryable)
			}
		})
	}
}

// TestFirstContactSucceeds: a server that answers GET /version as Proxmox VE
// does is accepted, and the token travels in PVE's header.
func TestFirstContactSucceeds(t *testing.T) {
	ca := newTestCA(t)
	auths := make(chan string, 1)
	addr := httpsServer(t, ca.leaf(t, "127.0.0.1"), func(w http.ResponseWriter, r *http.Request) {
		auths <- r.Header.Get("Authorization")
		versionHandler(w, r)
	})
	cfg := testConfig(t, addr)
	cfg.CAFile = ca.file
	if _, err := New(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	if auth, want := <-auths, "PVEAPIToken="+testTokenID+"="+testSecret; auth != want {
		t.Errorf("Authorization %q, want %q", auth, want)
	}
}

// TestTransportErrorMidRun: once connected, a server that goes away is worth
// another try, and the error reads without a status, which there is none of.
func TestTransportErrorMidRun(t *testing.T) {
	ca := newTestCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(versionHandler))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, "127.0.0.1")}}
	srv.StartTLS()
	cfg := testConfig(t, srv.Listener.Addr().String())
	cfg.CAFile = ca.file
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, err = c.Guests(context.Background())
	want := "GET /cluster/resources: connection refused: nothing listens on " + srv.Listener.Addr().String()
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	var apiErr *reconciler.APIError
	if !reconciler.Retryable(err) || !errors.Is(err, reconciler.ErrUnavailable) || !errors.As(err, &apiErr) || apiErr.Status != 0 {
		t.Errorf("%v: want a retryable ErrUnavailable *APIError without a status", err)
	}
}

// TestDiagnose covers the causes a loopback server cannot produce.
func TestDiagnose(t *testing.T) {
	get := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://pve1.invalid:8006/api2/json/version", Err: err}
	}
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 8006}
	cases := map[string]struct {
		err  error
		want diagnosis
	}{
		"an unknown host name": {
			err:  get(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "pve1.invalid", IsNotFound: true}}),
			want: diagnosis{cause: "cannot resolve the host name pve1.invalid: no such host", check: hintEndpoint},
		},
		"no connection in time": {
			err: get(&net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: os.ErrDeadlineExceeded}),
			want: diagnosis{cause: "no connection to 10.0.0.9:8006 within 5s",
				check: hintEndpoint + ", and that no firewall drops the packets"},
		},
		"a dropped connection": {
			err:  get(&net.OpError{Op: "read", Net: "tcp", Addr: addr, Err: syscall.ECONNRESET}),
			want: diagnosis{cause: "the server closed the connection", check: hintAPIPort},
		},
		"something else": {
			err:  get(errors.New("proxyconnect tcp: no proxy")),
			want: diagnosis{cause: "proxyconnect tcp: no proxy", check: hintEndpoint},
		},
		"an expired certificate": {
			err: get(&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired, Detail: "it expired"}}),
			want: diagnosis{cause: "TLS: the server's certificate does not verify: x509: certificate has expired or is not yet valid: it expired",
				check: hintTrust, trust: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := diagnose(tc.err); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// testConfig is a token configuration for the server at addr.
func testConfig(t *testing.T, addr string) Config {
	t.Helper()
	ep, err := normalizeEndpoint("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	return Config{Endpoint: ep, TokenID: testTokenID, TokenSecret: testSecret}
}

// versionHandler answers as Proxmox VE answers GET /version.
func versionHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api2/json/version" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	fmt.Fprint(w, `{"data":{"version":"9.1.1","release":"9.1","repoid":"42d19c23"}}`)
}

// pveAnswer is an error answer as pveproxy writes it, with its own reason
// phrase (which Go's server cannot write).
func pveAnswer(status int, reason string) string {
	body := `{"data":null}`
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, reason, len(body), body)
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func plainHTTP(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func httpsServer(t *testing.T, cert tls.Certificate, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// Keep the failed handshakes the tests provoke out of the output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// rawServer answers every connection with answer and hangs up: over TLS when
// cert is set, after the first line of the request when readFirst is.
func rawServer(t *testing.T, cert *tls.Certificate, readFirst bool, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cert != nil {
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{*cert}})
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if readFirst {
					if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
						return
					}
				}
				_, _ = conn.Write([]byte(answer))
			}()
		}
	}()
	return l.Addr().String()
}

// testCA is a throwaway certificate authority; file holds its certificate
// as PEM, for Config.CAFile.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "phoenix test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// leaf issues a server certificate for the names (host names or IPs).
func (ca *testCA) leaf(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
