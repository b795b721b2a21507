package pveapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// absent removes a parameter from a case's base request.
type absentParam struct{}

var absent = absentParam{}

type verifyCase struct {
	name     string
	versions []Version // nil: every release
	set      map[string]any
	want     Errors
}

// runVerify looks up method+path, merges the path parameters and base with each case's
// changes and compares Verify's error map.
func runVerify(t *testing.T, method, path string, base map[string]any, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		versions := tc.versions
		if versions == nil {
			versions = Versions()
		}
		for _, v := range versions {
			t.Run(tc.name+"/"+string(v), func(t *testing.T) {
				m, pathParams, err := mustLoad(t, v).Lookup(method, path)
				if err != nil {
					t.Fatal(err)
				}
				req := map[string]any{}
				for k, val := range base {
					req[k] = val
				}
				for k, val := range tc.set {
					if val == absent {
						delete(req, k)
						continue
					}
					req[k] = val
				}
				params, dup := MergeParams(pathParams, req)
				if dup != nil {
					t.Fatalf("MergeParams: %v", dup)
				}
				if d := cmp.Diff(tc.want, m.Verify(params)); d != "" {
					t.Errorf("Verify (-want +got):\n%s", d)
				}
			})
		}
	}
}

const notDefined = "property is not defined in schema and the schema does not allow additional properties"

