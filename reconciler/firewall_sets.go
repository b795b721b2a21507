package reconciler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// A guest's firewall also holds aliases (named addresses) and ipsets (named
// sets of addresses), each with an API of its own
// (/nodes/{node}/lxc/{vmid}/firewall/aliases and .../firewall/ipset). phoenix
// owns them as it owns rules, by the comment: an alias or ipset whose comment
// is "phoenix" or starts with "phoenix: " is phoenix's, and it makes it what
// the spec says; any other is a person's, kept and reported, deleted only
// with --prune. An ipset's entries belong to their ipset: phoenix's ipset
// holds exactly the spec's entries. Without aliases (ipsets) in a guest's
// lineage phoenix leaves them alone, as it does rules.
//
// Order. Proxmox refuses a rule (create or update) that names an alias or
// ipset the guest and the cluster lack ("no such alias 'x'", "no such
// ipset 'x'"), but deletes an alias or ipset without asking whether a rule
// uses it: the rule then stays in the file and is left out of the firewall
// it builds (it carries errors), which for a DROP rule opens what it
// closed. So phoenix makes aliases, then ipsets, before it changes rules,
// and deletes ipsets, then aliases (an ipset entry may name an alias),
// after: a rule never names what is missing.

// FirewallAlias is an alias as the API reads it.
type FirewallAlias struct {
	Name, CIDR, Comment string
}

// FirewallIPSet is an ipset as the API reads it: its name, comment and
// entries, and Digest, the digest of its entries for the next write.
type FirewallIPSet struct {
	Name, Comment string
	Entries       []FirewallIPSetEntry
	Digest        string
}

// FirewallIPSetEntry is one address of an ipset.
type FirewallIPSetEntry struct {
	CIDR    string
	NoMatch bool
	Comment string
}

// ClusterFirewallSets are the names of the cluster's aliases and ipsets
// (/cluster/firewall/aliases, /cluster/firewall/ipset), which a rule names
// with dc/ (or without a scope).
type ClusterFirewallSets struct {
	Aliases []string
	IPSets  []string
}

// ownedComment reports whether an alias's or ipset's comment carries
// phoenix's marker.
func ownedComment(c string) bool {
	return c == FirewallMarker || strings.HasPrefix(c, FirewallMarker+": ")
}

// markedComment is the comment phoenix gives an alias or ipset.
func markedComment(c string) string {
	if c == "" {
		return FirewallMarker
	}
	return FirewallMarker + ": " + c
}

// AliasText writes an alias as /etc/pve/firewall/VMID.fw does: name cidr # comment.
func AliasText(a FirewallAlias) string {
	s := a.Name + " " + a.CIDR
	if a.Comment != "" {
		s += " # " + a.Comment
	}
	return s
}

// EntryText writes an ipset entry as the file does: !cidr for nomatch.
func EntryText(e FirewallIPSetEntry) string {
	s := e.CIDR
	if e.NoMatch {
		s = "!" + s
	}
	if e.Comment != "" {
		s += " # " + e.Comment
	}
	return s
}

func wantAlias(a spec.FirewallAlias) FirewallAlias {
	return FirewallAlias{Name: a.Name, CIDR: spec.FirewallAddress(a.CIDR), Comment: markedComment(a.Comment)}
}

func wantEntry(e spec.FirewallIPSetEntry) FirewallIPSetEntry {
	return FirewallIPSetEntry{CIDR: spec.FirewallAddress(e.CIDR), NoMatch: e.NoMatch, Comment: e.Comment}
}

func aliasParams(a FirewallAlias) map[string]string {
	return map[string]string{"cidr": a.CIDR, "comment": a.Comment}
}

func entryParams(e FirewallIPSetEntry) map[string]string {
	p := map[string]string{}
	if e.NoMatch {
		p["nomatch"] = "1"
	}
	if e.Comment != "" {
		p["comment"] = e.Comment
	}
	return p
}

