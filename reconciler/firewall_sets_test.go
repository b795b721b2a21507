package reconciler

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

// applySetOps makes alias and ipset writes the way Aliases.pm and IPSet.pm
// do, and the rule writes as applyOps does.
func applySetOps(t *testing.T, have FirewallConfig, ops []FirewallOp) FirewallConfig {
	t.Helper()
	out := FirewallConfig{Options: have.Options, Aliases: slices.Clone(have.Aliases)}
	for _, s := range have.IPSets {
		s.Entries = slices.Clone(s.Entries)
		out.IPSets = append(out.IPSets, s)
	}
	set := func(name string) *FirewallIPSet {
		i := slices.IndexFunc(out.IPSets, func(s FirewallIPSet) bool { return s.Name == name })
		if i < 0 {
			t.Fatalf("no ipset %s", name)
		}
		return &out.IPSets[i]
	}
	alias := func(name string) int {
		return slices.IndexFunc(out.Aliases, func(a FirewallAlias) bool { return strings.EqualFold(a.Name, name) })
	}
	for _, op := range ops {
		switch op.Kind {
		case FirewallCreateAlias:
			if alias(op.Name) >= 0 {
				t.Fatalf("alias '%s' already exists", op.Name)
			}
			out.Aliases = append(out.Aliases, FirewallAlias{Name: op.Name, CIDR: op.Set["cidr"], Comment: op.Set["comment"]})
		case FirewallUpdateAlias:
			out.Aliases[alias(op.Name)] = FirewallAlias{Name: op.Name, CIDR: op.Set["cidr"], Comment: op.Set["comment"]}
		case FirewallDeleteAlias:
			out.Aliases = slices.Delete(out.Aliases, alias(op.Name), alias(op.Name)+1)
		case FirewallCreateIPSet:
			out.IPSets = append(out.IPSets, FirewallIPSet{Name: op.Name, Comment: op.Set["comment"]})
		case FirewallUpdateIPSet:
			set(op.Name).Comment = op.Set["comment"]
		case FirewallDeleteIPSet:
			out.IPSets = slices.DeleteFunc(out.IPSets, func(s FirewallIPSet) bool { return s.Name == op.Name })
		case FirewallAddIPSetEntry:
			s := set(op.Name)
			s.Entries = append([]FirewallIPSetEntry{{CIDR: op.CIDR, NoMatch: op.Set["nomatch"] == "1", Comment: op.Set["comment"]}}, s.Entries...)
		case FirewallUpdateIPSetEntry:
			s := set(op.Name)
			i := slices.IndexFunc(s.Entries, func(e FirewallIPSetEntry) bool { return e.CIDR == op.CIDR })
			s.Entries[i] = FirewallIPSetEntry{CIDR: op.CIDR, NoMatch: op.Set["nomatch"] == "1", Comment: op.Set["comment"]}
		case FirewallDeleteIPSetEntry:
			s := set(op.Name)
			s.Entries = slices.DeleteFunc(s.Entries, func(e FirewallIPSetEntry) bool { return e.CIDR == op.CIDR })
		}
	}
	out.Rules = applyOps(t, slices.Clone(have.Rules), ops)
	return out
}

