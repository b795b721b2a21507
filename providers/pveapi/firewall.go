//lint:file-ignore ST1005 these error texts are Proxmox VE's own, word for word (PVE::JSONSchema), as its API answers them.

package pveapi

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"
)

// pve-firewall src/PVE/Firewall.pm formats.

const (
	ipAliasPattern     = `[A-Za-z][A-Za-z0-9\-\_]+`
	maxAliasNameLength = 64
	maxIPSetNameLength = 64
)

// iptables -p icmp -h, as copied into PVE::Firewall.
var icmpTypeNames = wordSet(`any echo-reply destination-unreachable network-unreachable
	host-unreachable protocol-unreachable port-unreachable fragmentation-needed source-route-failed
	network-unknown host-unknown network-prohibited host-prohibited TOS-network-unreachable
	TOS-host-unreachable communication-prohibited host-precedence-violation precedence-cutoff
	source-quench redirect network-redirect host-redirect TOS-network-redirect TOS-host-redirect
	echo-request router-advertisement router-solicitation time-exceeded ttl-zero-during-transit
	ttl-zero-during-reassembly parameter-problem ip-header-bad required-option-missing
	timestamp-request timestamp-reply address-mask-request address-mask-reply`)

// ip6tables -p icmpv6 -h.
var icmpv6TypeNames = wordSet(`destination-unreachable no-route communication-prohibited
	beyond-scope address-unreachable port-unreachable failed-policy reject-route packet-too-big
	time-exceeded ttl-zero-during-transit ttl-zero-during-reassembly parameter-problem bad-header
	unknown-header-type unknown-option echo-request echo-reply router-solicitation
	router-advertisement neighbor-solicitation neighbour-solicitation neighbor-advertisement
	neighbour-advertisement redirect`)

var etcServices = wordSet(etcServiceNames)

// etc protocols by name and by number; PVE adds "icmpv6" to both.
var etcProtocolNames, etcProtocolIDs = func() (map[string]bool, map[string]bool) {
	names, ids := map[string]bool{"icmpv6": true}, map[string]bool{"icmpv6": true}
	for _, f := range strings.Fields(etcProtocols) {
		name, id, _ := strings.Cut(f, "=")
		names[name] = true
		ids[id] = true
	}
	return names, ids
}()

func wordSet(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.Fields(s) {
		out[w] = true
	}
	return out
}

func registerFirewallFormats(r *formatRegistry) {
	reIPOrCIDR := mustPerl(`^(?:`+ipv6RE+`|`+ipv4RE+`)(/(\d+))?$`, "")
	verifyIPOrCIDR := func(cidr string) error {
		if reIPOrCIDR.match(cidr) {
			// clean_cidr clears the host bits first (pve-firewall 4.3 and
			// later): 10.0.0.1/8 is taken.
			if err := netIPCheck(cleanCIDR(cidr)); err != nil {
				return dieError(err.Error() + "\n")
			}
			return nil
		}
		return dieError("value does not look like a valid IP address or CIDR network\n")
	}
	r.code("IPorCIDR", verifyIPOrCIDR)
	reAlias := mustPerl(`^(dc/|guest/)?(?:`+ipAliasPattern+`)$`, "")
	r.code("IPorCIDRorAlias", func(s string) error {
		if reAlias.match(s) {
			return nil
		}
		return verifyIPOrCIDR(s)
	})
	r.code("pve-fw-addr-spec", parseAddressList)
	r.code("pve-fw-sport-spec", func(s string) error { return parsePortSpec(s, false) })
	r.code("pve-fw-dport-spec", func(s string) error { return parsePortSpec(s, true) })
	r.code("pve-fw-protocol-spec", func(proto string) error {
		if perlTrue(proto) && !etcProtocolNames[proto] && !etcProtocolIDs[proto] {
			return die("unknown protocol '%s'\n", proto)
		}
		return nil
	})
	r.code("pve-fw-icmp-type-spec", func(t string) error {
		if icmpTypeNames[t] || icmpv6TypeNames[t] || t == "" {
			return nil
		}
		return die("invalid icmp-type value '%s'\n", t)
	})
}

var (
	reIPSetRef = mustPerl(`^(\+)(\S+)$`, "")
	// An alias may be scoped, guest/ or dc/ (pve-firewall 5.0 and later).
	reAliasRef = mustPerl(`^(dc/|guest/)?`+ipAliasPattern+`$`, "")
)

