package reconciler

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

// applyOps makes firewall writes on a list of rules the way pve-firewall's
// Rules.pm does: a new rule at the top, moveto before the rule at moveto
// (last past the end), delete by position.
func applyOps(t *testing.T, rules []map[string]string, ops []FirewallOp) []map[string]string {
	t.Helper()
	for _, op := range ops {
		switch op.Kind {
		case FirewallCreateRule:
			rules = slices.Insert(rules, 0, maps.Clone(op.Set))
		case FirewallUpdateRule:
			r := maps.Clone(rules[op.Pos])
			maps.Copy(r, op.Set)
			for _, k := range op.Delete {
				delete(r, k)
			}
			rules[op.Pos] = r
		case FirewallMoveRule:
			rule := rules[op.Pos]
			var out []map[string]string
			for i, other := range rules {
				if i == op.Pos {
					continue
				}
				if i == op.MoveTo {
					out = append(out, rule)
				}
				out = append(out, other)
			}
			if op.MoveTo >= len(rules) {
				out = append(out, rule)
			}
			rules = out
		case FirewallDeleteRule:
			rules = slices.Delete(rules, op.Pos, op.Pos+1)
		case FirewallSetOptions:
		}
	}
	return rules
}

func fwRule(direction, action, port, comment string) spec.FirewallRule {
	return spec.FirewallRule{Direction: direction, Action: action, Proto: "tcp", DPort: port, Comment: comment}
}

func TestFirewallDiff(t *testing.T) {
	ssh, web, dns := fwRule("in", "ACCEPT", "22", "ssh"), fwRule("in", "ACCEPT", "443", ""), fwRule("out", "ACCEPT", "53", "dns")
	mine := func(r spec.FirewallRule) map[string]string { return firewallRuleParams(r) }
	hand := map[string]string{"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "8080", "enable": "1", "comment": "mine"}
	edited := mine(ssh)
	edited["dport"] = "2222"
	drop, accept := "DROP", "ACCEPT"
	yes := true
	cases := map[string]struct {
		fw         spec.Firewall
		have       FirewallConfig
		prune      bool
		wantFields []string // the keys of the plan's fields, in order
		wantNotes  int
	}{
		"converged: nothing to do": {
			fw:   spec.Firewall{Enabled: &yes, PolicyIn: &drop, Rules: []spec.FirewallRule{ssh, web}},
			have: FirewallConfig{Options: map[string]string{"enable": "1", "policy_in": "DROP"}, Rules: []map[string]string{mine(ssh), mine(web)}},
		},
		"empty firewall: every rule added, options set last": {
			fw:         spec.Firewall{Enabled: &yes, PolicyIn: &drop, Rules: []spec.FirewallRule{ssh, web, dns}},
			wantFields: []string{"firewall rule 0", "firewall rule 1", "firewall rule 2", "firewall enable", "firewall policy_in"},
		},
		"out of order: moved, not rewritten": {
			fw:         spec.Firewall{Rules: []spec.FirewallRule{ssh, web, dns}},
			have:       FirewallConfig{Rules: []map[string]string{mine(dns), mine(ssh), mine(web)}},
			wantFields: []string{"firewall rule 1", "firewall rule 2"},
		},
		"a rule edited in the GUI is put back in place": {
			fw:         spec.Firewall{Rules: []spec.FirewallRule{ssh, web}},
			have:       FirewallConfig{Rules: []map[string]string{edited, mine(web)}},
			wantFields: []string{"firewall rule 0"},
		},
		"a rule changed in the spec is updated, not left behind": {
			fw:         spec.Firewall{Rules: []spec.FirewallRule{fwRule("in", "ACCEPT", "2222", "ssh")}},
			have:       FirewallConfig{Rules: []map[string]string{mine(ssh)}},
			wantFields: []string{"firewall rule 0"},
		},
		"a hand-made rule is kept and reported": {
			fw:        spec.Firewall{Rules: []spec.FirewallRule{ssh}},
			have:      FirewallConfig{Rules: []map[string]string{mine(ssh), hand}},
			wantNotes: 1,
		},
		"a hand-made rule at the top goes below phoenix's": {
			fw:         spec.Firewall{Rules: []spec.FirewallRule{ssh}},
			have:       FirewallConfig{Rules: []map[string]string{hand, mine(ssh)}},
			wantFields: []string{"firewall rule 1"},
			wantNotes:  1,
		},
		"--prune removes a hand-made rule": {
			fw:         spec.Firewall{Rules: []spec.FirewallRule{ssh}},
			have:       FirewallConfig{Rules: []map[string]string{mine(ssh), hand}},
			prune:      true,
			wantFields: []string{"firewall rule 1"},
		},
		"rules: [] removes phoenix's rules only": {
			fw:         spec.Firewall{Rules: []spec.FirewallRule{}},
			have:       FirewallConfig{Rules: []map[string]string{mine(ssh), hand, mine(web)}},
			wantFields: []string{"firewall rule 2", "firewall rule 0"},
			wantNotes:  1,
		},
		"unset rules are left alone": {
			fw:   spec.Firewall{PolicyIn: &drop},
			have: FirewallConfig{Options: map[string]string{"policy_in": "DROP"}, Rules: []map[string]string{hand, mine(ssh)}},
		},
		"an empty policy deletes the option": {
			fw:         spec.Firewall{PolicyIn: new(string), PolicyOut: &accept},
			have:       FirewallConfig{Options: map[string]string{"policy_in": "DROP", "policy_out": "ACCEPT"}},
			wantFields: []string{"firewall policy_in"},
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
			// The writes, made as Proxmox makes them, leave phoenix's rules
			// first in the spec's order, and the others after them.
			got := applyOps(t, slices.Clone(tc.have.Rules), ops)
			var want []map[string]string
			if tc.fw.Rules == nil {
				want = tc.have.Rules
			} else {
				for _, r := range tc.fw.Rules {
					want = append(want, firewallRuleParams(r))
				}
				if !tc.prune {
					for _, r := range tc.have.Rules {
						if !ownedRule(r) {
							want = append(want, r)
						}
					}
				}
			}
			norm := func(rs []map[string]string) []map[string]string {
				var out []map[string]string
				for _, r := range rs {
					out = append(out, comparableRule(r))
				}
				return out
			}
			if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
				t.Errorf("rules after the writes (-want +got):\n%s", diff)
			}
			// And a second pass has nothing to do.
			if again, _ := firewallDiff(&tc.fw, FirewallConfig{Options: optionsAfter(tc.have.Options, ops), Rules: got}, tc.prune); len(again) > 0 {
				t.Errorf("a second pass still has %d edit(s): %+v", len(again), again[0].field)
			}
		})
	}
}

