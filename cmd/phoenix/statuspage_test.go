package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// fakePasses is a loop that has run one pass.
type fakePasses struct {
	report reconciler.Report
	view   reconciler.PassView
}

func (f fakePasses) Report() reconciler.Report     { return f.report }
func (f fakePasses) LastView() reconciler.PassView { return f.view }
func cond(t string, ok bool, msg string) reconciler.Condition {
	return reconciler.Condition{Type: t, Status: ok, Message: msg}
}

// hostile is user data that must reach the page as text.
const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// fakeCluster: a template with a ready clone, a clone whose apply failed
// (its error and its record's version hostile), and a driver mismatch.
func fakeCluster() fakePasses {
	gpu := []string{"base", spec.FeatureNVIDIADriver}
	res := &spec.Resolution{Guests: []*spec.Resolved{
		{Name: "gpu-base", Kind: spec.KindTemplate, VMID: 901, Effective: gpu, Settings: spec.Settings{Node: "pve1"}},
		{Name: "ollama", Kind: spec.KindContainer, VMID: 955, Parent: "gpu-base", Lineage: []string{"gpu-base"},
			Effective: append(gpu, "ollama"), Settings: spec.Settings{Node: "pve1"}},
		{Name: "bad-one", Kind: spec.KindContainer, VMID: 956, Parent: "gpu-base", Lineage: []string{"gpu-base"},
			Effective: gpu, Settings: spec.Settings{Node: "pve1"}},
	}}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rec := func(vmid int, v string) reconciler.FeatureRecord {
		return reconciler.FeatureRecord{VMID: vmid, Version: v, At: at}
	}
	obs := &reconciler.Observed{
		Guests: map[int]*reconciler.ObservedGuest{
			901: {State: &reconciler.State{Features: map[string]reconciler.FeatureRecord{"base": rec(901, ""), spec.FeatureNVIDIADriver: rec(901, "580.76.05")}}},
			955: {State: &reconciler.State{Features: map[string]reconciler.FeatureRecord{"base": rec(901, ""), spec.FeatureNVIDIADriver: rec(901, "580.76.05"), "ollama": rec(955, "0.12.3")}}},
			956: {State: &reconciler.State{Features: map[string]reconciler.FeatureRecord{"base": rec(901, hostile), spec.FeatureNVIDIADriver: rec(956, "550.1")}}},
		},
		Hosts: map[string]*reconciler.HostObservation{"pve1": {Info: reconciler.HostInfo{DriverVersion: "580.76.05", PCIGPUs: 2,
			Devices: []reconciler.Device{{Path: "/dev/nvidia0"}, {Path: "/dev/nvidiactl"}}}}},
	}
	plan := &reconciler.Plan{Guests: []reconciler.GuestPlan{
		{Name: "gpu-base", VMID: 901, Node: "pve1"},
		{Name: "ollama", VMID: 955, Node: "pve1", Changes: []reconciler.Change{{Action: reconciler.InstallFeature, Feature: "ollama", Reason: "listed in the spec"}}},
		{Name: "bad-one", VMID: 956, Node: "pve1", Errors: []reconciler.Problem{{Kind: reconciler.ProblemSpec, Message: "GPU 3 " + hostile}}},
	}}
	ready := []reconciler.Condition{cond(reconciler.CondExists, true, ""), cond(reconciler.CondReady, true, "")}
	report := reconciler.Report{
		Pass:     &reconciler.PassInfo{Started: at, Duration: 2 * time.Second, Problems: 1},
		Revision: "0123abcd", RevisionError: "commit 4567 is not signed " + hostile,
		Guests: []reconciler.GuestStatus{
			{Name: "gpu-base", Kind: spec.KindTemplate, VMID: 901, Node: "pve1", Conditions: ready},
			{Name: "ollama", Kind: spec.KindContainer, VMID: 955, Node: "pve1", Pending: []string{"memory"},
				Conditions: []reconciler.Condition{cond(reconciler.CondExists, true, ""), cond(reconciler.CondReady, false, "")}},
			{Name: "bad-one", Kind: spec.KindContainer, VMID: 956, Node: "pve1", Conditions: []reconciler.Condition{cond(reconciler.CondReady, false, hostile)},
				LastError: &reconciler.StateError{At: at, Step: "install nvidia-driver", Message: "exit 1: " + hostile, Kind: reconciler.ErrorKind("script")}},
		},
	}
	return fakePasses{report: report, view: reconciler.PassView{Started: at, Res: res, Obs: obs, Applied: plan, Remaining: plan}}
}

