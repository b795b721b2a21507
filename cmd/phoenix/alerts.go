package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/reconciler"
)

// Alert senders: phoenix run --alert KIND=URL. Each sender has its own
// bounded queue and worker, so that a slow or dead receiver never holds up
// a pass: a full queue drops the message, with a log line. A message is
// retried with backoff on a 5xx answer or a network error (a timeout
// included), never on a 4xx: that one will not get better.

// alertKinds are the formats --alert knows.
var alertKinds = []string{"webhook", "ntfy", "gotify", "slack", "discord"}

// discordMax is the most characters Discord takes in a message's content.
const discordMax = 2000

type alertTarget struct {
	kind string
	url  *url.URL
}

// parseAlertFlag reads one --alert KIND=URL; its errors never hold the URL,
// which may carry a token.
func parseAlertFlag(s string) (alertTarget, error) {
	kind, raw, ok := strings.Cut(s, "=")
	if !ok {
		return alertTarget{}, fmt.Errorf("--alert %q: want KIND=URL, KIND one of %s", kind, strings.Join(alertKinds, ", "))
	}
	known := false
	for _, k := range alertKinds {
		known = known || k == kind
	}
	if !known {
		return alertTarget{}, fmt.Errorf("--alert %s=...: unknown kind %q (want one of %s)", kind, kind, strings.Join(alertKinds, ", "))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return alertTarget{}, fmt.Errorf("--alert %s=...: want an http or https URL with a host", kind)
	}
	if kind == "gotify" {
		if u.Query().Get("token") == "" {
			return alertTarget{}, fmt.Errorf("--alert gotify=...: want the application token in the URL, as https://HOST/message?token=TOKEN")
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/message"
		}
	}
	return alertTarget{kind: kind, url: u}, nil
}

// alertSecrets are the parts of the alert URLs that may be credentials: the
// whole URL, its path (a Slack or Discord webhook's token, an ntfy topic),
// its query values (a Gotify token) and its password.
func alertSecrets(targets []alertTarget) []redact.Secret {
	var out []redact.Secret
	for _, t := range targets {
		name := "--alert " + t.kind
		out = append(out, redact.Secret{Var: name + " URL", Value: t.url.String()})
		if p := strings.Trim(t.url.Path, "/"); p != "" && p != "message" {
			out = append(out, redact.Secret{Var: name + " path", Value: p})
		}
		for k, vs := range t.url.Query() {
			for _, v := range vs {
				out = append(out, redact.Secret{Var: name + " " + k, Value: v})
			}
		}
		if pw, ok := t.url.User.Password(); ok {
			out = append(out, redact.Secret{Var: name + " password", Value: pw})
		}
	}
	return out
}

// alertSenderOptions tune a sender; zero values take the defaults.
type alertSenderOptions struct {
	// Queue is how many messages wait at most (default 64).
	Queue int
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// Retries after the first try (default 3), the first after Backoff
	// (default 2 s), doubling.
	Retries int
	Backoff time.Duration
	// Count, if set, hears what became of each alert: alertSent,
	// alertFailed or alertDropped, with the target's kind.
	Count func(target, result string, a reconciler.Alert)
}

type alertSender struct {
	target alertTarget
	log    *slog.Logger
	opts   alertSenderOptions
	client *http.Client
	queue  chan reconciler.Alert
	done   chan struct{}
	once   sync.Once
}

