package sim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A container's firewall, /etc/pve/firewall/VMID.fw, and its API
// (/nodes/{node}/lxc/{vmid}/firewall/...), as pve-firewall has them:
// src/PVE/API2/Firewall/VM.pm (options), src/PVE/API2/Firewall/Rules.pm
// (rules: RulesBase and CTRules), src/PVE/API2/Firewall/Groups.pm (the
// cluster's security groups) and src/PVE/Firewall.pm (verify_rule,
// copy_rule_data, copy_list_with_digest, copy_opject_with_digest). The
// schema checks every parameter's format before a handler runs (api.go);
// these handlers do what the Perl code does after that. The file is apart
// from the guest's config: a clone copies it (clone_vmfw_conf, in
// pve-container's clone_vm), a destroy removes it (remove_vmfw_conf).

// vmFirewall is one guest's firewall file.
type vmFirewall struct {
	options map[string]string
	// rules are in file order; each holds the properties as parse_fw_rule
	// reads them back: enable always, the others when set.
	rules []map[string]string
	// aliases and ipsets are firewall_sets.go's.
	fwSets
}

func (f *vmFirewall) clone() *vmFirewall {
	out := &vmFirewall{options: maps.Clone(f.options), fwSets: f.fwSets.clone()}
	for _, r := range f.rules {
		out.rules = append(out.rules, maps.Clone(r))
	}
	return out
}

// firewallOf is a guest's firewall; a guest without a file has an empty one
// (load_vmfw_conf of a missing file).
func (c *cluster) firewallOf(vmid int) *vmFirewall {
	if c.firewalls == nil {
		c.firewalls = map[int]*vmFirewall{}
	}
	f := c.firewalls[vmid]
	if f == nil {
		f = &vmFirewall{options: map[string]string{}}
		c.firewalls[vmid] = f
	}
	return f
}

// cloneFirewall is clone_vmfw_conf: the new guest gets a copy of the source's file.
func (c *cluster) cloneFirewall(from, to int) {
	if f := c.firewalls[from]; f != nil {
		c.firewalls[to] = f.clone()
	}
}

// removeFirewall is remove_vmfw_conf.
func (c *cluster) removeFirewall(vmid int) { delete(c.firewalls, vmid) }

func (s *apiServer) firewallRoutes() map[string]handler {
	return map[string]handler{
		"GET /nodes/{node}/lxc/{vmid}/firewall/options":        s.locked(s.c.firewallOptions),
		"PUT /nodes/{node}/lxc/{vmid}/firewall/options":        s.locked(s.c.setFirewallOptions),
		"GET /nodes/{node}/lxc/{vmid}/firewall/rules":          s.locked(s.c.firewallRules),
		"POST /nodes/{node}/lxc/{vmid}/firewall/rules":         s.locked(s.c.createFirewallRule),
		"GET /nodes/{node}/lxc/{vmid}/firewall/rules/{pos}":    s.locked(s.c.firewallRule),
		"PUT /nodes/{node}/lxc/{vmid}/firewall/rules/{pos}":    s.locked(s.c.updateFirewallRule),
		"DELETE /nodes/{node}/lxc/{vmid}/firewall/rules/{pos}": s.locked(s.c.deleteFirewallRule),
		"GET /cluster/firewall/groups":                         s.locked(s.c.securityGroups),
	}
}

// errModified is assert_if_modified's die (pve-common PVE::Tools).
func errModified() *apiError {
	return die("detected modified configuration - file changed by other user? Try again.")
}