func TestVerifyCreateContainer(t *testing.T) {
	base := map[string]any{
		"vmid":         "101",
		"ostemplate":   "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
		"hostname":     "web01.example.com",
		"storage":      "local-lvm",
		"rootfs":       "local-lvm:8",
		"cores":        "2",
		"memory":       "1024",
		"swap":         "512",
		"net0":         "name=eth0,bridge=vmbr0,ip=dhcp",
		"features":     "nesting=1,keyctl=1",
		"unprivileged": "1",
		"tags":         "a;b",
		"description":  "managed by phoenix",
		"start":        "1",
	}
	runVerify(t, "POST", "/nodes/pve1/lxc", base, []verifyCase{
		{name: "valid form request", want: nil},
		{name: "valid JSON body", set: map[string]any{
			"vmid": float64(101), "cores": json.Number("2"), "memory": 1024, "unprivileged": true, "start": false,
		}, want: nil},
		{name: "JSON float that prints as an integer passes an integer check", set: map[string]any{"cores": float64(2.0)}, want: nil},
		{name: "property string booleans accept yes/on/true", set: map[string]any{"features": "nesting=yes,keyctl=on,fuse=TRUE"}, want: nil},
		{name: "static IPv4, gateway, MAC, VLAN and MTU", set: map[string]any{
			"net0": "name=eth0,bridge=vmbr0,ip=192.168.1.10/24,gw=192.168.1.1,hwaddr=BC:24:11:AA:BB:CC,tag=10,mtu=1500,ip6=auto,firewall=1",
		}, want: nil},
		{name: "second interface and a mount point", set: map[string]any{"net1": "name=eth1,bridge=vmbr1", "mp0": "local-lvm:4,mp=/data,backup=1"}, want: nil},

		{name: "vmid below 100 fails the pve-vmid format before the minimum", set: map[string]any{"vmid": "99"},
			want: Errors{"vmid": "invalid format - value does not look like a valid VM ID\n"}},
		{name: "vmid not an integer", set: map[string]any{"vmid": "abc"},
			want: Errors{"vmid": "type check ('integer') failed - got 'abc'"}},
		{name: "vmid empty", set: map[string]any{"vmid": ""},
			want: Errors{"vmid": "type check ('integer') failed - got ''"}},
		{name: "missing ostemplate", set: map[string]any{"ostemplate": absent},
			want: Errors{"ostemplate": "property is missing and it is not optional"}},
		{name: "null ostemplate in a JSON body is missing too", set: map[string]any{"ostemplate": nil},
			want: Errors{"ostemplate": "property is missing and it is not optional"}},
		{name: "boolean parameters take only 1 and 0", set: map[string]any{"start": "true"},
			want: Errors{"start": "type check ('boolean') failed - got 'true'"}},
		{name: "cores below minimum", set: map[string]any{"cores": "0"},
			want: Errors{"cores": "value must have a minimum value of 1"}},
		{name: "cores above maximum", set: map[string]any{"cores": "9000"},
			want: Errors{"cores": "value must have a maximum value of 8192"}},
		{name: "memory below minimum", set: map[string]any{"memory": "8"},
			want: Errors{"memory": "value must have a minimum value of 16"}},
		{name: "cpulimit is a number", set: map[string]any{"cpulimit": "1.5x"},
			want: Errors{"cpulimit": "type check ('number') failed - got '1.5x'"}},
		{name: "arch outside enum", set: map[string]any{"arch": "sparc"},
			want: Errors{"arch": "value 'sparc' does not have a value in the enumeration 'amd64, i386, arm64, armhf, riscv32, riscv64'"}},
		{name: "hostname not a DNS name", set: map[string]any{"hostname": "web_01"},
			want: Errors{"hostname": "invalid format - value does not look like a valid DNS name\n"}},
		{name: "hostname longer than 255", set: map[string]any{"hostname": strings.Repeat("a", 256)},
			want: Errors{"hostname": "value may only be 255 characters long"}},
		{name: "password shorter than 5", set: map[string]any{"password": "abc"},
			want: Errors{"password": "value must be at least 5 characters long"}},
		{name: "storage ID empty", set: map[string]any{"storage": ""},
			want: Errors{"storage": "invalid format - storage ID '' contains illegal characters\n"}},
		{name: "rootfs without a volume", set: map[string]any{"rootfs": "size=8G"},
			want: Errors{"rootfs": "invalid format - format error\nrootfs.volume: property is missing and it is not optional\n"}},
		{name: "net0 without name", set: map[string]any{"net0": "bridge=vmbr0,ip=dhcp"},
			want: Errors{"net0": "invalid format - format error\nnet0.name: property is missing and it is not optional\n"}},
		{name: "net0 IPv4 without prefix length", set: map[string]any{"net0": "name=eth0,bridge=vmbr0,ip=10.0.0.5"},
			want: Errors{"net0": "invalid format - format error\nnet0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n"}},
		{name: "net0 bare value, net has no default key", set: map[string]any{"net0": "eth0"},
			want: Errors{"net0": "invalid format - value without key, but schema does not define a default key\n"}},
		{name: "net0 unknown sub-key", set: map[string]any{"net0": "name=eth0,foo=1"},
			want: Errors{"net0": "invalid format - invalid key in comma-separated list property: foo\n"}},
		{name: "net0 duplicate sub-key", set: map[string]any{"net0": "name=eth0,name=eth1"},
			want: Errors{"net0": "invalid format - duplicate key in comma-separated list property: name\n"}},
		{name: "net0 bad boolean, MTU and multicast MAC report every key", set: map[string]any{"net0": "name=eth0,firewall=maybe,mtu=10,hwaddr=01:00:5E:00:00:01"},
			want: Errors{"net0": "invalid format - format error\n" +
				"net0.firewall: type check ('boolean') failed - got 'maybe'\n" +
				"net0.hwaddr: invalid format - value does not look like a valid unicast MAC address\n\n" +
				"net0.mtu: value must have a minimum value of 64\n"}},
		{name: "features unknown sub-key", set: map[string]any{"features": "nesting=1,docker=1"},
			want: Errors{"features": "invalid format - invalid key in comma-separated list property: docker\n"}},
		{name: "tags with bad characters", set: map[string]any{"tags": "a;b c!"},
			want: Errors{"tags": "invalid format - invalid characters in tag\n"}},
		{name: "unknown parameter", set: map[string]any{"bogus": "1"},
			want: Errors{"bogus": notDefined}},
		{name: "net32 is beyond MAX_LXC_NETWORKS", versions: []Version{V91}, set: map[string]any{"net32": "name=eth32"},
			want: Errors{"net32": notDefined}},
		{name: "net10 is beyond PVE 8's ten networks", versions: []Version{V83}, set: map[string]any{"net10": "name=eth10"},
			want: Errors{"net10": notDefined}},
		{name: "net10 is fine on PVE 9", versions: []Version{V91}, set: map[string]any{"net10": "name=eth10"}, want: nil},
		{name: "unique requires restore", set: map[string]any{"unique": "1"},
			want: Errors{"restore": "missing property - 'unique' requires this property"}},
		{name: "JSON true for a string parameter", set: map[string]any{"description": true},
			want: Errors{"description": "type check ('string') failed - got JSON::PP::Boolean"}},
		{name: "JSON array for an integer parameter", set: map[string]any{"cores": []any{1}},
			want: Errors{"cores": "type check ('integer') failed - got ARRAY"}},
		{name: "several errors at once", set: map[string]any{"vmid": "1", "start": "yes", "ostemplate": absent},
			want: Errors{
				"vmid":       "invalid format - value does not look like a valid VM ID\n",
				"start":      "type check ('boolean') failed - got 'yes'",
				"ostemplate": "property is missing and it is not optional",
			}},

		// Parameters and sub-keys that PVE 9 added.
		{name: "entrypoint is new in 9", versions: []Version{V91}, set: map[string]any{"entrypoint": "/sbin/init"}, want: nil},
		{name: "entrypoint is unknown in 8.3", versions: []Version{V83}, set: map[string]any{"entrypoint": "/sbin/init"},
			want: Errors{"entrypoint": notDefined}},
		{name: "net host-managed is new in 9", versions: []Version{V91}, set: map[string]any{"net0": "name=eth0,bridge=vmbr0,host-managed=1"}, want: nil},
		{name: "net host-managed is unknown in 8.3", versions: []Version{V83}, set: map[string]any{"net0": "name=eth0,bridge=vmbr0,host-managed=1"},
			want: Errors{"net0": "invalid format - invalid key in comma-separated list property: host-managed\n"}},
		{name: "mp keepattrs is unknown in 8.3", versions: []Version{V83}, set: map[string]any{"mp0": "local-lvm:4,mp=/data,keepattrs=1"},
			want: Errors{"mp0": "invalid format - invalid key in comma-separated list property: keepattrs\n"}},
		{name: "dev deny-write exists in both", set: map[string]any{"dev0": "/dev/dri/renderD128,deny-write=1"}, want: nil},
	})
}

