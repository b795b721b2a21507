package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// Tickets expire as Proxmox VE's do (pve-access-control
// src/PVE/AccessControl.pm: two hours), are renewed by logging in with the
// ticket as the password, and a refused one is answered 401 after pveproxy's
// three seconds, scaled by the world's time scale.

// shiftedClock is the wall clock moved on by what a test adds.
type shiftedClock struct{ off atomic.Int64 }

func (c *shiftedClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func (c *shiftedClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// startClockedSim starts a world whose clock the test moves, with a token
// client like startAPISim's.
func startClockedSim(t *testing.T, world string) (*Sim, *apiClient, *shiftedClock) {
	t.Helper()
	w, err := ParseWorld([]byte(world))
	if err != nil {
		t.Fatal(err)
	}
	clk := &shiftedClock{}
	s, err := Start(w, Options{clock: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	env := s.Env()
	pem, err := os.ReadFile(env["PROXMOX_VE_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return s, &apiClient{t: t, base: strings.TrimSuffix(env["PROXMOX_VE_ENDPOINT"], "/") + "/api2/json", hc: hc,
		token: env["PROXMOX_VE_API_TOKEN"]}, clk
}

// worldWith returns apiWorld with extra lines added to its spec.
func worldWith(lines ...string) string {
	return strings.Replace(apiWorld, "  seed: 1\n", "  seed: 1\n"+strings.Join(lines, ""), 1)
}

// scaled is a world duration in wall time at apiWorld's time scale.
func scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * 0.002) }

func TestTicketExpires(t *testing.T) {
	cases := map[string]struct {
		world string
		life  time.Duration
	}{
		"after two hours by default":           {world: apiWorld, life: 2 * time.Hour},
		"after the world's shortened lifetime": {world: worldWith("  users: {ticketLifetime: 10m}\n"), life: 10 * time.Minute},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, c, clk := startClockedSim(t, tc.world)
			root := c.asRoot(s)
			clk.advance(scaled(tc.life) - scaled(time.Minute))
			if r := root.call("GET", "/version", nil); r.code != 200 {
				t.Fatalf("a minute before the end: %d %q", r.code, r.reason)
			}
			if r := root.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"onboot": {"1"}}); r.code != 200 {
				t.Fatalf("a write a minute before the end: %d %q", r.code, r.reason)
			}
			clk.advance(scaled(time.Minute))
			start := time.Now()
			for _, call := range []struct{ method, path string }{{"GET", "/version"}, {"PUT", "/nodes/pve1/lxc/100/config"}} {
				r := root.call(call.method, call.path, url.Values{})
				if r.code != 401 || r.reason != "permission denied - invalid PVE ticket" {
					t.Errorf("%s %s once expired: %d %q", call.method, call.path, r.code, r.reason)
				}
			}
			if took := time.Since(start); took < 2*scaled(3*time.Second) {
				t.Errorf("two refusals took %v: pveproxy holds each 401 for 3 s (%v here)", took, scaled(3*time.Second))
			}
		})
	}
}

// TestTicketRefusalText: pve-manager 9.1.5 answers every refused ticket or
// token with the same text; before, with pve-access-control's own.
func TestTicketRefusalText(t *testing.T) {
	cases := map[string]struct {
		version, ticket, token string
	}{
		"8.3.5": {"8.3.5", "permission denied - invalid PVE ticket", "invalid token value!"},
		"9.1.4": {"9.1.4", "permission denied - invalid PVE ticket", "invalid token value!"},
		"9.1.5": {"9.1.5", "Authentication failed!", "Authentication failed!"},
		"9.2.0": {"9.2.0", "Authentication failed!", "Authentication failed!"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, c, clk := startClockedSim(t, worldWith("  version: \""+tc.version+"\"\n"))
			root := c.asRoot(s)
			clk.advance(scaled(2 * time.Hour))
			if r := root.call("GET", "/version", nil); r.code != 401 || r.reason != tc.ticket {
				t.Errorf("expired ticket: %d %q, want 401 %q", r.code, r.reason, tc.ticket)
			}
			bad := *c
			bad.token = "root@pam!phoenix=wrong"
			if r := bad.call("GET", "/version", nil); r.code != 401 || r.reason != tc.token {
				t.Errorf("wrong token secret: %d %q, want 401 %q", r.code, r.reason, tc.token)
			}
			anon := *c
			anon.token = ""
			if r := anon.call("GET", "/version", nil); r.code != 401 || r.reason != "No ticket" {
				t.Errorf("no ticket: %d %q (checked before the unified text)", r.code, r.reason)
			}
		})
	}
}