// parseAddressList is PVE::Firewall::parse_address_list.
func parseAddressList(str string) error {
	if reIPSetRef.match(str) {
		if perlLength(str) > maxIPSetNameLength+1 {
			return dieError("ipset name too long\n")
		}
		return nil
	}
	if reAliasRef.match(str) {
		if perlLength(str) > maxAliasNameLength {
			return dieError("alias name too long\n")
		}
		return nil
	}
	elements := perlSplit(strings.Split(str, ","))
	if strings.Join(elements, ",") != str {
		return dieError("extraneous commas in list\n")
	}
	ipversion, iprange := 0, false
	for _, elem := range elements {
		v, err := netIPVersion(elem)
		if err != nil {
			return die("invalid IP address: %s\n", err)
		}
		if strings.Contains(elem, "-") {
			iprange = true
		}
		if ipversion != 0 && v != ipversion {
			return die("detected mixed ipv4/ipv6 addresses in address list '%s'\n", str)
		}
		ipversion = v
	}
	if iprange && len(elements) > 1 {
		return dieError("you can't use a range in a list\n")
	}
	return nil
}

var (
	rePortRange = mustPerl(`^([0-9]+):([0-9]+)$`, "")
	rePortNum   = mustPerl(`^([0-9]+)$`, "")
)

// parsePortSpec is PVE::Firewall::parse_port_name_number_or_range.
func parsePortSpec(str string, dport bool) error {
	elements := perlSplit(strings.Split(str, ","))
	if strings.Join(elements, ",") != str {
		return dieError("extraneous commas in list\n")
	}
	count, icmpPort := 0, false
	for _, item := range elements {
		if m := rePortRange.find(item); m != nil {
			count += 2
			p1, p2 := perlNumify(m[1]), perlNumify(m[2])
			if p1 > 65535 {
				return die("invalid port '%s'\n", m[1])
			}
			if p2 > 65535 {
				return die("invalid port '%s'\n", m[2])
			}
			if p1 > p2 {
				return die("backwards range '%s:%s' not allowed, did you mean '%s:%s'?\n", m[1], m[2], m[2], m[1])
			}
		} else if m := rePortNum.find(item); m != nil {
			count++
			if perlNumify(m[1]) > 65535 {
				return die("invalid port '%s'\n", m[1])
			}
		} else if dport && (icmpTypeNames[item] || icmpv6TypeNames[item]) {
			icmpPort = true
		} else if !etcServices[item] {
			return die("invalid port '%s'\n", item)
		}
	}
	if icmpPort && count > 0 {
		return dieError("ICMP ports not allowed in port range\n")
	}
	// A range counts as two: iptables multiport takes at most 15 ports.
	if count > 15 {
		return dieError("too many entries in port list (> 15 numbers)\n")
	}
	return nil
}

// netIPCheck approximates Net::IP->new for an address, a prefix or a range, with the
// Net::IP error texts PVE passes on.
// cleanCIDR is clean_cidr: a network's host bits cleared; anything else as it is.
func cleanCIDR(cidr string) string {
	if p, err := netip.ParsePrefix(cidr); err == nil {
		return p.Masked().String()
	}
	return cidr
}

func netIPCheck(data string) error {
	_, err := netIPVersion(data)
	return err
}

func netIPVersion(data string) (int, error) {
	data = strings.Map(func(r rune) rune {
		if isPerlSpace(r) {
			return -1
		}
		return r
	}, data)
	if ip, l, ok := strings.Cut(data, "/"); ok {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			return 0, fmt.Errorf("Cannot determine IP version for %s", ip)
		}
		bits := a.BitLen()
		n, ok := new(big.Int).SetString(l, 10)
		if !ok || n.Sign() < 0 {
			return 0, fmt.Errorf("Invalid prefix length %s", l)
		}
		bin := binaryAddr(a)
		if n.Cmp(big.NewInt(int64(bits))) > 0 {
			return 0, fmt.Errorf("Prefix length %s is longer than IP address (%d)", l, bits)
		}
		if strings.Contains(bin[n.Int64():], "1") {
			return 0, fmt.Errorf("Invalid prefix %s/%s", bin, l)
		}
		return ipVersion(a), nil
	}
	if begin, end, ok := strings.Cut(data, "-"); ok {
		b, err1 := netip.ParseAddr(begin)
		e, err2 := netip.ParseAddr(end)
		if err1 != nil || err2 != nil || b.Zone() != "" || e.Zone() != "" || b.BitLen() != e.BitLen() {
			return 0, fmt.Errorf("Cannot determine IP version for %s", data)
		}
		if e.Less(b) {
			return 0, fmt.Errorf("Begin address is greater than End address %s - %s", begin, end)
		}
		return ipVersion(b), nil
	}
	a, err := netip.ParseAddr(data)
	if err != nil || a.Zone() != "" {
		return 0, fmt.Errorf("Cannot determine IP version for %s", data)
	}
	return ipVersion(a), nil
}

func ipVersion(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func binaryAddr(a netip.Addr) string {
	var b strings.Builder
	for _, x := range a.AsSlice() {
		fmt.Fprintf(&b, "%08b", x)
	}
	return b.String()
}
