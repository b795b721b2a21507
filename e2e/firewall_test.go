package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// nginx's firewall in examples/homelab/containers.yaml, plus a security group rule.
var firewallGroupRule = specEdit{file: "containers.yaml",
	old: `      - {direction: in, action: ACCEPT, proto: tcp, dport: "80,443", comment: web}`,
	new: `      - {direction: in, action: ACCEPT, proto: tcp, dport: "80,443", comment: web}
      - {group: webservers, iface: net0}`}

// ruleTexts reads a guest's rules through the provider, as .fw lines.
func (r *rig) ruleTexts(vmid int) ([]string, reconciler.FirewallConfig) {
	r.t.Helper()
	fw, err := r.cluster.Firewall(context.Background(), "pve1", vmid)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, rule := range fw.Rules {
		out = append(out, reconciler.RuleText(rule))
	}
	return out, fw
}

// firewallWrites are the journal's successful firewall writes of a guest.
func firewallWrites(events []sim.Event, vmid int) []string {
	var out []string
	for _, e := range events {
		if e.Kind == "api" && e.OK && !strings.HasPrefix(e.Name, "GET ") && strings.Contains(e.Name, "/firewall/") && e.VMID == vmid {
			out = append(out, e.Name)
		}
	}
	return out
}

func TestFirewallConvergesKeepsHandMadeRulesAndPrunes(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.SecurityGroups = []string{"webservers"} })
	r.respec(firewallGroupRule)
	ctx := context.Background()
	opts := r.options()

	_, plan := r.plan(opts.PlanOptions)
	g, _ := plan.Guest("nginx")
	i := slices.IndexFunc(g.Changes, func(c reconciler.Change) bool { return c.Action == reconciler.Firewall })
	if i < 0 {
		t.Fatalf("the plan makes no firewall change for nginx:\n%s", planText(plan))
	}
	if c := g.Changes[i]; len(c.Fields) != 5 || !strings.Contains(c.Reason, "3 rule(s) to add") {
		t.Errorf("firewall change: %q with %d fields, want 3 rules to add and 2 options:\n%s", c.Reason, len(c.Fields), planText(plan))
	}
	r.mustConverge(opts)

	want := []string{
		"IN ACCEPT -source 10.0.0.0/24 -p tcp -dport 22 # phoenix: SSH from the LAN",
		"IN ACCEPT -p tcp -dport 80,443 # phoenix: web",
		"GROUP webservers -i net0 # phoenix",
	}
	got, fw := r.ruleTexts(960)
	if !slices.Equal(got, want) {
		t.Fatalf("rules after apply:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fw.Options["enable"] != "1" || fw.Options["policy_in"] != "DROP" {
		t.Errorf("options after apply: %v", fw.Options)
	}

	// A second apply is a no-op: it reads the firewall and writes nothing.
	from := r.lastSeq()
	res := r.apply(ctx, opts)
	if w := firewallWrites(r.events(from), 960); len(w) > 0 || len(res.Guests) > 0 {
		t.Errorf("a second apply wrote %v (guests %+v)", w, res.Guests)
	}

	// A person adds a rule in the GUI (at the top), moves phoenix's web rule
	// last and opens its port wider.
	change := func(op reconciler.FirewallOp) {
		t.Helper()
		_, fw := r.ruleTexts(960)
		op.Digest = fw.RulesDigest
		if err := r.cluster.ChangeFirewall(ctx, "pve1", 960, op); err != nil {
			t.Fatal(err)
		}
	}
	change(reconciler.FirewallOp{Kind: reconciler.FirewallCreateRule,
		Set: map[string]string{"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "8080", "enable": "1", "comment": "test server"}})
	change(reconciler.FirewallOp{Kind: reconciler.FirewallMoveRule, Pos: 2, MoveTo: 4})
	change(reconciler.FirewallOp{Kind: reconciler.FirewallUpdateRule, Pos: 3, Set: map[string]string{"dport": "1:65535"}})
	got, _ = r.ruleTexts(960)
	if got[0] != "IN ACCEPT -p tcp -dport 8080 # test server" || got[3] != "IN ACCEPT -p tcp -dport 1:65535 # phoenix: web" {
		t.Fatalf("the hand edits did not land as meant:\n%s", strings.Join(got, "\n"))
	}

	_, plan = r.plan(opts.PlanOptions)
	g, _ = plan.Guest("nginx")
	text := planText(plan)
	if !slices.ContainsFunc(g.Changes, func(c reconciler.Change) bool { return c.Action == reconciler.Firewall }) ||
		!strings.Contains(text, "was not made by phoenix: it is kept after phoenix's rules; --prune removes it") ||
		!strings.Contains(text, `"IN ACCEPT -p tcp -dport 1:65535 # phoenix: web" -> "IN ACCEPT -p tcp -dport 80,443 # phoenix: web"`) {
		t.Errorf("the plan does not show the drift:\n%s", text)
	}
	r.mustConverge(opts)
	got, _ = r.ruleTexts(960)
	if wantKept := append(slices.Clone(want), "IN ACCEPT -p tcp -dport 8080 # test server"); !slices.Equal(got, wantKept) {
		t.Fatalf("rules after the hand edits were converged:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantKept, "\n"))
	}

	// --prune removes the rule phoenix did not make.
	opts.Prune = true
	r.mustConverge(opts)
	if got, _ = r.ruleTexts(960); !slices.Equal(got, want) {
		t.Fatalf("rules after --prune:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFirewallUnknownSecurityGroupIsASpecProblem(t *testing.T) {
	r := newRig(t, nil)
	r.respec(firewallGroupRule)
	_, plan := r.plan(reconciler.PlanOptions{})
	g, _ := plan.Guest("nginx")
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemSpec || !strings.Contains(g.Errors[0].Message, "security group(s) webservers") {
		t.Fatalf("want a spec problem naming webservers:\n%s", planText(plan))
	}
}

func TestFirewallCloneStartsWithItsTemplates(t *testing.T) {
	// The base template keeps the firewall; a clone copies it and so
	// needs no firewall write of its own.
	r := newRig(t, nil)
	r.respec(specEdit{file: "templates.yaml", old: "  name: ubuntu-2404-base\nspec:\n", new: `  name: ubuntu-2404-base
spec:
  firewall:
    enabled: true
    rules: [{direction: in, action: ACCEPT, proto: tcp, dport: "22", comment: ssh}]
`})
	from := r.lastSeq()
	r.mustConverge(r.options())
	events := r.events(from)
	if w := firewallWrites(events, 900); len(w) != 2 {
		t.Errorf("the template's firewall writes: %v, want the rule and the options", w)
	}
	for _, vmid := range []int{901, 902} {
		if w := firewallWrites(events, vmid); len(w) > 0 {
			t.Errorf("clone %d wrote its firewall (%v): it has its template's", vmid, w)
		}
		got, _ := r.ruleTexts(vmid)
		if len(got) == 0 || got[0] != "IN ACCEPT -p tcp -dport 22 # phoenix: ssh" {
			t.Errorf("clone %d's rules: %q", vmid, got)
		}
	}
}
