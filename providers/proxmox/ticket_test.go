package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// A password session outlives its tickets: Proxmox VE refuses a ticket after
// two hours with 401 (pve-manager PVE/HTTPServer.pm auth_handler, before any
// handler runs), and phoenix logs in again and sends the request once more;
// it renews a ticket that is getting old before that happens.

// ticketServer is the part of pveproxy these tests need: logins (with the
// password, or with a valid ticket to renew it), tickets and CSRF tokens it
// can expire, GETs that answer an empty list and a PUT that counts what it
// applied.
type ticketServer struct {
	mu       sync.Mutex
	password string
	n        int
	tickets  map[string]bool
	csrf     map[string]bool
	// refuseAll refuses every ticket, even one just made.
	refuseAll bool
	logins    []string // "password", "renewal" or "refused", in order
	log       []string // "METHOD /path STATUS" of every other request
	writes    int
}

func newTicketServer(t *testing.T) (*ticketServer, Config) {
	t.Helper()
	f := &ticketServer{password: testPass, tickets: map[string]bool{}, csrf: map[string]bool{}}
	ca := newTestCA(t)
	addr := httpsServer(t, ca.leaf(t, "127.0.0.1"), f.serve)
	cfg := testConfig(t, addr)
	cfg.CAFile = ca.file
	cfg.TokenID, cfg.TokenSecret, cfg.Username, cfg.Password = "", "", testUser, testPass
	return f, cfg
}

// expire makes every ticket and CSRF token issued so far invalid.
func (f *ticketServer) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tickets)
	clear(f.csrf)
}

func (f *ticketServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api2/json/access/ticket" && r.Method == http.MethodPost {
		f.login(w, r)
		return
	}
	f.mu.Lock()
	status, reason := f.check(r)
	f.log = append(f.log, fmt.Sprintf("%s %s %d", r.Method, strings.TrimPrefix(r.URL.Path, "/api2/json"), status))
	if status == http.StatusOK && r.Method == http.MethodPut {
		f.writes++
	}
	f.mu.Unlock()
	if status != http.StatusOK {
		failRaw(w, status, reason)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	if r.Method == http.MethodGet {
		fmt.Fprint(w, `{"data":[]}`)
		return
	}
	fmt.Fprint(w, `{"data":null}`)
}

// check is auth_handler: the ticket, then for a write the CSRF token.
func (f *ticketServer) check(r *http.Request) (int, string) {
	c, err := r.Cookie("PVEAuthCookie")
	if err != nil {
		return http.StatusUnauthorized, "No ticket"
	}
	ticket, _ := url.QueryUnescape(c.Value)
	if !f.tickets[ticket] || f.refuseAll {
		return http.StatusUnauthorized, "permission denied - invalid PVE ticket"
	}
	if r.Method != http.MethodGet && !f.csrf[r.Header.Get("CSRFPreventionToken")] {
		return http.StatusUnauthorized, "Permission denied - invalid csrf token"
	}
	return http.StatusOK, ""
}

func (f *ticketServer) login(w http.ResponseWriter, r *http.Request) {
	var p struct{ Username, Password string }
	_ = json.NewDecoder(r.Body).Decode(&p)
	f.mu.Lock()
	kind := "refused"
	switch {
	case p.Username != testUser:
	case f.tickets[p.Password] && !f.refuseAll:
		kind = "renewal"
	case p.Password == f.password:
		kind = "password"
	}
	f.logins = append(f.logins, kind)
	if kind == "refused" {
		f.mu.Unlock()
		failRaw(w, http.StatusUnauthorized, "authentication failure")
		return
	}
	f.n++
	ticket := fmt.Sprintf("PVE:root@pam:%08X::sig+/%d=", f.n, f.n)
	csrf := fmt.Sprintf("%08X:hmac%d", f.n, f.n)
	f.tickets[ticket], f.csrf[csrf] = true, true
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"username": testUser, "ticket": ticket, "CSRFPreventionToken": csrf}})
}

func (f *ticketServer) record() (logins, log []string, writes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.logins...), append([]string(nil), f.log...), f.writes
}

// failRaw writes an error answer with Proxmox's reason phrase, which Go's
// server cannot write.
func failRaw(w http.ResponseWriter, status int, reason string) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString(pveAnswer(status, reason))
	_ = buf.Flush()
}

func TestTicketExpiryIsSurvived(t *testing.T) {
	cases := map[string]struct {
		call   func(c *Client) error
		method string
		writes int
	}{
		"a read": {
			call:   func(c *Client) error { _, err := c.Guests(context.Background()); return err },
			method: "GET /cluster/resources",
		},
		"a write, applied once": {
			call: func(c *Client) error {
				return c.SetConfig(context.Background(), "pve1", 100, map[string]string{"onboot": "1"}, nil, "")
			},
			method: "PUT /nodes/pve1/lxc/100/config",
			writes: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f, cfg := newTicketServer(t)
			c, err := New(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.expire()
			if err := tc.call(c); err != nil {
				t.Fatalf("the call across the expiry failed: %v", err)
			}
			logins, log, writes := f.record()
			want := []string{tc.method + " 401", tc.method + " 200"}
			if strings.Join(logins, ",") != "password,password" || strings.Join(log, ",") != strings.Join(want, ",") || writes != tc.writes {
				t.Errorf("logins %v, requests %v, writes %d; want [password password], %v, %d", logins, log, writes, want, tc.writes)
			}
		})
	}
}

