package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// auditToken is a privilege-separated token of root@pam whose only ACL is
// the PVEAuditor role on /, as a CI job that plans pull requests holds it.
const (
	auditTokenID     = "root@pam!audit"
	auditTokenSecret = "0a0d17a0-1234-4cde-8f00-a0d17a0d17a0"
)

func withAuditToken(w *sim.World) {
	w.Spec.Users.Tokens = []sim.Token{
		{ID: "root@pam!phoenix"},
		{ID: auditTokenID, Secret: auditTokenSecret, Privsep: true, ACL: []sim.ACL{{Path: "/", Role: "PVEAuditor"}}},
	}
}

// auditor is a client of the rig's simulator with the audit-only token.
func (r *rig) auditor() *proxmox.Client {
	r.t.Helper()
	env := r.sim.Env()
	env[proxmox.EnvToken] = auditTokenID + "=" + auditTokenSecret
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, r.res.Cluster)
	if err != nil {
		r.t.Fatal(err)
	}
	cfg.TaskPoll, cfg.TaskPollMax = 2*time.Millisecond, 50*time.Millisecond
	c, err := proxmox.New(context.Background(), cfg, r.out.logger())
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// planWith observes through cluster and plans, rendered as text and JSON.
func (r *rig) planWith(cluster *proxmox.Client) (*reconciler.Observed, *reconciler.Plan, string) {
	r.t.Helper()
	obs, err := reconciler.Observe(context.Background(), cluster, r.node, r.res, reconciler.ObserveOptions{Log: r.out.logger()})
	if err != nil {
		r.t.Fatalf("observe: %v", err)
	}
	plan := reconciler.MakePlan(r.res, obs, r.options().PlanOptions)
	r.recordPlan(plan)
	var b bytes.Buffer
	if err := plan.WriteText(&b, reconciler.TextOptions{}); err != nil {
		r.t.Fatal(err)
	}
	b.WriteString("\n")
	if err := plan.WriteJSON(&b); err != nil {
		r.t.Fatal(err)
	}
	return obs, plan, b.String()
}

// TestAuditorPlans: with a token that holds only PVEAuditor (the privileges
// a read-only CI job gets), phoenix plans the examples exactly as with
// root's token, on an empty cluster and on a converged one; its apply is
// refused at the first write, with the privilege Proxmox names, and changes
// nothing.
func TestAuditorPlans(t *testing.T) {
	r := newRig(t, withAuditToken)
	audit := r.auditor()

	_, rootPlan, rootText := r.planWith(r.cluster)
	obs, plan, text := r.planWith(audit)
	if text != rootText {
		t.Fatalf("the auditor's plan differs from root's:\n--- root\n%s\n--- auditor\n%s", rootText, text)
	}
	if !rootPlan.HasChanges() {
		t.Fatal("the examples' plan on an empty cluster has nothing to do")
	}

	before := r.fingerprint()
	from := r.lastSeq()
	res := reconciler.Apply(context.Background(), audit, r.node, r.res, obs, plan, r.options())
	if !res.Failed() {
		t.Fatal("the auditor's apply succeeded")
	}
	refused := 0
	for _, g := range res.Guests {
		if g.Err == nil {
			continue
		}
		if errors.Is(g.Err, reconciler.ErrPermission) {
			refused++
			// create_vm's refusal names nothing; phoenix names VM.Allocate.
			if msg := g.Err.Error(); !strings.Contains(msg, "Permission check failed") || !strings.Contains(msg, "VM.Allocate on /vms/") {
				t.Errorf("%s: refused without the privilege named: %v", g.Name, g.Err)
			}
		}
	}
	if refused == 0 {
		t.Errorf("no guest was refused for a privilege: %+v", res.Guests)
	}
	for _, e := range r.events(from) {
		if e.Kind == "api" && e.OK && !strings.HasPrefix(e.Name, "GET ") {
			t.Errorf("the auditor's apply changed something: %+v", e)
		}
	}
	if after := r.fingerprint(); !mapsEqual(before, after) {
		t.Errorf("guests changed under the auditor's apply:\nbefore %v\nafter  %v", before, after)
	}

	// Converged by root, the auditor sees the same nothing-to-do.
	r.mustConverge(r.options())
	_, _, rootText = r.planWith(r.cluster)
	_, plan, text = r.planWith(audit)
	if text != rootText {
		t.Fatalf("on the converged cluster the auditor's plan differs from root's:\n--- root\n%s\n--- auditor\n%s", rootText, text)
	}
	if plan.HasChanges() || plan.HasErrors() {
		t.Errorf("the auditor's plan of a converged cluster has work or errors:\n%s", text)
	}
}

func mapsEqual(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
