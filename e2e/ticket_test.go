package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// ticketRefusals are the texts pveproxy refuses an expired ticket with: pve-access-control's
// own before pve-manager 9.1.5, one text for every refusal since.
var ticketRefusals = []string{"permission denied - invalid PVE ticket", "Authentication failed!"}

// TestTicketExpiryDuringApply: with root@pam's password, the examples converge across
// several expiries of Proxmox VE's tickets (made to last ten minutes of world time, 1.2 s
// here), and the plan made after the last ticket expired finds nothing to do: phoenix logs
// in again when its ticket is refused and sends the refused request once more, so no call
// and no guest fails.
func TestTicketExpiryDuringApply(t *testing.T) {
	const lifetime = 10 * time.Minute
	var scale float64
	r := newRigAuth(t, func(w *sim.World) {
		w.Spec.Users.TicketLifetime = sim.Duration(lifetime)
		scale = w.Spec.TimeScale
	}, true)
	res := r.apply(context.Background(), r.options())
	for _, g := range res.Guests {
		if g.Err != nil {
			t.Errorf("%s: %v", g.Name, g.Err)
		}
	}
	// The plan's first request goes with a ticket that has expired.
	time.Sleep(time.Duration(float64(lifetime)*scale) + 100*time.Millisecond)
	from := r.lastSeq()
	_, plan := r.plan(r.options().PlanOptions)
	if plan.HasChanges() || plan.HasErrors() {
		var b strings.Builder
		_ = plan.WriteText(&b, reconciler.TextOptions{})
		t.Fatalf("not converged after apply:\n%s", b.String())
	}

	refused, logins := 0, 0
	for _, e := range r.events(0) {
		switch {
		case e.Kind != "api":
		case e.Name == "POST /access/ticket" && e.OK:
			logins++
		case !e.OK && isTicketRefusal(e.Detail):
			refused++
			if e.Seq > from {
				from = -1 // the plan met an expired ticket
			}
		case !e.OK && e.Name == "POST /access/ticket":
			t.Errorf("a login failed: %+v", e)
		}
	}
	// Requests in flight together share the login that follows their refusal:
	// at least one login after the first, at most one per refused request.
	if refused < 2 || from != -1 || logins < 2 || logins > refused+1 {
		t.Errorf("%d requests refused for their ticket (the plan's among them: %t), %d logins: want the apply and the plan to cross expiries, each followed by a login",
			refused, from == -1, logins)
	}
}

func isTicketRefusal(detail string) bool {
	for _, s := range ticketRefusals {
		if detail == s {
			return true
		}
	}
	return false
}