func TestVerifyCloneContainer(t *testing.T) {
	base := map[string]any{"newid": "102", "full": "1", "hostname": "clone01", "target": "pve2", "storage": "local-lvm"}
	runVerify(t, "POST", "/nodes/pve1/lxc/101/clone", base, []verifyCase{
		{name: "valid", want: nil},
		{name: "minimal", set: map[string]any{"full": absent, "hostname": absent, "target": absent, "storage": absent}, want: nil},
		{name: "newid missing", set: map[string]any{"newid": absent},
			want: Errors{"newid": "property is missing and it is not optional"}},
		{name: "newid too small", set: map[string]any{"newid": "50"},
			want: Errors{"newid": "invalid format - value does not look like a valid VM ID\n"}},
		{name: "full must be 0 or 1", set: map[string]any{"full": "yes"},
			want: Errors{"full": "type check ('boolean') failed - got 'yes'"}},
		{name: "target not a node name", set: map[string]any{"target": "pve_2"},
			want: Errors{"target": "invalid format - value does not look like a valid node name\n"}},
		{name: "storage starting with a digit", set: map[string]any{"storage": "1store"},
			want: Errors{"storage": "invalid format - storage ID '1store' contains illegal characters\n"}},
		{name: "pool with a space", set: map[string]any{"pool": "my pool"},
			want: Errors{"pool": "invalid format - pool name 'my pool' contains invalid characters\n"}},
		{name: "snapname longer than 40", set: map[string]any{"snapname": "s" + strings.Repeat("x", 40)},
			want: Errors{"snapname": "value may only be 40 characters long"}},
	})
}

