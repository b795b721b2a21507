package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFirewallValidation(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"the original system's rules are valid": {
			src: container(`  firewall:
    enabled: true
    policyIn: DROP
    policyOut: ACCEPT
    logLevelIn: nolog
    dhcp: true
    ipfilter: false
    macfilter: true
    ndp: true
    radv: false
    rules:
      - {direction: in, action: ACCEPT, proto: tcp, dport: 22, source: 10.0.0.0/24, comment: SSH access}
      - {direction: in, action: ACCEPT, proto: tcp, dport: "8000:8100,http", dest: "10.0.0.5-10.0.0.9"}
      - {direction: out, action: REJECT, proto: icmp, icmpType: echo-request, iface: net0, log: info, enabled: false}
      - {direction: in, action: DROP, source: +blocked}
      - {direction: in, action: ACCEPT, source: "dc/trusted"}
      - {group: webservers, iface: net1, comment: web}
`),
		},
		"an empty policy clears it": {
			src: container("  firewall: {policyIn: \"\", logLevelOut: \"\", rules: []}\n"),
		},
		"bad options": {
			src: container("  firewall:\n    policyIn: drop\n    logLevelOut: verbose\n"),
			want: []problem{
				{18, "spec.firewall.policyIn", `want one of ACCEPT, REJECT, DROP (or "" for Proxmox's default), got "drop"`},
				{19, "spec.firewall.logLevelOut", `got "verbose"`},
			},
		},
		"a rule needs a direction and an action": {
			src: container("  firewall:\n    rules:\n      - {proto: tcp}\n      - {direction: forward, action: accept}\n"),
			want: []problem{
				{19, "spec.firewall.rules[0].direction", "needs a direction"},
				{19, "spec.firewall.rules[0].action", "needs an action"},
				{20, "spec.firewall.rules[1].direction", `want in or out, got "forward"`},
				{20, "spec.firewall.rules[1].action", `want ACCEPT, DROP or REJECT, got "accept"`},
			},
		},
		"ports need a protocol that has them": {
			src: container(`  firewall:
    rules:
      - {direction: in, action: ACCEPT, dport: 22}
      - {direction: in, action: ACCEPT, proto: icmp, sport: 22}
      - {direction: in, action: ACCEPT, proto: tcp, dport: "90:80"}
      - {direction: in, action: ACCEPT, proto: tcp, dport: "70000"}
      - {direction: in, action: ACCEPT, proto: tcp, icmpType: echo-request}
`),
			want: []problem{
				{19, "spec.firewall.rules[0].dport", "dport needs a proto"},
				{20, "spec.firewall.rules[1].sport", "protocol 'icmp' does not support ports"},
				{21, "spec.firewall.rules[2].dport", "invalid port range '90:80'"},
				{22, "spec.firewall.rules[3].dport", "invalid port '70000'"},
				{23, "spec.firewall.rules[4].icmpType", "needs proto icmp or icmpv6"},
			},
		},
		"addresses": {
			src: container(`  firewall:
    rules:
      - {direction: in, action: ACCEPT, source: 10.0.0.0/33}
      - {direction: in, action: ACCEPT, dest: "10.0.0.1,fe80::1"}
      - {direction: in, action: ACCEPT, source: "+"}
      - {direction: in, action: ACCEPT, source: "10.0.0.9-10.0.0.1"}
`),
			want: []problem{
				{19, "spec.firewall.rules[0].source", `"10.0.0.0/33" is not a CIDR network`},
				{20, "spec.firewall.rules[1].dest", "mixes IPv4 and IPv6"},
				{21, "spec.firewall.rules[2].source", "not an ipset reference"},
				{22, "spec.firewall.rules[3].source", "not an address range"},
			},
		},
		"a group rule takes only iface, comment and enabled": {
			src: container(`  firewall:
    rules:
      - {group: web, direction: in}
      - {group: "1web"}
      - {group: web, proto: tcp}
      - {group: a-name-longer-than-18}
`),
			want: []problem{
				{19, "spec.firewall.rules[0].group", "leave out direction and action"},
				{20, "spec.firewall.rules[1].group", `"1web" is not a security group name`},
				{21, "spec.firewall.rules[2].proto", "only iface, comment and enabled go with group"},
				{22, "spec.firewall.rules[3].group", "is not a security group name"},
			},
		},
		"iface, log and comment": {
			src: container(`  firewall:
    rules:
      - {direction: in, action: ACCEPT, iface: eth0}
      - {direction: in, action: ACCEPT, log: verbose}
      - {direction: in, action: ACCEPT, comment: " padded"}
      - {direction: in, action: ACCEPT, proto: "TCP"}
`),
			want: []problem{
				{19, "spec.firewall.rules[0].iface", "net0, net1"},
				{20, "spec.firewall.rules[1].log", `got "verbose"`},
				{21, "spec.firewall.rules[2].comment", "one line, without leading or trailing spaces"},
				{22, "spec.firewall.rules[3].proto", `"TCP" is not a protocol name`},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFirewallInheritance(t *testing.T) {
	yes, no := true, false
	drop, accept, empty := "DROP", "ACCEPT", ""
	ssh := FirewallRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "22", Comment: "ssh"}
	web := FirewallRule{Direction: "in", Action: "ACCEPT", Proto: "tcp", DPort: "443"}
	res := resolveDocs(t,
		doc("Template", "base", 900, root, "  firewall: {enabled: true, policyIn: DROP, dhcp: false, rules: [{direction: in, action: ACCEPT, proto: tcp, dport: 22, comment: ssh}]}\n"),
		doc("Template", "none", 901, root, ""),
		doc("Container", "same", 950, "{template: base}", ""),
		doc("Container", "more", 951, "{template: base}", "  firewall: {policyOut: ACCEPT, rules: [{direction: in, action: ACCEPT, proto: tcp, dport: 443}]}\n"),
		doc("Container", "cleared", 952, "{template: base}", "  firewall: {policyIn: \"\", enabled: false, rules: []}\n"),
		doc("Container", "unmanaged", 953, "{template: none}", ""),
	)
	want := map[string]*Firewall{
		"base":      {Enabled: &yes, PolicyIn: &drop, DHCP: &no, Rules: []FirewallRule{ssh}},
		"none":      nil,
		"same":      {Enabled: &yes, PolicyIn: &drop, DHCP: &no, Rules: []FirewallRule{ssh}},
		"more":      {Enabled: &yes, PolicyIn: &drop, PolicyOut: &accept, DHCP: &no, Rules: []FirewallRule{web}},
		"cleared":   {Enabled: &no, PolicyIn: &empty, DHCP: &no, Rules: []FirewallRule{}},
		"unmanaged": nil,
	}
	for name, w := range want {
		g, ok := res.Guest(name)
		if !ok {
			t.Fatalf("%s not resolved", name)
		}
		if diff := cmp.Diff(w, g.Settings.Firewall); diff != "" {
			t.Errorf("%s: firewall (-want +got):\n%s", name, diff)
		}
	}
	// A clone's settings are its own: changing them leaves the template's alone.
	base, _ := res.Guest("base")
	more, _ := res.Guest("more")
	*more.Settings.Firewall.Enabled = false
	if !*base.Settings.Firewall.Enabled {
		t.Error("a clone's firewall shares a pointer with its template's")
	}
}