func TestFirewallSetDiff(t *testing.T) {
	office := spec.FirewallAlias{Name: "office", CIDR: "10.1.0.0/16", Comment: "the office"}
	gw := spec.FirewallAlias{Name: "gw", CIDR: "10.0.0.1/32"}
	trusted := spec.FirewallIPSet{Name: "trusted", Entries: []spec.FirewallIPSetEntry{{CIDR: "10.0.0.0/24"}, {CIDR: "10.0.0.7", NoMatch: true, Comment: "printer"}, {CIDR: "office"}}}
	useSet := spec.FirewallRule{Direction: "in", Action: "ACCEPT", Source: "+trusted"}
	mineAlias := func(a spec.FirewallAlias) FirewallAlias { return wantAlias(a) }
	mineSet := func(s spec.FirewallIPSet) FirewallIPSet {
		out := FirewallIPSet{Name: s.Name, Comment: markedComment(s.Comment)}
		for _, e := range s.Entries {
			out.Entries = append(out.Entries, wantEntry(e))
		}
		return out
	}
	handAlias := FirewallAlias{Name: "lab", CIDR: "10.5.0.0/16", Comment: "test lab"}
	handSet := FirewallIPSet{Name: "blocked", Entries: []FirewallIPSetEntry{{CIDR: "192.0.2.0/24"}}}
	cases := map[string]struct {
		fw         spec.Firewall
		have       FirewallConfig
		prune      bool
		wantFields []string
		wantNotes  int
	}{
		"converged: nothing to do": {
			fw:   spec.Firewall{Aliases: []spec.FirewallAlias{office, gw}, IPSets: []spec.FirewallIPSet{trusted}},
			have: FirewallConfig{Aliases: []FirewallAlias{mineAlias(gw), mineAlias(office)}, IPSets: []FirewallIPSet{mineSet(trusted)}},
		},
		"empty firewall: aliases, then the ipset and its entries, then the rule that uses it": {
			fw: spec.Firewall{Aliases: []spec.FirewallAlias{office}, IPSets: []spec.FirewallIPSet{trusted}, Rules: []spec.FirewallRule{useSet}},
			wantFields: []string{"firewall alias office", "firewall ipset trusted", "firewall ipset trusted 10.0.0.0/24",
				"firewall ipset trusted 10.0.0.7", "firewall ipset trusted office", "firewall rule 0"},
		},
		"emptied: the rule goes before the ipset, the ipset before the alias": {
			fw:         spec.Firewall{Aliases: []spec.FirewallAlias{}, IPSets: []spec.FirewallIPSet{}, Rules: []spec.FirewallRule{}},
			have:       FirewallConfig{Aliases: []FirewallAlias{mineAlias(office)}, IPSets: []FirewallIPSet{mineSet(trusted)}, Rules: []map[string]string{firewallRuleParams(useSet)}},
			wantFields: []string{"firewall rule 0", "firewall ipset trusted", "firewall alias office"},
		},
		"changed in the GUI: put back, entries one by one": {
			fw: spec.Firewall{Aliases: []spec.FirewallAlias{office}, IPSets: []spec.FirewallIPSet{trusted}},
			have: FirewallConfig{Aliases: []FirewallAlias{{Name: "Office", CIDR: "10.1.0.0/8", Comment: "phoenix: the office"}},
				IPSets: []FirewallIPSet{{Name: "trusted", Comment: "phoenix: mine", Entries: []FirewallIPSetEntry{{CIDR: "10.0.0.7"}, {CIDR: "10.9.0.0/16"}, {CIDR: "office"}}}}},
			wantFields: []string{"firewall alias office", "firewall ipset trusted", "firewall ipset trusted 10.0.0.0/24",
				"firewall ipset trusted 10.0.0.7", "firewall ipset trusted 10.9.0.0/16"},
		},
		"hand-made ones are kept and reported": {
			fw:        spec.Firewall{Aliases: []spec.FirewallAlias{office}, IPSets: []spec.FirewallIPSet{}},
			have:      FirewallConfig{Aliases: []FirewallAlias{mineAlias(office), handAlias}, IPSets: []FirewallIPSet{handSet}},
			wantNotes: 2,
		},
		"--prune removes them": {
			fw:         spec.Firewall{Aliases: []spec.FirewallAlias{office}, IPSets: []spec.FirewallIPSet{}},
			have:       FirewallConfig{Aliases: []FirewallAlias{mineAlias(office), handAlias}, IPSets: []FirewallIPSet{handSet}},
			prune:      true,
			wantFields: []string{"firewall ipset blocked", "firewall alias lab"},
		},
		"a hand-made one with a spec's name is left alone without --prune": {
			fw:        spec.Firewall{Aliases: []spec.FirewallAlias{{Name: "lab", CIDR: "10.6.0.0/16"}}},
			have:      FirewallConfig{Aliases: []FirewallAlias{handAlias}},
			wantNotes: 1,
		},
		"and replaced with it": {
			fw:         spec.Firewall{Aliases: []spec.FirewallAlias{{Name: "lab", CIDR: "10.6.0.0/16"}}},
			have:       FirewallConfig{Aliases: []FirewallAlias{handAlias}},
			prune:      true,
			wantFields: []string{"firewall alias lab"},
		},
		"unset aliases and ipsets are left alone": {
			fw:   spec.Firewall{},
			have: FirewallConfig{Aliases: []FirewallAlias{handAlias, mineAlias(office)}, IPSets: []FirewallIPSet{handSet}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			edits, notes := firewallDiff(&tc.fw, tc.have, tc.prune)
			var keys []string
			var ops []FirewallOp
			for _, e := range edits {
				keys = append(keys, e.field.Key)
				ops = append(ops, e.ops...)
			}
			if diff := cmp.Diff(tc.wantFields, keys); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if len(notes) != tc.wantNotes {
				t.Errorf("notes: %q, want %d", notes, tc.wantNotes)
			}
			after := applySetOps(t, tc.have, ops)
			if again, _ := firewallDiff(&tc.fw, after, tc.prune); len(again) > 0 {
				t.Errorf("a second pass still has %d edit(s): %+v", len(again), again[0].field)
			}
			// What a clone of it starts with needs no edit either.
			if again, _ := firewallDiff(&tc.fw, *firewallAfter(&spec.Resolved{Settings: spec.Settings{Firewall: &tc.fw}}, &ObservedGuest{Firewall: &tc.have}), tc.prune); len(again) > 0 && !tc.prune {
				t.Errorf("firewallAfter is not converged: %+v", again[0].field)
			}
		})
	}
}

