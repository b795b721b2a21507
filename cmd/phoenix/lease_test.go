package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// TestSecondApplyFailsNamingTheFirst: while one apply works, a second one
// (default --lock-timeout 0) exits 1 at once and names the first: its
// command, pid and host.
func TestSecondApplyFailsNamingTheFirst(t *testing.T) {
	startSlowSim(t)
	first := startApply(t)
	first.waitFor(t, "ubuntu-2404-base (900 on pve1): create: done")
	code, out, errOut := phoenix(t, "apply", "-f", "../../examples/homelab", "--auto-approve")
	host, _ := os.Hostname()
	want := fmt.Sprintf("the lease is held by phoenix apply (pid %d on %s) since ", first.cmd.Process.Pid, host)
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("second apply: exit %d, want 1 and %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errOut)
	}
	if code := first.wait(t); code != 0 {
		t.Errorf("first apply: exit %d\n%s", code, first.output())
	}
}

// holdLease takes the lease in-process for a phoenix on another machine,
// until the test lets it go.
func holdLease(t *testing.T) *reconciler.Lease {
	t.Helper()
	ctx := context.Background()
	res, err := spec.LoadResolved("../../examples/homelab")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := connect(ctx, res.Cluster, os.Getenv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.close)
	lease, err := reconciler.AcquireLease(ctx, conn.cluster, conn.nodes,
		reconciler.Holder{Host: "ci-runner-3", PID: 4242, Command: "phoenix apply"}, reconciler.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lease.Release(ctx) })
	return lease
}

const heldBy = "the lease is held by phoenix apply (pid 4242 on ci-runner-3) since "

// TestLockTimeoutWaitsForTheHolder: with --lock-timeout, apply says whom it
// waits for, and goes on once the lease is let go.
func TestLockTimeoutWaitsForTheHolder(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", nil)
	lease := holdLease(t)
	p := startApply(t, "--lock-timeout", "1m", "--quiet")
	p.waitFor(t, "waiting up to 1m0s for the lease held by phoenix apply (pid 4242 on ci-runner-3) since ")
	if err := lease.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("apply after the wait: exit %d\n%s", code, p.output())
	}
}

// TestLeaseHeldFailsRunPassAndSavedPlan: a pass of run --once and the apply
// of a saved plan fail while another holds the lease, naming it; plan and
// status take no lease and work meanwhile.
func TestLeaseHeldFailsRunPassAndSavedPlan(t *testing.T) {
	s := startSim(t, "../../examples/homelab/world.yaml", nil)
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if code, _, errOut := phoenix(t, "plan", "-f", "../../examples/homelab", "--out", planFile); code != 0 {
		t.Fatalf("plan --out: exit %d\n%s", code, errOut)
	}
	holdLease(t)
	from := len(s.Journal())

	code, _, errOut := phoenix(t, "run", "-f", "../../examples/homelab", "--once")
	if code != 1 || !strings.Contains(errOut, heldBy) {
		t.Errorf("run --once: exit %d, want 1 and %q\n%s", code, heldBy, errOut)
	}
	code, _, errOut = phoenix(t, "apply", planFile)
	if code != 1 || !strings.Contains(errOut, heldBy) || !strings.Contains(errOut, "--lock-timeout DURATION waits for it") {
		t.Errorf("apply PLANFILE: exit %d, want 1 and %q\n%s", code, heldBy, errOut)
	}
	if code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab"); code != 0 || strings.Contains(errOut, "lease") {
		t.Errorf("plan: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, out, errOut := phoenix(t, "status", "-f", "../../examples/homelab"); strings.Contains(errOut, "lease") || !strings.Contains(out, "nginx") {
		t.Errorf("status:\n%s\n%s", out, errOut)
	}
	var takes []string
	for _, e := range s.Journal()[from:] {
		if e.Name == "phoenix/lease" {
			takes = append(takes, e.Phase+" "+e.Detail)
		}
	}
	// run and apply each tried once; plan and status not at all.
	if len(takes) != 2 || !strings.HasPrefix(takes[0], "take held phoenix apply (pid 4242 on ci-runner-3)") || takes[0] != takes[1] {
		t.Errorf("lease scripts run: %q", takes)
	}
}

func TestLockTimeoutMustNotBeNegative(t *testing.T) {
	for _, cmd := range []string{"apply", "run"} {
		code, _, errOut := phoenix(t, cmd, "-f", "../../examples/homelab", "--lock-timeout", "-1s")
		if code != 1 || !strings.Contains(errOut, "--lock-timeout -1s is negative") {
			t.Errorf("%s: exit %d, %q", cmd, code, errOut)
		}
	}
}