// optionsAfter applies the option writes.
func optionsAfter(opts map[string]string, ops []FirewallOp) map[string]string {
	out := maps.Clone(opts)
	if out == nil {
		out = map[string]string{}
	}
	for _, op := range ops {
		if op.Kind != FirewallSetOptions {
			continue
		}
		maps.Copy(out, op.Set)
		for _, k := range op.Delete {
			delete(out, k)
		}
	}
	return out
}

func TestFirewallRuleText(t *testing.T) {
	off := false
	cases := map[string]struct {
		rule spec.FirewallRule
		want string
	}{
		"the original system's ssh rule": {
			rule: spec.FirewallRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "22", Source: "10.0.0.0/24", Comment: "SSH access"},
			want: "IN ACCEPT -source 10.0.0.0/24 -p tcp -dport 22 # phoenix: SSH access",
		},
		"a disabled group rule on an interface": {
			rule: spec.FirewallRule{Group: "webservers", Iface: "net0", Enabled: &off},
			want: "|GROUP webservers -i net0 # phoenix",
		},
	}
	for name, tc := range cases {
		if got := RuleText(firewallRuleParams(tc.rule)); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

func TestFirewallMarker(t *testing.T) {
	for comment, want := range map[string]bool{"phoenix": true, "phoenix: ssh": true, "phoenixes": false, "ssh phoenix": false, "": false} {
		if got := ownedRule(map[string]string{"comment": comment}); got != want {
			t.Errorf("ownedRule(comment %q) = %v, want %v", comment, got, want)
		}
	}
	if !strings.HasPrefix(firewallRuleParams(spec.FirewallRule{Direction: "in", Action: "DROP"})["comment"], FirewallMarker) {
		t.Error("a rule phoenix makes has no marker")
	}
}
