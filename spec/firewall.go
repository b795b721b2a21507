package spec

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Firewall is a guest's Proxmox VE firewall (/nodes/{node}/lxc/{vmid}/firewall):
// its options and its rules. Every field inherits on its own: unset takes the
// template's value, a set one replaces it. A clone starts with its template's
// firewall (Proxmox copies it), so the two agree.
type Firewall struct {
	// Enabled turns the guest's firewall on (Proxmox's enable; its default is off).
	Enabled *bool `json:"enabled,omitempty"`
	// PolicyIn is what happens to incoming traffic no rule matches: ACCEPT,
	// REJECT or DROP. An empty string clears it (Proxmox's default, DROP).
	PolicyIn *string `json:"policyIn,omitempty"`
	// PolicyOut is the same for outgoing traffic (Proxmox's default: ACCEPT).
	PolicyOut *string `json:"policyOut,omitempty"`
	// LogLevelIn is the log level of incoming traffic the policy handles.
	LogLevelIn *string `json:"logLevelIn,omitempty"`
	// LogLevelOut is the log level of outgoing traffic the policy handles.
	LogLevelOut *string `json:"logLevelOut,omitempty"`
	// DHCP allows DHCP (Proxmox's default: off).
	DHCP *bool `json:"dhcp,omitempty"`
	// IPFilter enables the default IP filters of every interface.
	IPFilter *bool `json:"ipfilter,omitempty"`
	// MACFilter enables the MAC address filter (Proxmox's default: on).
	MACFilter *bool `json:"macfilter,omitempty"`
	// NDP allows IPv6 neighbour discovery (Proxmox's default: on).
	NDP *bool `json:"ndp,omitempty"`
	// RAdv allows the guest to send IPv6 router advertisements.
	RAdv *bool `json:"radv,omitempty"`
	// Rules are the rules phoenix keeps, first to last, ahead of any rule
	// a person added by hand. Unset, a clone has its template's; an
	// explicit empty list removes phoenix's rules.
	Rules []FirewallRule `json:"rules,omitempty"`
	// Aliases are the guest's named addresses, which its rules and ipsets
	// may use by name. Unset, a clone has its template's; an explicit empty
	// list removes phoenix's aliases.
	Aliases []FirewallAlias `json:"aliases,omitempty"`
	// IPSets are the guest's sets of addresses, which its rules use as
	// +name. Unset, a clone has its template's; an explicit empty list
	// removes phoenix's ipsets.
	IPSets []FirewallIPSet `json:"ipsets,omitempty"`
}

// FirewallRule is one rule: a direction and an action, or a cluster
// security group, with optional matches.
type FirewallRule struct {
	// Direction is in or out; a group rule has none.
	Direction string `json:"direction,omitempty"`
	// Action is ACCEPT, DROP or REJECT.
	Action string `json:"action,omitempty"`
	// Group names a security group defined at the cluster level
	// (Datacenter > Firewall > Security Group), whose rules apply here;
	// instead of direction and action.
	Group string `json:"group,omitempty"`
	// Source restricts the packet's source address: an IP address, a CIDR
	// network, a range (a-b), a comma list of those, an alias name, or
	// +ipset.
	Source string `json:"source,omitempty"`
	// Dest restricts the destination address, written as source is.
	Dest string `json:"dest,omitempty"`
	// Proto is an IP protocol by name (tcp, udp, icmp, ...) or number.
	Proto string `json:"proto,omitempty"`
	// DPort restricts the destination port: a port, a service name, a
	// range (8000:8100) or a comma list; it needs proto tcp, udp, dccp or sctp.
	DPort string `json:"dport,omitempty"`
	// SPort restricts the source port, written as dport is.
	SPort string `json:"sport,omitempty"`
	// ICMPType is an ICMP type name or number, with proto icmp or icmpv6.
	ICMPType string `json:"icmpType,omitempty"`
	// Iface is the guest's interface by its config key: net0, net1, ...
	Iface string `json:"iface,omitempty"`
	// Log is the log level of the packets the rule matches.
	Log string `json:"log,omitempty"`
	// Comment says what the rule is for. One line.
	Comment string `json:"comment,omitempty"`
	// Enabled is false for a rule kept but not applied (default true).
	Enabled *bool `json:"enabled,omitempty"`
}

