package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// nginx's firewall with an alias, an ipset that names it and the cluster's
// alias, and a rule that uses the ipset.
var firewallSets = specEdit{file: "containers.yaml",
	old: `      - {direction: in, action: ACCEPT, proto: tcp, dport: "80,443", comment: web}`,
	new: `      - {direction: in, action: ACCEPT, proto: tcp, dport: "80,443", comment: web}
      - {direction: in, action: ACCEPT, proto: tcp, dport: "9100", source: +trusted, comment: metrics}
    aliases:
      - {name: monitor, cidr: 10.0.0.9, comment: the monitoring host}
    ipsets:
      - name: trusted
        comment: who may scrape
        entries:
          - {cidr: monitor}
          - {cidr: dc/backup}
          - {cidr: 10.0.5.0/24}
          - {cidr: 10.0.5.1, nomatch: true, comment: the guest network's gateway}`}

func TestFirewallAliasesAndIPSets(t *testing.T) {
	r := newRig(t, func(w *sim.World) { w.Spec.FirewallAliases = map[string]string{"backup": "10.0.0.20"} })
	r.respec(firewallSets)
	ctx := context.Background()
	opts := r.options()

	r.mustConverge(opts)
	fw, err := r.cluster.Firewall(ctx, "pve1", 960)
	if err != nil {
		t.Fatal(err)
	}
	if len(fw.Aliases) != 1 || reconciler.AliasText(fw.Aliases[0]) != "monitor 10.0.0.9 # phoenix: the monitoring host" {
		t.Errorf("aliases after apply: %+v", fw.Aliases)
	}
	if len(fw.IPSets) != 1 || fw.IPSets[0].Comment != "phoenix: who may scrape" || len(fw.IPSets[0].Entries) != 4 {
		t.Fatalf("ipsets after apply: %+v", fw.IPSets)
	}
	var entries []string
	for _, e := range fw.IPSets[0].Entries {
		entries = append(entries, reconciler.EntryText(e))
	}
	slices.Sort(entries)
	if want := []string{"!10.0.5.1 # the guest network's gateway", "10.0.5.0/24", "dc/backup", "monitor"}; !slices.Equal(entries, want) {
		t.Errorf("entries %q, want %q", entries, want)
	}
	rules, _ := r.ruleTexts(960)
	if len(rules) != 3 || rules[2] != "IN ACCEPT -source +trusted -p tcp -dport 9100 # phoenix: metrics" {
		t.Errorf("rules after apply:\n%s", strings.Join(rules, "\n"))
	}
	for _, rule := range fw.Rules {
		if rule["errors"] != "" {
			t.Errorf("rule with errors: %v", rule)
		}
	}

	// A second apply reads and writes nothing.
	from := r.lastSeq()
	if res := r.apply(ctx, opts); len(res.Guests) > 0 {
		t.Errorf("a second apply did %+v", res.Guests)
	}
	if w := firewallWrites(r.events(from), 960); len(w) > 0 {
		t.Errorf("a second apply wrote %v", w)
	}

	// A person adds an alias: drift, kept, then pruned.
	if err := r.cluster.ChangeFirewall(ctx, "pve1", 960, reconciler.FirewallOp{Kind: reconciler.FirewallCreateAlias, Name: "lab",
		Set: map[string]string{"cidr": "10.5.0.0/16", "comment": "test lab"}}); err != nil {
		t.Fatal(err)
	}
	_, plan := r.plan(opts.PlanOptions)
	if text := planText(plan); !strings.Contains(text, "firewall alias lab (lab 10.5.0.0/16 # test lab) was not made by phoenix: it is kept; --prune removes it") {
		t.Errorf("the plan does not report the hand-made alias:\n%s", text)
	}
	from = r.lastSeq()
	r.mustConverge(opts)
	if w := firewallWrites(r.events(from), 960); len(w) > 0 {
		t.Errorf("an apply without --prune wrote %v", w)
	}
	opts.Prune = true
	r.mustConverge(opts)
	if fw, _ = r.cluster.Firewall(ctx, "pve1", 960); len(fw.Aliases) != 1 || fw.Aliases[0].Name != "monitor" {
		t.Errorf("aliases after --prune: %+v", fw.Aliases)
	}

	// The spec drops the ipset and its rule: the rule goes first, then the
	// ipset, then the alias, so that no rule is ever left naming a missing one.
	r.respec(specEdit{file: "containers.yaml", old: firewallSets.old, new: firewallSets.old + `
    aliases: []
    ipsets: []`})
	from = r.lastSeq()
	r.mustConverge(opts)
	var order []string
	for _, w := range firewallWrites(r.events(from), 960) {
		if strings.HasPrefix(w, "DELETE ") {
			order = append(order, w[strings.LastIndex(w, "/firewall/")+len("/firewall/"):])
		}
	}
	if len(order) != 3 || !strings.HasPrefix(order[0], "rules/") || order[1] != "ipset/trusted" || order[2] != "aliases/monitor" {
		t.Errorf("deletes in the order %q, want the rule, the ipset, the alias", order)
	}
	if fw, _ = r.cluster.Firewall(ctx, "pve1", 960); len(fw.Aliases)+len(fw.IPSets) != 0 {
		t.Errorf("left after the spec emptied them: %+v %+v", fw.Aliases, fw.IPSets)
	}
}

func TestFirewallUndefinedIPSetIsASpecProblem(t *testing.T) {
	r := newRig(t, nil)
	r.respec(specEdit{file: "containers.yaml",
		old: `      - {direction: in, action: ACCEPT, proto: tcp, dport: "80,443", comment: web}`,
		new: `      - {direction: in, action: ACCEPT, proto: tcp, dport: "80,443", source: +dc/web-clients, comment: web}`})
	_, plan := r.plan(reconciler.PlanOptions{})
	g, _ := plan.Guest("nginx")
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemSpec || !strings.Contains(g.Errors[0].Message, "uses +dc/web-clients, which neither") {
		t.Fatalf("want a spec problem naming +dc/web-clients:\n%s", planText(plan))
	}
}

func TestFirewallCloneCopiesAliasesAndIPSets(t *testing.T) {
	r := newRig(t, nil)
	r.respec(specEdit{file: "templates.yaml", old: "  name: ubuntu-2404-base\nspec:\n", new: `  name: ubuntu-2404-base
spec:
  firewall:
    aliases: [{name: office, cidr: 10.1.0.0/16}]
    ipsets: [{name: trusted, entries: [{cidr: office}]}]
    rules: [{direction: in, action: ACCEPT, proto: tcp, dport: "22", source: +trusted, comment: ssh}]
`})
	from := r.lastSeq()
	r.mustConverge(r.options())
	events := r.events(from)
	for _, vmid := range []int{901, 902} {
		if w := firewallWrites(events, vmid); len(w) > 0 {
			t.Errorf("clone %d wrote its firewall (%v): it has its template's", vmid, w)
		}
		fw, err := r.cluster.Firewall(context.Background(), "pve1", vmid)
		if err != nil {
			t.Fatal(err)
		}
		if len(fw.Aliases) != 1 || len(fw.IPSets) != 1 || len(fw.IPSets[0].Entries) != 1 {
			t.Errorf("clone %d's aliases %+v, ipsets %+v", vmid, fw.Aliases, fw.IPSets)
		}
	}
}
