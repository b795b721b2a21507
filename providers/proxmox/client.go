// Package proxmox is phoenix's adapter to the Proxmox VE API, on
// github.com/luthermonson/go-proxmox. It reads configs as raw maps (the typed
// structs drop keys and fail on cpulimit), waits for tasks itself (go-proxmox's
// Wait ignores ctx and calls WARNINGS a failure), keeps Proxmox's own error
// texts, which go-proxmox loses on 401/403, by reading every failed answer off
// the wire before go-proxmox sees it, and keeps a password session alive
// itself (go-proxmox logs in again only once its session is an hour old, and
// rewrites the ticket under requests in flight).
package proxmox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gp "github.com/luthermonson/go-proxmox"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Client implements reconciler.Cluster.
type Client struct {
	cfg Config
	api *gp.Client
	hc  *http.Client // the one go-proxmox sends with; GETs go through it directly (read.go)
	log *slog.Logger
	// auth is the password session; nil with an API token.
	auth *tickets
}

var _ reconciler.Cluster = (*Client)(nil)

// New connects to the API described by cfg and makes one first request (the
// login with a password, GET /version with a token), so that a wrong endpoint,
// TLS setting or credential fails here, in one line that says what to check,
// and not after the reconciler's retries.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.TaskPoll == 0 {
		cfg.TaskPoll = 100 * time.Millisecond
	}
	if cfg.TaskPollMax == 0 {
		cfg.TaskPollMax = 2 * time.Second
	}
	hc, err := httpClient(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Insecure {
		log.Warn("TLS verification of the Proxmox VE API is off (PROXMOX_VE_INSECURE): anyone on the path can read the credentials",
			"endpoint", cfg.Endpoint)
	}
	opts := []gp.Option{gp.WithHTTPClient(hc), gp.WithLogger(quietLogger{}), gp.WithUserAgent("phoenix")}
	var auth *tickets
	if cfg.TokenID != "" {
		opts = append(opts, gp.WithAPIToken(cfg.TokenID, cfg.TokenSecret))
	} else {
		// No credentials for go-proxmox: phoenix signs each request with
		// its own session (see tickets).
		auth = &tickets{renewAfter: ticketRenewAfter, now: time.Now}
		opts = append(opts, gp.WithRequestInterceptor(signRequest))
	}
	c := &Client{cfg: cfg, api: gp.NewClient(cfg.Endpoint, opts...), hc: hc, log: log, auth: auth}
	if err := c.firstContact(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// connectTimeout bounds the TCP connection and the TLS handshake, each: on the
// networks Proxmox VE runs on either takes milliseconds, and an address that
// takes longer is wrong or unreachable.
const connectTimeout = 5 * time.Second

// firstContactTimeout bounds New's first request; it leaves room for the
// 3 seconds Proxmox VE waits before it answers a failed authentication.
const firstContactTimeout = 10 * time.Second

// errNotPVE is an answer that parsed as HTTP but is not what the Proxmox VE API
// answers: another web server on that port.
var errNotPVE = errors.New("not the Proxmox VE API")

// firstContact makes the first request, once and without retries, and turns
// its failure into a configuration error (see contactError). A failure that
// may pass (Proxmox VE reporting a transient error, a request dropped or left
// unanswered once the connection was up) is only logged: the reconciler
// retries those, as it retries any later request.
func (c *Client) firstContact(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, firstContactTimeout)
	defer cancel()
	capt := &capture{}
	pctx = context.WithValue(pctx, captureKey{}, capt)
	pctx = httptrace.WithClientTrace(pctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { capt.connected.Store(true) },
	})
	op, first := "GET /version", c.version
	if c.cfg.TokenID == "" {
		op, first = "POST /access/ticket", c.login
	}
	err := first(pctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err = contactError(c.cfg, op, capt, err)
	if reconciler.Retryable(err) {
		c.log.Warn("the first request to the Proxmox VE API failed; later requests will retry", "endpoint", c.cfg.Endpoint, "error", err)
		return nil
	}
	return err
}

// version reads GET /version, which every authenticated user may read, and
// checks that the answer is the Proxmox VE API's.
func (c *Client) version(ctx context.Context) error {
	var raw json.RawMessage
	if err := c.api.Get(ctx, "/version", &raw); err != nil {
		return err
	}
	var v struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Version == "" {
		return errNotPVE
	}
	c.log.Debug("proxmox api", "op", "GET /version", "version", v.Version)
	return nil
}

// login creates the ticket session with the password.
func (c *Client) login(ctx context.Context) error {
	s, err := c.postTicket(ctx, c.cfg.Password)
	if err != nil {
		return err
	}
	c.auth.cur.Store(s)
	return nil
}

// ticketRenewAfter is the age at which phoenix renews its ticket: half of the
// two hours Proxmox VE's tickets last (pve-access-control
// src/PVE/AccessControl.pm $ticket_lifetime).
const ticketRenewAfter = time.Hour

// tickets is the password session. Proxmox VE's tickets expire after two
// hours, and every request with an expired one is answered 401, three seconds
// late. phoenix renews its ticket once it is an hour old (a still valid
// ticket is renewed by POST /access/ticket with the ticket as the password),
// and logs in with the password when one is refused anyway (a ticket made
// shorter-lived, a machine that slept), then sends the refused request again.
// go-proxmox's own renewal does not serve: it logs in again only when its
// session is an hour old by its own count, and it writes the new ticket into
// the session that requests in flight are reading.
type tickets struct {
	renewAfter time.Duration
	now        func() time.Time
	mu         sync.Mutex // one login at a time
	cur        atomic.Pointer[ticketSession]
}

// ticketSession is one login's ticket and CSRF token, and when phoenix got
// them. It is never changed: a login makes a new one.
type ticketSession struct {
	ticket, csrf string
	at           time.Time
}

type sessionKey struct{}

// signRequest puts the session the request was sent under into its headers:
// the ticket as pve-http-server's create_auth_cookie escapes it, and for a
// write the CSRF token.
func signRequest(req *http.Request) error {
	s, ok := req.Context().Value(sessionKey{}).(*ticketSession)
	if !ok || s == nil {
		return nil
	}
	req.Header.Set("Cookie", "PVEAuthCookie="+url.QueryEscape(s.ticket))
	if req.Method != http.MethodGet {
		req.Header.Set("CSRFPreventionToken", s.csrf)
	}
	return nil
}

// postTicket is POST /access/ticket with the password, or with a still valid
// ticket in its place; an answer without a ticket came from something other
// than Proxmox VE.
func (c *Client) postTicket(ctx context.Context, secret string) (*ticketSession, error) {
	var s gp.Session
	if err := c.api.Post(ctx, "/access/ticket", map[string]string{"username": c.cfg.Username, "password": secret}, &s); err != nil {
		return nil, err
	}
	if s.Ticket == "" || s.CSRFPreventionToken == "" {
		return nil, errNotPVE
	}
	return &ticketSession{ticket: s.Ticket, csrf: s.CSRFPreventionToken, at: c.auth.now()}, nil
}

// session returns the session to send a request under, renewed first when it
// is older than renewAfter. A renewal that fails leaves the old session, which
// is still valid for an hour; the first login failing at New leaves none, and
// then this logs in.
func (c *Client) session(ctx context.Context) *ticketSession {
	if s := c.auth.cur.Load(); s != nil && c.auth.now().Sub(s.at) < c.auth.renewAfter {
		return s
	}
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	s := c.auth.cur.Load()
	if s != nil && c.auth.now().Sub(s.at) < c.auth.renewAfter {
		return s // renewed while this waited
	}
	if err := c.renew(ctx, s); err != nil {
		// Without a session the request is refused, and says why.
		if s != nil {
			c.log.Warn("renewing the Proxmox VE ticket failed; the old one is used while it lasts", "error", err)
		}
		return s
	}
	return c.auth.cur.Load()
}

// renew replaces the session old by one made with old's ticket as the
// password, or when that is refused, by a login with the password.
func (c *Client) renew(ctx context.Context, old *ticketSession) error {
	if old != nil {
		s, err := c.postTicket(loginContext(ctx), old.ticket)
		if err == nil {
			c.auth.cur.Store(s)
			return nil
		}
		c.log.Debug("proxmox api", "op", "renew ticket", "error", err)
	}
	return c.relogin(ctx)
}

// reloginAfter logs in with the password after the session used was
// refused, unless another request has already replaced that session. A
// refused ticket is not renewed first: Proxmox VE renews only a valid one.
func (c *Client) reloginAfter(ctx context.Context, used *ticketSession) error {
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	if c.auth.cur.Load() != used {
		return nil
	}
	return c.relogin(ctx)
}

// relogin logs in with the password; the caller holds auth.mu. Its failure
// is classified as any answer is: a refused password is permanent, a dropped
// connection worth another try.
func (c *Client) relogin(ctx context.Context) error {
	lctx := loginContext(ctx)
	s, err := c.postTicket(lctx, c.cfg.Password)
	if err != nil {
		const op = "POST /access/ticket"
		if capt := lctx.Value(captureKey{}).(*capture); capt.status != 0 {
			return classify(op, capt.status, capt.reason, capt.body)
		}
		return classifyTransport(op, err)
	}
	c.auth.cur.Store(s)
	c.log.Debug("proxmox api", "op", "POST /access/ticket", "login", "password")
	return nil
}

// loginContext gives a login request a capture of its own, so that its answer
// is not taken for the answer of the request it was made for.
func loginContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, captureKey{}, &capture{})
}

