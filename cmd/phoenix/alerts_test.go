package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/reconciler"
)

// received is what a test receiver got.
type received struct {
	method, path, query, contentType string
	header                           http.Header
	body                             string
}

// receiver answers with the codes given in turn (200 once they run out).
func receiver(t *testing.T, codes ...int) (*httptest.Server, func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Clone(), string(b)})
		code := 200
		if len(codes) > 0 {
			code, codes = codes[0], codes[1:]
		}
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

var testAlert = reconciler.Alert{Incident: "problem:app", State: "open", Kind: "problem", Guest: "app", Node: "pve1",
	Message: "GPU 3 is not on node pve1 (spec)", Time: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), Revision: "abc123"}

// sendOne sends a through a sender of kind to url and waits for it.
func sendOne(t *testing.T, kind, url string, a reconciler.Alert, opts alertSenderOptions) string {
	t.Helper()
	target, err := parseAlertFlag(kind + "=" + url)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s := newAlertSender(target, slog.New(slog.NewTextHandler(&logs, nil)), opts)
	s.enqueue(a)
	s.close(t.Context())
	return logs.String()
}

func TestAlertFormats(t *testing.T) {
	long := testAlert
	long.Message = strings.Repeat("é", 2500)
	for _, c := range []struct {
		kind, path string
		alert      reconciler.Alert
		want       received
	}{
		{"webhook", "/hook", testAlert, received{path: "/hook", contentType: "application/json",
			body: `{"incident":"problem:app","state":"open","kind":"problem","guest":"app","node":"pve1","message":"GPU 3 is not on node pve1 (spec)","time":"2026-11-30T12:00:00Z","revision":"abc123"}`}},
		{"ntfy", "/phoenix-alerts", testAlert, received{path: "/phoenix-alerts", contentType: "text/plain; charset=utf-8",
			body: "GPU 3 is not on node pve1 (spec)\n(revision abc123)"}},
		{"gotify", "?token=AbCdEf123456", testAlert, received{path: "/message", query: "token=AbCdEf123456", contentType: "application/json",
			body: `{"title":"phoenix: guest app cannot converge","message":"GPU 3 is not on node pve1 (spec)","priority":8}`}},
		{"slack", "/services/T000/B000/XXXX", testAlert, received{path: "/services/T000/B000/XXXX", contentType: "application/json",
			body: `{"text":"phoenix: guest app cannot converge\nGPU 3 is not on node pve1 (spec)\n(revision abc123)"}`}},
		{"discord", "/api/webhooks/1/tok", long, received{path: "/api/webhooks/1/tok", contentType: "application/json"}},
	} {
		srv, got := receiver(t)
		sendOne(t, c.kind, srv.URL+c.path, c.alert, alertSenderOptions{})
		r := got()
		if len(r) != 1 {
			t.Errorf("%s: %d requests", c.kind, len(r))
			continue
		}
		if r[0].method != "POST" || r[0].path != c.want.path || r[0].query != c.want.query || r[0].contentType != c.want.contentType {
			t.Errorf("%s: %s %s?%s (%s)", c.kind, r[0].method, r[0].path, r[0].query, r[0].contentType)
		}
		switch c.kind {
		case "discord":
			var body struct{ Content string }
			if err := json.Unmarshal([]byte(r[0].body), &body); err != nil || len([]rune(body.Content)) != discordMax ||
				!strings.HasPrefix(body.Content, "phoenix: guest app cannot converge\néé") || !strings.HasSuffix(body.Content, "é…") {
				t.Errorf("discord: %d characters, %v", len([]rune(body.Content)), err)
			}
		default:
			if r[0].body != c.want.body {
				t.Errorf("%s body:\n%s\nwant\n%s", c.kind, r[0].body, c.want.body)
			}
		}
		if c.kind == "ntfy" {
			h := r[0].header
			if h.Get("Title") != "phoenix: guest app cannot converge" || h.Get("Priority") != "high" || h.Get("Tags") != "warning,phoenix" {
				t.Errorf("ntfy headers: %v", h)
			}
		}
	}
}