// startPage serves the page on a listener at addr with the token, the way
// serve does, redacting secret.
// startPage serves the page on 127.0.0.1 (tests listen on nothing else);
// announced, if set, is the address the page is told it listens on, so that
// the rules for other addresses are tested without opening one.
func startPage(t *testing.T, src passSource, announced net.IP, token string, logs io.Writer) (*statusPage, string) {
	t.Helper()
	page := newStatusPage(src, token)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr()
	if announced != nil {
		addr = &net.TCPAddr{IP: announced, Port: ln.Addr().(*net.TCPAddr).Port}
	}
	mux := http.NewServeMux()
	page.listening(mux, addr, slog.New(slog.NewTextHandler(logs, nil)))
	srv := httptest.NewUnstartedServer(redactHTTP(redact.New(redact.Secret{Var: "PROXMOX_VE_PASSWORD", Value: "s3cret-password"}), mux))
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return page, srv.URL
}

func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestStatusPageContent(t *testing.T) {
	page, url := startPage(t, fakeCluster(), nil, "", io.Discard)
	page.event(reconciler.Event{Time: time.Now(), Guest: "bad-one", Action: reconciler.InstallFeature, Feature: "nvidia-driver",
		Outcome: reconciler.Failed, Err: errors.New("boom " + hostile + " s3cret-password")})
	res, body := get(t, url+"/", nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s\n%s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{
		`data-guest="gpu-base" data-condition="ready"`,    // lineage node and row, green
		`data-guest="ollama" data-condition="converging"`, // not Ready, no failure: amber
		`data-guest="bad-one" data-condition="failed"`,    // a plan problem and a last error: red
		`data-parent="gpu-base" data-child="ollama"`,      // an edge
		`data-feature="ollama" data-version="0.12.3"`,     // features with versions
		`data-feature="nvidia-driver" data-version="580.76.05"`,
		`install ollama: listed in the spec`, `<li>memory</li>`, // pending changes
		`data-node="pve1" data-driver="580.76.05" data-gpus="2" data-mismatch="true"`,
		`bad-one has 550.1`, // the mismatch, named
		`<pre id="plan">`, `cannot be converged`,
		`1 could not be converged`, `<span id="revision">0123abcd</span>`, `a newer one was refused: commit 4567 is not signed`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// User data is text, never markup; the redactor runs over the page.
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
		t.Errorf("hostile text reached the page as markup:\n%s", body)
	}
	if n := strings.Count(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"); n < 5 {
		t.Errorf("hostile text escaped %d times, want it at least in the error, the problem, the version, the revision's error and the event:\n%s", n, body)
	}
	if strings.Contains(body, "s3cret-password") {
		t.Error("the page shows a credential")
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe-inline'; script") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if strings.Count(body, "<script>") != 1 || !strings.Contains(body, "<script>"+statusPageScript+"</script>") {
		t.Error("the page's one script is not the one the policy's hash allows")
	}
	// Read-only.
	req, _ := http.NewRequest(http.MethodPost, url+"/", nil)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %v %v, want 405", r, err)
	}
}

func TestStatusPageBeforeTheFirstPass(t *testing.T) {
	_, url := startPage(t, fakePasses{report: reconciler.Report{}}, nil, "", io.Discard)
	res, body := get(t, url+"/", nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "no pass has ended yet") || !strings.Contains(body, "no events yet") {
		t.Fatalf("GET / before a pass: %d\n%s", res.StatusCode, body)
	}
}