// httpClient has timeouts (go-proxmox's default has none), verifies TLS with
// the system roots plus the configured CA, and speaks HTTP/1.1 as pveproxy does.
func httpClient(cfg Config) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file (%s): %w", EnvCAFile, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s (%s) holds no PEM certificate", cfg.CAFile, EnvCAFile)
		}
		tlsConf.RootCAs = pool
	}
	tlsConf.InsecureSkipVerify = cfg.Insecure
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   connectTimeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}
	var rt http.RoundTripper = transport
	if cfg.WrapTransport != nil {
		rt = cfg.WrapTransport(rt)
	}
	return &http.Client{Timeout: cfg.Timeout, Transport: capturingTransport{rt}}, nil
}

// capture holds the status line and body of a failed answer, and the status
// line and type of any answer: first contact tells another web server from
// Proxmox VE by them.
type capture struct {
	status int // of a failed answer (400 and above), else 0
	reason string
	body   []byte
	// answerCode and answer are the status of whatever answer came (200,
	// "200 OK"), zero when none did; contentType is its Content-Type.
	answerCode  int
	answer      string
	contentType string
	// connected is set once a connection is up, TLS handshake included.
	connected atomic.Bool
}

type captureKey struct{}

// capturingTransport copies each failed answer into the request's capture,
// so that Proxmox's message survives go-proxmox's error handling.
type capturingTransport struct{ base http.RoundTripper }