// TestTicketRefusedAgainIsAPermissionError: a request is sent again once,
// not until it passes.
func TestTicketRefusedAgainIsAPermissionError(t *testing.T) {
	f, cfg := newTicketServer(t)
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.refuseAll = true
	f.mu.Unlock()
	err = c.SetConfig(context.Background(), "pve1", 100, map[string]string{"onboot": "1"}, nil, "")
	want := "PUT /nodes/pve1/lxc/100/config: 401 permission denied - invalid PVE ticket"
	if err == nil || err.Error() != want || !errors.Is(err, reconciler.ErrPermission) || reconciler.Retryable(err) {
		t.Errorf("err = %v, want a permanent permission error %q", err, want)
	}
	if logins, log, _ := f.record(); len(logins) != 2 || len(log) != 2 {
		t.Errorf("logins %v, requests %v: want one login again and one request again", logins, log)
	}
}

// TestTicketNewLoginRefused: a password changed since New makes the request
// fail with what the login got, permanently.
func TestTicketNewLoginRefused(t *testing.T) {
	f, cfg := newTicketServer(t)
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.password = "changed"
	f.mu.Unlock()
	f.expire()
	_, err = c.Guests(context.Background())
	want := "GET /cluster/resources: the ticket was refused (401 permission denied - invalid PVE ticket), and logging in again failed: POST /access/ticket: 401 authentication failure"
	if err == nil || err.Error() != want || !errors.Is(err, reconciler.ErrPermission) || reconciler.Retryable(err) {
		t.Errorf("err = %v, want a permanent permission error %q", err, want)
	}
	if strings.Contains(err.Error(), testPass) {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestTicketRenewedBeforeItExpires: a ticket older than renewAfter is renewed
// with itself as the password before the request, which never sees a 401.
func TestTicketRenewedBeforeItExpires(t *testing.T) {
	f, cfg := newTicketServer(t)
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.auth.now = func() time.Time { return now }
	first := c.auth.cur.Load()
	now = now.Add(ticketRenewAfter)
	if err := c.SetConfig(context.Background(), "pve1", 100, map[string]string{"onboot": "1"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	logins, log, writes := f.record()
	if strings.Join(logins, ",") != "password,renewal" || strings.Join(log, ",") != "PUT /nodes/pve1/lxc/100/config 200" || writes != 1 {
		t.Errorf("logins %v, requests %v, writes %d", logins, log, writes)
	}
	if cur := c.auth.cur.Load(); cur == first || cur.ticket == first.ticket {
		t.Error("the session was not replaced")
	}
	// A renewal that is refused (the ticket expired while the machine
	// slept) falls back to the password.
	f.expire()
	now = now.Add(ticketRenewAfter)
	if _, err := c.Guests(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logins, _, _ := f.record(); strings.Join(logins, ",") != "password,renewal,refused,password" {
		t.Errorf("logins %v", logins)
	}
}

// TestTicketExpiryUnderLoad: requests in flight when the ticket expires all
// pass, after a single new login.
func TestTicketExpiryUnderLoad(t *testing.T) {
	f, cfg := newTicketServer(t)
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.expire()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := c.Guests(context.Background())
				errs <- err
			} else {
				errs <- c.SetConfig(context.Background(), "pve1", 100, map[string]string{"onboot": "1"}, nil, "")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	logins, _, writes := f.record()
	if strings.Join(logins, ",") != "password,password" || writes != 4 {
		t.Errorf("logins %v, writes %d: want one login again for all, each write once", logins, writes)
	}
}

// TestTokenRefusalIsNotRetried: a token has no session to renew.
func TestTokenRefusalIsNotRetried(t *testing.T) {
	ca := newTestCA(t)
	var mu sync.Mutex
	requests := 0
	addr := httpsServer(t, ca.leaf(t, "127.0.0.1"), func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n == 1 {
			versionHandler(w, r)
			return
		}
		failRaw(w, http.StatusUnauthorized, "invalid token value!")
	})
	cfg := testConfig(t, addr)
	cfg.CAFile = ca.file
	c, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Guests(context.Background())
	if err == nil || err.Error() != "GET /cluster/resources: 401 invalid token value!" || !errors.Is(err, reconciler.ErrPermission) {
		t.Errorf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 2 {
		t.Errorf("%d requests, want the first contact and one", requests)
	}
}

// TestCaptureKeepsTheLastAnswer: a request go-proxmox sends again after a
// new login is judged by its last answer, not by the 401 before it.
func TestCaptureKeepsTheLastAnswer(t *testing.T) {
	cases := map[string]struct {
		codes  []int
		status int
	}{
		"401, then 200":      {[]int{401, 200}, 0},
		"200, then 500":      {[]int{200, 500}, 500},
		"401, 200, then 403": {[]int{401, 200, 403}, 403},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			next := 0
			rt := capturingTransport{roundTripFunc(func(*http.Request) (*http.Response, error) {
				code := tc.codes[next]
				next++
				return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
					Header: http.Header{}, Body: http.NoBody}, nil
			})}
			capt := &capture{}
			ctx := context.WithValue(context.Background(), captureKey{}, capt)
			for range tc.codes {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://pve.invalid/api2/json/version", nil)
				res, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = res.Body.Close()
			}
			if capt.status != tc.status {
				t.Errorf("captured status %d, want %d", capt.status, tc.status)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
