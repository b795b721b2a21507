package sim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// A node's network: /etc/network/interfaces as pve-manager's
// PVE/API2/Network.pm lists it, and the checks pve-container makes of the
// bridges a container's netN names.
//
// Every simulated node has one physical port (hostNIC) as the uplink of its
// first Linux bridge, which holds the node's address, as the installer sets
// it up; further bridges have no ports ("bridge-ports none").

// hostNIC is the node's physical network port.
const hostNIC = "eno1"

// bridgeMTU is what /sys/class/net/<bridge>/mtu holds for every bridge.
const bridgeMTU = 1500

// hasBridge reports whether /sys/class/net/<name> is a bridge on the node:
// a Linux or OVS bridge, or an SDN vnet (which SDN creates as a Linux bridge
// on the nodes of its zone).
func (n *WorldNode) hasBridge(name string) bool {
	return name != "" && (slices.Contains(n.Bridges, name) || slices.Contains(n.OVSBridges, name) || slices.Contains(n.VNets, name))
}

// interfaces is the node's /etc/network/interfaces as
// PVE::Network::Interfaces::__read_etc_network_interfaces (pve-common
// src/PVE/Network/Interfaces.pm) parses it: every interface with method and
// method6 (manual unless set), families [inet], priority in file order (lo,
// whose stanza comes first, is dropped by the API), autostart where an auto
// line names it, active when up, exists for a physical port, and for a
// bridge its ports ("none" reads as ""), bridge_stp off and bridge_fd "0"
// (the value from the file, a string).
func (n *node) interfaces() map[string]map[string]any {
	out := map[string]map[string]any{}
	prio := 3 // lo's stanza is the first (2); 1 is reserved
	add := func(name string, e map[string]any) {
		e["method"], e["method6"], e["families"], e["priority"], e["active"] = "manual", "manual", []string{"inet"}, prio, 1
		prio++
		out[name] = e
	}
	static := func(e map[string]any) {
		e["autostart"] = 1
		e["address"], e["netmask"], e["cidr"], e["gateway"] = n.ip, "24", n.ip+"/24", "127.0.0.1"
	}
	nic := map[string]any{"type": "eth", "exists": 1}
	add(hostNIC, nic)
	if len(n.Bridges) == 0 {
		static(nic)
		nic["method"] = "static"
	}
	for i, b := range n.Bridges {
		e := map[string]any{"type": "bridge", "autostart": 1, "bridge_ports": "", "bridge_stp": "off", "bridge_fd": "0"}
		add(b, e)
		if i == 0 {
			static(e)
			e["method"], e["bridge_ports"] = "static", hostNIC
		}
	}
	for _, b := range n.OVSBridges {
		// "auto vmbrN" plus "ovs_type OVSBridge"; the OVS tooling also
		// writes an allow-ovs line, which reads as autostart too.
		add(b, map[string]any{"type": "OVSBridge", "ovs_type": "OVSBridge", "autostart": 1})
	}
	return out
}

// vnets is PVE::Network::SDN::get_local_vnets (pve-network
// src/PVE/Network/SDN.pm): the vnets whose zone includes the node, each with
// type vnet, active as the string "1", ipam and vlanaware flags, and comments
// (the vnet's alias, null without one). The same shape in 8.3 and 9.1.
func (n *node) vnets() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, v := range n.VNets {
		out[v] = map[string]any{"type": "vnet", "active": "1", "ipam": 1, "vlanaware": 0, "comments": nil}
	}
	return out
}

// networkTypes83 is the type enumeration of GET /nodes/{node}/network in
// Proxmox VE 8.3, which has neither fabric nor include_sdn.
const networkTypes83 = "bridge, bond, eth, alias, vlan, OVSBridge, OVSBond, OVSPort, OVSIntPort, vnet, any_bridge, any_local_bridge"

// networkIndex is GET /nodes/{node}/network, as pve-manager's
// PVE/API2/Network.pm index answers it. Without type: every interface of
// the node, loopback left out, no vnets. With type, in 9.1 (9d436f37, "bump
// version to 9.1.2"):
//   - any_bridge: Linux and OVS bridges, and the SDN vnets;
//   - any_local_bridge: Linux and OVS bridges, no vnets;
//   - vnet: the vnets only; include_sdn: every interface and the vnets (and
//     SDN fabrics, which the simulator has none of); fabric: the fabrics;
//   - any other type: the interfaces of exactly that type.
//
// In 8.3 (9fb05d2f, "bump version to 8.3.7") vnets are fetched for
// any_bridge only, so type=vnet answers no entries at all, and fabric and
// include_sdn are not in the schema's enumeration (a 400). Both versions
// include the vnets with any_bridge: the code asks for them when SDN is
// installed ($have_sdn), and pve-manager depends on libpve-network-perl in
// both (debian/control), so it always is.
//
// root@pam sees every bridge; tokens and other users see a bridge only with
// SDN.Audit or SDN.Use on it, which the simulator's root token has.
func (s *apiServer) networkIndex(r request) (any, *apiError) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(r.node())
	if n == nil {
		return nil, die("no such cluster node '%s'", r.node())
	}
	v9 := versionAtLeast(c.world.Spec.Version, 9)
	tfilter := r.params["type"]
	if !v9 && (tfilter == "fabric" || tfilter == "include_sdn") {
		return nil, paramError(map[string]string{
			"type": fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", tfilter, networkTypes83),
		})
	}
	ifaces := n.interfaces()
	if tfilter != "" {
		var vnets map[string]map[string]any
		if tfilter == "any_bridge" || v9 && (tfilter == "vnet" || tfilter == "include_sdn") {
			vnets = n.vnets()
		}
		if tfilter != "include_sdn" {
			for k, e := range ifaces {
				typ := e["type"].(string)
				isBridge := typ == "bridge" || typ == "OVSBridge"
				bridgeMatch := isBridge && (tfilter == "any_bridge" || tfilter == "any_local_bridge")
				if tfilter != typ && !bridgeMatch {
					delete(ifaces, k)
				}
			}
		}
		maps.Copy(ifaces, vnets)
	}
	return c.hashToArray(ifaces, "iface"), nil
}

