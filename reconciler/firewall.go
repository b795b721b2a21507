package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// A guest's firewall lives beside its config, in /etc/pve/firewall/VMID.fw,
// and has an API of its own (/nodes/{node}/lxc/{vmid}/firewall/...). phoenix
// manages it only for a guest whose lineage has a firewall in its spec, and
// then only what the spec sets: the options it names and the rules phoenix
// made.
//
// Which rules are phoenix's. A rule has no identity in Proxmox but its
// position, and positions shift whenever any rule is added, moved or
// deleted, in the GUI or elsewhere. Two ways were possible:
//
//   - By content: a rule equal to a spec rule is phoenix's. Editing the spec
//     (port 22 becomes 2222) would then leave the old rule behind as a
//     stranger's, open, until someone passes --prune; and a person's small
//     edit of a rule in the GUI would disown it the same way.
//   - By a marker that travels with the rule: its comment. Proxmox keeps a
//     rule's comment through every edit, move and renumbering, a clone
//     copies it, and the GUI shows it. A rule whose comment is "phoenix" or
//     starts with "phoenix: " is phoenix's, whatever else a person changed
//     in it: phoenix puts it back as the spec says. A rule without the
//     marker is a person's: phoenix never changes it, reports it, and
//     deletes it only with --prune. Taking the marker out of a rule's
//     comment hands the rule to people.
//
// phoenix uses the marker. Its rules come first, in the spec's order (rules
// are matched top down, so the spec's rules decide before a hand-made one);
// rules of people follow in their own order. A converged firewall is read,
// compared and left alone: no write on a pass with nothing to do.

// FirewallMarker starts the comment of every rule phoenix keeps.
const FirewallMarker = "phoenix"

// FirewallConfig is a guest's firewall as the API reads it.
type FirewallConfig struct {
	// Options are the options set in the guest's firewall (enable,
	// policy_in, ...); OptionsDigest is their digest, for the next write.
	Options       map[string]string
	OptionsDigest string
	// Rules are the guest's rules, top first, each with every property
	// Proxmox reports (type, action, enable, comment, ...) but its position
	// and digest; RulesDigest is the digest of the list.
	Rules       []map[string]string
	RulesDigest string
	// Aliases are the guest's aliases by name, AliasesDigest the digest of
	// their list; IPSets its ipsets by name with their entries,
	// IPSetsDigest the digest of their list (firewall_sets.go).
	Aliases       []FirewallAlias
	AliasesDigest string
	IPSets        []FirewallIPSet
	IPSetsDigest  string
}

// FirewallOpKind is one kind of write to a guest's firewall.
type FirewallOpKind int

const (
	// FirewallSetOptions sets and deletes options (PUT .../firewall/options).
	FirewallSetOptions FirewallOpKind = iota
	// FirewallCreateRule adds a rule; Proxmox puts a new rule at the top,
	// whatever position is asked for (POST .../firewall/rules).
	FirewallCreateRule
	// FirewallUpdateRule changes the rule at Pos (PUT .../rules/{pos}).
	FirewallUpdateRule
	// FirewallMoveRule moves the rule at Pos to before the rule that is at
	// MoveTo now (PUT .../rules/{pos} with moveto).
	FirewallMoveRule
	// FirewallDeleteRule deletes the rule at Pos (DELETE .../rules/{pos}).
	FirewallDeleteRule
	// FirewallCreateAlias adds the alias Name (POST .../firewall/aliases).
	FirewallCreateAlias
	// FirewallUpdateAlias sets the alias Name's cidr and comment, and the
	// spelling of its name (PUT .../aliases/{name}).
	FirewallUpdateAlias
	// FirewallDeleteAlias deletes the alias Name (DELETE .../aliases/{name}).
	FirewallDeleteAlias
	// FirewallCreateIPSet adds the empty ipset Name (POST .../firewall/ipset).
	FirewallCreateIPSet
	// FirewallUpdateIPSet sets the ipset Name's comment (POST
	// .../firewall/ipset renaming it to itself).
	FirewallUpdateIPSet
	// FirewallDeleteIPSet deletes the ipset Name with its entries (DELETE
	// .../ipset/{name} with force).
	FirewallDeleteIPSet
	// FirewallAddIPSetEntry adds CIDR to the ipset Name (POST .../ipset/{name}).
	FirewallAddIPSetEntry
	// FirewallUpdateIPSetEntry sets the nomatch and comment of the ipset
	// Name's entry CIDR; what Set leaves out is removed (PUT
	// .../ipset/{name}/{cidr}).
	FirewallUpdateIPSetEntry
	// FirewallDeleteIPSetEntry deletes the ipset Name's entry CIDR (DELETE
	// .../ipset/{name}/{cidr}).
	FirewallDeleteIPSetEntry
)

