package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// roundTripFail fails the first n requests to one endpoint as a dropped
// connection does, and passes everything else on.
type roundTripFail struct {
	base http.RoundTripper
	path string
	mu   sync.Mutex
	left int
}

func (f *roundTripFail) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, f.path) {
		f.mu.Lock()
		fail := f.left > 0
		f.left--
		f.mu.Unlock()
		if fail {
			return nil, errors.New("read: connection reset by peer")
		}
	}
	return f.base.RoundTrip(req)
}

// TestNodesHealAfterAFailedDiscovery: a failed /cluster/status used to be
// kept for the life of the process, so that every command on every node
// failed with it; now the next command looks again, and a node that joined
// the cluster since is found too.
func TestNodesHealAfterAFailedDiscovery(t *testing.T) {
	s := startSim(t, "../../examples/homelab/world.yaml", nil)
	set, err := spec.Load("../../examples/homelab")
	if err != nil {
		t.Fatal(err)
	}
	res, err := spec.Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	// Three failures: a lookup and its retries.
	var fail *roundTripFail
	wrap := func(base http.RoundTripper) http.RoundTripper {
		fail = &roundTripFail{base: base, path: "/cluster/status", left: 3}
		return fail
	}
	conn, err := connectWith(context.Background(), res.Cluster, os.Getenv, nil, wrap)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close()
	probe := func(name string) error {
		n, err := conn.nodes(name)
		if err != nil {
			return err
		}
		_, err = n.HostProbe(context.Background())
		return err
	}
	if err := probe("pve1"); err == nil || !reconciler.Retryable(err) {
		t.Fatalf("probe while /cluster/status fails: %v, want a failure worth retrying", err)
	}
	if err := probe("pve1"); err != nil {
		t.Fatalf("probe once /cluster/status answers: %v", err)
	}
	if err := s.JoinNode(sim.WorldNode{Name: "pve9"}); err != nil {
		t.Fatal(err)
	}
	if err := probe("pve9"); err != nil {
		t.Errorf("probe of a node that joined since: %v", err)
	}
}

// runPhoenix starts phoenix run on the specs with --listen and returns the
// endpoints' base URL; the process is killed when the test ends.
func runPhoenix(t *testing.T, specs string, args ...string) (string, *strings.Builder) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(phoenixBinary(t), append([]string{"run", "-f", specs, "--interval", "1h", "--listen", addr}, args...)...)
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return "http://" + addr, logs
}

// TestHealthzFailsOnAStalledPass: a pass that waits on a task that never
// ends makes no progress; once that has lasted --stall-timeout, /healthz
// fails and says why, while /readyz says no pass has ended.
func TestHealthzFailsOnAStalledPass(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", func(w *sim.World) { w.Spec.Faults.Hang.Tasks = []string{"vzcreate"} })
	base, logs := runPhoenix(t, "../../examples/homelab", "--stall-timeout", "2s")
	var code int
	var body string
	if !eventually(90*time.Second, func() bool {
		code, body = httpGet(base + "/healthz")
		return code == http.StatusServiceUnavailable
	}) {
		t.Fatalf("/healthz: %d %q, want 503 once the pass stalled\n%s", code, body, logs)
	}
	for _, want := range []string{"stalled: the pass started at ", "has made no progress for ", "(more than 2s)", "create started"} {
		if !strings.Contains(body, want) {
			t.Errorf("/healthz body %q lacks %q", body, want)
		}
	}
	if code, body := httpGet(base + "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no pass has ended yet") {
		t.Errorf("/readyz: %d %q", code, body)
	}
}

// TestReadyzFollowsTheLastPass: ready after a pass ran to its end; not ready
// once a pass could not run (the specs broke), with the reason; ready again
// after the next good pass.
func TestReadyzFollowsTheLastPass(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	specs := copyExamples(t)
	base, logs := runPhoenix(t, specs)
	if code, _ := httpGet(base + "/healthz"); code != 0 && code != http.StatusOK {
		t.Errorf("/healthz before the first pass ended: %d", code)
	}
	ready := func() bool { code, _ := httpGet(base + "/readyz"); return code == http.StatusOK }
	if !eventually(90*time.Second, ready) {
		t.Fatalf("never ready\n%s", logs)
	}
	broken := filepath.Join(specs, "broken.yaml")
	if err := os.WriteFile(broken, []byte("apiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: x}\nspec: {vmid: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var code int
	var body string
	if !eventually(60*time.Second, func() bool {
		code, body = httpGet(base + "/readyz")
		return code == http.StatusServiceUnavailable
	}) {
		t.Fatalf("/readyz after the specs broke: %d %q\n%s", code, body, logs)
	}
	if !strings.Contains(body, "the last pass (started ") || !strings.Contains(body, "could not run: specs: ") {
		t.Errorf("/readyz body %q: want the pass's error", body)
	}
	if code, _ := httpGet(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz between passes: %d, want 200: a failed pass is no stall", code)
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	if !eventually(60*time.Second, ready) {
		t.Fatalf("not ready again after the specs were fixed\n%s", logs)
	}
}