func TestVerifySourceVMIDFromPath(t *testing.T) {
	m, pathParams, err := mustLoad(t, V91).Lookup("POST", "/nodes/pve1/lxc/abc/clone")
	if err != nil {
		t.Fatal(err)
	}
	params, _ := MergeParams(pathParams, map[string]any{"newid": "102"})
	want := Errors{"vmid": "type check ('integer') failed - got 'abc'"}
	if d := cmp.Diff(want, m.Verify(params)); d != "" {
		t.Errorf("Verify (-want +got):\n%s", d)
	}
}

func TestVerifyUpdateContainerConfig(t *testing.T) {
	digest := strings.Repeat("0123456789", 4)
	runVerify(t, "PUT", "/nodes/pve1/lxc/101/config", map[string]any{}, []verifyCase{
		{name: "empty update", want: nil},
		{name: "delete list, digest, device and tags", set: map[string]any{
			"delete": "mp0,net1;unused0 description", "digest": digest, "dev0": "/dev/nvidia0,gid=44", "tags": "prod;web",
		}, want: nil},
		{name: "delete as a JSON array is joined with commas", set: map[string]any{"delete": []any{"mp0", "net1"}}, want: nil},
		{name: "device with explicit path key, mode and uid", set: map[string]any{"dev1": "path=/dev/dri/card0,mode=0660,uid=0"}, want: nil},
		{name: "delete entry that is not a config ID", set: map[string]any{"delete": "net0,1net"},
			want: Errors{"delete": "invalid format - invalid configuration ID '1net'\n"}},
		{name: "digest longer than a SHA1", set: map[string]any{"digest": digest + "0"},
			want: Errors{"digest": "value may only be 40 characters long"}},
		{name: "device outside /dev", set: map[string]any{"dev0": "/tmp/nvidia0"},
			want: Errors{"dev0": "invalid format - format error\ndev0.path: invalid format - /tmp/nvidia0 is not a valid device path\n\n"}},
		{name: "device path escaping /dev", set: map[string]any{"dev0": "/dev/../etc/shadow"},
			want: Errors{"dev0": "invalid format - format error\ndev0.path: invalid format - /dev/../etc/shadow is not a valid device path\n\n"}},
		{name: "device gid below zero", set: map[string]any{"dev0": "/dev/nvidia0,gid=-1"},
			want: Errors{"dev0": "invalid format - format error\ndev0.gid: value must have a minimum value of 0\n"}},
		{name: "device mode not octal", set: map[string]any{"dev0": "/dev/nvidia0,mode=0999"},
			want: Errors{"dev0": "invalid format - format error\ndev0.mode: value does not match the regex pattern\n"}},
		{name: "two device paths", set: map[string]any{"dev0": "/dev/a,/dev/b"},
			want: Errors{"dev0": "invalid format - duplicate key in comma-separated list property: path\n"}},
		{name: "tags with bad characters", set: map[string]any{"tags": "prod,web server!"},
			want: Errors{"tags": "invalid format - invalid characters in tag\n"}},
		{name: "tag starting with a dash", set: map[string]any{"tags": "-prod"},
			want: Errors{"tags": "invalid format - invalid characters in tag\n"}},
		{name: "dev256 beyond MAX_DEVICES", set: map[string]any{"dev256": "/dev/null"},
			want: Errors{"dev256": notDefined}},
		{name: "ostemplate is for create only", set: map[string]any{"ostemplate": "local:vztmpl/x.tar.zst"},
			want: Errors{"ostemplate": notDefined}},
		{name: "timezone from zone.tab or host", set: map[string]any{"timezone": "Europe/Vienna"}, want: nil},
		{name: "timezone not in zone.tab", set: map[string]any{"timezone": "Mars/Olympus"},
			want: Errors{"timezone": "invalid format - invalid time zone 'Mars/Olympus'\n"}},
		{name: "nameserver list with link-local interface", set: map[string]any{"nameserver": "1.1.1.1 fe80::1%eth0"}, want: nil},
		{name: "nameserver that is not an IP", set: map[string]any{"nameserver": "dns.example.com"},
			want: Errors{"nameserver": "invalid format - value does not look like a valid IP address\n"}},
		{name: "startup order", set: map[string]any{"startup": "order=2,up=30"}, want: nil},
		{name: "startup garbage", set: map[string]any{"startup": "first"},
			want: Errors{"startup": "invalid format - unable to parse startup options\n"}},
		{name: "hookscript volume", set: map[string]any{"hookscript": "local:snippets/hook.sh"}, want: nil},
		{name: "hookscript not a volume ID", set: map[string]any{"hookscript": "/root/hook.sh"},
			want: Errors{"hookscript": "invalid format - unable to parse volume ID '/root/hook.sh'\n"}},
		{name: "mount point with illegal path", set: map[string]any{"mp0": "local-lvm:4,mp=/data/../etc"},
			want: Errors{"mp0": "invalid format - format error\nmp0.mp: invalid format - /data/../etc contains illegal character sequences\n\n"}},
		{name: "rootfs size not a disk size", set: map[string]any{"rootfs": "local-lvm:vm-101-disk-0,size=8GB"},
			want: Errors{"rootfs": "invalid format - format error\nrootfs.size: invalid format - value does not look like a valid disk size: 8GB\n\n"}},
		{name: "rootfs mount options", set: map[string]any{"rootfs": "local-lvm:vm-101-disk-0,mountoptions=noatime;nodev"}, want: nil},
	})
}