// setEdits works out the edits of the aliases and ipsets: first those that
// make and change them (before the rules), then those that delete them
// (after the rules), each one write.
func setEdits(fw *spec.Firewall, have FirewallConfig, prune bool) (makes, deletes []firewallEdit, notes []string) {
	field := func(key, before, after string) FieldChange {
		return FieldChange{Key: key, Before: before, After: after}
	}
	if fw.Aliases != nil {
		for _, sa := range fw.Aliases {
			w := wantAlias(sa)
			key := "firewall alias " + w.Name
			i := slices.IndexFunc(have.Aliases, func(a FirewallAlias) bool { return strings.EqualFold(a.Name, w.Name) })
			switch {
			case i < 0:
				makes = append(makes, firewallEdit{field: field(key, "", AliasText(w)),
					ops: []FirewallOp{{Kind: FirewallCreateAlias, Name: w.Name, Set: aliasParams(w)}}})
			case !ownedComment(have.Aliases[i].Comment) && !prune:
				notes = append(notes, fmt.Sprintf("firewall alias %s (%s) was not made by phoenix and has the name of the spec's: it is kept as it is; --prune replaces it",
					have.Aliases[i].Name, AliasText(have.Aliases[i])))
			case have.Aliases[i] != w:
				// The update also writes the name as the spec spells it.
				makes = append(makes, firewallEdit{field: field(key, AliasText(have.Aliases[i]), AliasText(w)),
					ops: []FirewallOp{{Kind: FirewallUpdateAlias, Name: w.Name, Set: aliasParams(w), Digest: have.AliasesDigest}}})
			}
		}
	}
	if fw.IPSets != nil {
		for _, ss := range fw.IPSets {
			key := "firewall ipset " + ss.Name
			comment := markedComment(ss.Comment)
			i := slices.IndexFunc(have.IPSets, func(s FirewallIPSet) bool { return s.Name == ss.Name })
			var cur FirewallIPSet
			switch {
			case i < 0:
				makes = append(makes, firewallEdit{field: field(key, "", "# "+comment),
					ops: []FirewallOp{{Kind: FirewallCreateIPSet, Name: ss.Name, Set: map[string]string{"comment": comment}}}})
			case !ownedComment(have.IPSets[i].Comment) && !prune:
				notes = append(notes, fmt.Sprintf("firewall ipset %s (%d entries) was not made by phoenix and has the name of the spec's: it is kept as it is; --prune replaces it",
					ss.Name, len(have.IPSets[i].Entries)))
				continue
			default:
				cur = have.IPSets[i]
				if cur.Comment != comment {
					makes = append(makes, firewallEdit{field: field(key, "# "+cur.Comment, "# "+comment),
						ops: []FirewallOp{{Kind: FirewallUpdateIPSet, Name: ss.Name, Set: map[string]string{"comment": comment}, Digest: have.IPSetsDigest}}})
				}
			}
			makes = append(makes, entryEdits(key, ss, cur)...)
		}
	}
	// Deletions: ipsets before aliases, as an ipset entry may name an alias.
	if fw.IPSets != nil {
		for _, s := range have.IPSets {
			if slices.ContainsFunc(fw.IPSets, func(ss spec.FirewallIPSet) bool { return ss.Name == s.Name }) {
				continue
			}
			if !ownedComment(s.Comment) && !prune {
				notes = append(notes, fmt.Sprintf("firewall ipset %s (%d entries) was not made by phoenix: it is kept; --prune removes it", s.Name, len(s.Entries)))
				continue
			}
			deletes = append(deletes, firewallEdit{field: field("firewall ipset "+s.Name, fmt.Sprintf("# %s (%d entries)", s.Comment, len(s.Entries)), ""),
				ops: []FirewallOp{{Kind: FirewallDeleteIPSet, Name: s.Name}}})
		}
	}
	if fw.Aliases != nil {
		for _, a := range have.Aliases {
			if slices.ContainsFunc(fw.Aliases, func(sa spec.FirewallAlias) bool { return strings.EqualFold(sa.Name, a.Name) }) {
				continue
			}
			if !ownedComment(a.Comment) && !prune {
				notes = append(notes, fmt.Sprintf("firewall alias %s (%s) was not made by phoenix: it is kept; --prune removes it", a.Name, AliasText(a)))
				continue
			}
			deletes = append(deletes, firewallEdit{field: field("firewall alias "+a.Name, AliasText(a), ""),
				ops: []FirewallOp{{Kind: FirewallDeleteAlias, Name: a.Name, Digest: have.AliasesDigest}}})
		}
	}
	return makes, deletes, notes
}

