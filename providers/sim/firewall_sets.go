package sim

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// A firewall's aliases and ipsets, as pve-firewall has them:
// src/PVE/API2/Firewall/Aliases.pm (AliasesBase, CTAliases),
// src/PVE/API2/Firewall/IPSet.pm (IPSetBase, CTIPset, BaseIPSetList,
// CTIPSetList) and src/PVE/Firewall.pm (parse_alias, parse_ip_or_cidr,
// clean_cidr, resolve_alias, verify_rule, the [IPSET name] parser). Every
// handler loads the file, so what it answers is what the file reads back:
// an alias's /32 (/128) is dropped, an ipset's name is in lower case.
//
// Neither the alias nor the ipset delete asks whether a rule uses what it
// deletes. Such a rule stays; reading the file again gives it errors
// (verify_rule's "no such alias 'x'", "no such ipset 'x'"), the rules list
// shows them, and the firewall Proxmox builds leaves the rule out.

// fwSets are a firewall file's aliases and ipsets.
type fwSets struct {
	// aliases are by lower-case name, each holding name, cidr, ipversion
	// and comment as parse_alias reads them.
	aliases map[string]map[string]string
	// ipsets are by name, each a list of entries (cidr, nomatch, comment),
	// newest first; ipsetComments are the sets' comments.
	ipsets        map[string][]map[string]string
	ipsetComments map[string]string
}

func (s fwSets) clone() fwSets {
	out := fwSets{aliases: map[string]map[string]string{}, ipsets: map[string][]map[string]string{}, ipsetComments: maps.Clone(s.ipsetComments)}
	for k, a := range s.aliases {
		out.aliases[k] = maps.Clone(a)
	}
	for k, entries := range s.ipsets {
		list := []map[string]string{}
		for _, e := range entries {
			list = append(list, maps.Clone(e))
		}
		out.ipsets[k] = list
	}
	return out
}

func (s *fwSets) init() {
	if s.aliases == nil {
		s.aliases = map[string]map[string]string{}
	}
	if s.ipsets == nil {
		s.ipsets = map[string][]map[string]string{}
	}
	if s.ipsetComments == nil {
		s.ipsetComments = map[string]string{}
	}
}

func (s *apiServer) firewallSetRoutes() map[string]handler {
	return map[string]handler{
		"GET /nodes/{node}/lxc/{vmid}/firewall/aliases":                s.locked(s.c.firewallAliases),
		"POST /nodes/{node}/lxc/{vmid}/firewall/aliases":               s.locked(s.c.createFirewallAlias),
		"GET /nodes/{node}/lxc/{vmid}/firewall/aliases/{name}":         s.locked(s.c.firewallAlias),
		"PUT /nodes/{node}/lxc/{vmid}/firewall/aliases/{name}":         s.locked(s.c.updateFirewallAlias),
		"DELETE /nodes/{node}/lxc/{vmid}/firewall/aliases/{name}":      s.locked(s.c.deleteFirewallAlias),
		"GET /nodes/{node}/lxc/{vmid}/firewall/ipset":                  s.locked(s.c.firewallIPSets),
		"POST /nodes/{node}/lxc/{vmid}/firewall/ipset":                 s.locked(s.c.createFirewallIPSet),
		"GET /nodes/{node}/lxc/{vmid}/firewall/ipset/{name}":           s.locked(s.c.firewallIPSet),
		"POST /nodes/{node}/lxc/{vmid}/firewall/ipset/{name}":          s.locked(s.c.addIPSetEntry),
		"DELETE /nodes/{node}/lxc/{vmid}/firewall/ipset/{name}":        s.locked(s.c.deleteFirewallIPSet),
		"GET /nodes/{node}/lxc/{vmid}/firewall/ipset/{name}/{cidr}":    s.locked(s.c.ipsetEntry),
		"PUT /nodes/{node}/lxc/{vmid}/firewall/ipset/{name}/{cidr}":    s.locked(s.c.updateIPSetEntry),
		"DELETE /nodes/{node}/lxc/{vmid}/firewall/ipset/{name}/{cidr}": s.locked(s.c.deleteIPSetEntry),
		"GET /cluster/firewall/aliases":                                s.locked(s.c.clusterAliases),
		"GET /cluster/firewall/ipset":                                  s.locked(s.c.clusterIPSets),
	}
}