func TestTicketRenewal(t *testing.T) {
	s, c, clk := startClockedSim(t, apiWorld)
	root := c.asRoot(s)
	renew := func(user, ticket string) apiResponse {
		anon := *c
		anon.token = ""
		return anon.call("POST", "/access/ticket", url.Values{"username": {user}, "password": {ticket}})
	}
	clk.advance(scaled(time.Hour + 59*time.Minute))
	r := renew("root@pam", root.ticket)
	if r.code != 200 {
		t.Fatalf("renewal with a valid ticket: %d %q", r.code, r.reason)
	}
	data := r.data.(map[string]any)
	renewed := *root
	renewed.ticket = data["ticket"].(string)
	if renewed.ticket == root.ticket || data["username"] != "root@pam" {
		t.Fatalf("renewal answered %v", data)
	}
	if r := renew("nobody@pve", renewed.ticket); r.code != 401 || r.reason != "authentication failure" {
		t.Errorf("root's ticket for a user that does not exist: %d %q", r.code, r.reason)
	}

	clk.advance(scaled(2 * time.Minute))
	if r := root.call("GET", "/version", nil); r.code != 401 {
		t.Errorf("the old ticket after its two hours: %d %q", r.code, r.reason)
	}
	if r := renew("root@pam", root.ticket); r.code != 401 || r.reason != "authentication failure" {
		t.Errorf("renewal with an expired ticket: %d %q", r.code, r.reason)
	}
	if r := renewed.call("GET", "/version", nil); r.code != 200 {
		t.Errorf("the renewed ticket: %d %q", r.code, r.reason)
	}
	// The CSRF token is checked on its own: the old one has expired with the
	// old ticket, the new one works.
	if r := renewed.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"onboot": {"1"}}); r.code != 401 || r.reason != "Permission denied - invalid csrf token" {
		t.Errorf("the renewed ticket with the old CSRF token: %d %q", r.code, r.reason)
	}
	renewed.csrf = data["CSRFPreventionToken"].(string)
	if r := renewed.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"onboot": {"1"}}); r.code != 200 {
		t.Errorf("the renewed ticket with its CSRF token: %d %q", r.code, r.reason)
	}
}

// TestTicketCSRFTokenOutlivesItsTicket: a CSRF token is bound to its user
// and its age (pve-common src/PVE/Ticket.pm verify_csrf_prevention_token),
// not to the ticket it came with.
func TestTicketCSRFTokenOutlivesItsTicket(t *testing.T) {
	s, c, clk := startClockedSim(t, apiWorld)
	root := c.asRoot(s)
	clk.advance(scaled(time.Hour))
	second := c.asRoot(s)
	second.csrf = root.csrf
	if r := second.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"onboot": {"1"}}); r.code != 200 {
		t.Errorf("a new ticket with an older, valid CSRF token: %d %q", r.code, r.reason)
	}
}

