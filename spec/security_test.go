package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSecurityValidation(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"what the original configs declare is valid": {
			src: container(`  security:
    features: {nesting: true, keyctl: false, fuse: true, mknod: true, forceRwSys: true, mount: [nfs, cifs]}
    apparmor: unconfined
    idMap: [{type: gid, container: 33, host: 33, size: 1}]
    rawLXC:
      lxc.mount.auto: ["sys:rw"]
      lxc.cgroup2.devices.allow: ["c 10:200 rwm"]
      lxc.prlimit.nofile: ["65536"]
      lxc.net.0.flags: [up]
      lxc.cap.drop: []
`),
		},
		"mount types are file system names, each once": {
			src: container("  security: {features: {mount: [nfs, \"nfs;cifs\", nfs]}}\n"),
			want: []problem{
				{17, "spec.security.features.mount[1]", `"nfs;cifs" is not a file system type`},
				{17, "spec.security.features.mount[2]", "nfs is listed twice"},
			},
		},
		"an AppArmor profile is one word": {
			src:  container("  security: {apparmor: \"lxc-container-default with-nesting\"}\n"),
			want: []problem{{17, "spec.security.apparmor", "is not an AppArmor profile name"}},
		},
		"raw keys are the ones Proxmox accepts in a config file": {
			src: container(`  security:
    rawLXC:
      lxc.rootfs.path: [/x]
      lxc.rootfs.options: [ro]
      lxc.aa_profile: [unconfined]
      lxc.cgroup.devices.allow: ["c 10:200 rwm"]
      lxc.limit.nofile: ["1024"]
      lxc.made.up: ["1"]
      lxc.apparmor.profile: [unconfined]
      lxc.idmap: [u 0 100000 65536]
      lxc.environment.runtime: [A=1]
`),
			want: []problem{
				{19, "spec.security.rawLXC.lxc.rootfs.path", "auto generated from rootfs"},
				{20, "spec.security.rawLXC.lxc.rootfs.options", "please use mount point options"},
				{21, "spec.security.rawLXC.lxc.aa_profile", "was renamed to lxc.apparmor.profile"},
				{22, "spec.security.rawLXC.lxc.cgroup.devices.allow", "write lxc.cgroup2.*"},
				{23, "spec.security.rawLXC.lxc.limit.nofile", "write lxc.prlimit.nofile"},
				{24, "spec.security.rawLXC.lxc.made.up", "Proxmox does not accept lxc.made.up"},
				{25, "spec.security.rawLXC.lxc.apparmor.profile", "security.apparmor"},
				{26, "spec.security.rawLXC.lxc.idmap", "security.idMap"},
				{27, "spec.security.rawLXC.lxc.environment.runtime", "env option"},
			},
		},
		"raw values are single trimmed lines, and never pass NVIDIA devices": {
			src: container(`  security:
    rawLXC:
      lxc.mount.auto: [" sys:rw", ""]
      lxc.cgroup2.devices.allow: ["c 195:* rwm"]
      lxc.mount.entry: [/dev/nvidia0 dev/nvidia0 none bind,optional,create=file]
`),
			want: []problem{
				{19, "spec.security.rawLXC.lxc.mount.auto[0]", "without spaces around it"},
				{19, "spec.security.rawLXC.lxc.mount.auto[1]", "not empty"},
				{20, "spec.security.rawLXC.lxc.cgroup2.devices.allow[0]", "spec.gpus"},
				{21, "spec.security.rawLXC.lxc.mount.entry[0]", "spec.gpus"},
			},
		},
		"id maps stay inside the container's ids and do not overlap": {
			src: container(`  security:
    idMap:
      - {type: uid, container: 65535, host: 1000, size: 2}
      - {type: group, container: 1, host: 1}
      - {type: gid, container: 33, host: 33, size: 10}
      - {type: both, container: 40, host: 2000, size: 5}
      - {type: gid, container: 1000, host: 100500}
`),
			want: []problem{
				{19, "spec.security.idMap[0].container", "container ids 65535..65536 are outside 0..65535"},
				{20, "spec.security.idMap[1].type", `want uid, gid or both, got "group"`},
				{22, "spec.security.idMap[3]", "container gid 40 is also mapped by spec.security.idMap[2]"},
				{23, "spec.security.idMap[4].host", "host gid 100500 is the default map's for container gid 500"},
			},
		},
		"an id map needs an unprivileged container": {
			src: `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  unprivileged: false
  security: {idMap: [{type: gid, container: 33, host: 33}]}
`,
			want: []problem{{10, "spec.security.idMap", "id maps are for unprivileged containers"}},
		},
		"docker needs nesting and keyctl": {
			src:  container("  features: [docker]\n  security: {features: {nesting: false, keyctl: true}}\n"),
			want: []problem{{18, "spec.security.features.nesting", "feature docker needs nesting: true"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b problem) bool { return a == b })); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSecurityInheritance: every field inherits on its own, features flag
// by flag and rawLXC key by key; an explicit empty value clears.
func TestSecurityInheritance(t *testing.T) {
	yes, no := true, false
	unconfined, empty := "unconfined", ""
	res := resolveDocs(t,
		doc("Template", "a", 100, root, `  security:
    features: {nesting: true, fuse: true, mount: [nfs]}
    apparmor: unconfined
    idMap: [{type: gid, container: 33, host: 33}]
    rawLXC: {lxc.mount.auto: ["sys:rw"], lxc.cap.drop: [sys_time]}
`),
		doc("Template", "b", 101, "{template: a}", ""),
		doc("Container", "c", 102, "{template: b}", `  security:
    features: {fuse: false, mount: []}
    apparmor: ""
    rawLXC: {lxc.cap.drop: []}
`),
		doc("Container", "d", 103, "{template: b}", "  security: {idMap: []}\n"),
		doc("Container", "e", 104, root, ""),
	)
	a := &Security{Features: &ContainerFeatures{Nesting: &yes, Fuse: &yes, Mount: []string{"nfs"}}, AppArmor: &unconfined,
		IDMap: []IDMapping{{Type: "gid", Container: 33, Host: 33}}, RawLXC: map[string][]string{"lxc.mount.auto": {"sys:rw"}, "lxc.cap.drop": {"sys_time"}}}
	want := map[string]*Security{
		"a": a,
		"b": a,
		"c": {Features: &ContainerFeatures{Nesting: &yes, Fuse: &no, Mount: []string{}}, AppArmor: &empty,
			IDMap: []IDMapping{{Type: "gid", Container: 33, Host: 33}}, RawLXC: map[string][]string{"lxc.mount.auto": {"sys:rw"}, "lxc.cap.drop": {}}},
		"d": {Features: &ContainerFeatures{Nesting: &yes, Fuse: &yes, Mount: []string{"nfs"}}, AppArmor: &unconfined,
			IDMap: []IDMapping{}, RawLXC: map[string][]string{"lxc.mount.auto": {"sys:rw"}, "lxc.cap.drop": {"sys_time"}}},
		"e": nil,
	}
	got := map[string]*Security{}
	for _, g := range res.Guests {
		got[g.Name] = g.Settings.Security
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("security (-want +got):\n%s", diff)
	}
	if got["c"].RawLXC["lxc.cap.drop"] == nil || got["d"].IDMap == nil || got["c"].Features.Mount == nil {
		t.Error("an explicit empty value must stay empty, not unset")
	}
	// The clone's settings are its own: changing them does not reach its template's.
	got["b"].RawLXC["lxc.mount.auto"][0] = "changed"
	if got["a"].RawLXC["lxc.mount.auto"][0] != "sys:rw" {
		t.Error("a clone's security settings share memory with its template's")
	}
}

// TestSecurityRawLines: the lines phoenix owns, by key, and the complete
// id map it writes around custom ranges.
func TestSecurityRawLines(t *testing.T) {
	unconfined, empty := "unconfined", ""
	cases := map[string]struct {
		sec  *Security
		want map[string][]string
	}{
		"unset owns nothing": {sec: nil, want: map[string][]string{}},
		"www-data's group mapped to the node's": {
			sec: &Security{AppArmor: &unconfined, IDMap: []IDMapping{{Type: "gid", Container: 33, Host: 33, Size: 1}},
				RawLXC: map[string][]string{"lxc.mount.auto": {"sys:rw"}}},
			want: map[string][]string{
				"lxc.apparmor.profile": {"unconfined"},
				"lxc.idmap":            {"u 0 100000 65536", "g 0 100000 33", "g 33 33 1", "g 34 100034 65502"},
				"lxc.mount.auto":       {"sys:rw"},
			},
		},
		"both, at the edges, out of order": {
			sec: &Security{IDMap: []IDMapping{{Type: "both", Container: 65535, Host: 5000}, {Type: "uid", Container: 0, Host: 200000, Size: 10}}},
			want: map[string][]string{"lxc.idmap": {
				"u 0 200000 10", "u 10 100010 65525", "u 65535 5000 1",
				"g 0 100000 65535", "g 65535 5000 1",
			}},
		},
		"empty values own a key with no lines": {
			sec:  &Security{AppArmor: &empty, IDMap: []IDMapping{}},
			want: map[string][]string{"lxc.apparmor.profile": {}, "lxc.idmap": {}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.sec.RawLines()); diff != "" {
				t.Errorf("raw lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSecurityFlags(t *testing.T) {
	yes, no := true, false
	got := (&ContainerFeatures{Nesting: &yes, Keyctl: &no, ForceRwSys: &yes, Mount: []string{"nfs", "cifs"}}).Flags()
	want := map[string]string{"nesting": "1", "keyctl": "", "force_rw_sys": "1", "mount": "nfs;cifs"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
}
