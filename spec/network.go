package spec

import (
	"fmt"
	"net/netip"
	"strings"
)

// segment is one layer-2 network a guest's interface is on: a bridge, and the
// VLAN tag on it (0 for none).
type segment struct {
	bridge string
	vlan   int
}

func (s segment) String() string {
	if s.vlan == 0 {
		return "bridge " + s.bridge
	}
	return fmt.Sprintf("bridge %s VLAN %d", s.bridge, s.vlan)
}

// addressUse is where a static address was first seen.
type addressUse struct {
	g    *Guest
	nic  int
	from string // the Template the interface comes from, when inherited
}

// staticAddresses refuses two running guests with the same static IPv4
// address on the same bridge and VLAN: both would answer for it, and which
// one a client reaches would be chance. The address counts, not the prefix
// (10.0.0.5/24 and 10.0.0.5/16 are one address). Only Containers count: a
// Template never runs, so a clone that keeps its template's address does not
// collide with the template; two clones that both keep it do. A stopped
// Container counts too: its spec may be started at any time. dhcp and manual
// interfaces have no address here.
func (v *validator) staticAddresses() {
	seen := map[segment]map[netip.Addr]addressUse{}
	lin := v.res.lin
	// setBy is the guest whose document set a guest's interfaces: itself,
	// or the nearest template above it that did. Each walk up the lineage
	// stops at a guest already known, so that all of them together visit
	// each guest once, however deep the lineage.
	setBy := map[*Guest]*Guest{}
	var path []*Guest
	for _, g := range v.set.Guests {
		if g.Kind != KindContainer || lin.guest(g.Name()) != g || !lin.intact(g) {
			continue
		}
		path = path[:0]
		var by *Guest
		for cur := g; cur != nil; cur = lin.parent[cur] {
			if known, ok := setBy[cur]; ok {
				by = known
				break
			}
			path = append(path, cur)
			if cur.Spec.Network != nil {
				by = cur
				break
			}
		}
		for _, m := range path {
			setBy[m] = by
		}
		from := ""
		if by != nil && by != g {
			from = by.Name()
		}
		for i, n := range v.res.resolve(g).Settings.Network {
			prefix, err := netip.ParsePrefix(n.IP)
			if err != nil || !prefix.Addr().Is4() {
				continue // dhcp, manual, or reported already
			}
			seg := segment{bridge: n.Bridge}
			if n.VLAN != nil {
				seg.vlan = *n.VLAN
			}
			use := addressUse{g: g, nic: i, from: from}
			prev, taken := seen[seg][prefix.Addr()]
			if !taken {
				if seen[seg] == nil {
					seen[seg] = map[netip.Addr]addressUse{}
				}
				seen[seg][prefix.Addr()] = use
				continue
			}
			// An inherited interface is the from.template line's doing.
			field, own := fmt.Sprintf("spec.network[%d].ip", i), ""
			if from != "" {
				field, own = "spec.from.template", fmt.Sprintf(" (its spec.network[%d], from Template %s)", i, from)
			}
			v.report(g.Source, g.pos, string(g.Kind)+" "+g.Name(), field,
				"static address %s on %s%s is also the address of %s %s (spec.network[%d]%s, at %s:%d): give each guest its own, or use dhcp",
				prefix.Addr(), seg, own, prev.g.Kind, prev.g.Name(), prev.nic, inheritedFrom(prev.from), prev.g.Source.File, prev.g.Source.Line)
		}
	}
}

func inheritedFrom(template string) string {
	if template == "" {
		return ""
	}
	return ", from Template " + template
}

// pinnedMACs refuses two interfaces with the same fixed MAC address, in one
// guest or in two: on one network both would receive each other's frames,
// and across networks the address still names two guests in DHCP leases and
// switch tables. Only MACs a document sets count: a clone never inherits one.
func (v *validator) pinnedMACs() {
	type use struct {
		g   *Guest
		nic int
	}
	seen := map[string]use{}
	for _, g := range v.set.Guests {
		for i, n := range g.Spec.Network {
			if !macAddress.MatchString(n.HWAddr) {
				continue // unset, or reported already
			}
			mac := strings.ToUpper(n.HWAddr)
			prev, taken := seen[mac]
			if !taken {
				seen[mac] = use{g, i}
				continue
			}
			v.report(g.Source, g.pos, string(g.Kind)+" "+g.Name(), fmt.Sprintf("spec.network[%d].hwaddr", i),
				"MAC address %s is also the MAC of %s %s (spec.network[%d], at %s:%d): each interface needs its own; leave hwaddr unset to have Proxmox choose one",
				mac, prev.g.Kind, prev.g.Name(), prev.nic, prev.g.Source.File, prev.g.Source.Line)
		}
	}
}
