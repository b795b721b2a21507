package e2e

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testgit"
	"github.com/phoenixhv/phoenix/providers/ssh"
	"github.com/phoenixhv/phoenix/reconciler"
)

// copyTree copies the spec set into the work tree.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunFromGit: phoenix run --git follows a repository served over http on
// 127.0.0.1. A signed commit pushed and announced by a signed webhook is
// applied within seconds, its commit in /status and in the changed guest's
// state record; an unsigned commit is refused, shown in /status, and
// nothing of it is applied.
func TestRunFromGit(t *testing.T) {
	r := newRig(t, nil)
	g := testgit.New(t)
	url := g.HTTPServer(false, "").URL + "/specs.git"
	dir := t.TempDir()
	sign, pub := g.SSHSigner("ops")
	signers := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(signers, []byte(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	copyTree(t, examplesDir, filepath.Join(g.Work, "specs"))
	first := g.CommitAll("homelab", sign...)

	bin := filepath.Join(dir, "phoenix")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/phoenix").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const secret = "webhook-secret-for-the-test"
	env := os.Environ()
	for k, v := range r.sim.Env() {
		env = append(env, k+"="+v)
	}
	env = append(env, ssh.EnvPrivateKey+"="+string(r.creds.ClientKey), "PHOENIX_GIT_WEBHOOK_SECRET="+secret)
	cmd := exec.Command(bin, "run", "--git", url, "--path", "specs", "--git-cache", filepath.Join(dir, "cache"),
		"--git-verify-ssh", signers, "--listen", "127.0.0.1:0", "--interval", "1h", "--git-interval", "1h")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logText strings.Builder
	addr := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			logText.WriteString(line + "\n")
			logMu.Unlock()
			if strings.Contains(line, "msg=serving") {
				if _, a, ok := strings.Cut(line, "address="); ok {
					addr <- strings.Fields(a)[0]
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("phoenix run's log:\n%s", logText.String())
			logMu.Unlock()
		}
	})
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatal("phoenix run did not start serving")
	}

	status := func() reconciler.Report {
		t.Helper()
		var rep reconciler.Report
		res, err := http.Get(base + "/status")
		if err != nil {
			return rep
		}
		defer res.Body.Close()
		_ = json.NewDecoder(res.Body).Decode(&rep)
		return rep
	}
	waitFor := func(what string, d time.Duration, cond func(reconciler.Report) bool) reconciler.Report {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			rep := status()
			if cond(rep) {
				return rep
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; /status: %+v", what, d, rep)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	record := func(vmid int) (*reconciler.State, string) {
		t.Helper()
		cfg, err := r.cluster.GuestConfig(context.Background(), "pve1", vmid)
		if err != nil {
			t.Fatal(err)
		}
		_, st, err := reconciler.ParseDescription(cfg.Values["description"])
		if err != nil || st == nil {
			t.Fatalf("guest %d's record: %v", vmid, err)
		}
		return st, cfg.Values["memory"]
	}
	hook := func() {
		t.Helper()
		body := `{"ref":"refs/heads/main"}`
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest("POST", base+"/hooks/git", strings.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("webhook: %s", res.Status)
		}
	}

	waitFor("the first revision converged", 60*time.Second, func(rep reconciler.Report) bool {
		return rep.Revision == first && rep.Pass != nil && rep.Pass.Converged()
	})
	if st, mem := record(960); st.Rev != first || mem != "1024" {
		t.Fatalf("nginx after the first pass: rev %q memory %s, want %s and 1024", st.Rev, mem, first)
	}

	// A signed change, announced by the webhook, is applied within seconds.
	containers := filepath.Join(g.Work, "specs", "containers.yaml")
	b, err := os.ReadFile(containers)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(containers, []byte(strings.Replace(string(b), "memory: 1024\n", "memory: 2048\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	second := g.CommitAll("nginx: more memory", sign...)
	start := time.Now()
	hook()
	waitFor("the signed change applied", 20*time.Second, func(rep reconciler.Report) bool {
		return rep.Revision == second && rep.Pass != nil && rep.Pass.Converged()
	})
	t.Logf("applied %s in %v", second[:12], time.Since(start))
	if st, mem := record(960); st.Rev != second || mem != "2048" {
		t.Errorf("nginx after the change: rev %q memory %s, want %s and 2048", st.Rev, mem, second)
	}
	if st, _ := record(955); st.Rev != first {
		t.Errorf("ollama, which the change did not touch, records %q, want %s", st.Rev, first)
	}

	// An unsigned commit is refused: reported, nothing of it applied.
	if err := os.WriteFile(containers, []byte(strings.Replace(string(b), "memory: 1024\n", "memory: 4096\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	unsigned := g.CommitAll("nginx: unsigned")
	hook()
	rep := waitFor("the unsigned commit refused", 20*time.Second, func(rep reconciler.Report) bool {
		return strings.Contains(rep.RevisionError, unsigned[:12])
	})
	if rep.Revision != second || !strings.Contains(rep.RevisionError, "not signed") {
		t.Errorf("after the unsigned commit: revision %s, error %q", rep.Revision, rep.RevisionError)
	}
	// A pass now (the webhook again) still applies the last good revision.
	passes := rep.Pass.Started
	hook()
	time.Sleep(time.Second)
	if rep := status(); rep.Pass == nil || rep.Revision != second || (rep.Pass.Started != passes && !rep.Pass.Converged()) {
		t.Errorf("after the refusal: %+v", rep)
	}
	if st, mem := record(960); st.Rev != second || mem != "2048" {
		t.Errorf("the unsigned change was applied: rev %q memory %s", st.Rev, mem)
	}
	metrics, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer metrics.Body.Close()
	var m strings.Builder
	sc := bufio.NewScanner(metrics.Body)
	for sc.Scan() {
		m.WriteString(sc.Text() + "\n")
	}
	// Each sync that met the refused head counts (the webhook asked twice).
	for _, want := range []string{`phoenix_git_revision_info{commit="` + second + `"} 1`, "phoenix_git_sync_errors_total 2", "phoenix_git_last_sync_timestamp_seconds "} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	logMu.Lock()
	log := logText.String()
	logMu.Unlock()
	if !strings.Contains(log, "revision="+second[:12]) || !strings.Contains(log, "git head refused") {
		t.Errorf("the log does not name the revisions")
	}
}
