package pveapi

import (
	"sort"
	"strings"
	"testing"
)

// selectedPath reports whether phoenix's simulator and recorder rely on the method's
// formats: containers, cluster, tasks, storage content and login.
func selectedPath(path string) bool {
	return strings.HasPrefix(path, "/nodes/{node}/lxc") ||
		strings.HasPrefix(path, "/cluster/") || path == "/cluster" ||
		path == "/access/ticket" ||
		strings.HasPrefix(path, "/nodes/{node}/tasks") ||
		strings.HasPrefix(path, "/nodes/{node}/storage/{storage}/content")
}

// formatsUsed lists the named formats a method's parameters reference, nested ones
// (property-string keys, array items, oneOf alternatives) included.
func formatsUsed(m *Method) []string {
	seen := map[string]bool{}
	var walk func(p *Property)
	walk = func(p *Property) {
		if p.Format != "" {
			seen[p.Format] = true
		}
		for _, sub := range p.PropertyString {
			walk(sub)
		}
		if p.Items != nil {
			walk(p.Items)
		}
		for _, alt := range p.OneOf {
			walk(alt)
		}
	}
	for _, p := range m.Parameters() {
		walk(p)
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	return out
}

// Unknown formats fail closed ("undefined format"), so every format the selected paths
// use must have a checker or the simulator would reject valid requests.
func TestEveryFormatOnSelectedPathsHasAChecker(t *testing.T) {
	for _, v := range Versions() {
		t.Run(string(v), func(t *testing.T) {
			s := mustLoad(t, v)
			used := map[string][]string{}
			for _, m := range s.Methods() {
				if !selectedPath(m.Path) {
					continue
				}
				for _, f := range formatsUsed(m) {
					used[f] = append(used[f], m.HTTPMethod+" "+m.Path)
				}
			}
			names := make([]string, 0, len(used))
			for f := range used {
				names = append(names, f)
			}
			sort.Strings(names)
			t.Logf("%d formats used on the selected paths: %s", len(names), strings.Join(names, " "))
			var missing []string
			for _, f := range names {
				if !s.HasFormat(f) {
					missing = append(missing, f+" (e.g. "+used[f][0]+")")
				}
			}
			if len(missing) > 0 {
				t.Errorf("formats without a checker, requests using them fail closed:\n  %s", strings.Join(missing, "\n  "))
			}
		})
	}
}

// Formats used elsewhere (QEMU, node config, ACME) are not required; list the gaps.
func TestFormatsWithoutCheckerOutsideSelectedPaths(t *testing.T) {
	s := mustLoad(t, V91)
	gaps := map[string]bool{}
	for _, m := range s.Methods() {
		for _, f := range formatsUsed(m) {
			if !s.HasFormat(f) {
				gaps[f] = true
			}
		}
	}
	names := make([]string, 0, len(gaps))
	for f := range gaps {
		names = append(names, f)
	}
	sort.Strings(names)
	t.Logf("formats that fail closed (outside the selected paths): %s", strings.Join(names, " "))
}

func TestEverySchemaPatternCompiles(t *testing.T) {
	for _, v := range Versions() {
		s := mustLoad(t, v)
		var walk func(where string, p *Property)
		walk = func(where string, p *Property) {
			if p.Pattern != "" && (p.patternErr != nil || p.pattern == nil) {
				t.Errorf("%s %s: pattern %q: %v", v, where, p.Pattern, p.patternErr)
			}
			for _, sub := range p.PropertyString {
				walk(where+"."+sub.Name, sub)
			}
			if p.Items != nil {
				walk(where+"[]", p.Items)
			}
			for _, alt := range p.OneOf {
				walk(where, alt)
			}
		}
		for _, m := range s.Methods() {
			for _, p := range m.Parameters() {
				walk(m.HTTPMethod+" "+m.Path+" "+p.Name, p)
			}
		}
	}
}

func TestFormatCheckers(t *testing.T) {
	type tc struct {
		value string
		want  string // "" when valid, else PVE's die message
	}
	cases := map[string][]tc{
		"pve-node": {
			{"pve1", ""}, {"pve-1", ""}, {"PVE1", ""},
			{"pve1\n", ""}, // Perl's $ matches before a final newline
			{"-pve", "value does not look like a valid node name\n"},
			{"pve_1", "value does not look like a valid node name\n"},
			{"pve1.example.com", "value does not look like a valid node name\n"},
		},
		"pve-vmid": {
			{"100", ""}, {"999999999", ""},
			{"99", "value does not look like a valid VM ID\n"},
			{"0100", "value does not look like a valid VM ID\n"},
			{"1000000000", "value does not look like a valid VM ID\n"},
		},
		"pve-storage-id": {
			{"local-lvm", ""}, {"nfs.backup_1", ""},
			{"a", "storage ID 'a' contains illegal characters\n"},
			{"local-", "storage ID 'local-' contains illegal characters\n"},
		},
		"pve-configid": {
			{"net0", ""}, {"mp-1", ""},
			{"1net", "invalid configuration ID '1net'\n"},
			{"n", "invalid configuration ID 'n'\n"},
		},
		"pve-configid-list": {
			{"net0,mp1 unused0;rootfs", ""}, {"", ""},
			{"net0,,x!", "invalid configuration ID 'x!'\n"},
		},
		"pve-tag-list": {
			{"a;b", ""}, {"prod,web", ""}, {"Prod.v2+x", ""}, {"", ""},
			{"a b!", "invalid characters in tag\n"},
			{"-a", "invalid characters in tag\n"},
		},
		"dns-name": {
			{"web01", ""}, {"web01.example.com", ""},
			{"-web", "value does not look like a valid DNS name\n"},
			{"a..b", "value does not look like a valid DNS name\n"},
		},
		"dns-name-list": {{"example.com lan", ""}, {"example.com,_bad", "value does not look like a valid DNS name\n"}},
		"mac-addr": {
			{"BC:24:11:00:00:01", ""},
			{"01:00:5e:00:00:01", "value does not look like a valid unicast MAC address\n"},
			{"bc2411000001", "value does not look like a valid unicast MAC address\n"},
		},
		"ipv4": {
			{"192.168.0.1", ""},
			{"256.0.0.1", "value does not look like a valid IPv4 address\n"},
			{"01.2.3.4", "value does not look like a valid IPv4 address\n"},
		},
		"ipv6": {
			{"fe80::1", ""}, {"2001:db8::1", ""}, {"::ffff:1.2.3.4", ""},
			{"gggg::1", "value does not look like a valid IPv6 address\n"},
		},
		"pve-ipv4-config": {
			{"dhcp", ""}, {"manual", ""}, {"10.0.0.1/24", ""}, {"10.0.0.1/8", ""},
			{"10.0.0.1/7", "value does not look like a valid ipv4 network configuration\n"},
			{"10.0.0.1/33", "value does not look like a valid ipv4 network configuration\n"},
			{"auto", "value does not look like a valid ipv4 network configuration\n"},
		},
		"pve-ipv6-config": {
			{"auto", ""}, {"fd00::2/64", ""},
			{"fd00::2/7", "value does not look like a valid ipv6 network configuration\n"},
		},
		"CIDR":   {{"10.0.0.0/8", ""}, {"fd00::/8", ""}, {"10.0.0.0", "value does not look like a valid CIDR network\n"}},
		"CIDRv4": {{"10.0.0.0/24", ""}, {"fd00::/64", "value does not look like a valid IPv4 CIDR network\n"}},
		"CIDRv6": {{"fd00::/64", ""}, {"fd00::/129", "value does not look like a valid IPv6 CIDR network\n"}},
		"lxc-ip-with-ll-iface-list": {
			{"1.1.1.1 fe80::1%eth0", ""},
			{"fe80::1%eth0 resolver", "value does not look like a valid IP address\n"},
		},
		"pve-lxc-mp-string": {
			{"/mnt/data", ""}, {"local-lvm:vm-101-disk-1", ""},
			{"/mnt/../x", "/mnt/../x contains illegal character sequences\n"},
			{"../x", "../x contains illegal character sequences\n"},
			{"/mnt/.", "/mnt/. contains illegal character sequences\n"},
		},
		"pve-lxc-dev-string": {
			{"/dev/nvidia0", ""}, {"/dev/dri/renderD128", ""},
			{"/dev/.", "/dev/. is not a valid device path\n"},
			{"dev/null", "dev/null is not a valid device path\n"},
		},
		"pve-volume-id": {
			{"local:vztmpl/x.tar.zst", ""},
			{"local", "unable to parse volume ID 'local'\n"},
		},
		"pve-storage-content": {
			{"rootdir", ""}, {"none", ""}, {"import", ""},
			{"images,rootdir", "invalid content type 'images,rootdir'\n"},
		},
		"pve-task-status-type-list": {{"OK,error", ""}, {"ok,done", "invalid status 'done'\n"}},
		"pve-realm":                 {{"pam", ""}, {"p", "value does not look like a valid realm\n"}},
		"pve-userid": {
			{"root@pam", ""}, {"phoenix@pve", ""},
			{"ro", "user name 'ro' is too short\n"},
			{"a b@pam", "value 'a b@pam' does not look like a valid user name\n"},
			{"x/y@pve", "value 'x/y@pve' does not look like a valid user name\n"},
			{strings.Repeat("u", 62) + "@pve", "user name '" + strings.Repeat("u", 62) + "@pve' is too long (66 > 64)\n"},
		},
		"pve-poolid": {{"prod-pool", ""}, {"my pool", "pool name 'my pool' contains invalid characters\n"}},
		"disk-size": {
			{"8", ""}, {"8G", ""}, {"1.5T", ""},
			{"8GB", "value does not look like a valid disk size: 8GB\n"},
			{"8g", "value does not look like a valid disk size: 8g\n"},
		},
		"pve-startup-order": {
			{"1", ""}, {"order=1,up=2,down=3", ""},
			{"0", "unable to parse startup options\n"},
			{"up=x", "unable to parse startup options\n"},
		},
		"pve-ct-timezone": {
			{"host", ""}, {"UTC", ""}, {"Europe/Berlin", ""},
			{"Etc/UTC", "invalid time zone 'Etc/UTC'\n"},
		},
		"pve-calendar-event": {
			{"*/15", ""}, {"sun 01:00", ""}, {"mon..fri 02:30", ""}, {"daily", ""}, {"2024-01-01 00:00", ""},
			{"mon,wed *-*-01 12:00", ""}, {"sat 5:00 UTC", ""},
			{"every day", "invalid calendar event 'every day' - unable to parse calendar event\n"},
			{"25:00", "invalid calendar event '25:00' - unable to parse calendar event\n"},
		},
		"pve-replication-job-id": {
			{"100-0", ""},
			{"99-1", "invalid replication job id '99-1' (guest IDs < 100 are reseved)\n"},
			{"100", "invalid replication job id '100'\n"},
		},
		"pve-ha-resource-or-vm-id": {
			{"ct:100", ""}, {"100", ""},
			{"CT:100", "value does not look like a valid ha resource id\n"},
		},
		"pve-sdn-zone-id": {
			{"zone1", ""},
			{"zone12345", "zone ID 'zone12345' can't be more length than 8 characters\n"},
			{"1zone", "zone ID '1zone' contains illegal characters\n"},
		},
		"pve-sdn-subnet-id":   {{"zone1-10.0.0.0-24", ""}, {"zone1-10.0.0.0", "value does not look like a valid CIDR network\n"}},
		"pve-sdn-bgp-rt-list": {{"65000:100", ""}, {"65000", "value does not look like a valid bgp route-target\n"}},
		"pve-sdn-isis-net":    {{"49.0001.1921.6800.1002.00", ""}, {"49.1", "value does not look like a valid isis net\n"}},
		"mac-prefix":          {{"BC:24:11", ""}, {"01:00", "value is not a valid unicast MAC address prefix\n"}},
		"graphite-path":       {{"proxmox.cluster", ""}, {"proxmox..x", "value does not look like a valid graphite path\n"}},
		"email-opt":           {{"", ""}, {"0", ""}, {"root@example.com", ""}, {"x", "value does not look like a valid email address\n"}},
		"IPorCIDR": {
			{"10.0.0.0/8", ""}, {"10.0.0.1", ""},
			{"10.0.0.1/8", ""}, {"fd00::1/64", ""},
			{"foo", "value does not look like a valid IP address or CIDR network\n"},
		},
		"IPorCIDRorAlias": {{"office", ""}, {"dc/office", ""}, {"guest/office", ""}, {"10.0.0.0/8", ""}, {"vm/office", "value does not look like a valid IP address or CIDR network\n"}},
		"pve-fw-addr-spec": {
			{"+trusted", ""}, {"office", ""}, {"dc/office", ""}, {"guest/office", ""}, {"10.0.0.1,10.0.0.2", ""}, {"10.0.0.1-10.0.0.5", ""},
			{"10.0.0.1,fe80::1", "detected mixed ipv4/ipv6 addresses in address list '10.0.0.1,fe80::1'\n"},
			{"10.0.0.1-10.0.0.5,10.0.0.9", "you can't use a range in a list\n"},
			{"10.0.0.1,", "extraneous commas in list\n"},
		},
		"pve-fw-dport-spec": {
			{"22,80:90,https", ""}, {"echo-request", ""},
			{"70000", "invalid port '70000'\n"},
			{"90:80", "backwards range '90:80' not allowed, did you mean '80:90'?\n"},
			{"echo-request,22", "ICMP ports not allowed in port range\n"},
			{"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "too many entries in port list (> 15 numbers)\n"},
			{"nosuchservice", "invalid port 'nosuchservice'\n"},
		},
		"pve-fw-sport-spec":     {{"ssh", ""}, {"echo-request", "invalid port 'echo-request'\n"}},
		"pve-fw-protocol-spec":  {{"tcp", ""}, {"6", ""}, {"icmpv6", ""}, {"", ""}, {"foo", "unknown protocol 'foo'\n"}},
		"pve-fw-icmp-type-spec": {{"echo-request", ""}, {"", ""}, {"ping", "invalid icmp-type value 'ping'\n"}},
		"storage-pair-list": {
			{"local:local-lvm,nfs", ""}, {"1", ""},
			{"ab:1b", "entry 'ab:1b' contains invalid ID - storage ID '1b' contains illegal characters\n\n\n"},
		},
		"bridge-pair-list": {{"vmbr0:vmbr1", ""}},
		"proxmox-remote": {
			{"host=pve2,apitoken=PVEAPIToken=a@pam!t=secret", ""},
			{"host=pve2", "format error\napitoken: property is missing and it is not optional\n"},
		},
		"backup-fleecing": {
			{"1,storage=local-lvm", ""},
			{"enabled=2", "format error\nenabled: type check ('boolean') failed - got '2'\n"},
		},
		"backup-performance": {{"max-workers=300", "format error\nmax-workers: value must have a maximum value of 256\n"}},
		"no-such-format":     {{"x", "undefined format 'no-such-format'\n"}},
		"prune-backups-list": {{"keep-all=1", "'-list' format must have code ref, not hash\n"}},
	}
	s := mustLoad(t, V91)
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, c := range cases[name] {
			t.Run(name+"/"+c.value, func(t *testing.T) {
				got := ""
				if err := s.formats.check(name, c.value, ""); err != nil {
					got = err.Error()
				}
				if got != c.want {
					t.Errorf("check(%s, %q) = %q, want %q", name, c.value, got, c.want)
				}
			})
		}
	}
}

func TestReleaseSpecificFormats(t *testing.T) {
	for _, tc := range []struct {
		version       Version
		format, value string
		want          string
	}{
		{V83, "pve-priv-list", "VM.Monitor,VM.Audit", ""},
		{V91, "pve-priv-list", "VM.Monitor", "invalid privilege 'VM.Monitor'\n"},
		{V91, "pve-priv-list", "VM.GuestAgent.Unrestricted,VM.Replicate", ""},
		{V83, "pve-priv-list", "VM.Replicate", "invalid privilege 'VM.Replicate'\n"},
		{V83, "pve-ha-group-node-list", "pve1:2,pve2", ""},
		{V91, "pve-ha-node-list", "pve1:2,pve2", ""},
		{V91, "pve-ha-node-list", "pve1:x", "value does not look like a valid ha node\n"},
	} {
		t.Run(string(tc.version)+"/"+tc.format+"/"+tc.value, func(t *testing.T) {
			got := ""
			if err := mustLoad(t, tc.version).formats.check(tc.format, tc.value, ""); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
