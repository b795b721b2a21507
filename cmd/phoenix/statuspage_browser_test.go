package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// The status page in a real browser: Chromium (Debian's chromium package)
// loads the page a real phoenix run serves against the simulator, runs its
// script, and the test reads the DOM it ends with. Screenshots are kept in
// $PHOENIX_TEST_ARTIFACTS (a temporary folder, logged, without it).

// artifactsDir is where a test keeps what a person may want to look at.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PHOENIX_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("artefacts in %s", dir)
	return dir
}

// chromiumArgs are the flags every run takes: no sandbox (tests may run as
// root), no GPU, a profile of its own.
func chromiumArgs(t *testing.T) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir(),
		"--window-size=1280,1600", "--hide-scrollbars", "--no-first-run"}
}

func TestStatusPageInABrowser(t *testing.T) {
	chromium := testtool.Require(t, "chromium")
	artifacts := artifactsDir(t)
	startSim(t, "../../examples/homelab/world.yaml", nil)
	specs := copyExamples(t)
	base, logs := runPhoenix(t, specs)
	if !eventually(120*time.Second, func() bool { code, _ := httpGet(base + "/readyz"); return code == http.StatusOK }) {
		t.Fatalf("no pass ended\n%s", logs)
	}

	// The page as it loads: --dump-dom prints the DOM once its script ran.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, chromium, append(chromiumArgs(t), "--dump-dom", base+"/")...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	dom := string(out)
	_ = os.WriteFile(filepath.Join(artifacts, t.Name()+"-converged.html"), out, 0o644)
	shot := filepath.Join(artifacts, t.Name()+"-converged.png")
	if out, err := exec.CommandContext(ctx, chromium, append(chromiumArgs(t), "--screenshot="+shot, base+"/")...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if info, err := os.Stat(shot); err != nil || info.Size() < 10000 {
		t.Errorf("the screenshot %s: %v", shot, err)
	}
	checkConvergedDOM(t, dom)

	// A live event: the browser holds the page open while a change to the
	// specs starts a pass; its events reach the page through /events.
	b := startBrowser(t, chromium)
	b.open(base + "/")
	b.waitFor("document.readyState === 'complete' && document.getElementById('events-body') !== null", 30*time.Second)
	before := b.eval("document.getElementById('events-body').getAttribute('data-last-seq')")
	path := filepath.Join(specs, "containers.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(data), "cores: 1\n", "cores: 2\n", 1)
	if changed == string(data) {
		t.Fatal("containers.yaml has no cores: 1 to change")
	}
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitFor(`Array.from(document.querySelectorAll('#events-body tr[data-live]')).some(function (tr) {
		return tr.cells[1].textContent === 'nginx' && tr.cells[3].textContent === 'done'; })`, 90*time.Second)
	live := b.eval("document.documentElement.outerHTML")
	_ = os.WriteFile(filepath.Join(artifacts, t.Name()+"-live.html"), []byte(live), 0o644)
	b.eval("document.getElementById('events').scrollIntoView()")
	b.screenshot(filepath.Join(artifacts, t.Name()+"-live.png"))
	if !regexp.MustCompile(`<tr class="event outcome-done" data-seq="\d+" data-live="true"><td>[0-9:]+</td><td>nginx</td><td>update</td>`).MatchString(live) {
		t.Errorf("no live row for nginx's update (the page had seen events up to %s):\n%s", before, live)
	}
}

// checkConvergedDOM checks the page of the converged homelab.
func checkConvergedDOM(t *testing.T, dom string) {
	t.Helper()
	for _, g := range []string{"ubuntu-2404-base", "gpu-base", "docker-gpu", "ollama", "vllm-qwen", "nginx"} {
		if !regexp.MustCompile(`<g class="node cond-ready kind-\w+" data-guest="` + g + `" data-condition="ready"`).MatchString(dom) {
			t.Errorf("the lineage has no green node for %s", g)
		}
		if !strings.Contains(dom, `<tr class="guest cond-ready" data-guest="`+g+`"`) {
			t.Errorf("the guest table has no Ready row for %s", g)
		}
	}
	for _, edge := range [][2]string{{"ubuntu-2404-base", "gpu-base"}, {"gpu-base", "docker-gpu"}, {"docker-gpu", "ollama"}, {"gpu-base", "vllm-qwen"}, {"ubuntu-2404-base", "nginx"}} {
		if !strings.Contains(dom, fmt.Sprintf(`data-parent="%s" data-child="%s"`, edge[0], edge[1])) {
			t.Errorf("the lineage lacks the edge %s -> %s", edge[0], edge[1])
		}
	}
	driver := regexp.MustCompile(`data-node="pve1" data-driver="(\d+\.\d+(\.\d+)?)" data-gpus="2" data-mismatch="false"`).FindStringSubmatch(dom)
	if driver == nil {
		t.Fatalf("the node table has no pve1 with 2 GPUs and a driver:\n%s", dom)
	}
	for _, want := range []string{
		`data-feature="nginx" data-version="1.0.0"`,                     // a user feature's version
		`data-feature="nvidia-driver" data-version="` + driver[1] + `"`, // the userspace driver, the host's
		`<td class="driver">` + driver[1] + `</td>`,
		`<pre id="plan">`, `ubuntu-2404-base (Template 900 on pve1): create`,
		`data-result="converged"`, `6 of 6 guests Ready`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The events of the first pass, rendered by the server.
	if !regexp.MustCompile(`<tr class="event outcome-done" data-seq="\d+"><td>[0-9:]+</td><td>nginx</td><td>install nginx</td>`).MatchString(dom) {
		t.Error("the events table lacks nginx's install")
	}
}

// browser is a headless Chromium driven through the DevTools protocol on a
// pipe (--remote-debugging-pipe: requests on its fd 3, answers on its fd
// 4, each JSON message ended by a NUL byte).
type browser struct {
	t       *testing.T
	in      *os.File
	out     *bufio.Reader
	id      int
	session string
}

func startBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	toR, toW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromR, fromW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, chromium, append(chromiumArgs(t), "--remote-debugging-pipe", "about:blank")...)
	cmd.ExtraFiles = []*os.File{toR, fromW}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	_ = toR.Close()
	_ = fromW.Close()
	b := &browser{t: t, in: toW, out: bufio.NewReader(fromR)}
	t.Cleanup(func() {
		_ = toW.Close() // Chromium exits when its pipe closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
		_ = fromR.Close()
	})
	return b
}

// call sends a command and returns its result, skipping the events that
// come in between.
func (b *browser) call(method string, params any) json.RawMessage {
	b.t.Helper()
	b.id++
	msg := map[string]any{"id": b.id, "method": method, "params": params}
	if b.session != "" {
		msg["sessionId"] = b.session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(data, 0)); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	for {
		raw, err := b.out.ReadBytes(0)
		if err != nil {
			b.t.Fatalf("%s: reading the answer: %v", method, err)
		}
		var res struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw[:len(raw)-1], &res); err != nil {
			b.t.Fatalf("%s: %v in %q", method, err, raw)
		}
		if res.ID != b.id {
			continue
		}
		if res.Error != nil {
			b.t.Fatalf("%s: %s", method, res.Error.Message)
		}
		return res.Result
	}
}

// open opens url in a new page and talks to that page from then on.
func (b *browser) open(url string) {
	b.t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	_ = json.Unmarshal(b.call("Target.createTarget", map[string]any{"url": url}), &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(b.call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &attached)
	if attached.SessionID == "" {
		b.t.Fatalf("no session for the page %s", url)
	}
	b.session = attached.SessionID
}

// eval evaluates a JavaScript expression in the page, as a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	_ = json.Unmarshal(b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &res)
	if res.Exception != nil {
		b.t.Fatalf("%s: %s", expr, res.Exception.Text)
	}
	return fmt.Sprint(res.Result.Value)
}

// waitFor polls a JavaScript condition until it is true.
func (b *browser) waitFor(expr string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for b.eval("!!("+expr+")") != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("after %v, still not %s; the page:\n%s", d, expr, b.eval("document.documentElement.outerHTML"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenshot saves the page as it is now.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var shot struct {
		Data string `json:"data"`
	}
	_ = json.Unmarshal(b.call("Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) < 10000 {
		b.t.Fatalf("the screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