// listWithDigest is copy_list_with_digest: every entry gets the digest of
// the whole list.
func listWithDigest(list []map[string]string) []any {
	digest := fwDigest(list...)
	out := []any{}
	for _, e := range list {
		m := map[string]any{"digest": digest}
		for k, v := range e {
			switch k {
			case "ipversion", "nomatch":
				m[k] = atoi(v)
			default:
				m[k] = v
			}
		}
		out = append(out, m)
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// aliasList is the aliases by lower-case name ($aliases_to_list).
func (s *fwSets) aliasList() []map[string]string {
	var out []map[string]string
	for _, k := range slices.Sorted(maps.Keys(s.aliases)) {
		out = append(out, s.aliases[k])
	}
	return out
}

// ipOrCIDR is parse_ip_or_cidr: a /32 (/128) network is its address.
func ipOrCIDR(cidr string) (string, string) {
	version := "4"
	if strings.Contains(cidr, ":") {
		version = "6"
		cidr = strings.TrimSuffix(cidr, "/128")
	} else {
		cidr = strings.TrimSuffix(cidr, "/32")
	}
	return cidr, version
}

func (c *cluster) firewallAliases(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	out := listWithDigest(f.aliasList())
	return out, nil
}

// aliasData is the alias as saved and read back: name, cidr, ipversion,
// and the comment when one was sent.
func aliasData(p map[string]string) map[string]string {
	cidr, version := ipOrCIDR(p["cidr"])
	a := map[string]string{"name": p["name"], "cidr": cidr, "ipversion": version}
	if p["comment"] != "" {
		a["comment"] = p["comment"]
	}
	return a
}

// createFirewallAlias is create_alias; it checks no digest.
func (c *cluster) createFirewallAlias(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	key := strings.ToLower(r.params["name"])
	if _, ok := f.aliases[key]; ok {
		return nil, paramError(map[string]string{"name": fmt.Sprintf("alias '%s' already exists", r.params["name"])})
	}
	f.aliases[key] = aliasData(r.params)
	return nil, nil
}

func (c *cluster) firewallAlias(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	a, ok := f.aliases[strings.ToLower(r.params["name"])]
	if !ok {
		return nil, paramError(map[string]string{"name": "no such alias"})
	}
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	out["ipversion"] = atoi(a["ipversion"])
	return out, nil
}

// updateFirewallAlias is update_alias: the digest, then the alias found
// without regard to case gets the name as sent, the cidr and the comment
// (one not sent is removed), then the rename.
func (c *cluster) updateFirewallAlias(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	if d := r.params["digest"]; d != "" && d != fwDigest(f.aliasList()...) {
		return nil, errModified()
	}
	key := strings.ToLower(r.params["name"])
	if _, ok := f.aliases[key]; !ok {
		return nil, paramError(map[string]string{"name": "no such alias"})
	}
	f.aliases[key] = aliasData(r.params)
	if rename := r.params["rename"]; rename != "" && strings.ToLower(rename) != key {
		if _, ok := f.aliases[strings.ToLower(rename)]; ok {
			return nil, paramError(map[string]string{"name": fmt.Sprintf("alias '%s' already exists", rename)})
		}
		a := f.aliases[key]
		a["name"] = rename
		delete(f.aliases, key)
		f.aliases[strings.ToLower(rename)] = a
	}
	return nil, nil
}

// deleteFirewallAlias is remove_alias: the digest, then the delete, of an
// alias that may not be there and whatever rule may use it.
func (c *cluster) deleteFirewallAlias(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	if d := r.params["digest"]; d != "" && d != fwDigest(f.aliasList()...) {
		return nil, errModified()
	}
	delete(f.aliases, strings.ToLower(r.params["name"]))
	return nil, nil
}

// ipsetList is $get_ipset_list: name and comment, by name.
func (s *fwSets) ipsetList() []map[string]string {
	var out []map[string]string
	for _, name := range slices.Sorted(maps.Keys(s.ipsets)) {
		e := map[string]string{"name": name}
		if c := s.ipsetComments[name]; c != "" {
			e["comment"] = c
		}
		out = append(out, e)
	}
	return out
}

func (c *cluster) firewallIPSets(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	out := listWithDigest(f.ipsetList())
	return out, nil
}

// createFirewallIPSet is create_ipset: a new empty set, or with rename an
// existing set renamed (to itself: its comment changed), which checks the
// list's digest.
func (c *cluster) createFirewallIPSet(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	name := strings.ToLower(r.params["name"])
	comment, hasComment := r.params["comment"]
	if rename := r.params["rename"]; rename != "" {
		if d := r.params["digest"]; d != "" && d != fwDigest(f.ipsetList()...) {
			return nil, errModified()
		}
		from := strings.ToLower(rename)
		entries, ok := f.ipsets[from]
		if !ok {
			return nil, paramError(map[string]string{"name": fmt.Sprintf("IPSet '%s' does not exist", rename)})
		}
		if _, taken := f.ipsets[name]; taken && name != from {
			return nil, paramError(map[string]string{"name": fmt.Sprintf("IPSet '%s' does already exist", r.params["name"])})
		}
		old := f.ipsetComments[from]
		delete(f.ipsets, from)
		delete(f.ipsetComments, from)
		f.ipsets[name] = entries
		if old != "" {
			f.ipsetComments[name] = old
		}
		if hasComment {
			f.ipsetComments[name] = comment
		}
		return nil, nil
	}
	if _, ok := f.ipsets[name]; ok {
		return nil, paramError(map[string]string{"name": fmt.Sprintf("IPSet '%s' already exists", r.params["name"])})
	}
	f.ipsets[name] = []map[string]string{}
	if hasComment && comment != "" {
		f.ipsetComments[name] = comment
	}
	return nil, nil
}

// ipsetOf is the CTIPset load_config: a set that is not there is a die.
func ipsetOf(f *vmFirewall, r request) (string, *apiError) {
	name := r.params["name"]
	if _, ok := f.ipsets[name]; !ok {
		return "", die("no such IPSet '%s'", name)
	}
	return name, nil
}

func (c *cluster) firewallIPSet(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	name, aerr := ipsetOf(f, r)
	if aerr != nil {
		return nil, aerr
	}
	out := listWithDigest(f.ipsets[name])
	return out, nil
}

// deleteFirewallIPSet is delete_ipset: no digest; a set with entries only
// with force.
func (c *cluster) deleteFirewallIPSet(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	name, aerr := ipsetOf(f, r)
	if aerr != nil {
		return nil, aerr
	}
	if len(f.ipsets[name]) > 0 && !boolParam(r.params["force"]) {
		return nil, die("IPSet '%s' is not empty", name)
	}
	delete(f.ipsets, name)
	delete(f.ipsetComments, name)
	return nil, nil
}

// addIPSetEntry is create_ip: an alias must exist; an address is cleaned
// (host bits cleared) and normalized as the file's parser would; the same
// address twice and a zero prefix are refused; the entry goes first.
func (c *cluster) addIPSetEntry(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	name, aerr := ipsetOf(f, r)
	if aerr != nil {
		return nil, aerr
	}
	cidr := r.params["cidr"]
	if m := fwAliasRef.FindStringSubmatch(cidr); m != nil {
		if c.resolveAlias(f, m[2], m[1]) == nil {
			return nil, die("no such alias '%s'", m[2])
		}
	} else {
		cidr, _ = ipOrCIDR(cleanCIDR(cidr))
	}
	for _, e := range f.ipsets[name] {
		if e["cidr"] == cidr {
			return nil, paramError(map[string]string{"cidr": fmt.Sprintf("address '%s' already exists", cidr)})
		}
	}
	if _, bits, ok := strings.Cut(cidr, "/"); ok && strings.Trim(bits, "0") == "" {
		return nil, paramError(map[string]string{"cidr": "a zero prefix is not allowed in ipset entries"})
	}
	e := map[string]string{"cidr": cidr}
	if boolParam(r.params["nomatch"]) {
		e["nomatch"] = "1"
	}
	if r.params["comment"] != "" {
		e["comment"] = r.params["comment"]
	}
	f.ipsets[name] = slices.Insert(f.ipsets[name], 0, e)
	return nil, nil
}

func entryIndex(f *vmFirewall, name, cidr string) int {
	return slices.IndexFunc(f.ipsets[name], func(e map[string]string) bool { return e["cidr"] == cidr })
}

func (c *cluster) ipsetEntry(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	name, aerr := ipsetOf(f, r)
	if aerr != nil {
		return nil, aerr
	}
	list := listWithDigest(f.ipsets[name])
	if i := entryIndex(f, name, r.params["cidr"]); i >= 0 {
		return list[i], nil
	}
	return nil, paramError(map[string]string{"cidr": "no such IP/Network"})
}

// updateIPSetEntry is update_ip: the digest, then nomatch and comment set
// to what was sent (what was not is removed).
func (c *cluster) updateIPSetEntry(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	name, aerr := ipsetOf(f, r)
	if aerr != nil {
		return nil, aerr
	}
	if d := r.params["digest"]; d != "" && d != fwDigest(f.ipsets[name]...) {
		return nil, errModified()
	}
	i := entryIndex(f, name, r.params["cidr"])
	if i < 0 {
		return nil, paramError(map[string]string{"cidr": "no such IP/Network"})
	}
	e := map[string]string{"cidr": r.params["cidr"]}
	if boolParam(r.params["nomatch"]) {
		e["nomatch"] = "1"
	}
	if r.params["comment"] != "" {
		e["comment"] = r.params["comment"]
	}
	f.ipsets[name][i] = e
	return nil, nil
}

// deleteIPSetEntry is remove_ip: the digest, then the entry, if it is there.
func (c *cluster) deleteIPSetEntry(r request) (any, *apiError) {
	f := c.firewallOf(r.vmid())
	f.init()
	name, aerr := ipsetOf(f, r)
	if aerr != nil {
		return nil, aerr
	}
	if d := r.params["digest"]; d != "" && d != fwDigest(f.ipsets[name]...) {
		return nil, errModified()
	}
	if i := entryIndex(f, name, r.params["cidr"]); i >= 0 {
		f.ipsets[name] = slices.Delete(f.ipsets[name], i, i+1)
	}
	return nil, nil
}

// cleanCIDR is clean_cidr: the host bits of a network cleared.
func cleanCIDR(cidr string) string {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return cidr
	}
	return p.Masked().String()
}

// clusterAliases is ClusterAliases' list.
func (c *cluster) clusterAliases(request) (any, *apiError) {
	var list []map[string]string
	for _, name := range slices.Sorted(maps.Keys(c.world.Spec.FirewallAliases)) {
		list = append(list, aliasData(map[string]string{"name": name, "cidr": c.world.Spec.FirewallAliases[name]}))
	}
	out := listWithDigest(list)
	return out, nil
}

// clusterIPSets is ClusterIPSetList's index.
func (c *cluster) clusterIPSets(request) (any, *apiError) {
	var list []map[string]string
	for _, name := range slices.Sorted(slices.Values(c.world.Spec.FirewallIPSets)) {
		list = append(list, map[string]string{"name": strings.ToLower(name)})
	}
	out := listWithDigest(list)
	return out, nil
}

// resolveAlias is resolve_alias: the guest's alias unless the scope is
// dc/, else the cluster's unless it is guest/; nil when there is none.
func (c *cluster) resolveAlias(f *vmFirewall, name, scope string) map[string]string {
	key := strings.ToLower(name)
	if scope != "dc/" {
		if a, ok := f.aliases[key]; ok {
			return a
		}
	}
	if scope != "guest/" {
		for n, cidr := range c.world.Spec.FirewallAliases {
			if strings.ToLower(n) == key {
				return aliasData(map[string]string{"name": n, "cidr": cidr})
			}
		}
	}
	return nil
}

func (c *cluster) clusterHasIPSet(name string) bool {
	return slices.ContainsFunc(c.world.Spec.FirewallIPSets, func(n string) bool { return strings.ToLower(n) == name })
}

// refError is verify_rule's check of a source or dest that names an ipset
// or an alias: it must exist in the guest's file or the cluster's,
// whatever the scope says (the scope only picks which when both have it).
func (c *cluster) refError(f *vmFirewall, v string) string {
	f.init()
	if strings.HasPrefix(v, "+") {
		m := fwIPSetRef.FindStringSubmatch(v)
		if m == nil {
			return fmt.Sprintf("invalid ipset name '%s'", v)
		}
		if _, ok := f.ipsets[m[2]]; !ok && !c.clusterHasIPSet(m[2]) {
			return fmt.Sprintf("no such ipset '%s'", m[2])
		}
		return ""
	}
	if m := fwAliasRef.FindStringSubmatch(v); m != nil {
		if c.resolveAlias(f, m[2], "") == nil {
			return fmt.Sprintf("no such alias '%s'", v)
		}
	}
	return ""
}

// aliasVersion is the IP version of the alias a source or dest names, 0
// for anything else.
func (c *cluster) aliasVersion(f *vmFirewall, v string) int {
	m := fwAliasRef.FindStringSubmatch(v)
	if m == nil {
		return 0
	}
	if a := c.resolveAlias(f, m[2], m[1]); a != nil {
		return atoi(a["ipversion"])
	}
	return 0
}

// ruleErrors are the errors the file's parser gives a rule whose alias or
// ipset is gone (verify_rule with noerr), nil for none.
func (c *cluster) ruleErrors(f *vmFirewall, rule map[string]string) map[string]string {
	var errs map[string]string
	for _, k := range []string{"source", "dest"} {
		if v := rule[k]; v != "" {
			if msg := c.refError(f, v); msg != "" {
				if errs == nil {
					errs = map[string]string{}
				}
				errs[k] = msg
			}
		}
	}
	return errs
}