func TestVerifyStartContainer(t *testing.T) {
	runVerify(t, "POST", "/nodes/pve1/lxc/101/status/start", map[string]any{}, []verifyCase{
		{name: "no parameters", want: nil},
		{name: "skiplock and debug", set: map[string]any{"skiplock": "1", "debug": "0"}, want: nil},
		{name: "debug must be 0 or 1", set: map[string]any{"debug": "2"},
			want: Errors{"debug": "type check ('boolean') failed - got '2'"}},
		{name: "timeout is a stop parameter", set: map[string]any{"timeout": "30"},
			want: Errors{"timeout": notDefined}},
	})
}

func TestVerifyDestroyContainer(t *testing.T) {
	runVerify(t, "DELETE", "/nodes/pve1/lxc/101", map[string]any{}, []verifyCase{
		{name: "purge", set: map[string]any{"purge": "1", "destroy-unreferenced-disks": "1", "force": "0"}, want: nil},
		{name: "purge as a word", set: map[string]any{"purge": "yes"},
			want: Errors{"purge": "type check ('boolean') failed - got 'yes'"}},
	})
}

func TestVerifyTaskEndpoints(t *testing.T) {
	const upid = "UPID:pve1:0000C3A7:0001F43E:65DFB1C5:vzcreate:101:root@pam:"
	runVerify(t, "GET", "/nodes/pve1/tasks/"+upid+"/status", map[string]any{}, []verifyCase{
		{name: "real UPID", want: nil},
		{name: "no extra parameters", set: map[string]any{"vmid": "101"}, want: Errors{"vmid": notDefined}},
	})
	runVerify(t, "GET", "/nodes/pve-1/tasks", map[string]any{}, []verifyCase{
		{name: "filters", set: map[string]any{"vmid": "101", "statusfilter": "ok,Error", "source": "all", "limit": "0"}, want: nil},
		{name: "status filter entry unknown", set: map[string]any{"statusfilter": "ok,bogus"},
			want: Errors{"statusfilter": "invalid format - invalid status 'bogus'\n"}},
		{name: "negative limit", set: map[string]any{"limit": "-1"},
			want: Errors{"limit": "value must have a minimum value of 0"}},
		{name: "source outside enum", set: map[string]any{"source": "running"},
			want: Errors{"source": "value 'running' does not have a value in the enumeration 'archive, active, all'"}},
	})
	runVerify(t, "GET", "/nodes/-pve1/tasks/"+upid+"/status", map[string]any{}, []verifyCase{
		{name: "node from the path is verified", want: Errors{"node": "invalid format - value does not look like a valid node name\n"}},
	})
}