// FirewallOp is one write to a guest's firewall.
type FirewallOp struct {
	Kind   FirewallOpKind
	Pos    int
	MoveTo int
	// Name is the alias or ipset written, CIDR the ipset's entry.
	Name, CIDR string
	// Set are the properties to set, Delete those to remove.
	Set    map[string]string
	Delete []string
	// Digest is what the list or options must still be (empty: not checked).
	Digest string
}

// firewallRuleKeys are the rule properties phoenix compares and sets.
var firewallRuleKeys = []string{"type", "action", "enable", "source", "dest", "proto", "dport", "sport", "icmp-type", "iface", "log", "comment"}

// firewallOptionKeys maps the spec's option fields to Proxmox's names.
func firewallOptions(fw *spec.Firewall) map[string]*string {
	out := map[string]*string{}
	for key, v := range map[string]*bool{"enable": fw.Enabled, "dhcp": fw.DHCP, "ipfilter": fw.IPFilter,
		"macfilter": fw.MACFilter, "ndp": fw.NDP, "radv": fw.RAdv} {
		if v != nil {
			s := boolString(*v)
			out[key] = &s
		}
	}
	for key, v := range map[string]*string{"policy_in": fw.PolicyIn, "policy_out": fw.PolicyOut,
		"log_level_in": fw.LogLevelIn, "log_level_out": fw.LogLevelOut} {
		if v != nil {
			out[key] = v
		}
	}
	return out
}

// firewallRuleParams is a spec rule as Proxmox stores it.
func firewallRuleParams(r spec.FirewallRule) map[string]string {
	p := map[string]string{"enable": boolString(r.Applies()), "comment": FirewallMarker}
	if r.Comment != "" {
		p["comment"] = FirewallMarker + ": " + r.Comment
	}
	if r.Group != "" {
		p["type"], p["action"] = "group", r.Group
	} else {
		p["type"], p["action"] = r.Direction, r.Action
	}
	for k, v := range map[string]string{"source": r.Source, "dest": r.Dest, "proto": r.Proto, "dport": r.DPort,
		"sport": r.SPort, "icmp-type": r.ICMPType, "iface": r.Iface, "log": r.Log} {
		if v != "" {
			p[k] = v
		}
	}
	return p
}

// ownedRule reports whether a rule carries phoenix's marker.
func ownedRule(rule map[string]string) bool {
	c := rule["comment"]
	return c == FirewallMarker || strings.HasPrefix(c, FirewallMarker+": ")
}

// comparable is the part of a rule phoenix compares.
func comparableRule(rule map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range firewallRuleKeys {
		if v := rule[k]; v != "" {
			out[k] = v
		}
	}
	if out["enable"] == "" {
		out["enable"] = "0"
	}
	return out
}

