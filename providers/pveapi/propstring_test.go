package pveapi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func lxcCreateProperty(t *testing.T, s *Schema, name string) *Property {
	t.Helper()
	m, _, err := s.Lookup("POST", "/nodes/pve1/lxc")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := m.Property(name)
	if !ok {
		t.Fatalf("no property %q", name)
	}
	return p
}

func TestParsePropertyString(t *testing.T) {
	s := mustLoad(t, V91)
	for _, tc := range []struct {
		name, prop, value string
		want              map[string]string
		wantErr           string
		wantKeyErrors     map[string]string // for *PropertyStringError
	}{
		{name: "network with boolean normalised", prop: "net0", value: "name=eth0,bridge=vmbr0,ip=dhcp,firewall=yes",
			want: map[string]string{"name": "eth0", "bridge": "vmbr0", "ip": "dhcp", "firewall": "1"}},
		{name: "blank parts are skipped", prop: "net0", value: ",name=eth0, ,link_down=OFF,",
			want: map[string]string{"name": "eth0", "link_down": "0"}},
		{name: "device path as the default key", prop: "dev0", value: "/dev/nvidia0,gid=44",
			want: map[string]string{"path": "/dev/nvidia0", "gid": "44"}},
		{name: "device path by name", prop: "dev0", value: "path=/dev/nvidia0,deny-write=1",
			want: map[string]string{"path": "/dev/nvidia0", "deny-write": "1"}},
		{name: "rootfs volume as default key", prop: "rootfs", value: "local-lvm:8,size=8G,acl=0",
			want: map[string]string{"volume": "local-lvm:8", "size": "8G", "acl": "0"}},
		{name: "features", prop: "features", value: "nesting=1,keyctl=1",
			want: map[string]string{"nesting": "1", "keyctl": "1"}},
		{name: "unused volume", prop: "unused3", value: "local-lvm:vm-101-disk-3",
			want: map[string]string{"volume": "local-lvm:vm-101-disk-3"}},

		{name: "default key given twice", prop: "rootfs", value: "local-lvm:8,local-lvm:9",
			wantErr: "duplicate key in comma-separated list property: volume\n"},
		{name: "default key after the explicit key", prop: "rootfs", value: "volume=local-lvm:8,local-lvm:9",
			wantErr: "duplicate key in comma-separated list property: volume\n"},
		{name: "duplicate explicit key", prop: "net0", value: "name=eth0,bridge=vmbr0,bridge=vmbr1",
			wantErr: "duplicate key in comma-separated list property: bridge\n"},
		{name: "unknown sub-key", prop: "features", value: "nesting=1,docker=1",
			wantErr: "invalid key in comma-separated list property: docker\n"},
		{name: "key without value", prop: "net0", value: "name=",
			wantErr: "missing key in comma-separated list property\n"},
		{name: "value without key", prop: "net0", value: "=eth0",
			wantErr: "missing key in comma-separated list property\n"},
		{name: "no default key in the format", prop: "features", value: "nesting",
			wantErr: "value without key, but schema does not define a default key\n"},
		{name: "bad sub-values are all reported", prop: "net0", value: "name=eth0,tag=0,gw=10.0.0.300,rate=fast",
			wantErr: "format error\n" +
				"gw: invalid format - value does not look like a valid IPv4 address\n\n" +
				"rate: type check ('number') failed - got 'fast'\n" +
				"tag: value must have a minimum value of 1\n",
			wantKeyErrors: map[string]string{
				"gw":   "invalid format - value does not look like a valid IPv4 address\n",
				"rate": "type check ('number') failed - got 'fast'",
				"tag":  "value must have a minimum value of 1",
			}},
		{name: "required sub-key missing", prop: "mp0", value: "local-lvm:4",
			wantErr: "format error\nmp: property is missing and it is not optional\n"},
		{name: "boolean sub-value that is no boolean", prop: "features", value: "nesting=sometimes",
			wantErr: "format error\nnesting: type check ('boolean') failed - got 'sometimes'\n"},
		{name: "enum sub-value", prop: "net0", value: "name=eth0,type=macvlan",
			wantErr: "format error\ntype: value 'macvlan' does not have a value in the enumeration 'veth'\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePropertyString(lxcCreateProperty(t, s, tc.prop), tc.value)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("error %q, want none", err)
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("parsed (-want +got):\n%s", d)
				}
				return
			}
			if err == nil {
				t.Fatalf("parsed %v, want error %q", got, tc.wantErr)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("error %q, want %q", err, tc.wantErr)
			}
			if tc.wantKeyErrors != nil {
				var pse *PropertyStringError
				if !errors.As(err, &pse) {
					t.Fatalf("error %T, want *PropertyStringError", err)
				}
				if d := cmp.Diff(tc.wantKeyErrors, pse.Errors); d != "" {
					t.Errorf("key errors (-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestParsePropertyStringOfNamedFormat(t *testing.T) {
	s := mustLoad(t, V91)
	m, _, err := s.Lookup("POST", "/cluster/backup")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.Property("prune-backups")
	got, err := ParsePropertyString(p, "keep-daily=7,keep-weekly=4")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"keep-daily": "7", "keep-weekly": "4"}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := ParsePropertyString(p, "keep-all=1,keep-daily=7"); err == nil || err.Error() != "keep-all cannot be set together with other options.\n" {
		t.Errorf("error = %v, want the prune-backups validator's", err)
	}
}

func TestParsePropertyStringRejectsPlainProperty(t *testing.T) {
	s := mustLoad(t, V91)
	if _, err := ParsePropertyString(lxcCreateProperty(t, s, "vmid"), "101"); !errors.Is(err, ErrNotPropertyString) {
		t.Fatalf("error = %v, want ErrNotPropertyString", err)
	}
}
