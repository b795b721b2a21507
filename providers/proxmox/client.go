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
	"net/url"
	"os"
	"strconv"
	"strings"
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

// New connects to the API described by cfg. With a username and password it
// logs in at once, so that bad credentials fail here and not mid-apply.
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
	if cfg.TokenID == "" {
		capt := &capture{}
		if err := c.api.CreateSession(context.WithValue(ctx, captureKey{}, capt)); err != nil {
			if capt.status != 0 {
				return nil, classify("POST /access/ticket", capt.status, capt.reason, capt.body)
			}
			return nil, classifyTransport("POST /access/ticket", err)
		}
	}
	return c, nil
}

// httpClient has timeouts (go-proxmox's default has none), verifies TLS with
// the system roots plus the configured CA, and speaks HTTP/1.1 as pveproxy does.
func httpClient(cfg Config) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	tlsConf.InsecureSkipVerify = cfg.Insecure
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
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

// capture holds the status line and body of a failed answer.
type capture struct {
	status int
	reason string
	body   []byte
}

type captureKey struct{}

// capturingTransport copies each failed answer into the request's capture,
// so that Proxmox's message survives go-proxmox's error handling.
type capturingTransport struct{ base http.RoundTripper }

func (t capturingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err != nil || res.StatusCode < 400 {
		return res, err
	}
	if c, ok := req.Context().Value(captureKey{}).(*capture); ok {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		_ = res.Body.Close()
		c.status = res.StatusCode
		c.reason = strings.TrimPrefix(res.Status, strconv.Itoa(res.StatusCode)+" ")
		c.body = body
		res.Body = io.NopCloser(bytes.NewReader(body))
	}
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
