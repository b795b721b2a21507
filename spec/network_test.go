package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Two running guests with one static address on one network answer ARP for
// the same address: validation refuses it. A Template never runs, so a
// clone that keeps its template's address is not a collision; two clones
// that both keep it are.
func TestStaticAddressesCollide(t *testing.T) {
	ct := func(name string, vmid int, rest string) string {
		return "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: " + name + "}\nspec:\n  vmid: " +
			itoa(vmid) + "\n  from: {template: base}\n" + rest
	}
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"the same address on the same bridge": {
			src: header + ct("a", 101, "  network: [{name: eth0, ip: 10.0.0.5/24}]\n") +
				ct("b", 102, "  network: [{name: eth0, ip: 10.0.0.9/24}, {name: eth1, ip: 10.0.0.5/16, bridge: vmbr0}]\n"),
			want: []problem{{25, "spec.network[1].ip",
				"static address 10.0.0.5 on bridge vmbr0 is also the address of Container a (spec.network[0], at test.yaml:11): give each guest its own, or use dhcp"}},
		},
		"the same address on the same VLAN": {
			src: header + ct("a", 101, "  network: [{name: eth0, ip: 10.0.0.5/24, vlan: 7}]\n") +
				ct("b", 102, "  network: [{name: eth0, ip: 10.0.0.5/24, vlan: 7}]\n"),
			want: []problem{{25, "spec.network[0].ip", "static address 10.0.0.5 on bridge vmbr0 VLAN 7 is also the address of Container a (spec.network[0], at test.yaml:11)"}},
		},
		"other bridges, other VLANs, dhcp and manual do not collide": {
			src: header + ct("a", 101, "  network: [{name: eth0, ip: 10.0.0.5/24}, {name: eth1, ip: dhcp}, {name: eth2, ip: manual}]\n") +
				ct("b", 102, "  network: [{name: eth0, ip: 10.0.0.5/24, bridge: vmbr1}, {name: eth1, ip: dhcp}, {name: eth2, ip: manual}]\n") +
				ct("c", 103, "  network: [{name: eth0, ip: 10.0.0.5/24, vlan: 8}]\n"),
		},
		"a clone keeps its template's address: no collision": {
			src: header + "  network: [{name: eth0, ip: 10.0.0.5/24}]\n" + ct("a", 101, ""),
		},
		"two clones keep their template's address": {
			src: header + "  network: [{name: eth0, ip: 10.0.0.5/24}]\n" + ct("a", 101, "") + ct("b", 102, ""),
			want: []problem{{24, "spec.from.template",
				"static address 10.0.0.5 on bridge vmbr0 (its spec.network[0], from Template base) is also the address of Container a (spec.network[0], from Template base, at test.yaml:12)"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, problems(t, tc.src, tc.want), cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
