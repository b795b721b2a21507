package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/reconciler"
)

// panicky is the API client with a bug that panics when one guest is read.
type panicky struct {
	*proxmox.Client
	vmid int
}

func (p panicky) Status(ctx context.Context, node string, vmid int) (reconciler.GuestSummary, error) {
	if vmid == p.vmid {
		panic("index out of range [3] with length 3")
	}
	return p.Client.Status(ctx, node, vmid)
}

// TestAPanicFailsOneGuestNotThePass: a panic in one guest's work is that
// guest's failure, with its stack in the log; the other guests converge.
func TestAPanicFailsOneGuestNotThePass(t *testing.T) {
	r := newRig(t, nil)
	obs, plan := r.plan(reconciler.PlanOptions{})
	var logs bytes.Buffer
	opts := r.options()
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	res := reconciler.Apply(context.Background(), panicky{r.cluster, 960}, r.node, r.res, obs, plan, opts)
	for _, g := range res.Guests {
		switch {
		case g.Name == "nginx" && (g.Kind != reconciler.ErrorInternal || !strings.Contains(g.Err.Error(), "a bug in phoenix")):
			t.Errorf("nginx: %v (%s), want an internal error", g.Err, g.Kind)
		case g.Name != "nginx" && g.Err != nil:
			t.Errorf("%s failed too: %v", g.Name, g.Err)
		}
	}
	if !strings.Contains(logs.String(), "panic while converging a guest") || !strings.Contains(logs.String(), "panic_test.go") {
		t.Errorf("no stack in the log:\n%s", logs.String())
	}
}