func (t capturingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	c, ok := req.Context().Value(captureKey{}).(*capture)
	if err != nil || !ok {
		return res, err
	}
	c.answerCode, c.answer, c.contentType = res.StatusCode, res.Status, res.Header.Get("Content-Type")
	if res.StatusCode < 400 {
		// Only the last answer counts: a client that sends a request
		// again (go-proxmox does, after logging in anew on a 401) must not
		// leave the failure before it behind.
		c.status, c.reason, c.body = 0, "", nil
		return res, nil
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	_ = res.Body.Close()
	c.status = res.StatusCode
	c.reason = strings.TrimPrefix(res.Status, strconv.Itoa(res.StatusCode)+" ")
	c.body = body
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// quietLogger keeps go-proxmox from printing (it would log request bodies).
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}

// call makes one API request. GET and DELETE send params in the query, POST
// and PUT as the body; the answer's data is decoded into out when not nil. A
// request whose ticket was refused is sent once more after a new login.
func (c *Client) call(ctx context.Context, method, path string, params map[string]string, out any) error {
	op := method + " " + path
	switch method {
	case http.MethodGet, http.MethodDelete, http.MethodPost, http.MethodPut:
	default:
		return fmt.Errorf("proxmox: unsupported method %s", method)
	}
	target := path
	if (method == http.MethodGet || method == http.MethodDelete) && len(params) > 0 {
		q := url.Values{}
		for k, v := range params {
			q.Set(k, v)
		}
		target += "?" + q.Encode()
	}
	raw, capt, used, err := c.send(ctx, method, target, params, out)
	if c.auth != nil && ctx.Err() == nil && refusedBeforeHandling(path, capt.status) {
		if lerr := c.reloginAfter(ctx, used); lerr != nil {
			return fmt.Errorf("%s: the ticket was refused (%d %s), and logging in again failed: %w", op, capt.status, capt.reason, lerr)
		}
		raw, capt, _, err = c.send(ctx, method, target, params, out)
	}
	var bad *answerError
	if errors.As(err, &bad) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var pass passThrough // a dataStream's own error (stream.go)
	if errors.As(err, &pass) {
		return pass.err
	}
	// go-proxmox turns only 400, 401, 403, 500 and 501 into errors: a 595
	// from the proxy (node unreachable) or a 502 would decode as empty data.
	if err == nil && capt.status >= 400 {
		err = errors.New(capt.reason)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if capt.status != 0 {
			err = classify(op, capt.status, capt.reason, capt.body)
		} else {
			err = classifyTransport(op, err)
		}
		c.log.Debug("proxmox api", "op", op, "error", err)
		return err
	}
	c.log.Debug("proxmox api", "op", op)
	if out == nil || len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: unexpected answer %.200s: %w", op, raw, err)
	}
	return nil
}

