// Package proxmox is phoenix's adapter to the Proxmox VE API, on
// github.com/luthermonson/go-proxmox. It reads configs as raw maps (the typed
// structs drop keys and fail on cpulimit), waits for tasks itself (go-proxmox's
// Wait ignores ctx and calls WARNINGS a failure), and keeps Proxmox's own error
// texts, which go-proxmox loses on 401/403, by reading every failed answer off
// the wire before go-proxmox sees it.
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
	"sync/atomic"
	"time"

	gp "github.com/luthermonson/go-proxmox"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Client implements reconciler.Cluster.
type Client struct {
	cfg Config
	api *gp.Client
	log *slog.Logger
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
	if cfg.TokenID != "" {
		opts = append(opts, gp.WithAPIToken(cfg.TokenID, cfg.TokenSecret))
	} else {
		opts = append(opts, gp.WithCredentials(&gp.Credentials{Username: cfg.Username, Password: cfg.Password}))
	}
	c := &Client{cfg: cfg, api: gp.NewClient(cfg.Endpoint, opts...), log: log}
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

// login creates the ticket session; an answer without a ticket came from
// something other than Proxmox VE.
func (c *Client) login(ctx context.Context) error {
	if err := c.api.CreateSession(ctx); err != nil {
		return err
	}
	if s := c.api.Session(); s == nil || s.Ticket == "" {
		return errNotPVE
	}
	return nil
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
// and PUT as the body; the answer's data is decoded into out when not nil.
func (c *Client) call(ctx context.Context, method, path string, params map[string]string, out any) error {
	op := method + " " + path
	capt := &capture{}
	rctx := context.WithValue(ctx, captureKey{}, capt)
	var raw json.RawMessage
	target := path
	if (method == http.MethodGet || method == http.MethodDelete) && len(params) > 0 {
		q := url.Values{}
		for k, v := range params {
			q.Set(k, v)
		}
		target += "?" + q.Encode()
	}
	var err error
	switch method {
	case http.MethodGet:
		err = c.api.Get(rctx, target, &raw)
	case http.MethodDelete:
		err = c.api.Delete(rctx, target, &raw)
	case http.MethodPost:
		err = c.api.Post(rctx, target, bodyOf(params), &raw)
	case http.MethodPut:
		err = c.api.Put(rctx, target, bodyOf(params), &raw)
	default:
		return fmt.Errorf("proxmox: unsupported method %s", method)
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