// RuleText writes a rule the way /etc/pve/firewall/VMID.fw does: IN ACCEPT
// -source 10.0.0.0/24 -p tcp -dport 22 # comment, a disabled rule with a |.
func RuleText(rule map[string]string) string {
	var b strings.Builder
	if rule["enable"] == "0" || rule["enable"] == "" {
		b.WriteString("|")
	}
	b.WriteString(strings.ToUpper(rule["type"]) + " " + rule["action"])
	for _, k := range []struct{ key, flag string }{{"iface", "-i"}, {"source", "-source"}, {"dest", "-dest"}, {"proto", "-p"},
		{"dport", "-dport"}, {"sport", "-sport"}, {"icmp-type", "-icmp-type"}, {"log", "-log"}} {
		if v := rule[k.key]; v != "" {
			fmt.Fprintf(&b, " %s %s", k.flag, v)
		}
	}
	if c := rule["comment"]; c != "" {
		b.WriteString(" # " + c)
	}
	return b.String()
}

// firewallEdit is one step of converging a firewall: what the plan shows
// (a field: a rule added, changed, moved or deleted; the options) and the
// writes that make it.
type firewallEdit struct {
	field FieldChange
	ops   []FirewallOp
}

// firewallDiff works out the edits that bring a firewall to the spec, in the
// order they are made: phoenix's rules changed, deleted, then put in place
// top down, and the options last, so that a firewall being enabled with a
// strict policy has its rules first. Each edit's positions are those after
// the edits before it. prune also deletes the rules people made; notes say
// what is kept without it.
func firewallDiff(fw *spec.Firewall, have FirewallConfig, prune bool) (edits []firewallEdit, notes []string) {
	// Aliases and ipsets are made before the rules that use them and
	// deleted after (firewall_sets.go).
	makes, deletes, setNotes := setEdits(fw, have, prune)
	edits = makes
	if fw.Rules != nil {
		ruled, ruleNotes := ruleEdits(fw.Rules, have, prune)
		edits, notes = append(edits, ruled...), ruleNotes
	}
	edits, notes = append(edits, deletes...), append(notes, setNotes...)
	var fields []FieldChange
	set, del := map[string]string{}, []string(nil)
	opts := firewallOptions(fw)
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		want, now := *opts[k], have.Options[k]
		if want == now {
			continue
		}
		fields = append(fields, FieldChange{Key: "firewall " + k, Before: now, After: want})
		if want == "" {
			del = append(del, k)
		} else {
			set[k] = want
		}
	}
	for _, f := range fields {
		edits = append(edits, firewallEdit{field: f})
	}
	if len(fields) > 0 {
		// One write sets every option.
		edits[len(edits)-1].ops = []FirewallOp{{Kind: FirewallSetOptions, Set: set, Delete: del, Digest: have.OptionsDigest}}
	}
	return edits, notes
}

// ruleItem is a rule of the list as the edits change it.
type ruleItem struct {
	rule  map[string]string
	owned bool
	// want is the index of the spec rule it becomes, -1 for none.
	want int
}