// fwDigest is the SHA-1 of key:value lines, keys sorted, entry after entry
// (copy_opject_with_digest, copy_list_with_digest).
func fwDigest(entries ...map[string]string) string {
	h := sha1.New()
	for _, e := range entries {
		for _, k := range slices.Sorted(maps.Keys(e)) {
			fmt.Fprintf(h, "%s:%s\n", k, e[k])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// vmOptionKeys are $vm_option_properties.
var vmOptionKeys = []string{"enable", "macfilter", "dhcp", "ndp", "radv", "ipfilter", "policy_in", "policy_out", "log_level_in", "log_level_out"}

func (c *cluster) firewallOptions(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	out := map[string]any{"digest": fwDigest(f.options)}
	for k, v := range f.options {
		out[k] = v
	}
	return out, nil
}

// setFirewallOptions is set_options: the digest, then the deletions (an
// unknown option is a parameter error), then the values; booleans are kept
// as 0 or 1, the only values the file's parser reads.
func (c *cluster) setFirewallOptions(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	if d := r.params["digest"]; d != "" && d != fwDigest(f.options) {
		return nil, errModified()
	}
	for opt := range strings.SplitSeq(r.params["delete"], ",") {
		opt = strings.TrimSpace(opt)
		if opt == "" {
			continue
		}
		if !slices.Contains(vmOptionKeys, opt) {
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("no such option '%s'", opt)})
		}
		delete(f.options, opt)
	}
	for _, k := range vmOptionKeys {
		v, ok := r.params[k]
		if !ok {
			continue
		}
		switch k {
		case "policy_in", "policy_out", "log_level_in", "log_level_out":
			f.options[k] = v
		default:
			f.options[k] = boolString(boolParam(v))
		}
	}
	return nil, nil
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ruleAnswer is a rule as the API answers it: enable and ipversion are
// numbers, pos and the list's digest added.
func ruleAnswer(rule map[string]string, pos int, digest string) map[string]any {
	out := map[string]any{"pos": pos, "digest": digest}
	for k, v := range rule {
		switch k {
		case "enable", "ipversion":
			n, _ := strconv.Atoi(v)
			out[k] = n
		default:
			out[k] = v
		}
	}
	return out
}

func (c *cluster) firewallRules(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	digest := fwDigest(f.rules...)
	out := []any{}
	for i, rule := range f.rules {
		a := ruleAnswer(rule, i, digest)
		if errs := c.ruleErrors(f, rule); errs != nil {
			a["errors"] = errs
		}
		out = append(out, a)
	}
	return out, nil
}

// rulePos reads {pos}; "no rule at position N" is a die, a 500.
func rulePos(r request, f *vmFirewall) (int, *apiError) {
	pos, _ := strconv.Atoi(r.params["pos"])
	if pos >= len(f.rules) {
		return 0, die("no rule at position %d", pos)
	}
	return pos, nil
}

func (c *cluster) firewallRule(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	pos, aerr := rulePos(r, f)
	if aerr != nil {
		return nil, aerr
	}
	return ruleAnswer(f.rules[pos], pos, fwDigest(f.rules...)), nil
}

// ruleKeys are $rule_properties, which copy_rule_data copies.
var ruleKeys = []string{"type", "action", "macro", "source", "dest", "proto", "dport", "sport", "icmp-type", "iface", "log", "comment", "enable"}

// copyRuleData is copy_rule_data: a value of "" or "-" removes the property.
func copyRuleData(rule map[string]string, p map[string]string) {
	for _, k := range ruleKeys {
		v, ok := p[k]
		if !ok {
			continue
		}
		if v == "" || v == "-" {
			delete(rule, k)
		} else {
			rule[k] = v
		}
	}
}

// createFirewallRule is create_rule: the rule is verified, is disabled
// unless enable was sent, and goes to the top of the list. Proxmox checks
// no digest here and ignores pos.
func (c *cluster) createFirewallRule(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	rule := map[string]string{}
	copyRuleData(rule, r.params)
	if aerr := c.verifyRule(f, rule); aerr != nil {
		return nil, aerr
	}
	if _, ok := r.params["enable"]; !ok {
		rule["enable"] = "0"
	}
	f.rules = slices.Insert(f.rules, 0, rule)
	return nil, nil
}

// updateFirewallRule is update_rule: the digest, the position, then either
// a move (moveto: the rule goes before the rule now at moveto, or last when
// moveto is past the end; other arguments are ignored) or a change.
func (c *cluster) updateFirewallRule(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	if d := r.params["digest"]; d != "" && d != fwDigest(f.rules...) {
		return nil, errModified()
	}
	pos, aerr := rulePos(r, f)
	if aerr != nil {
		return nil, aerr
	}
	rule := f.rules[pos]
	if mv, ok := r.params["moveto"]; ok {
		moveto, _ := strconv.Atoi(mv)
		if moveto != pos {
			var rules []map[string]string
			for i, other := range f.rules {
				if i == pos {
					continue
				}
				if i == moveto {
					rules = append(rules, rule)
				}
				rules = append(rules, other)
			}
			if moveto >= len(f.rules) {
				rules = append(rules, rule)
			}
			f.rules = rules
		}
		return nil, nil
	}
	changed := maps.Clone(rule)
	copyRuleData(changed, r.params)
	for opt := range strings.SplitSeq(r.params["delete"], ",") {
		opt = strings.TrimSpace(opt)
		switch {
		case opt == "":
		case !slices.Contains(ruleKeys, opt) && opt != "pos":
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("no such property ('%s')", opt)})
		case opt == "type" || opt == "action":
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("unable to delete required property '%s'", opt)})
		default:
			delete(changed, opt)
		}
	}
	if aerr := c.verifyRule(f, changed); aerr != nil {
		return nil, aerr
	}
	f.rules[pos] = changed
	return nil, nil
}

// deleteFirewallRule is delete_rule: the digest, the position, the splice.
func (c *cluster) deleteFirewallRule(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	if d := r.params["digest"]; d != "" && d != fwDigest(f.rules...) {
		return nil, errModified()
	}
	pos, aerr := rulePos(r, f)
	if aerr != nil {
		return nil, aerr
	}
	f.rules = slices.Delete(f.rules, pos, pos+1)
	return nil, nil
}

