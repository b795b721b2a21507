package spec

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"strings"
)

// FirewallAlias is a named address of the guest's firewall
// (/nodes/{node}/lxc/{vmid}/firewall/aliases): a rule or an ipset entry may
// use its name where it would write the address.
type FirewallAlias struct {
	// Name is what rules call it: a letter, then letters, digits, - and _,
	// 2 to 64 characters. Proxmox compares alias names without regard to
	// case.
	Name string `json:"name"`
	// CIDR is an IP address or a CIDR network.
	CIDR string `json:"cidr"`
	// Comment says what the address is. One line.
	Comment string `json:"comment,omitempty"`
}

// FirewallIPSet is a named set of addresses of the guest's firewall
// (/nodes/{node}/lxc/{vmid}/firewall/ipset), which a rule uses as +name.
type FirewallIPSet struct {
	// Name is what rules call it after the +: a lower-case letter, then
	// lower-case letters, digits, - and _, 2 to 64 characters.
	Name string `json:"name"`
	// Comment says what the set is for. One line.
	Comment string `json:"comment,omitempty"`
	// Entries are the set's addresses; the set holds exactly these.
	Entries []FirewallIPSetEntry `json:"entries,omitempty"`
}

// FirewallIPSetEntry is one address of an ipset.
type FirewallIPSetEntry struct {
	// CIDR is an IP address, a CIDR network or an alias name (with an
	// optional guest/ or dc/ scope).
	CIDR string `json:"cidr"`
	// NoMatch excludes the address from the set instead (Proxmox's nomatch).
	NoMatch bool `json:"nomatch,omitempty"`
	// Comment says what the address is. One line.
	Comment string `json:"comment,omitempty"`
}