func TestFirewallSetReason(t *testing.T) {
	fw := spec.Firewall{Aliases: []spec.FirewallAlias{{Name: "office", CIDR: "10.1.0.0/16"}},
		IPSets: []spec.FirewallIPSet{{Name: "trusted", Entries: []spec.FirewallIPSetEntry{{CIDR: "10.0.0.0/24"}}}}}
	edits, _ := firewallDiff(&fw, FirewallConfig{}, false)
	if got, want := firewallReason(edits), "firewall: 1 alias(es) to add, 1 ipset(es) to add, 1 ipset(es) to change"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}

func TestFirewallRefProblem(t *testing.T) {
	fw := func(source string) *spec.Firewall {
		return &spec.Firewall{Aliases: []spec.FirewallAlias{{Name: "office", CIDR: "10.1.0.0/16"}},
			IPSets: []spec.FirewallIPSet{{Name: "trusted", Entries: []spec.FirewallIPSetEntry{{CIDR: "dc/backup"}}}},
			Rules:  []spec.FirewallRule{{Direction: "in", Action: "ACCEPT", Source: source}}}
	}
	cluster := &ClusterFirewallSets{Aliases: []string{"backup"}, IPSets: []string{"dcset"}}
	cases := map[string]struct {
		source      string
		sets        *ClusterFirewallSets
		err         error
		wantKind    ProblemKind
		wantMessage string
	}{
		"the spec's alias":           {source: "office", sets: cluster},
		"the spec's alias, any case": {source: "guest/OFFICE", sets: cluster},
		"the spec's ipset":           {source: "+trusted", sets: cluster},
		"the cluster's ipset":        {source: "+dc/dcset", sets: cluster},
		"the cluster's, unscoped":    {source: "+dcset", sets: cluster},
		"guest/ is the spec's only":  {source: "+guest/dcset", sets: cluster, wantKind: ProblemSpec, wantMessage: "uses +guest/dcset, which neither"},
		"dc/ is the cluster's only":  {source: "dc/office", sets: cluster, wantKind: ProblemSpec, wantMessage: "uses dc/office, which"},
		"neither":                    {source: "lab", sets: cluster, wantKind: ProblemSpec, wantMessage: "uses lab, which"},
		"an ipset entry's alias too": {source: "office", sets: &ClusterFirewallSets{}, wantKind: ProblemSpec, wantMessage: "uses dc/backup, which"},
		"the cluster's unreadable":   {source: "+dcset", err: errors.New("timeout"), wantKind: ProblemObserve, wantMessage: "timeout"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := &planner{obs: &Observed{ClusterSets: tc.sets, ClusterSetsErr: tc.err}}
			pr := p.firewallRefProblem(fw(tc.source))
			switch {
			case tc.wantMessage == "" && pr != nil:
				t.Errorf("problem %q, want none", pr.Message)
			case tc.wantMessage != "" && (pr == nil || pr.Kind != tc.wantKind || !strings.Contains(pr.Message, tc.wantMessage)):
				t.Errorf("problem %+v, want %v containing %q", pr, tc.wantKind, tc.wantMessage)
			}
		})
	}
}

func TestFingerprintCoversTheFirewall(t *testing.T) {
	obs := func(rules string) *Observed {
		return &Observed{Guests: map[int]*ObservedGuest{101: {GuestSummary: GuestSummary{VMID: 101},
			Firewall: &FirewallConfig{RulesDigest: rules, IPSets: []FirewallIPSet{{Name: "trusted", Digest: "e1"}}}}}}
	}
	if cmp.Equal(obs("a").Fingerprint(), obs("b").Fingerprint()) {
		t.Error("a plan made before the rules changed would still be applied")
	}
	changed := obs("a")
	changed.Guests[101].Firewall.IPSets[0].Digest = "e2"
	if cmp.Equal(obs("a").Fingerprint(), changed.Fingerprint()) {
		t.Error("a plan made before an ipset's entries changed would still be applied")
	}
}
