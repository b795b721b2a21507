package sim

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
)

// lxcInterfaces is GET /nodes/{node}/lxc/{vmid}/interfaces, pve-container's
// 'ip' method (src/PVE/API2/LXC.pm): PVE::LXC::get_interfaces
// (src/PVE/LXC.pm) runs `ip --json a` in the network namespace of the
// container's init process. A container that does not run has no such
// process, and the answer's data is null. Each interface is listed by name
// with its MAC (hwaddr and hardware-address) and its addresses
// (ip-addresses), and, for each family it has, the last address of that
// family as inet or inet6 ("address/prefix").
//
// The simulated container has lo, and each netN of its config under its
// name= with its hwaddr=: an IPv6 link-local address made from the MAC as
// soon as it runs (the kernel adds one when the link comes up), and its IPv4
// address (ip=, or for ip=dhcp the one the simulated DHCP server hands out,
// dhcpAddress) and a static ip6= only once its network is up, when the
// guest's own checks see a default route.
func (s *apiServer) lxcInterfaces(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	g, err := s.c.lookup(r.node(), r.vmid())
	if err != nil {
		return nil, err
	}
	if g.run == nil {
		return nil, nil
	}
	out := []any{ipInterface("lo", "00:00:00:00:00:00", []ipAddr{{"inet", "127.0.0.1", 8}, {"inet6", "::1", 128}})}
	up := !s.c.now().Before(g.run.netUp)
	vals := g.conf.vals
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		if !isIndexed(k, "net") {
			continue
		}
		p := propString(vals[k], "")
		var addrs []ipAddr
		if up {
			switch ip := p["ip"]; ip {
			case "", "manual":
			case "dhcp":
				addrs = append(addrs, dhcpAddress(g.vmid))
			default:
				if a, ok := cidrAddr("inet", ip); ok {
					addrs = append(addrs, a)
				}
			}
			if a, ok := cidrAddr("inet6", p["ip6"]); ok {
				addrs = append(addrs, a)
			}
		}
		if ll, ok := linkLocal(p["hwaddr"]); ok {
			addrs = append(addrs, ll)
		}
		out = append(out, ipInterface(p["name"], strings.ToLower(p["hwaddr"]), addrs))
	}
	return out, nil
}

// ipAddr is one entry of an interface's addr_info.
type ipAddr struct {
	family string
	local  string
	prefix int
}

// ipInterface is one interface as get_interfaces prints it.
func ipInterface(name, mac string, addrs []ipAddr) map[string]any {
	obj := map[string]any{"name": name, "hwaddr": mac, "hardware-address": mac}
	list := []any{}
	for _, a := range addrs {
		obj[a.family] = fmt.Sprintf("%s/%d", a.local, a.prefix)
		list = append(list, map[string]any{"ip-address-type": a.family, "ip-address": a.local, "prefix": a.prefix})
	}
	obj["ip-addresses"] = list
	return obj
}

// dhcpAddress is the IPv4 address the simulated DHCP server leases to a
// container: one of 10.0.0.0/8 made of the low 24 bits of its VMID, so that
// each container of a world has its own.
func dhcpAddress(vmid int) ipAddr {
	return ipAddr{"inet", fmt.Sprintf("10.%d.%d.%d", vmid>>16&0xff, vmid>>8&0xff, vmid&0xff), 8}
}

// cidrAddr reads a static ip= or ip6= ("address/prefix"); auto, dhcp and
// anything unparsable give no address.
func cidrAddr(family, v string) (ipAddr, bool) {
	ip, n, err := net.ParseCIDR(v)
	if err != nil {
		return ipAddr{}, false
	}
	ones, _ := n.Mask.Size()
	return ipAddr{family, ip.String(), ones}, true
}

// linkLocal is the IPv6 link-local address the kernel gives a link by its
// MAC (modified EUI-64, RFC 4291 appendix A).
func linkLocal(mac string) (ipAddr, bool) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return ipAddr{}, false
	}
	ip := make(net.IP, net.IPv6len)
	ip[0], ip[1] = 0xfe, 0x80
	ip[8], ip[9], ip[10] = hw[0]^0x02, hw[1], hw[2]
	ip[11], ip[12] = 0xff, 0xfe
	ip[13], ip[14], ip[15] = hw[3], hw[4], hw[5]
	return ipAddr{"inet6", ip.String(), 64}, true
}