// Proxmox VE's names of aliases and ipsets (pve-firewall src/PVE/Firewall.pm:
// $ip_alias_pattern, $ipset_name_pattern, the pve-fw-alias and ipset-name
// standard options).
var (
	firewallAliasName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]+$`)
	// firewallIPSetName is lower case: Proxmox writes an ipset as
	// [IPSET name] and reads the name back in lower case, while a rule's
	// +name must match it as it is.
	firewallIPSetName = regexp.MustCompile(`^[a-z][a-z0-9_-]+$`)
	// firewallRef is a reference to an alias or an ipset in a rule or an
	// ipset entry.
	firewallRef = regexp.MustCompile(`^(\+)?(?:(guest|dc|sdn)/)?([A-Za-z][A-Za-z0-9_-]+)$`)
)

const maxFirewallSetName = 64

// FirewallRef is an alias or an ipset that a rule's source or dest, or an
// ipset entry, names.
type FirewallRef struct {
	// IPSet is true for +name.
	IPSet bool
	// Scope is where Proxmox looks it up: "guest" (the guest's own),
	// "dc" (the cluster's), "sdn", or "" (the guest's, then the cluster's).
	Scope string
	// Name is the name without + and scope.
	Name string
}

// ParseFirewallRef reads an alias or ipset reference; ok is false for an
// address.
func ParseFirewallRef(s string) (ref FirewallRef, ok bool) {
	m := firewallRef.FindStringSubmatch(s)
	if m == nil || m[1] == "" && m[2] == "sdn" {
		return FirewallRef{}, false
	}
	return FirewallRef{IPSet: m[1] == "+", Scope: m[2], Name: m[3]}, true
}

// String writes the reference as a rule does.
func (r FirewallRef) String() string {
	s := r.Name
	if r.Scope != "" {
		s = r.Scope + "/" + s
	}
	if r.IPSet {
		s = "+" + s
	}
	return s
}

// FirewallAddress is an address the way Proxmox reads it back from the
// firewall file (parse_ip_or_cidr): a /32 or /128 network is its address.
func FirewallAddress(s string) string {
	if a, ok := strings.CutSuffix(s, "/32"); ok && !strings.Contains(a, ":") {
		return a
	}
	if a, ok := strings.CutSuffix(s, "/128"); ok && strings.Contains(a, ":") {
		return a
	}
	return s
}

// checkFirewallSets checks the aliases and ipsets the way the API's
// formats and pve-firewall's handlers would, and what Proxmox would store
// differently from how it was written (which phoenix would then see as a
// difference on every pass).
func checkFirewallSets(fw *Firewall, bad func(field, format string, args ...any)) {
	aliases := map[string]int{}
	for i, a := range fw.Aliases {
		field := fmt.Sprintf("spec.firewall.aliases[%d]", i)
		switch {
		case len(a.Name) > maxFirewallSetName || !firewallAliasName.MatchString(a.Name):
			bad(field+".name", "%q is not an alias name: a letter, then letters, digits, - and _, 2 to %d characters", a.Name, maxFirewallSetName)
		default:
			key := strings.ToLower(a.Name)
			if j, dup := aliases[key]; dup {
				bad(field+".name", "alias %q is already aliases[%d] (Proxmox compares alias names without regard to case)", a.Name, j)
			} else {
				aliases[key] = i
			}
		}
		if err := checkFirewallCIDR(a.CIDR, false); err != nil {
			bad(field+".cidr", "%v", err)
		}
		checkSetComment(a.Comment, field, bad)
	}
	ipsets := map[string]int{}
	for i, set := range fw.IPSets {
		field := fmt.Sprintf("spec.firewall.ipsets[%d]", i)
		switch {
		case len(set.Name) > maxFirewallSetName || !firewallIPSetName.MatchString(set.Name):
			bad(field+".name", "%q is not an ipset name: a lower-case letter, then lower-case letters, digits, - and _, 2 to %d characters "+
				"(Proxmox reads ipset names back in lower case)", set.Name, maxFirewallSetName)
		default:
			if j, dup := ipsets[set.Name]; dup {
				bad(field+".name", "ipset %q is already ipsets[%d]", set.Name, j)
			} else {
				ipsets[set.Name] = i
			}
		}
		checkSetComment(set.Comment, field, bad)
		seen := map[string]int{}
		for k, e := range set.Entries {
			efield := fmt.Sprintf("%s.entries[%d]", field, k)
			if ref, ok := ParseFirewallRef(e.CIDR); ok && !ref.IPSet && ref.Scope != "sdn" {
				if len(ref.Name) > maxFirewallSetName {
					bad(efield+".cidr", "alias name too long")
				}
			} else if err := checkFirewallCIDR(e.CIDR, true); err != nil {
				bad(efield+".cidr", "%v", err)
				continue
			}
			key := FirewallAddress(e.CIDR)
			if j, dup := seen[key]; dup {
				bad(efield+".cidr", "address '%s' already exists (entries[%d])", key, j)
			} else {
				seen[key] = k
			}
			checkSetComment(e.Comment, efield, bad)
		}
	}
}

// checkFirewallCIDR is the IPorCIDR format; an ipset entry is also
// normalized by create_ip (host bits cleared) and may not have a zero
// prefix, which phoenix refuses rather than see it differ.
func checkFirewallCIDR(s string, entry bool) error {
	var addr netip.Addr
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not an IP address or CIDR network", s)
		}
		if entry && p.Bits() == 0 {
			return fmt.Errorf("a zero prefix is not allowed in ipset entries")
		}
		if entry && p.Masked() != p {
			return fmt.Errorf("%q has host bits set: Proxmox stores it as %s; write that", s, p.Masked())
		}
		addr = p.Addr()
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%q is not an IP address or CIDR network", s)
		}
		addr = a
	}
	if addr.Zone() != "" {
		return fmt.Errorf("%q: an address with a zone is not an IP address or CIDR network", s)
	}
	if text, _, _ := strings.Cut(s, "/"); addr.Is6() && text != addr.String() {
		return fmt.Errorf("%q: write the IPv6 address as %s, the way Proxmox keeps it", s, addr)
	}
	return nil
}

// checkSetComment: Proxmox keeps these comments after a # on the entry's
// line of the firewall file and reads them back trimmed.
func checkSetComment(c, field string, bad func(field, format string, args ...any)) {
	if c != "" && (strings.ContainsAny(c, "\r\n") || strings.TrimSpace(c) != c) {
		bad(field+".comment", "a comment is one line, without leading or trailing spaces")
	}
}

func cloneIPSets(sets []FirewallIPSet) []FirewallIPSet {
	out := make([]FirewallIPSet, len(sets))
	for i, s := range sets {
		s.Entries = cloneEntries(s.Entries)
		out[i] = s
	}
	return out
}

func cloneEntries(entries []FirewallIPSetEntry) []FirewallIPSetEntry {
	if entries == nil {
		return nil
	}
	return append([]FirewallIPSetEntry{}, entries...)
}

var firewallSetDescriptions = map[string]string{
	"Firewall.Aliases": "Aliases are the guest's named addresses, which its rules and ipsets may use by name. " +
		"Unset, a clone has its template's; an explicit empty list removes phoenix's aliases. Aliases phoenix did not make are kept, and reported; --prune removes them.",
	"Firewall.IPSets": "IPSets are the guest's sets of addresses, which its rules use as +name. " +
		"Unset, a clone has its template's; an explicit empty list removes phoenix's ipsets. IPSets phoenix did not make are kept, and reported; --prune removes them.",
	"FirewallAlias.Name":         "Name is what rules call the alias: a letter, then letters, digits, - and _, 2 to 64 characters. Proxmox compares alias names without regard to case.",
	"FirewallAlias.CIDR":         "CIDR is an IP address or a CIDR network.",
	"FirewallAlias.Comment":      "Comment says what the address is. One line. Proxmox shows it after phoenix's marker: phoenix: COMMENT.",
	"FirewallIPSet.Name":         "Name is what rules call the set after the +: a lower-case letter, then lower-case letters, digits, - and _, 2 to 64 characters.",
	"FirewallIPSet.Comment":      "Comment says what the set is for. One line. Proxmox shows it after phoenix's marker: phoenix: COMMENT.",
	"FirewallIPSet.Entries":      "Entries are the set's addresses; the set holds exactly these.",
	"FirewallIPSetEntry.CIDR":    "CIDR is an IP address, a CIDR network (without host bits) or an alias name (with an optional guest/ or dc/ scope).",
	"FirewallIPSetEntry.NoMatch": "NoMatch excludes the address from the set instead (Proxmox's nomatch).",
	"FirewallIPSetEntry.Comment": "Comment says what the address is. One line.",
}

var firewallSetFieldRules = map[string][]rule{
	"Firewall.Aliases":        {items(notNull)},
	"Firewall.IPSets":         {items(notNull)},
	"FirewallIPSet.Entries":   {items(notNull)},
	"FirewallAlias.Name":      {required, pattern(firewallAliasName), maxLength(maxFirewallSetName)},
	"FirewallAlias.CIDR":      {required, nonEmpty},
	"FirewallIPSet.Name":      {required, pattern(firewallIPSetName), maxLength(maxFirewallSetName)},
	"FirewallIPSetEntry.CIDR": {required, nonEmpty},
}

func init() {
	maps.Copy(fieldDescriptions, firewallSetDescriptions)
	maps.Copy(fieldRules, firewallSetFieldRules)
}