// entryEdits makes an ipset's entries the spec's: entries are a set, so
// their order does not matter; each differing entry is one write.
func entryEdits(key string, ss spec.FirewallIPSet, cur FirewallIPSet) []firewallEdit {
	var edits []firewallEdit
	want := make([]FirewallIPSetEntry, len(ss.Entries))
	for i, e := range ss.Entries {
		want[i] = wantEntry(e)
	}
	for _, w := range want {
		i := slices.IndexFunc(cur.Entries, func(e FirewallIPSetEntry) bool { return e.CIDR == w.CIDR })
		switch {
		case i < 0:
			edits = append(edits, firewallEdit{field: FieldChange{Key: key + " " + w.CIDR, After: EntryText(w)},
				ops: []FirewallOp{{Kind: FirewallAddIPSetEntry, Name: ss.Name, CIDR: w.CIDR, Set: entryParams(w)}}})
		case cur.Entries[i] != w:
			edits = append(edits, firewallEdit{field: FieldChange{Key: key + " " + w.CIDR, Before: EntryText(cur.Entries[i]), After: EntryText(w)},
				ops: []FirewallOp{{Kind: FirewallUpdateIPSetEntry, Name: ss.Name, CIDR: w.CIDR, Set: entryParams(w), Digest: cur.Digest}}})
		}
	}
	for _, e := range cur.Entries {
		if !slices.ContainsFunc(want, func(w FirewallIPSetEntry) bool { return w.CIDR == e.CIDR }) {
			edits = append(edits, firewallEdit{field: FieldChange{Key: key + " " + e.CIDR, Before: EntryText(e)},
				ops: []FirewallOp{{Kind: FirewallDeleteIPSetEntry, Name: ss.Name, CIDR: e.CIDR, Digest: cur.Digest}}})
		}
	}
	return edits
}

// setReason counts the alias and ipset edits in words.
func setReason(edits []firewallEdit) []string {
	var parts []string
	for _, what := range []string{"alias", "ipset"} {
		var add, change, del int
		for _, e := range edits {
			rest, ok := strings.CutPrefix(e.field.Key, "firewall "+what+" ")
			if !ok {
				continue
			}
			switch {
			case strings.Contains(rest, " "):
				change++ // an entry of an ipset
			case e.field.Before == "":
				add++
			case e.field.After == "":
				del++
			default:
				change++
			}
		}
		for _, c := range []struct {
			n    int
			verb string
		}{{add, "to add"}, {change, "to change"}, {del, "to delete"}} {
			if c.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s(es) %s", c.n, what, c.verb))
			}
		}
	}
	return parts
}

// isSetEdit reports whether an edit is of an alias or ipset.
func isSetEdit(e firewallEdit) bool {
	return strings.HasPrefix(e.field.Key, "firewall alias ") || strings.HasPrefix(e.field.Key, "firewall ipset ")
}