// ruleEdits plans the rules: each spec rule takes phoenix's rule that equals
// it, or else one of phoenix's rules that equals none (updated), or else a
// new one; phoenix's rules left over are deleted; then the spec's rules are
// put at the top in order.
func ruleEdits(rules []spec.FirewallRule, have FirewallConfig, prune bool) (edits []firewallEdit, notes []string) {
	want := make([]map[string]string, len(rules))
	for i, r := range rules {
		want[i] = firewallRuleParams(r)
	}
	cur := make([]*ruleItem, len(have.Rules))
	for i, r := range have.Rules {
		cur[i] = &ruleItem{rule: comparableRule(r), owned: ownedRule(r), want: -1}
	}
	taken := make([]*ruleItem, len(want))
	for i, w := range want {
		for _, it := range cur {
			if it.owned && it.want < 0 && maps.Equal(it.rule, w) {
				it.want, taken[i] = i, it
				break
			}
		}
	}
	var spare []*ruleItem
	for _, it := range cur {
		if it.owned && it.want < 0 {
			spare = append(spare, it)
		}
	}
	pos := func(it *ruleItem) int { return slices.Index(cur, it) }
	for i, w := range want {
		if taken[i] != nil || len(spare) == 0 {
			continue
		}
		it := spare[0]
		spare = spare[1:]
		set, del := map[string]string{}, []string(nil)
		for _, k := range firewallRuleKeys {
			switch {
			case w[k] != "" && w[k] != it.rule[k]:
				set[k] = w[k]
			case w[k] == "" && it.rule[k] != "":
				del = append(del, k)
			}
		}
		p := pos(it)
		edits = append(edits, firewallEdit{
			field: FieldChange{Key: fmt.Sprintf("firewall rule %d", p), Before: RuleText(it.rule), After: RuleText(w)},
			ops:   []FirewallOp{{Kind: FirewallUpdateRule, Pos: p, Set: set, Delete: del, Digest: have.RulesDigest}},
		})
		it.rule, it.want, taken[i] = maps.Clone(w), i, it
	}
	// Deletions go bottom up, so that each position is still the one read.
	for i := len(cur) - 1; i >= 0; i-- {
		it := cur[i]
		if it.want >= 0 || !it.owned && !prune {
			continue
		}
		edits = append(edits, firewallEdit{
			field: FieldChange{Key: fmt.Sprintf("firewall rule %d", i), Before: RuleText(it.rule)},
			ops:   []FirewallOp{{Kind: FirewallDeleteRule, Pos: i, Digest: have.RulesDigest}},
		})
		cur = slices.Delete(cur, i, i+1)
	}
	for i, it := range cur {
		if !it.owned {
			notes = append(notes, fmt.Sprintf("firewall rule %d (%s) was not made by phoenix: it is kept after phoenix's rules; --prune removes it", i, RuleText(it.rule)))
		}
	}
	for i := range want {
		it := taken[i]
		if it == nil {
			// Proxmox adds a rule at the top; a move puts it in its place.
			it = &ruleItem{rule: want[i], owned: true, want: i}
			cur = slices.Insert(cur, 0, it)
			ops := []FirewallOp{{Kind: FirewallCreateRule, Set: want[i]}}
			if i > 0 {
				// moveto counts positions before the move: the rule goes
				// before what is at i+1 now, which is at i without it.
				ops = append(ops, FirewallOp{Kind: FirewallMoveRule, Pos: 0, MoveTo: i + 1})
				cur = slices.Delete(cur, 0, 1)
				cur = slices.Insert(cur, i, it)
			}
			edits = append(edits, firewallEdit{field: FieldChange{Key: fmt.Sprintf("firewall rule %d", i), After: RuleText(want[i])}, ops: ops})
			continue
		}
		if p := pos(it); p != i {
			edits = append(edits, firewallEdit{
				field: FieldChange{Key: fmt.Sprintf("firewall rule %d", p), Before: RuleText(it.rule) + " (at " + fmt.Sprint(p) + ")",
					After: RuleText(it.rule) + " (at " + fmt.Sprint(i) + ", the spec's order)"},
				ops: []FirewallOp{{Kind: FirewallMoveRule, Pos: p, MoveTo: i, Digest: have.RulesDigest}},
			})
			cur = slices.Delete(cur, p, p+1)
			cur = slices.Insert(cur, i, it)
		}
	}
	return edits, notes
}

// firewallChange is the plan's change for a guest's firewall, and the notes
// on rules it keeps. og.Firewall is the firewall the guest has, or will have
// when it is made.
func (p *planner) firewallChange(r *spec.Resolved, og *ObservedGuest) (*Change, []string, *Problem) {
	fw := r.Settings.Firewall
	if fw == nil {
		return nil, nil, nil
	}
	if og.FirewallErr != nil {
		pr := problem(ProblemObserve, "reading its firewall failed: %v", og.FirewallErr)
		return nil, nil, &pr
	}
	if pr := p.securityGroupProblem(fw); pr != nil {
		return nil, nil, pr
	}
	if pr := p.firewallRefProblem(fw); pr != nil {
		return nil, nil, pr
	}
	have := FirewallConfig{}
	if og.Firewall != nil {
		have = *og.Firewall
	}
	edits, notes := firewallDiff(fw, have, p.opts.Prune)
	if len(edits) == 0 {
		return nil, notes, nil
	}
	c := &Change{Action: Firewall, Reason: firewallReason(edits)}
	for _, e := range edits {
		c.Fields = append(c.Fields, e.field)
	}
	return c, notes, nil
}