func TestStatusPageToken(t *testing.T) {
	const token = "tok-0123456789abcdef"
	// Loopback: no token asked, even with one set.
	_, url := startPage(t, fakeCluster(), nil, token, io.Discard)
	if res, _ := get(t, url+"/", nil); res.StatusCode != http.StatusOK {
		t.Errorf("loopback without a token: %d, want 200", res.StatusCode)
	}
	// Another address: the token, as a header or once in the query.
	// A LAN address (TEST-NET-1), and the unspecified one, which listens on
	// every interface: neither is loopback.
	ip := net.ParseIP("192.0.2.10")
	var logs strings.Builder
	_, url = startPage(t, fakeCluster(), ip, token, &logs)
	for _, path := range []string{"/", "/events"} {
		res, body := get(t, url+path, nil)
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, statusTokenEnv) || res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without a token: %d %q, want 401 naming %s", path, res.StatusCode, body, statusTokenEnv)
		}
		if res, _ := get(t, url+path+"?token=wrong", nil); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, res.StatusCode)
		}
		if res, _ := get(t, url+path, map[string]string{"Authorization": "Bearer wrong"}); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong bearer token: %d, want 401", path, res.StatusCode)
		}
	}
	if res, _ := get(t, url+"/", map[string]string{"Authorization": "Bearer " + token}); res.StatusCode != http.StatusOK {
		t.Errorf("/ with the bearer token: %d, want 200", res.StatusCode)
	}
	res, _ := get(t, url+"/?token="+token, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("/?token=: %d to %q, want 303 to / (the token out of the address)", res.StatusCode, res.Header.Get("Location"))
	}
	cookies := res.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || strings.Contains(cookies[0].Value, token) {
		t.Fatalf("/?token= set %v, want one HttpOnly cookie without the token in it", cookies)
	}
	if res, body := get(t, url+"/", map[string]string{"Cookie": cookies[0].Name + "=" + cookies[0].Value}); res.StatusCode != http.StatusOK || !strings.Contains(body, "gpu-base") {
		t.Errorf("/ with the cookie: %d", res.StatusCode)
	}
	if res, _ := get(t, url+"/", map[string]string{"Cookie": cookies[0].Name + "=forged"}); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("/ with a forged cookie: %d, want 401", res.StatusCode)
	}
	if strings.Contains(logs.String(), "open to anyone") {
		t.Errorf("warned with a token set: %s", logs.String())
	}
	// Another address without a token: served, with one warning.
	logs.Reset()
	_, url = startPage(t, fakeCluster(), ip, "", &logs)
	if res, _ := get(t, url+"/", nil); res.StatusCode != http.StatusOK {
		t.Errorf("/ on %s without a token set: %d, want 200", ip, res.StatusCode)
	}
	if strings.Count(logs.String(), "open to anyone") != 1 || !strings.Contains(logs.String(), statusTokenEnv) {
		t.Errorf("want one warning naming %s, got %q", statusTokenEnv, logs.String())
	}
	// Every interface is not loopback; IPv6's loopback is.
	for _, c := range []struct {
		ip   net.IP
		want int
	}{{net.IPv4zero, http.StatusUnauthorized}, {net.IPv6unspecified, http.StatusUnauthorized}, {net.IPv6loopback, http.StatusOK}} {
		_, url = startPage(t, fakeCluster(), c.ip, token, io.Discard)
		if res, _ := get(t, url+"/", nil); res.StatusCode != c.want {
			t.Errorf("/ announced on %s without a token: %d, want %d", c.ip, res.StatusCode, c.want)
		}
	}
}

func TestStatusPageEventStream(t *testing.T) {
	page, url := startPage(t, fakeCluster(), nil, "", io.Discard)
	ev := func(guest string) reconciler.Event {
		return reconciler.Event{Time: time.Now(), Guest: guest, Action: reconciler.InstallFeature, Feature: "ollama", Outcome: reconciler.Done, Duration: time.Second}
	}
	page.event(ev("before"))
	// Heartbeats are not kept.
	page.event(reconciler.Event{Guest: "noise", Action: reconciler.InstallFeature, Step: "x", Outcome: reconciler.Running})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events?after=0", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-ctx.Done():
			t.Fatal("no event came")
		}
		return ""
	}
	// What happened before the connection (after ?after=), then live,
	// redacted like the rest of the output.
	if l := next(); !strings.Contains(l, `"seq":1`) || !strings.Contains(l, `"guest":"before"`) {
		t.Fatalf("backlog: %s", l)
	}
	page.event(ev("live s3cret-password"))
	if l := next(); !strings.Contains(l, `"seq":2`) || !strings.Contains(l, `"guest":"live `) || strings.Contains(l, "s3cret") {
		t.Fatalf("live: %s", l)
	}
	// A browser reconnecting says what it saw last.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
	req.Header.Set("Last-Event-ID", "2")
	page.event(ev("third"))
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	sc := bufio.NewScanner(res2.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "data: ") {
			if !strings.Contains(l, `"guest":"third"`) {
				t.Fatalf("after Last-Event-ID 2: %s", l)
			}
			break
		}
	}
}

func TestStatusPageKeepsTheLastEvents(t *testing.T) {
	page := newStatusPage(fakeCluster(), "")
	for i := range statusPageEvents + 20 {
		page.event(reconciler.Event{Guest: "g", Action: reconciler.Start, Outcome: reconciler.Done, Duration: time.Duration(i)})
	}
	d := page.data()
	if len(d.Events) != statusPageEvents || d.Events[0].Seq != statusPageEvents+20 || d.LastSeq != statusPageEvents+20 {
		t.Fatalf("kept %d events, newest %d, want the last %d", len(d.Events), d.Events[0].Seq, statusPageEvents)
	}
}
