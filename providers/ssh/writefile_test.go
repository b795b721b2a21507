package ssh

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestWriteFileThroughTheSimulator: a file's content travels on the SSH
// session's standard input to the node, and from there into the container
// with its mode and owner; nothing of it shows in an argv, the journal or an
// error, and the staged copy is gone afterwards, also after a failure.
func TestWriteFileThroughTheSimulator(t *testing.T) {
	c := startCluster(t)
	ctx := ctxT(t)
	n := c.node("pve1")
	// Binary content, every byte value: standard input carries what an
	// argv could not.
	var b strings.Builder
	for i := range 256 {
		b.WriteByte(byte(i))
	}
	content := "token=s3cr3t-value\n" + b.String()
	f := reconciler.FileWrite{Path: "/etc/app/app.conf", Content: []byte(content), Mode: 0o640, User: "www-data", Group: "video"}
	if err := n.WriteFile(ctx, 100, f); err != nil {
		t.Fatal(err)
	}
	res, err := n.Exec(ctx, 100, reconciler.Script{Name: "phoenix/inspect", Phase: "check", Body: reconciler.InspectScript,
		Env: map[string]string{"PHOENIX_FILES": "/etc/app/app.conf /etc/app/app.conf.phoenix-new"}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("inspect: %+v, %v", res, err)
	}
	sum := sha256.Sum256([]byte(content))
	want := "file /etc/app/app.conf " + hex.EncodeToString(sum[:]) + " 640 33:44 www-data:video\nfile /etc/app/app.conf.phoenix-new -\n"
	if diff := cmp.Diff(want, res.Stdout); diff != "" {
		t.Errorf("inspect after the write (-want +got):\n%s", diff)
	}

	var names []string
	for _, e := range c.sim.Journal() {
		if e.Kind != "exec" {
			continue
		}
		if strings.Contains(e.Detail, "s3cr3t") || strings.Contains(e.Name, "s3cr3t") {
			t.Errorf("the journal shows the content: %+v", e)
		}
		if strings.HasPrefix(e.Name, "phoenix/stage-file") || strings.HasPrefix(e.Name, "phoenix/file") || e.Name == "pct push" {
			names = append(names, strings.TrimSpace(e.Name+" "+e.Phase))
		}
	}
	if diff := cmp.Diff([]string{"phoenix/stage-file apply", "phoenix/file prepare", "pct push", "phoenix/file apply", "phoenix/stage-file clean"}, names); diff != "" {
		t.Errorf("commands run (-want +got):\n%s", diff)
	}
	if staged := stagedFiles(c); len(staged) != 0 {
		t.Errorf("staged copies left on the node: %v", staged)
	}

	// A user the container does not have: pct push's worker dies, the
	// write fails, and both copies are gone.
	f.User = "nosuchuser"
	err = n.WriteFile(ctx, 100, f)
	if !errors.Is(err, reconciler.ErrRefused) || !strings.Contains(err.Error(), "failed to get uid for: nosuchuser") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("a write as an unknown user: %v; want a refusal naming the user, not the content", err)
	}
	if staged := stagedFiles(c); len(staged) != 0 {
		t.Errorf("staged copies left on the node after a failure: %v", staged)
	}
	// A stopped container: pct's own refusal.
	if err := n.WriteFile(ctx, 101, f); !errors.Is(err, reconciler.ErrNotRunning) {
		t.Errorf("a write into a stopped CT: %v, want ErrNotRunning", err)
	}
}

// stagedFiles are the node files the journal shows staged and not cleaned.
func stagedFiles(c *cluster) []string {
	open := map[string]int{}
	for _, e := range c.sim.Journal() {
		if e.Name != "phoenix/stage-file" {
			continue
		}
		switch e.Phase {
		case "apply":
			open[e.Node]++
		case "clean":
			if e.OK {
				open[e.Node]--
			}
		}
	}
	var out []string
	for n, k := range open {
		if k != 0 {
			out = append(out, n)
		}
	}
	return out
}