// securityGroups is Groups.pm's list: name and comment, by name.
func (c *cluster) securityGroups(request) (any, *apiError) {
	out := []any{}
	digest := fwDigest(map[string]string{"groups": strings.Join(c.world.Spec.SecurityGroups, ",")})
	for _, g := range slices.Sorted(slices.Values(c.world.Spec.SecurityGroups)) {
		out = append(out, map[string]any{"group": g, "digest": digest})
	}
	return out, nil
}

var (
	fwGroupName   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_]+$`)
	fwIfaceCT     = regexp.MustCompile(`^net(\d+)$`)
	fwIPSetRef    = regexp.MustCompile(`^\+(guest/|dc/|sdn/)?([A-Za-z][A-Za-z0-9\-_]+)$`)
	fwAliasRef    = regexp.MustCompile(`^(guest/|dc/)?([A-Za-z][A-Za-z0-9\-_]+)$`)
	protocolPorts = []string{"udp", "17", "udplite", "136", "tcp", "6", "dccp", "33", "sctp", "132"}
)

// verifyRule is verify_rule for rule_env 'ct', with the first error raised
// as a parameter error (raise_param_exc), and ipversion set as it sets it.
// The formats (addresses, ports, protocols, icmp types) the schema checked
// already; what is left is what the Perl code adds.
func (c *cluster) verifyRule(f *vmFirewall, rule map[string]string) *apiError {
	bad := func(param, msg string) *apiError { return paramError(map[string]string{param: msg}) }
	typ, action := rule["type"], rule["action"]
	if typ == "" {
		return bad("type", "missing property")
	}
	if action == "" {
		return bad("action", "missing property")
	}
	switch typ {
	case "in", "out":
		if !slices.Contains([]string{"ACCEPT", "DROP", "REJECT"}, action) {
			return bad("action", fmt.Sprintf("unknown action '%s'", action))
		}
	case "group":
		if !fwGroupName.MatchString(action) {
			return bad("action", "invalid characters in security group name")
		}
	default:
		return bad("type", fmt.Sprintf("invalid rule type '%s' for rule_env 'ct'", typ))
	}
	if iface := rule["iface"]; iface != "" && !fwIfaceCT.MatchString(iface) {
		return bad("iface", `value does not match the regex pattern 'net\d+'`)
	}
	if m := rule["macro"]; m != "" {
		// The simulator knows no macros; phoenix sends none.
		return bad("macro", fmt.Sprintf("unknown macro '%s'", m))
	}
	proto := rule["proto"]
	icmp := proto == "icmp" || proto == "icmpv6" || proto == "ipv6-icmp"
	version := 0
	setVersion := func(v int) *apiError {
		if v != 0 && version != 0 && v != version {
			return die("detected mixed ipv4/ipv6 addresses in rule")
		}
		if v != 0 {
			version = v
		}
		return nil
	}
	switch proto {
	case "icmp":
		version = 4
	case "icmpv6", "ipv6-icmp":
		version = 6
	}
	if rule["dport"] != "" {
		if proto == "" {
			return bad("proto", "missing property - 'dport' requires this property")
		}
		if !slices.Contains(protocolPorts, proto) && !icmp {
			return bad("dport", fmt.Sprintf("protocol '%s' does not support ports", proto))
		}
	}
	if rule["icmp-type"] != "" {
		if !icmp {
			return bad("proto", "missing property - 'icmp-type' requires this property")
		}
		if rule["dport"] != "" {
			return bad("icmp-type", "'icmp-type' cannot be specified together with 'dport'")
		}
	}
	if rule["sport"] != "" {
		if proto == "" {
			return bad("proto", "missing property - 'sport' requires this property")
		}
		if !slices.Contains(protocolPorts, proto) {
			return bad("sport", fmt.Sprintf("protocol '%s' does not support ports", proto))
		}
	}
	for _, k := range []string{"source", "dest"} {
		v := rule[k]
		if v == "" {
			continue
		}
		if aerr := setVersion(addressVersion(v)); aerr != nil {
			return aerr
		}
		if msg := c.refError(f, v); msg != "" {
			return bad(k, msg)
		}
		if aerr := setVersion(c.aliasVersion(f, v)); aerr != nil {
			return aerr
		}
	}
	delete(rule, "ipversion")
	if version != 0 {
		rule["ipversion"] = strconv.Itoa(version)
	}
	return nil
}

// addressVersion is the IP version of an address list (parse_address_list),
// 0 for an alias or ipset.
func addressVersion(list string) int {
	first, _, _ := strings.Cut(list, ",")
	first, _, _ = strings.Cut(first, "-")
	first, _, _ = strings.Cut(first, "/")
	a, err := netip.ParseAddr(first)
	switch {
	case err != nil:
		return 0
	case a.Is4():
		return 4
	}
	return 6
}