// Applies reports whether a rule is enabled (enabled is unset or true).
func (r FirewallRule) Applies() bool { return r.Enabled == nil || *r.Enabled }

// Proxmox VE's words for the firewall's settings (pve-firewall src/PVE/Firewall.pm).
var (
	firewallPolicies  = []string{"ACCEPT", "REJECT", "DROP"}
	firewallActions   = []string{"ACCEPT", "DROP", "REJECT"}
	firewallLogLevels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"}
	// firewallGroupName is $security_group_name_pattern, at most 18 characters.
	firewallGroupName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]+$`)
	// firewallIface is what a container rule's iface must be (verify_rule: net\d+).
	firewallIface = regexp.MustCompile(`^net[0-9]+$`)
	// firewallProto is a protocol name as /etc/protocols spells them, or a number.
	firewallProto = regexp.MustCompile(`^(?:[0-9]{1,3}|[a-z][a-z0-9\-.]*)$`)
	// firewallAlias is an alias name ($ip_alias_pattern), with an optional scope.
	firewallAlias = regexp.MustCompile(`^(?:(?:guest|dc)/)?[A-Za-z][A-Za-z0-9_-]+$`)
	// firewallIPSet is +name, with an optional scope ($ipset_name_pattern).
	firewallIPSet = regexp.MustCompile(`^\+(?:(?:guest|dc|sdn)/)?[A-Za-z][A-Za-z0-9_-]+$`)
	firewallPort  = regexp.MustCompile(`^(?:[0-9]+|[a-z][a-z0-9\-+._]*)$`)
)

const (
	maxFirewallGroupName = 18
	maxFirewallAddress   = 512
)

// portProtocols are the protocols whose rules may name ports
// ($PROTOCOLS_WITH_PORTS in pve-firewall).
var portProtocols = []string{"tcp", "udp", "udplite", "dccp", "sctp", "6", "17", "136", "33", "132"}

// icmpProtocols are those whose rules take an icmp type ($proto_is_icmp).
var icmpProtocols = []string{"icmp", "icmpv6", "ipv6-icmp"}

// firewall checks a guest's firewall the way Proxmox VE's verify_rule and
// option schema would, so that a spec Proxmox would refuse fails here, with
// its line, before anything is changed.
func (v *validator) firewall(g *Guest, bad func(field, format string, args ...any)) {
	fw := g.Spec.Firewall
	if fw == nil {
		return
	}
	for _, o := range []struct {
		field string
		v     *string
		words []string
	}{
		{"policyIn", fw.PolicyIn, firewallPolicies}, {"policyOut", fw.PolicyOut, firewallPolicies},
		{"logLevelIn", fw.LogLevelIn, firewallLogLevels}, {"logLevelOut", fw.LogLevelOut, firewallLogLevels},
	} {
		if o.v != nil && *o.v != "" && !slices.Contains(o.words, *o.v) {
			bad("spec.firewall."+o.field, "want one of %s (or \"\" for Proxmox's default), got %q", strings.Join(o.words, ", "), *o.v)
		}
	}
	for i, r := range fw.Rules {
		checkFirewallRule(r, func(field, format string, args ...any) {
			bad(fmt.Sprintf("spec.firewall.rules[%d]%s", i, field), format, args...)
		})
	}
	checkFirewallSets(fw, bad)
}

// checkFirewallRule is pve-firewall's verify_rule for a container's rule.
func checkFirewallRule(r FirewallRule, bad func(field, format string, args ...any)) {
	if r.Group != "" {
		switch {
		case r.Direction != "" || r.Action != "":
			bad(".group", "a group rule takes the group's rules: leave out direction and action")
		case len(r.Group) > maxFirewallGroupName || !firewallGroupName.MatchString(r.Group):
			bad(".group", "%q is not a security group name: a letter, then letters, digits, - and _, 2 to %d characters", r.Group, maxFirewallGroupName)
		}
		for _, f := range []struct{ name, v string }{{"source", r.Source}, {"dest", r.Dest}, {"proto", r.Proto}, {"dport", r.DPort},
			{"sport", r.SPort}, {"icmpType", r.ICMPType}, {"log", r.Log}} {
			if f.v != "" {
				bad("."+f.name, "a group rule matches what its group's rules match: only iface, comment and enabled go with group")
			}
		}
	} else {
		switch r.Direction {
		case "in", "out":
		case "":
			bad(".direction", "a rule needs a direction, in or out (or a group)")
		default:
			bad(".direction", "want in or out, got %q", r.Direction)
		}
		switch {
		case r.Action == "":
			bad(".action", "a rule needs an action: ACCEPT, DROP or REJECT")
		case !slices.Contains(firewallActions, r.Action):
			bad(".action", "want ACCEPT, DROP or REJECT, got %q", r.Action)
		}
	}
	if r.Iface != "" && !firewallIface.MatchString(r.Iface) {
		bad(".iface", "a container's rule names an interface by its config key, net0, net1, ...; got %q", r.Iface)
	}
	if r.Log != "" && !slices.Contains(firewallLogLevels, r.Log) {
		bad(".log", "want one of %s, got %q", strings.Join(firewallLogLevels, ", "), r.Log)
	}
	if r.Proto != "" && !firewallProto.MatchString(r.Proto) {
		bad(".proto", "%q is not a protocol name (as /etc/protocols writes it: tcp, udp, icmp, ...) or number", r.Proto)
	}
	icmp := slices.Contains(icmpProtocols, r.Proto)
	for _, p := range []struct{ name, v string }{{"dport", r.DPort}, {"sport", r.SPort}} {
		if p.v == "" {
			continue
		}
		switch {
		case r.Proto == "":
			bad("."+p.name, "%s needs a proto (tcp, udp, dccp or sctp)", p.name)
		case !slices.Contains(portProtocols, r.Proto):
			// Proxmox takes an icmp type as an icmp rule's dport too;
			// phoenix wants it in icmpType, where it says what it is.
			bad("."+p.name, "protocol '%s' does not support ports", r.Proto)
		default:
			if err := checkPorts(p.v); err != nil {
				bad("."+p.name, "%v", err)
			}
		}
	}
	if r.ICMPType != "" && !icmp {
		bad(".icmpType", "icmpType needs proto icmp or icmpv6")
	}
	for _, a := range []struct{ name, v string }{{"source", r.Source}, {"dest", r.Dest}} {
		if a.v == "" {
			continue
		}
		if err := checkAddresses(a.v); err != nil {
			bad("."+a.name, "%v", err)
		}
	}
	if c := r.Comment; c != "" && (strings.ContainsAny(c, "\r\n") || strings.TrimSpace(c) != c) {
		// Proxmox keeps a rule's comment on the rule's line, and reads it
		// back without the spaces around it.
		bad(".comment", "a rule's comment is one line, without leading or trailing spaces")
	}
}

// checkPorts is parse_port_name_number_or_range: a comma list of ports,
// service names and ranges (a:b, a <= b).
func checkPorts(s string) error {
	for item := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(item, ":")
		for _, p := range []string{lo, hi} {
			if !isRange && p == hi {
				continue
			}
			if !firewallPort.MatchString(p) {
				return fmt.Errorf("invalid port %q in %q", p, s)
			}
			if n, err := strconv.Atoi(p); err == nil && n > 65535 {
				return fmt.Errorf("invalid port '%s'", p)
			}
		}
		if isRange {
			a, errA := strconv.Atoi(lo)
			b, errB := strconv.Atoi(hi)
			if errA == nil && errB == nil && a > b {
				return fmt.Errorf("invalid port range '%s'", item)
			}
		}
	}
	return nil
}

// checkAddresses is parse_address_list: an alias, an ipset, or a comma list
// of addresses, CIDR networks and ranges of one IP version.
func checkAddresses(s string) error {
	if len(s) > maxFirewallAddress {
		return fmt.Errorf("at most %d characters", maxFirewallAddress)
	}
	if strings.HasPrefix(s, "+") {
		if !firewallIPSet.MatchString(s) {
			return fmt.Errorf("%q is not an ipset reference (+name)", s)
		}
		return nil
	}
	if firewallAlias.MatchString(s) {
		return nil
	}
	version := 0
	for item := range strings.SplitSeq(s, ",") {
		var addrs []netip.Addr
		if lo, hi, ok := strings.Cut(item, "-"); ok {
			a, errA := netip.ParseAddr(lo)
			b, errB := netip.ParseAddr(hi)
			if errA != nil || errB != nil || a.Is4() != b.Is4() || b.Less(a) {
				return fmt.Errorf("%q is not an address range (low-high, of one IP version)", item)
			}
			addrs = append(addrs, a, b)
		} else if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR network", item)
			}
			addrs = append(addrs, p.Addr())
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return fmt.Errorf("%q is not an IP address, CIDR network, range, alias or +ipset", item)
			}
			addrs = append(addrs, a)
		}
		for _, a := range addrs {
			v := 6
			if a.Is4() {
				v = 4
			}
			if version != 0 && v != version {
				return fmt.Errorf("%q mixes IPv4 and IPv6 addresses", s)
			}
			version = v
		}
	}
	return nil
}

// overlayFirewall lays a document's firewall over the one it inherits: each
// field it sets replaces the inherited one. The inherited value is copied,
// never changed: a template's settings are shared with every clone.
func overlayFirewall(s *Settings, fw *Firewall) {
	if fw == nil {
		return
	}
	out := &Firewall{}
	if s.Firewall != nil {
		out = cloneFirewall(s.Firewall)
	}
	for _, f := range []struct{ dst, src **bool }{
		{&out.Enabled, &fw.Enabled}, {&out.DHCP, &fw.DHCP}, {&out.IPFilter, &fw.IPFilter},
		{&out.MACFilter, &fw.MACFilter}, {&out.NDP, &fw.NDP}, {&out.RAdv, &fw.RAdv},
	} {
		if *f.src != nil {
			b := **f.src
			*f.dst = &b
		}
	}
	for _, f := range []struct{ dst, src **string }{
		{&out.PolicyIn, &fw.PolicyIn}, {&out.PolicyOut, &fw.PolicyOut},
		{&out.LogLevelIn, &fw.LogLevelIn}, {&out.LogLevelOut, &fw.LogLevelOut},
	} {
		if *f.src != nil {
			v := **f.src
			*f.dst = &v
		}
	}
	if fw.Rules != nil {
		out.Rules = cloneRules(fw.Rules)
	}
	if fw.Aliases != nil {
		out.Aliases = slices.Clone(fw.Aliases)
	}
	if fw.IPSets != nil {
		out.IPSets = cloneIPSets(fw.IPSets)
	}
	s.Firewall = out
}

// cloneFirewall is a deep copy.
func cloneFirewall(fw *Firewall) *Firewall {
	out := *fw
	for _, p := range []**bool{&out.Enabled, &out.DHCP, &out.IPFilter, &out.MACFilter, &out.NDP, &out.RAdv} {
		if *p != nil {
			b := **p
			*p = &b
		}
	}
	for _, p := range []**string{&out.PolicyIn, &out.PolicyOut, &out.LogLevelIn, &out.LogLevelOut} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	if fw.Rules != nil {
		out.Rules = cloneRules(fw.Rules)
	}
	if fw.Aliases != nil {
		out.Aliases = slices.Clone(fw.Aliases)
	}
	if fw.IPSets != nil {
		out.IPSets = cloneIPSets(fw.IPSets)
	}
	return &out
}

func cloneRules(rules []FirewallRule) []FirewallRule {
	out := make([]FirewallRule, len(rules))
	for i, r := range rules {
		if r.Enabled != nil {
			b := *r.Enabled
			r.Enabled = &b
		}
		out[i] = r
	}
	return out
}

// firewallDescriptions and firewallFieldRules document and check the
// firewall's fields in the JSON Schema (schema.go merges them in).
var firewallDescriptions = map[string]string{
	"GuestSpec.Firewall": "Firewall is the guest's Proxmox VE firewall: its options and rules. Every field inherits on its own: unset takes the template's value. " +
		"Rules phoenix did not make are kept, and reported; --prune removes them.",
	"Firewall.Enabled":     "Enabled turns the guest's firewall on (Proxmox's enable; its default is off).",
	"Firewall.PolicyIn":    "PolicyIn is what happens to incoming traffic no rule matches: ACCEPT, REJECT or DROP. An empty string clears it (Proxmox's default, DROP).",
	"Firewall.PolicyOut":   "PolicyOut is the same for outgoing traffic (Proxmox's default: ACCEPT). ACCEPT, REJECT or DROP; an empty string clears it.",
	"Firewall.LogLevelIn":  "LogLevelIn is the log level of incoming traffic the policy handles: emerg, alert, crit, err, warning, notice, info, debug or nolog.",
	"Firewall.LogLevelOut": "LogLevelOut is the log level of outgoing traffic the policy handles: emerg, alert, crit, err, warning, notice, info, debug or nolog.",
	"Firewall.DHCP":        "DHCP allows DHCP (Proxmox's default: off).",
	"Firewall.IPFilter":    "IPFilter enables the default IP filters of every interface.",
	"Firewall.MACFilter":   "MACFilter enables the MAC address filter (Proxmox's default: on).",
	"Firewall.NDP":         "NDP allows IPv6 neighbour discovery (Proxmox's default: on).",
	"Firewall.RAdv":        "RAdv allows the guest to send IPv6 router advertisements.",
	"Firewall.Rules": "Rules are the rules phoenix keeps, first to last, ahead of any rule a person added by hand. " +
		"Unset, a clone has its template's; an explicit empty list removes phoenix's rules.",
	"FirewallRule.Direction": "Direction is in or out; a group rule has none.",
	"FirewallRule.Action":    "Action is ACCEPT, DROP or REJECT.",
	"FirewallRule.Group": "Group names a security group defined at the cluster level (Datacenter > Firewall > Security Group), whose rules apply here; instead of direction and action. " +
		"The plan refuses a group the cluster does not define.",
	"FirewallRule.Source":   "Source restricts the packet's source address: an IP address, a CIDR network, a range (a-b), a comma list of those, an alias name, or +ipset.",
	"FirewallRule.Dest":     "Dest restricts the destination address, written as source is.",
	"FirewallRule.Proto":    "Proto is an IP protocol by name (tcp, udp, icmp, ...) or number.",
	"FirewallRule.DPort":    "DPort restricts the destination port: a port, a service name, a range (8000:8100) or a comma list; it needs proto tcp, udp, dccp or sctp.",
	"FirewallRule.SPort":    "SPort restricts the source port, written as dport is.",
	"FirewallRule.ICMPType": "ICMPType is an ICMP type name or number, with proto icmp or icmpv6.",
	"FirewallRule.Iface":    "Iface is the guest's interface by its config key: net0, net1, ...",
	"FirewallRule.Log":      "Log is the log level of the packets the rule matches: emerg, alert, crit, err, warning, notice, info, debug or nolog.",
	"FirewallRule.Comment":  "Comment says what the rule is for. One line, without spaces around it. Proxmox shows it after phoenix's marker: phoenix: COMMENT.",
	"FirewallRule.Enabled":  "Enabled is false for a rule kept but not applied (default true).",
}

var firewallFieldRules = map[string][]rule{
	"GuestSpec.Firewall":     {notNull},
	"Firewall.PolicyIn":      {oneOfStrings(append(slices.Clone(firewallPolicies), "")...)},
	"Firewall.PolicyOut":     {oneOfStrings(append(slices.Clone(firewallPolicies), "")...)},
	"Firewall.LogLevelIn":    {oneOfStrings(append(slices.Clone(firewallLogLevels), "")...)},
	"Firewall.LogLevelOut":   {oneOfStrings(append(slices.Clone(firewallLogLevels), "")...)},
	"Firewall.Rules":         {items(notNull)},
	"FirewallRule.Direction": {oneOfStrings("in", "out", "")},
	"FirewallRule.Action":    {oneOfStrings(append(slices.Clone(firewallActions), "")...)},
	"FirewallRule.Group":     {optPattern(firewallGroupName), maxLength(maxFirewallGroupName)},
	"FirewallRule.Iface":     {optPattern(firewallIface)},
	"FirewallRule.Log":       {oneOfStrings(append(slices.Clone(firewallLogLevels), "")...)},
	"FirewallRule.Proto":     {optPattern(firewallProto)},
	"FirewallRule.Source":    {maxLength(maxFirewallAddress)},
	"FirewallRule.Dest":      {maxLength(maxFirewallAddress)},
}

func init() {
	maps.Copy(fieldDescriptions, firewallDescriptions)
	maps.Copy(fieldRules, firewallFieldRules)
}