// firewallReason counts the edits in words.
func firewallReason(edits []firewallEdit) string {
	var add, change, move, del, opts int
	for _, e := range edits {
		switch {
		case isSetEdit(e):
		case !strings.HasPrefix(e.field.Key, "firewall rule "):
			opts++
		case e.field.Before == "":
			add++
		case e.field.After == "":
			del++
		case strings.HasSuffix(e.field.After, "the spec's order)"):
			move++
		default:
			change++
		}
	}
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{add, "to add"}, {change, "to change"}, {move, "out of the spec's order"}, {del, "to delete"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d rule(s) %s", c.n, c.what))
		}
	}
	parts = append(parts, setReason(edits)...)
	if opts > 0 {
		parts = append(parts, fmt.Sprintf("%d option(s) differ from the spec", opts))
	}
	return "firewall: " + strings.Join(parts, ", ")
}

// securityGroupProblem names a group a rule uses that the cluster does not
// define: Proxmox accepts such a rule and ignores it when it builds the
// firewall, so phoenix refuses it.
func (p *planner) securityGroupProblem(fw *spec.Firewall) *Problem {
	var missing []string
	for _, rule := range fw.Rules {
		if rule.Group == "" {
			continue
		}
		if p.obs.SecurityGroupsErr != nil {
			pr := problem(ProblemObserve, "reading the cluster's security groups failed: %v", p.obs.SecurityGroupsErr)
			return &pr
		}
		if !slices.Contains(p.obs.SecurityGroups, rule.Group) && !slices.Contains(missing, rule.Group) {
			missing = append(missing, rule.Group)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	pr := problem(ProblemSpec, "its firewall uses security group(s) %s, which the cluster does not define (Datacenter > Firewall > Security Group); Proxmox would ignore such a rule",
		strings.Join(missing, ", "))
	return &pr
}

// firewallAfter is a firewall with the spec applied: what a clone of it
// starts with.
func firewallAfter(r *spec.Resolved, og *ObservedGuest) *FirewallConfig {
	var have FirewallConfig
	if og.Firewall != nil {
		have = *og.Firewall
	}
	fw := r.Settings.Firewall
	if fw == nil {
		if og.Firewall == nil {
			return nil
		}
		return &have
	}
	out := FirewallConfig{Options: maps.Clone(have.Options)}
	if out.Options == nil {
		out.Options = map[string]string{}
	}
	for k, v := range firewallOptions(fw) {
		if *v == "" {
			delete(out.Options, k)
		} else {
			out.Options[k] = *v
		}
	}
	setsAfter(fw, have, &out)
	if fw.Rules == nil {
		out.Rules = have.Rules
		return &out
	}
	for _, rule := range fw.Rules {
		out.Rules = append(out.Rules, firewallRuleParams(rule))
	}
	for _, rule := range have.Rules {
		if !ownedRule(rule) {
			out.Rules = append(out.Rules, rule)
		}
	}
	return &out
}

// firewallWanted reports whether a spec manages the firewall of the guest at vmid.
func firewallWanted(res *spec.Resolution, vmid int) bool {
	r := specAt(res, vmid)
	return r != nil && r.Settings.Firewall != nil
}

// usesSecurityGroups reports whether any spec's firewall names a security group.
func usesSecurityGroups(res *spec.Resolution) bool {
	for _, r := range res.Guests {
		if fw := r.Settings.Firewall; fw != nil && slices.ContainsFunc(fw.Rules, func(x spec.FirewallRule) bool { return x.Group != "" }) {
			return true
		}
	}
	return false
}

// observeFirewall reads a guest's firewall when a spec manages it.
func observeFirewall(rd reader, cluster Cluster, res *spec.Resolution, og *ObservedGuest) {
	if !firewallWanted(res, og.VMID) {
		return
	}
	var fw FirewallConfig
	og.FirewallErr = rd.retry(fmt.Sprintf("read the firewall of %d", og.VMID), func() (err error) {
		fw, err = cluster.Firewall(rd.ctx, og.Node, og.VMID)
		return err
	})
	if og.FirewallErr == nil {
		og.Firewall = &fw
	}
}

// observeSecurityGroups reads the cluster's security groups when a spec uses one.
func observeSecurityGroups(rd reader, cluster Cluster, res *spec.Resolution, obs *Observed) {
	if !usesSecurityGroups(res) {
		return
	}
	obs.SecurityGroupsErr = rd.retry("read the cluster's security groups", func() (err error) {
		obs.SecurityGroups, err = cluster.SecurityGroups(rd.ctx)
		return err
	})
}

// maxFirewallWrites bounds the writes of one firewall change: each write is
// followed by a fresh read, and a firewall someone keeps changing must not
// hold a guest forever.
const maxFirewallWrites = 200

// convergeFirewall makes a guest's firewall the spec's, one write at a time:
// it reads the firewall, works out the edits as the plan does and makes the
// first, until none is left. Each write after the first read carries the
// digest it was worked out from, so a change someone makes meanwhile fails
// the write (ErrConflict) instead of landing on the wrong rule.
func (e *engine) convergeFirewall(ctx context.Context, g GuestPlan, r *spec.Resolved) error {
	fw := r.Settings.Firewall
	if fw == nil {
		return nil
	}
	for range maxFirewallWrites {
		var have FirewallConfig
		if err := e.retry(ctx, g, Event{Action: Firewall, Step: "read"}, func() (err error) {
			have, err = e.cluster.Firewall(ctx, g.Node, g.VMID)
			return err
		}); err != nil {
			return err
		}
		edits, _ := firewallDiff(fw, have, e.opts.Prune)
		i := slices.IndexFunc(edits, func(ed firewallEdit) bool { return len(ed.ops) > 0 })
		if i < 0 {
			return nil
		}
		err := e.firewallEdit(ctx, g, edits[i].ops)
		if errors.Is(err, ErrConflict) {
			continue // read again
		}
		if err != nil {
			return err
		}
	}
	return withKind(ErrorChanged, fmt.Errorf("the firewall of %d still differs from the spec after %d writes: someone keeps changing it", g.VMID, maxFirewallWrites))
}

// firewallEdit makes one edit's writes. A rule Proxmox added at the top is
// moved to its place at once, with the digest of the list that shows it
// there; were it not, the next read would find the rules below it out of
// place and move each.
func (e *engine) firewallEdit(ctx context.Context, g GuestPlan, ops []FirewallOp) error {
	for i, op := range ops {
		if i > 0 {
			var have FirewallConfig
			if err := e.retry(ctx, g, Event{Action: Firewall, Step: "read"}, func() (err error) {
				have, err = e.cluster.Firewall(ctx, g.Node, g.VMID)
				return err
			}); err != nil {
				return err
			}
			created := ops[0].Set
			if len(have.Rules) <= op.Pos || !maps.Equal(comparableRule(have.Rules[op.Pos]), comparableRule(created)) {
				return nil // someone changed the rules meanwhile: the next read sorts it out
			}
			op.Digest = have.RulesDigest
		}
		if err := e.retry(ctx, g, Event{Action: Firewall, Step: "write"}, func() error {
			return e.cluster.ChangeFirewall(ctx, g.Node, g.VMID, op)
		}); err != nil {
			return err
		}
	}
	return nil
}
