package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFirewallSetValidation(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"aliases and ipsets as Proxmox takes them": {
			src: container(`  firewall:
    aliases:
      - {name: office, cidr: 10.1.0.0/16, comment: the office}
      - {name: Gateway_1, cidr: 10.0.0.1}
      - {name: v6-net, cidr: "fd00::/64"}
    ipsets:
      - name: trusted
        comment: who may log in
        entries:
          - {cidr: 10.0.0.0/24}
          - {cidr: 10.0.0.7, nomatch: true, comment: the printer}
          - {cidr: office}
          - {cidr: dc/backup}
      - {name: empty-set}
    rules:
      - {direction: in, action: ACCEPT, source: +trusted}
      - {direction: in, action: ACCEPT, source: office}
`),
		},
		"explicit empty lists": {
			src: container("  firewall: {aliases: [], ipsets: []}\n"),
		},
		"names": {
			src: container(`  firewall:
    aliases:
      - {name: 1office, cidr: 10.0.0.1}
      - {name: x, cidr: 10.0.0.1}
      - {name: Office, cidr: 10.0.0.2}
      - {name: office, cidr: 10.0.0.3}
    ipsets:
      - {name: Trusted}
      - {name: web}
      - {name: web}
`),
			want: []problem{
				{19, "spec.firewall.aliases[0].name", `"1office" is not an alias name`},
				{20, "spec.firewall.aliases[1].name", `"x" is not an alias name`},
				{22, "spec.firewall.aliases[3].name", `alias "office" is already aliases[2]`},
				{24, "spec.firewall.ipsets[0].name", "reads ipset names back in lower case"},
				{26, "spec.firewall.ipsets[2].name", `ipset "web" is already ipsets[1]`},
			},
		},
		"addresses": {
			src: container(`  firewall:
    aliases:
      - {name: a1, cidr: 10.0.0.0/33}
      - {name: a2, cidr: "FD00::1"}
      - {name: a3, cidr: office}
      - {name: a4, cidr: 10.0.0.5/24, comment: " padded"}
    ipsets:
      - name: set
        entries:
          - {cidr: 10.0.0.5/24}
          - {cidr: 0.0.0.0/0}
          - {cidr: 10.0.0.1/32}
          - {cidr: 10.0.0.1}
          - {cidr: +other}
          - {cidr: "10.0.0.1-10.0.0.9"}
`),
			want: []problem{
				{19, "spec.firewall.aliases[0].cidr", `"10.0.0.0/33" is not an IP address or CIDR network`},
				{20, "spec.firewall.aliases[1].cidr", "write the IPv6 address as fd00::1"},
				{21, "spec.firewall.aliases[2].cidr", `"office" is not an IP address or CIDR network`},
				{22, "spec.firewall.aliases[3].comment", "one line, without leading or trailing spaces"},
				{26, "spec.firewall.ipsets[0].entries[0].cidr", "host bits set: Proxmox stores it as 10.0.0.0/24"},
				{27, "spec.firewall.ipsets[0].entries[1].cidr", "a zero prefix is not allowed in ipset entries"},
				{29, "spec.firewall.ipsets[0].entries[3].cidr", "address '10.0.0.1' already exists (entries[2])"},
				{30, "spec.firewall.ipsets[0].entries[4].cidr", `"+other" is not an IP address or CIDR network`},
				{31, "spec.firewall.ipsets[0].entries[5].cidr", "is not an IP address or CIDR network"},
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

func TestFirewallSetInheritance(t *testing.T) {
	// Both documents load: an inherited firewall and explicit empty lists.
	_, err := Parse("test.yaml", []byte(header+`---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: child}
spec:
  vmid: 101
  from: {template: base}
  firewall: {enabled: true}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: cleared}
spec:
  vmid: 102
  from: {template: base}
  firewall: {aliases: [], ipsets: []}
`))
	if err != nil {
		t.Fatal(err)
	}
	base := &Firewall{Aliases: []FirewallAlias{{Name: "office", CIDR: "10.1.0.0/16"}},
		IPSets: []FirewallIPSet{{Name: "trusted", Entries: []FirewallIPSetEntry{{CIDR: "10.0.0.0/24"}}}}}
	var s Settings
	overlayFirewall(&s, base)
	child := s
	overlayFirewall(&child, &Firewall{})
	if diff := cmp.Diff(base.Aliases, child.Firewall.Aliases); diff != "" {
		t.Errorf("unset aliases are not the template's (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(base.IPSets, child.Firewall.IPSets); diff != "" {
		t.Errorf("unset ipsets are not the template's (-want +got):\n%s", diff)
	}
	cleared := s
	overlayFirewall(&cleared, &Firewall{Aliases: []FirewallAlias{}, IPSets: []FirewallIPSet{}})
	if cleared.Firewall.Aliases == nil || len(cleared.Firewall.Aliases) != 0 || cleared.Firewall.IPSets == nil || len(cleared.Firewall.IPSets) != 0 {
		t.Errorf("an explicit empty list does not clear: %+v", cleared.Firewall)
	}
	// The child's copy is its own: changing it leaves the template's alone.
	child.Firewall.IPSets[0].Entries[0].CIDR = "10.9.0.0/24"
	if base.IPSets[0].Entries[0].CIDR != "10.0.0.0/24" {
		t.Error("a clone's ipset entries share the template's")
	}
}

func TestParseFirewallRef(t *testing.T) {
	cases := map[string]struct {
		ref FirewallRef
		ok  bool
	}{
		"office":          {FirewallRef{Name: "office"}, true},
		"dc/office":       {FirewallRef{Scope: "dc", Name: "office"}, true},
		"+trusted":        {FirewallRef{IPSet: true, Name: "trusted"}, true},
		"+guest/trusted":  {FirewallRef{IPSet: true, Scope: "guest", Name: "trusted"}, true},
		"+sdn/vnet-all":   {FirewallRef{IPSet: true, Scope: "sdn", Name: "vnet-all"}, true},
		"sdn/office":      {},
		"10.0.0.0/24":     {},
		"10.0.0.1,office": {},
	}
	for in, tc := range cases {
		ref, ok := ParseFirewallRef(in)
		if ref != tc.ref || ok != tc.ok {
			t.Errorf("ParseFirewallRef(%q) = %+v, %t; want %+v, %t", in, ref, ok, tc.ref, tc.ok)
		}
		if ok && ref.String() != in {
			t.Errorf("%q written back as %q", in, ref.String())
		}
	}
}