// newAlertSender starts a sender's worker; close stops it.
func newAlertSender(t alertTarget, log *slog.Logger, opts alertSenderOptions) *alertSender {
	if opts.Queue <= 0 {
		opts.Queue = 64
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.Count == nil {
		opts.Count = func(string, string, reconciler.Alert) {}
	}
	s := &alertSender{target: t, log: log.With("alert", t.kind), opts: opts,
		client: &http.Client{Timeout: opts.Timeout}, queue: make(chan reconciler.Alert, opts.Queue), done: make(chan struct{})}
	go s.run()
	return s
}

// enqueue never blocks: a full queue drops the message.
func (s *alertSender) enqueue(a reconciler.Alert) {
	select {
	case s.queue <- a:
	default:
		s.opts.Count(s.target.kind, alertDropped, a)
		s.log.Warn("alert dropped: the queue is full", "incident", a.Incident, "state", a.State, "queue", cap(s.queue))
	}
}

// close sends what is queued until ctx ends, then stops.
func (s *alertSender) close(ctx context.Context) {
	s.once.Do(func() { close(s.queue) })
	select {
	case <-s.done:
	case <-ctx.Done():
		s.log.Warn("alerts left unsent at exit", "queued", len(s.queue))
	}
}

func (s *alertSender) run() {
	defer close(s.done)
	for a := range s.queue {
		if err := s.deliver(a); err != nil {
			s.opts.Count(s.target.kind, alertFailed, a)
			s.log.Warn("alert not delivered", "incident", a.Incident, "state", a.State, "url", s.target.url.String(), "error", err)
			continue
		}
		s.opts.Count(s.target.kind, alertSent, a)
	}
}

// errNoRetry marks an answer that a retry would not change.
var errNoRetry = errors.New("not retried")

// deliver posts a, retrying on 5xx and network errors.
func (s *alertSender) deliver(a reconciler.Alert) error {
	wait := s.opts.Backoff
	var err error
	for try := 0; ; try++ {
		if err = s.post(a); err == nil || errors.Is(err, errNoRetry) || try >= s.opts.Retries {
			return err
		}
		s.log.Info("alert: retrying", "incident", a.Incident, "after", wait, "error", err)
		time.Sleep(wait)
		wait *= 2
	}
}

func (s *alertSender) post(a reconciler.Alert) error {
	req, err := alertRequest(s.target, a)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoRetry, err)
	}
	res, err := s.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// url.Error repeats the URL, which may carry a token.
			err = uerr.Err
		}
		return err
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode >= 500:
		return fmt.Errorf("the receiver answered %s", res.Status)
	case res.StatusCode >= 300:
		return fmt.Errorf("%w: the receiver answered %s", errNoRetry, res.Status)
	}
	return nil
}

// alertRequest renders a in the target's format.
func alertRequest(t alertTarget, a reconciler.Alert) (*http.Request, error) {
	var body []byte
	var err error
	contentType := "application/json"
	header := http.Header{}
	switch t.kind {
	case "webhook":
		body, err = json.Marshal(a)
	case "ntfy":
		contentType = "text/plain; charset=utf-8"
		body = []byte(a.Message)
		if a.Revision != "" {
			body = append(body, "\n(revision "+a.Revision+")"...)
		}
		header.Set("Title", a.Title())
		if a.State == reconciler.AlertResolved {
			header.Set("Priority", "default")
			header.Set("Tags", "white_check_mark,phoenix")
		} else {
			header.Set("Priority", "high")
			header.Set("Tags", "warning,phoenix")
		}
	case "gotify":
		priority := 8
		if a.State == reconciler.AlertResolved {
			priority = 4
		}
		body, err = json.Marshal(struct {
			Title    string `json:"title"`
			Message  string `json:"message"`
			Priority int    `json:"priority"`
		}{a.Title(), a.Message, priority})
	case "slack":
		body, err = json.Marshal(struct {
			Text string `json:"text"`
		}{a.Text()})
	case "discord":
		body, err = json.Marshal(struct {
			Content string `json:"content"`
		}{truncateRunes(a.Text(), discordMax)})
	default:
		return nil, fmt.Errorf("unknown alert kind %q", t.kind)
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, t.url.String(), bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("cannot make the request")
	}
	req.Header = header
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "phoenix")
	return req, nil
}

// truncateRunes cuts s to at most n characters, marking the cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// alertSenders are the senders of every --alert, fed by one function.
type alertSenders []*alertSender

func (ss alertSenders) send(a reconciler.Alert) {
	for _, s := range ss {
		s.enqueue(a)
	}
}

// close gives the queues up to a few seconds to drain.
func (ss alertSenders) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range ss {
		s.close(ctx)
	}
}
