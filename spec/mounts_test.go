package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// container is a Container cloned from header's base template (lines 10-16),
// whose spec continues at line 17 with extra.
func container(extra string) string {
	return header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
` + extra
}

func TestMountValidation(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"a volume and a bind mount with every option are valid": {
			src: container(`  mounts:
    - {path: /var/log/nginx, hostPath: /mnt/pve/quickOS/lxc-persistent-data/101/logs, owner: "33:33", readOnly: true, shared: true, acl: true, mountOptions: [noatime, nosuid]}
    - {path: /vllm_models, storage: fastData-shared-bulk-data, size: 50, backup: true, quota: true, replicate: false, acl: false, mountOptions: [discard]}
`),
		},
		"a mount point needs a path and a kind": {
			src: container("  mounts:\n    - {size: 4}\n"),
			want: []problem{
				{18, "spec.mounts[0].path", "needs a path"},
				{18, "spec.mounts[0]", "set storage and size (a volume) or hostPath"},
			},
		},
		"storage and hostPath together": {
			src:  container("  mounts: [{path: /data, storage: local-lvm, size: 4, hostPath: /srv/data}]\n"),
			want: []problem{{17, "spec.mounts[0]", "not both"}},
		},
		"a volume needs a size": {
			src:  container("  mounts: [{path: /data, storage: local-lvm}]\n"),
			want: []problem{{17, "spec.mounts[0].size", "a volume needs a size in GiB"}},
		},
		"a bad storage ID": {
			src:  container("  mounts: [{path: /data, storage: 1fast, size: 4}]\n"),
			want: []problem{{17, "spec.mounts[0].storage", `"1fast" is not a valid storage ID`}},
		},
		"paths are absolute, without . or .. components, and unique": {
			src: container(`  mounts:
    - {path: data, storage: local-lvm, size: 4}
    - {path: /a/../b, hostPath: /srv/b}
    - {path: /srv, hostPath: /srv/c}
    - {path: /srv/, hostPath: /srv/d}
    - {path: /, storage: local-lvm, size: 4}
`),
			want: []problem{
				{18, "spec.mounts[0].path", `"data" is not an absolute path`},
				{19, "spec.mounts[1].path", "has a . or .. component"},
				{21, "spec.mounts[3].path", "/srv/ is also mounted by spec.mounts[2]"},
				{22, "spec.mounts[4].path", "/ is the root disk"},
			},
		},
		"host paths are directories, not devices": {
			src: container(`  mounts:
    - {path: /a, hostPath: /dev/sdb1}
    - {path: /b, hostPath: "relative/dir"}
`),
			want: []problem{
				{18, "spec.mounts[0].hostPath", "device mount points are not supported"},
				{19, "spec.mounts[1].hostPath", "is not an absolute path"},
			},
		},
		"owner is UID:GID inside the container, for bind mounts only": {
			src: container(`  mounts:
    - {path: /a, hostPath: /srv/a, owner: www-data}
    - {path: /b, hostPath: /srv/b, owner: "70000:1"}
    - {path: /c, storage: local-lvm, size: 4, owner: "0:0"}
`),
			want: []problem{
				{18, "spec.mounts[0].owner", `"www-data" is not UID:GID`},
				{19, "spec.mounts[1].owner", "ids inside the container are 0..65535"},
				{20, "spec.mounts[2].owner", "owner is for the host directory of a bind mount"},
			},
		},
		"options that Proxmox uses for one kind only": {
			src: container(`  mounts:
    - {path: /a, hostPath: /srv/a, backup: true, quota: true, replicate: true}
    - {path: /b, storage: local-lvm, size: 4, shared: true}
`),
			want: []problem{
				{18, "spec.mounts[0].backup", "backup is for volumes"},
				{18, "spec.mounts[0].quota", "cannot enable quota control for bind mounts"},
				{18, "spec.mounts[0].replicate", "replicate is for volumes"},
				{19, "spec.mounts[1].shared", "shared is for bind mounts"},
			},
		},
		"mount options are Proxmox's, each once": {
			src: container("  mounts: [{path: /a, hostPath: /srv/a, mountOptions: [noatime, relatime, noatime]}]\n"),
			want: []problem{
				{17, "spec.mounts[0].mountOptions[1]", `unknown mount option "relatime"`},
				{17, "spec.mounts[0].mountOptions[2]", "noatime is listed twice"},
			},
		},
		"a Template has no bind mounts: Proxmox refuses to clone one": {
			src: `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 9000
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  mounts: [{path: /srv, hostPath: /srv/shared}]
`,
			want: []problem{{9, "spec.mounts[0].hostPath", "a Template cannot have a bind mount"}},
		},
		"a clone cannot shrink its template's volume": {
			src: `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 9000
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  mounts: [{path: /models, storage: local-lvm, size: 50}]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  mounts: [{path: /models, storage: local-lvm, size: 40}]
`,
			want: []problem{{17, "spec.mounts[0].size", "template's 50 GiB volume at /models and volumes cannot shrink (got 40)"}},
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

func TestMountInheritance(t *testing.T) {
	yes := true
	res := resolveDocs(t,
		doc("Template", "a", 100, root, "  mounts: [{path: /models, storage: local-zfs, size: 50, replicate: true}]\n"),
		doc("Template", "b", 101, "{template: a}", ""),
		doc("Container", "c", 102, "{template: b}", "  mounts:\n    - {path: /models, storage: local-zfs, size: 60}\n    - {path: /logs, hostPath: /srv/logs, owner: \"33:33\"}\n"),
		doc("Container", "d", 103, "{template: b}", "  mounts: []\n"),
		doc("Container", "e", 104, root, ""),
	)
	want := map[string][]Mount{
		"a": {{Path: "/models", Storage: "local-zfs", Size: 50, Replicate: &yes}},
		"b": {{Path: "/models", Storage: "local-zfs", Size: 50, Replicate: &yes}},
		"c": {{Path: "/models", Storage: "local-zfs", Size: 60}, {Path: "/logs", HostPath: "/srv/logs", Owner: "33:33"}},
		"d": {},
		"e": nil,
	}
	got := map[string][]Mount{}
	for _, g := range res.Guests {
		got[g.Name] = g.Settings.Mounts
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if got["e"] != nil || got["d"] == nil {
		t.Errorf("unset mounts must stay nil (unmanaged) and an explicit empty list empty, got e=%#v d=%#v", got["e"], got["d"])
	}
}
