package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// Converting a container to a template: Proxmox answers null and converts in
// a vztemplate worker whose UPID it does not return, and which may die. The
// adapter finds the worker in the node's task list and reports its failure;
// where it has nothing to follow, it gives up after a bound.

const templateWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: templates}
spec:
  seed: 11
  timeScale: 0.002
  nodes:
    - name: pve1
      storages:
        - {name: local, type: dir, content: [vztmpl, rootdir]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
        - {name: vg0, type: lvm, content: [rootdir, images]}
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
`

func createOn(t *testing.T, c *proxmox.Client, vmid int, storage string) {
	t.Helper()
	err := c.Create(context.Background(), reconciler.CreateRequest{Node: "pve1", VMID: vmid, OSTemplate: ubuntu, Storage: storage, DiskGiB: 8,
		Options: map[string]string{"unprivileged": "1"}})
	if err != nil {
		t.Fatalf("Create %d on %s: %v", vmid, storage, err)
	}
}

func TestTemplateConversionReportsADeadWorker(t *testing.T) {
	f := startSim(t, templateWorld)
	c := f.client(t)
	ctx := context.Background()

	createOn(t, c, 200, "local-lvm")
	if err := c.ConvertToTemplate(ctx, "pve1", 200); err != nil {
		t.Fatalf("ConvertToTemplate on LVM-thin: %v", err)
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 200); cfg.Values["template"] != "1" || cfg.Values["rootfs"] != "local-lvm:base-200-disk-0,size=8G" {
		t.Errorf("after the conversion: %v", cfg.Values)
	}

	// Plain LVM cannot hold base volumes: the worker dies, and the config
	// never shows template: 1. Before, the adapter polled the config forever.
	createOn(t, c, 201, "vg0")
	const want = "Template feature is not available for 'vg0:vm-201-disk-0'"
	var first string
	for try := range 2 {
		done := make(chan error, 1)
		go func() { done <- c.ConvertToTemplate(ctx, "pve1", 201) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("ConvertToTemplate hangs on a worker that died")
		}
		var te *reconciler.TaskError
		if !errors.As(err, &te) || !errors.Is(err, reconciler.ErrTaskFailed) || te.ExitStatus != want || reconciler.Retryable(err) ||
			!strings.Contains(te.UPID, ":vztemplate:201:") {
			t.Fatalf("try %d: %v, want the worker's failure", try, err)
		}
		// A second try follows its own worker, not the first one's.
		if te.UPID == first {
			t.Errorf("try %d reported the earlier worker %s", try, first)
		}
		first = te.UPID
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 201); cfg.Values["template"] != "" {
		t.Errorf("a failed conversion shows template: %v", cfg.Values["template"])
	}
}

// hiddenTasks answers every task list with an empty one, as for a user who
// may not see the worker: the adapter has no task to follow.
type hiddenTasks struct{ base http.RoundTripper }

func (h hiddenTasks) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/tasks") {
		return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json;charset=UTF-8"}}, Request: req,
			Body: io.NopCloser(bytes.NewReader([]byte(`{"data":[]}`)))}, nil
	}
	return h.base.RoundTrip(req)
}

func TestTemplateConversionWithoutATaskIsBounded(t *testing.T) {
	f := startSim(t, templateWorld)
	env := f.sim.Env()
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	// The bound is 60 polls at TaskPollMax: 1.2 s here.
	cfg.TaskPoll, cfg.TaskPollMax = time.Millisecond, 20*time.Millisecond
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { f.rec.base = rt; return hiddenTasks{f.rec} }
	c, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.rec.check(t) })
	ctx := context.Background()

	// A worker that succeeds shows in the config: no task needed.
	createOn(t, c, 200, "local-lvm")
	if err := c.ConvertToTemplate(ctx, "pve1", 200); err != nil {
		t.Fatalf("ConvertToTemplate without a visible task: %v", err)
	}
	// One that dies leaves nothing to see: a deadline, and an error that
	// says so and is worth another try.
	createOn(t, c, 201, "vg0")
	start := time.Now()
	err = c.ConvertToTemplate(ctx, "pve1", 201)
	if waited := time.Since(start); waited > 15*time.Second {
		t.Errorf("gave up after %v", waited)
	}
	if !errors.Is(err, reconciler.ErrUnavailable) || !reconciler.Retryable(err) || !strings.Contains(err.Error(), "no vztemplate task of CT 201") ||
		!strings.Contains(err.Error(), "gave up after 1.2s") {
		t.Errorf("err = %v", err)
	}
	// The caller's own deadline still wins.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := c.ConvertToTemplate(short, "pve1", 201); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with a short ctx: %v", err)
	}
}
