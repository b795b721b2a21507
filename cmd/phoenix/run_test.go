package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// copyExamples puts the example specs in a directory a test may edit.
func copyExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir("../../examples/homelab", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		rel, _ := filepath.Rel("../../examples/homelab", path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(url string) (int, string) {
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestRunLoop runs phoenix run as a process: it converges, serves its
// endpoints, picks up an edited spec file at once, and exits cleanly on SIGTERM.
func TestRunLoop(t *testing.T) {
	bin := phoenixBinary(t)
	startSim(t, "../../examples/homelab/world.yaml", nil)
	specs := copyExamples(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "run", "-f", specs, "--interval", "1h", "--listen", addr, "--log-format", "json")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	base := "http://" + addr
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out\n%s", what, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if code, _ := httpGet(base + "/healthz"); code != 0 && code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	waitFor("ready", func() bool { code, _ := httpGet(base + "/readyz"); return code == 200 })

	type report struct {
		Guests []struct {
			Name       string `json:"name"`
			Conditions []struct {
				Type   string `json:"type"`
				Status bool   `json:"status"`
			} `json:"conditions"`
		} `json:"guests"`
	}
	allReady := func() bool {
		_, body := httpGet(base + "/status")
		var r report
		if json.Unmarshal([]byte(body), &r) != nil || len(r.Guests) != 6 {
			return false
		}
		for _, g := range r.Guests {
			for _, c := range g.Conditions {
				if c.Type == "Ready" && !c.Status {
					return false
				}
			}
		}
		return true
	}
	if !allReady() {
		_, body := httpGet(base + "/status")
		t.Fatalf("not every guest ready after the first pass:\n%s", body)
	}
	_, metrics := httpGet(base + "/metrics")
	for _, want := range []string{
		`phoenix_actions_total{kind="clone",outcome="done"} 5`,
		`phoenix_feature_installs_total{feature="nvidia-driver",outcome="done"} 1`,
		`phoenix_api_requests_total{code="200",endpoint="GET /cluster/resources"}`,
		`phoenix_guests{condition="Ready",status="true"} 6`,
		`phoenix_passes_total{result="ok"} 1`,
		"phoenix_last_successful_pass_timestamp_seconds",
		"phoenix_pass_duration_seconds_bucket",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Edit a spec the way git pull does: write a new file and rename it over.
	path := filepath.Join(specs, "containers.yaml")
	data, _ := os.ReadFile(path)
	edited := strings.Replace(string(data), "    cores: 1\n    memory: 1024", "    cores: 3\n    memory: 1024", 1)
	if edited == string(data) {
		t.Fatal("the edit changed nothing")
	}
	if err := os.WriteFile(path+".new", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	waitFor("the edit applied", func() bool {
		_, m := httpGet(base + "/metrics")
		return strings.Contains(m, `phoenix_actions_total{kind="update",outcome="done"} 6`)
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("phoenix run did not exit after SIGTERM")
	}
	// One JSON line per action, with the guest, step, outcome and duration;
	// and no secret anywhere.
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		if rec["msg"] == "step" {
			for _, k := range []string{"guest", "vmid", "node", "step", "outcome", "duration"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("log line without %s: %s", k, line)
				}
			}
		}
	}
	for _, secret := range []string{os.Getenv("PROXMOX_VE_PASSWORD"), strings.SplitN(os.Getenv("PROXMOX_VE_API_TOKEN"), "=", 2)[1]} {
		if strings.Contains(logs.String(), secret) {
			t.Error("a secret appears in the logs")
		}
	}
}

func TestRunOnce(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	code, _, errOut := phoenix(t, "run", "-f", "../../examples/homelab", "--once", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("run --once: exit %d\n%s", code, errOut)
	}
	code, out, _ := phoenix(t, "plan", "-f", "../../examples/homelab", "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "No changes.") {
		t.Errorf("after run --once: exit %d\n%s", code, out)
	}
}

// A guest that cannot converge raises one alert through --alert, sent
// before --once exits.
func TestRunOnceAlerts(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", func(w *sim.World) { w.Spec.Nodes[0].GPUs = 1 })
	srv, got := receiver(t, 200)
	code, _, errOut := phoenix(t, "run", "-f", "../../examples/homelab", "--once", "--log-level", "warn", "--alert", "webhook="+srv.URL+"/hook")
	if code != 1 {
		t.Fatalf("run --once with a missing GPU: exit %d, want 1\n%s", code, errOut)
	}
	var problems []string
	for _, r := range got() {
		var a reconciler.Alert
		if err := json.Unmarshal([]byte(r.body), &a); err != nil {
			t.Fatalf("alert %q: %v", r.body, err)
		}
		if a.Kind == reconciler.IncidentProblem && a.State == reconciler.AlertOpen {
			problems = append(problems, a.Guest)
		}
	}
	if len(problems) == 0 {
		t.Errorf("no problem alert sent; got %+v\n%s", got(), errOut)
	}
}