func TestAlertRetriesOn503(t *testing.T) {
	srv, got := receiver(t, 503, 200)
	logs := sendOne(t, "webhook", srv.URL+"/hook/secret-token-value", testAlert, alertSenderOptions{Backoff: time.Millisecond})
	if n := len(got()); n != 2 {
		t.Errorf("%d requests, want 2 (503, then 200)\n%s", n, logs)
	}
	if strings.Contains(logs, "not delivered") || !strings.Contains(logs, "retrying") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestAlertNoRetryOn400(t *testing.T) {
	srv, got := receiver(t, 400, 200)
	logs := sendOne(t, "webhook", srv.URL+"/hook", testAlert, alertSenderOptions{Backoff: time.Millisecond})
	if n := len(got()); n != 1 || !strings.Contains(logs, "not delivered") || !strings.Contains(logs, "400 Bad Request") {
		t.Errorf("%d requests, want 1\n%s", n, logs)
	}
}

func TestAlertFullQueueDrops(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	target, err := parseAlertFlag("webhook=" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs bytes.Buffer
	s := newAlertSender(target, slog.New(slog.NewTextHandler(&lockedWriter{&mu, &logs}, nil)), alertSenderOptions{Queue: 1, Retries: -1})
	start := time.Now()
	// One in flight, one queued, the rest dropped: never blocking.
	for range 5 {
		s.enqueue(testAlert)
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("enqueue blocked for %v", d)
	}
	mu.Lock()
	n := strings.Count(logs.String(), "alert dropped: the queue is full")
	mu.Unlock()
	if n != 3 {
		t.Errorf("%d drops logged, want 3:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestAlertFlag(t *testing.T) {
	for _, bad := range []string{"webhook", "pager=https://x", "webhook=ftp://x/y", "gotify=https://g.example/message"} {
		if _, err := parseAlertFlag(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	targets := []alertTarget{mustTarget(t, "gotify=https://g.example/message?token=AbCdEf123456"),
		mustTarget(t, "discord=https://discord.example/api/webhooks/123/TokenTokenToken")}
	red := redact.New(alertSecrets(targets)...)
	for _, tg := range targets {
		line := red.String("alert not delivered url=" + tg.url.String() + " token=AbCdEf123456 path=api/webhooks/123/TokenTokenToken")
		if strings.Contains(line, "AbCdEf123456") || strings.Contains(line, "TokenTokenToken") || !strings.Contains(line, "[redacted --alert") {
			t.Errorf("redacted: %s", line)
		}
	}
	if _, err := parseAlertFlag("gotify=https://user:pw@g.example/?token=AbCdEf123456"); err != nil {
		t.Error(err)
	}
}

func mustTarget(t *testing.T, s string) alertTarget {
	t.Helper()
	target, err := parseAlertFlag(s)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// TestRunAlertsOncePerIncident runs phoenix run against the simulator with
// a guest that cannot converge: over two passes, one alert, and the
// webhook's token in no log line.
func TestRunAlertsOncePerIncident(t *testing.T) {
	bin := phoenixBinary(t)
	startSim(t, "../../examples/homelab/world.yaml", nil)
	specs := copyExamples(t)
	editFile(t, specs+"/containers.yaml", "  gpus: [0]            # the template passes 0 and 1; this clone keeps only 0\n", "  gpus: [3]\n")
	srv, got := receiver(t)
	const token = "s3cr3t-hook-token"
	cmd := exec.Command(bin, "run", "-f", specs, "--interval", "1s", "--log-format", "json", "--alert", "webhook="+srv.URL+"/hooks/"+token)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	deadline := time.Now().Add(120 * time.Second)
	for strings.Count(logs.String(), `"msg":"pass done"`) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("three passes did not end:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs.String())
	}
	r := got()
	if len(r) != 1 {
		t.Fatalf("%d alerts, want 1: %v\n%s", len(r), r, logs.String())
	}
	var a reconciler.Alert
	if err := json.Unmarshal([]byte(r[0].body), &a); err != nil || a.Incident != "problem:vllm-qwen" || a.State != "open" ||
		!strings.Contains(a.Message, "GPU 3 is not on node pve1") || r[0].path != "/hooks/"+token {
		t.Errorf("alert: %s %s (%v)", r[0].path, r[0].body, err)
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the webhook's token appears in the logs")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestAlertMetricsCountEachOutcome(t *testing.T) {
	reg := prometheus.NewRegistry()
	alerts := reconciler.NewAlerts(reconciler.AlertOptions{Send: func(reconciler.Alert) {}})
	m := newAlertMetrics(reg, alerts)
	ok, _ := receiver(t, 200)
	refused, _ := receiver(t, 400)
	sendOne(t, "webhook", ok.URL+"/hook", testAlert, alertSenderOptions{Count: m.count})
	sendOne(t, "ntfy", refused.URL+"/topic", testAlert, alertSenderOptions{Count: m.count, Backoff: time.Millisecond})
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"webhook", "problem", "open", alertSent}, 1},
		{[]string{"ntfy", "problem", "open", alertFailed}, 1},
		{[]string{"webhook", "problem", "open", alertFailed}, 0},
	} {
		if got := testutil.ToFloat64(m.total.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("phoenix_alerts_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "phoenix_alert_incidents_open"); err != nil || n != 1 {
		t.Errorf("phoenix_alert_incidents_open: %d series, %v", n, err)
	}
}