// TestTicketShape: tickets and CSRF tokens look like pve-common's, and a
// ticket's base64 signature, + and / included, is read from the cookie as
// uri_unescape leaves it.
func TestTicketShape(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	root := c.asRoot(s)
	parts := strings.SplitN(root.ticket, ":", 5)
	if len(parts) != 5 || parts[0] != "PVE" || parts[1] != "root@pam" || parts[3] != "" || len(parts[4]) != 344 {
		t.Fatalf("ticket %q is not PVE:USER:HEXTIME::SIGNATURE", root.ticket)
	}
	stamp, _, _ := strings.Cut(root.csrf, ":")
	for _, hex := range []string{parts[2], stamp} {
		at, err := strconv.ParseInt(hex, 16, 64)
		if len(hex) != 8 || strings.ToUpper(hex) != hex || err != nil || time.Since(time.Unix(at, 0)).Abs() > time.Minute {
			t.Errorf("time stamp %q of ticket %q or CSRF token %q", hex, root.ticket, root.csrf)
		}
	}
	// go-proxmox sends the ticket as it is, + and / unescaped.
	req, err := http.NewRequest("GET", c.base+"/version", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", "PVEAuthCookie="+root.ticket)
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("the ticket sent unescaped: %s", res.Status)
	}
}

func TestTicketLifetimeInWorld(t *testing.T) {
	cases := map[string]struct {
		life Duration
		err  string
	}{
		"unset is two hours":     {life: 0},
		"shorter":                {life: Duration(time.Minute)},
		"two hours":              {life: Duration(2 * time.Hour)},
		"longer than Proxmox VE": {life: Duration(2*time.Hour + time.Second), err: "users: ticketLifetime 2h0m1s is outside 0..2h"},
		"negative (built in Go)": {life: Duration(-time.Second), err: "users: ticketLifetime -1s is outside 0..2h"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w, err := ParseWorld([]byte(apiWorld))
			if err != nil {
				t.Fatal(err)
			}
			w.Spec.Users.TicketLifetime = tc.life
			err = CheckWorld(w)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("CheckWorld: %v, want %q", err, tc.err)
			}
		})
	}
	w, err := ParseWorld([]byte(worldWith("  users: {ticketLifetime: 90s}\n")))
	if err != nil || w.Spec.Users.TicketLifetime.D() != 90*time.Second {
		t.Errorf("ticketLifetime from YAML: %v %v", w, err)
	}
}

// TestGoProxmoxGivesUpOnAnExpiredTicket: go-proxmox v0.8.2 logs in again on a
// 401 only once its own session is an hour old (access.go CreateSession:
// ErrSessionExists, which Req turns into ErrNotAuthorized), so a ticket that
// expires sooner, as a world's shortened one does, is the caller's to renew.
func TestGoProxmoxGivesUpOnAnExpiredTicket(t *testing.T) {
	s, c, clk := startClockedSim(t, worldWith("  users: {ticketLifetime: 10m}\n"))
	env := s.Env()
	client := proxmox.NewClient(c.base, proxmox.WithHTTPClient(c.hc),
		proxmox.WithCredentials(&proxmox.Credentials{Username: env["PROXMOX_VE_USERNAME"], Password: env["PROXMOX_VE_PASSWORD"]}))
	ctx := context.Background()
	if err := client.CreateSession(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Version(ctx); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	clk.advance(scaled(10 * time.Minute))
	if _, err := client.Version(ctx); !errors.Is(err, proxmox.ErrNotAuthorized) {
		t.Errorf("after expiry: %v, want go-proxmox's ErrNotAuthorized", err)
	}
	if err := client.RefreshTicket(ctx); !errors.Is(err, proxmox.ErrNotAuthorized) {
		t.Errorf("renewing an expired ticket: %v, want ErrNotAuthorized (PVE answers 401)", err)
	}
	if _, err := client.Ticket(ctx, &proxmox.Credentials{Username: env["PROXMOX_VE_USERNAME"], Password: env["PROXMOX_VE_PASSWORD"]}); err != nil {
		t.Fatalf("password login: %v", err)
	}
	if _, err := client.Version(ctx); err != nil {
		t.Errorf("with the new ticket: %v", err)
	}
}