func TestVerifyStorageContent(t *testing.T) {
	runVerify(t, "GET", "/nodes/pve1/storage/local/content", map[string]any{}, []verifyCase{
		{name: "templates", set: map[string]any{"content": "vztmpl"}, want: nil},
		{name: "import content exists in both releases", set: map[string]any{"content": "import"}, want: nil},
		{name: "unknown content type", set: map[string]any{"content": "templates"},
			want: Errors{"content": "invalid format - invalid content type 'templates'\n"}},
	})
	runVerify(t, "GET", "/nodes/pve1/storage/local_store/content", map[string]any{}, []verifyCase{
		{name: "storage ID from the path", want: nil},
	})
	runVerify(t, "GET", "/nodes/pve1/storage/_local/content", map[string]any{}, []verifyCase{
		{name: "storage ID must start with a letter", want: Errors{"storage": "invalid format - storage ID '_local' contains illegal characters\n"}},
	})
}

func TestVerifyLogin(t *testing.T) {
	base := map[string]any{"username": "root@pam", "password": "secret"}
	runVerify(t, "POST", "/access/ticket", base, []verifyCase{
		{name: "password login", want: nil},
		{name: "ticket check with privileges", set: map[string]any{"path": "/vms/101", "privs": "VM.Audit,VM.PowerMgmt"}, want: nil},
		{name: "privs require path", set: map[string]any{"privs": "VM.Audit"},
			want: Errors{"path": "missing property - 'privs' requires this property"}},
		{name: "VM.Monitor still exists in 8.3", versions: []Version{V83}, set: map[string]any{"path": "/", "privs": "VM.Monitor"}, want: nil},
		{name: "VM.Monitor is gone in 9", versions: []Version{V91}, set: map[string]any{"path": "/", "privs": "VM.Monitor"},
			want: Errors{"privs": "invalid format - invalid privilege 'VM.Monitor'\n"}},
		{name: "guest agent privileges are new in 9", versions: []Version{V91}, set: map[string]any{"path": "/", "privs": "VM.GuestAgent.Audit"}, want: nil},
		{name: "realm too short", set: map[string]any{"realm": "p"},
			want: Errors{"realm": "invalid format - value does not look like a valid realm\n"}},
		{name: "password missing", set: map[string]any{"password": absent},
			want: Errors{"password": "property is missing and it is not optional"}},
	})
}