// send makes one request, under the current session with a password, and
// returns the answer's data, the capture of its status line and body, and
// the session it was sent under. A GET decodes its data into out itself
// (read.go) and returns no data.
func (c *Client) send(ctx context.Context, method, target string, params map[string]string, out any) (json.RawMessage, *capture, *ticketSession, error) {
	capt := &capture{}
	rctx := context.WithValue(ctx, captureKey{}, capt)
	var used *ticketSession
	if c.auth != nil {
		used = c.session(ctx)
		rctx = context.WithValue(rctx, sessionKey{}, used)
	}
	var raw json.RawMessage
	var err error
	switch method {
	case http.MethodGet:
		err = c.get(rctx, target, out)
	case http.MethodDelete:
		err = c.api.Delete(rctx, target, &raw)
	case http.MethodPost:
		err = c.api.Post(rctx, target, bodyOf(params), &raw)
	case http.MethodPut:
		err = c.api.Put(rctx, target, bodyOf(params), &raw)
	}
	return raw, capt, used, err
}

// bodyOf returns nil for no parameters, so that no empty JSON body is sent.
func bodyOf(params map[string]string) any {
	if len(params) == 0 {
		return nil
	}
	return params
}

// String is the textual value of a JSON scalar as Proxmox sends it: numbers
// may come as strings and strings as numbers (cpulimit, vmid).
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "1"
		}
		return "0"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func integer(v any) (int, error) {
	s := scalar(v)
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != float64(int(f)) {
		return 0, fmt.Errorf("not an integer: %q", s)
	}
	return int(f), nil
}

// errUnexpected names what in an answer did not have the expected shape.
func errUnexpected(op, what string, v any) error {
	return fmt.Errorf("%s: unexpected %s in the answer: %.200v", op, what, v)
}

var errStillRunning = errors.New("task still running")