// firewallRefs are the aliases and ipsets a firewall's rules and ipset
// entries name.
func firewallRefs(fw *spec.Firewall) []spec.FirewallRef {
	var refs []spec.FirewallRef
	add := func(s string) {
		if ref, ok := spec.ParseFirewallRef(s); ok && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	for _, r := range fw.Rules {
		add(r.Source)
		add(r.Dest)
	}
	for _, s := range fw.IPSets {
		for _, e := range s.Entries {
			add(e.CIDR)
		}
	}
	return refs
}

// specDefines reports whether a guest's spec defines what ref names.
func specDefines(fw *spec.Firewall, ref spec.FirewallRef) bool {
	if ref.IPSet {
		return slices.ContainsFunc(fw.IPSets, func(s spec.FirewallIPSet) bool { return s.Name == ref.Name })
	}
	return slices.ContainsFunc(fw.Aliases, func(a spec.FirewallAlias) bool { return strings.EqualFold(a.Name, ref.Name) })
}

// needsCluster reports whether a reference can only be found in the
// cluster's aliases or ipsets.
func needsCluster(fw *spec.Firewall, ref spec.FirewallRef) bool {
	return ref.Scope == "dc" || ref.Scope == "" && !specDefines(fw, ref)
}

// usesClusterSets reports whether any spec's firewall names a cluster's
// alias or ipset.
func usesClusterSets(res *spec.Resolution) bool {
	for _, r := range res.Guests {
		if fw := r.Settings.Firewall; fw != nil && slices.ContainsFunc(firewallRefs(fw), func(ref spec.FirewallRef) bool { return needsCluster(fw, ref) }) {
			return true
		}
	}
	return false
}

// observeClusterSets reads the cluster's aliases and ipsets when a spec names one.
func observeClusterSets(rd reader, cluster Cluster, res *spec.Resolution, obs *Observed) {
	if !usesClusterSets(res) {
		return
	}
	obs.ClusterSetsErr = rd.retry("read the cluster's firewall aliases and ipsets", func() (err error) {
		var sets ClusterFirewallSets
		sets, err = cluster.ClusterFirewallSets(rd.ctx)
		obs.ClusterSets = &sets
		return err
	})
}

// firewallRefProblem names the aliases and ipsets the spec's firewall uses
// that neither the spec nor the cluster defines: Proxmox would refuse the
// rule ("no such alias"), or keep a rule that names one deleted meanwhile
// and leave it out of the firewall. A guest/ reference must be the spec's
// (phoenix does not manage what a person made beside it), a dc/ one the
// cluster's, one without a scope either's; an sdn/ ipset belongs to a
// virtual network, which no guest spec defines.
func (p *planner) firewallRefProblem(fw *spec.Firewall) *Problem {
	var missing []string
	for _, ref := range firewallRefs(fw) {
		found := ref.Scope != "dc" && ref.Scope != "sdn" && specDefines(fw, ref)
		if !found && needsCluster(fw, ref) {
			if p.obs.ClusterSetsErr != nil {
				pr := problem(ProblemObserve, "reading the cluster's firewall aliases and ipsets failed: %v", p.obs.ClusterSetsErr)
				return &pr
			}
			if c := p.obs.ClusterSets; c != nil {
				if ref.IPSet {
					found = slices.Contains(c.IPSets, strings.ToLower(ref.Name))
				} else {
					found = slices.ContainsFunc(c.Aliases, func(a string) bool { return strings.EqualFold(a, ref.Name) })
				}
			}
		}
		if !found {
			missing = append(missing, ref.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	pr := problem(ProblemSpec, "its firewall uses %s, which neither its spec (firewall.aliases, firewall.ipsets) nor the cluster (Datacenter > Firewall > Alias, IPSet) defines; Proxmox would refuse the rule",
		strings.Join(missing, ", "))
	return &pr
}

// setsAfter are the aliases and ipsets a firewall has with the spec applied.
func setsAfter(fw *spec.Firewall, have FirewallConfig, out *FirewallConfig) {
	out.Aliases, out.IPSets = have.Aliases, have.IPSets
	if fw.Aliases != nil {
		out.Aliases = nil
		for _, a := range fw.Aliases {
			out.Aliases = append(out.Aliases, wantAlias(a))
		}
		for _, a := range have.Aliases {
			if !ownedComment(a.Comment) && !specDefines(fw, spec.FirewallRef{Name: a.Name}) {
				out.Aliases = append(out.Aliases, a)
			}
		}
	}
	if fw.IPSets != nil {
		out.IPSets = nil
		for _, s := range fw.IPSets {
			set := FirewallIPSet{Name: s.Name, Comment: markedComment(s.Comment)}
			for _, e := range s.Entries {
				set.Entries = append(set.Entries, wantEntry(e))
			}
			out.IPSets = append(out.IPSets, set)
		}
		for _, s := range have.IPSets {
			if !ownedComment(s.Comment) && !specDefines(fw, spec.FirewallRef{IPSet: true, Name: s.Name}) {
				out.IPSets = append(out.IPSets, s)
			}
		}
	}
}