func TestVerifyClusterEndpoints(t *testing.T) {
	runVerify(t, "GET", "/cluster/resources", map[string]any{}, []verifyCase{
		{name: "vm resources", set: map[string]any{"type": "vm"}, want: nil},
		{name: "ct is not a resource type", set: map[string]any{"type": "ct"},
			want: Errors{"type": "value 'ct' does not have a value in the enumeration 'vm, storage, node, sdn'"}},
	})
	runVerify(t, "GET", "/cluster/nextid", map[string]any{}, []verifyCase{
		{name: "no vmid", want: nil},
		{name: "vmid to test", set: map[string]any{"vmid": "100"}, want: nil},
	})
	runVerify(t, "POST", "/cluster/notifications/endpoints/sendmail", map[string]any{"name": "mail", "mailto": "root@pam"}, []verifyCase{
		{name: "a lone value for an array parameter becomes an array", want: nil},
		{name: "array items are checked one by one", set: map[string]any{"mailto": []any{"admin@example.com", "not a user!"}},
			want: Errors{"mailto[1]": "invalid format - value does not look like a valid email address or user name\n"}},
	})
	runVerify(t, "POST", "/cluster/backup", map[string]any{"schedule": "sun 01:00", "all": "1", "storage": "local"}, []verifyCase{
		{name: "backup job", set: map[string]any{"prune-backups": "keep-last=3,keep-weekly=2", "fleecing": "1,storage=local-lvm"}, want: nil},
		{name: "keep-all conflicts with other keep options", set: map[string]any{"prune-backups": "keep-all=1,keep-last=3"},
			want: Errors{"prune-backups": "invalid format - keep-all cannot be set together with other options.\n"}},
		{name: "unknown prune option", set: map[string]any{"prune-backups": "keep-forever=1"},
			want: Errors{"prune-backups": "invalid format - invalid key in comma-separated list property: keep-forever\n"}},
	})
}

func TestVerifyRejectsUnknownSnapshotParameterLikePVE9(t *testing.T) {
	// samples/error-400-param-verification-pve9-1.txt: vmstate is a QEMU-only parameter.
	runVerify(t, "POST", "/nodes/proxmox01/lxc/109/snapshot", map[string]any{"snapname": "before"}, []verifyCase{
		{name: "vmstate", set: map[string]any{"vmstate": "1"}, want: Errors{"vmstate": notDefined}},
	})
}

func TestMergeParamsRejectsParametersRepeatingThePath(t *testing.T) {
	got, errs := MergeParams(map[string]string{"node": "pve1", "vmid": "101"}, map[string]any{"vmid": "102", "cores": "2"})
	if got != nil {
		t.Errorf("merged = %v, want nil on error", got)
	}
	if d := cmp.Diff(Errors{"vmid": DuplicateParamMessage}, errs); d != "" {
		t.Errorf("errors (-want +got):\n%s", d)
	}
	got, errs = MergeParams(map[string]string{"node": "pve1"}, map[string]any{"cores": "2"})
	if d := cmp.Diff(map[string]any{"node": "pve1", "cores": "2"}, got); d != "" || errs != nil {
		t.Errorf("merge (-want +got):\n%s errs=%v", d, errs)
	}
}

func TestErrorsPrintLikePVEException(t *testing.T) {
	errs := Errors{"vmid": "invalid format - value does not look like a valid VM ID\n", "cores": "value must have a minimum value of 1"}
	want := "Parameter verification failed.\n" +
		"cores: value must have a minimum value of 1\n" +
		"vmid: invalid format - value does not look like a valid VM ID\n\n"
	if got := errs.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestErrorsJoinMessagesForOnePathWithLiteralBackslashN(t *testing.T) {
	errs := Errors{}
	errs.add("path", "value may only be 64 characters long")
	errs.add("path", "missing property - 'privs' requires this property")
	want := Errors{"path": `value may only be 64 characters long\nmissing property - 'privs' requires this property`}
	if d := cmp.Diff(want, errs); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// check_prop only calls check_object when the parameter schema has properties (or allows
// additional ones), so a method declared with just additionalProperties => 0 takes
// anything.
func TestVerifyAcceptsAnythingWhereSchemaHasNoProperties(t *testing.T) {
	runVerify(t, "GET", "/version", map[string]any{}, []verifyCase{
		{name: "unknown parameter on a property-less method", set: map[string]any{"foo": "1"}, want: nil},
	})
	runVerify(t, "GET", "/cluster/resources", map[string]any{}, []verifyCase{
		{name: "unknown parameter where properties exist", set: map[string]any{"foo": "1"}, want: Errors{"foo": notDefined}},
	})
}