// A container's bridges are checked in three places in pve-container, each
// through PVE::Network::read_bridge_mtu (pve-common src/PVE/Network.pm),
// which dies "bridge 'X' does not exist" when /sys/class/net/X/mtu is
// missing:
//   - update_pct_config (src/PVE/LXC/Config.pm), for a netN with mtu only,
//     before anything is saved: create and PUT .../config answer a 500
//     (netMTUError, called by checkOptions);
//   - update_lxc_config (src/PVE/LXC.pm), for every netN of the config,
//     after PUT .../config saved the change (a 500 with the change kept) and
//     in vm_start before lxc-start runs (the vzstart task fails): create
//     itself never calls it, so a container whose bridge is missing is
//     created fine and fails at its first start (missingBridge, after the
//     passed-through devices: lxcConfigError);
//   - the hot-plug of a netN on a running container (hotplugNetError).

// netMTUError is update_pct_config's check of a netN that sets an mtu.
func netMTUError(n *node, key, value string) *apiError {
	p := propString(value, "")
	mtu, _ := strconv.Atoi(p["mtu"])
	if mtu == 0 {
		return nil
	}
	if !n.hasBridge(p["bridge"]) {
		return die("bridge '%s' does not exist", p["bridge"])
	}
	if mtu > bridgeMTU {
		return die("%s: MTU size '%d' is bigger than bridge MTU '%d'", key, mtu, bridgeMTU)
	}
	return nil
}

// printNet is print_lxc_network (pve-container src/PVE/LXC/Config.pm),
// which is PVE::JSONSchema::print_property_string (pve-common): netN has no
// default key, so its one required key, name, comes first, then every other
// key in alphabetical order.
func printNet(parts map[string]string) string {
	var out []string
	if v, ok := parts["name"]; ok {
		out = append(out, "name="+v)
	}
	for _, k := range slices.Sorted(maps.Keys(parts)) {
		if k != "name" {
			out = append(out, k+"="+parts[k])
		}
	}
	return strings.Join(out, ",")
}

// missingBridge is update_lxc_config's walk over a config's netN, in key
// order: the first whose bridge the node lacks, or whose mtu the bridge
// cannot carry. Templates have no lxc config and pass.
func missingBridge(n *node, vals map[string]string) error {
	if vals["template"] == "1" {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		if !isIndexed(k, "net") {
			continue
		}
		p := propString(vals[k], "")
		if !n.hasBridge(p["bridge"]) {
			return fmt.Errorf("bridge '%s' does not exist", p["bridge"])
		}
		if mtu, _ := strconv.Atoi(p["mtu"]); mtu > bridgeMTU {
			return fmt.Errorf("%s: MTU size '%d' is bigger than bridge MTU '%d'", k, mtu, bridgeMTU)
		}
	}
	return nil
}

// hotplugNetError is update_net (pve-container src/PVE/LXC.pm) for a netN
// of a running container: the message its hot-plug dies with when the
// bridge is missing, and whether it had already written the config without
// the interface.
//   - A new netN is created by veth_create, which reads the bridge's MTU.
//   - A changed hwaddr or name recreates the interface: update_net deletes
//     netN and writes the config before it plugs the new one, so a failure
//     leaves the container without netN.
//   - A changed bridge, tag, firewall or link_down re-plugs the port:
//     tap_plug finds the bridge neither a Linux nor an OVS bridge (pve-common
//     src/PVE/Network.pm), the old port is plugged back, the config is kept,
//     and update_net adds a newline to the message. A port plugged with
//     link_down=1 is not added to any bridge, so that change passes here.
func hotplugNetError(n *node, old string, hadOld bool, value string) (msg string, removed bool) {
	np := propString(value, "")
	bridge := np["bridge"]
	if !hadOld {
		switch {
		case bridge == "":
			return "unable to get bridge setting\n", false
		case !n.hasBridge(bridge):
			return fmt.Sprintf("bridge '%s' does not exist\n", bridge), false
		}
		return "", false
	}
	op := propString(old, "")
	if op["hwaddr"] != np["hwaddr"] || op["name"] != np["name"] {
		switch {
		case bridge == "":
			return "unable to get bridge setting\n", true
		case !n.hasBridge(bridge):
			return fmt.Sprintf("bridge '%s' does not exist\n", bridge), true
		}
		return "", false
	}
	// safe_string_ne and safe_num_ne tell a key set from one unset;
	// safe_boolean_ne compares link_down as a flag.
	replug := boolParam(op["link_down"]) != boolParam(np["link_down"])
	for _, k := range []string{"bridge", "tag", "firewall"} {
		o, oset := op[k]
		v, vset := np[k]
		replug = replug || o != v || oset != vset
	}
	if replug && !boolParam(np["link_down"]) && !n.hasBridge(bridge) {
		return fmt.Sprintf("bridge '%s' is neither a linux nor an OVS bridge!\n\n", bridge), false
	}
	return "", false
}
