package reconciler

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

func TestMountDiff(t *testing.T) {
	no := false
	logs := spec.Mount{Path: "/var/log/nginx", HostPath: "/mnt/pve/quickOS/lxc-persistent-data/101/logs", Owner: "33:33"}
	models := spec.Mount{Path: "/vllm_models", Storage: "fastData-shared-bulk-data", Size: 50}
	cases := map[string]struct {
		mounts []spec.Mount
		have   map[string]string
		fields []FieldChange
		grows  []mountGrowth
		errs   []string
	}{
		"unmanaged: mount points are left alone": {
			mounts: nil,
			have:   map[string]string{"mp0": "/srv/x,mp=/x"},
		},
		"new mount points take the lowest free keys; a volume is STORAGE:SIZE": {
			mounts: []spec.Mount{logs, models},
			have:   map[string]string{"mp1": "/srv/other,mp=/other"},
			fields: []FieldChange{
				{Key: "mp1", Before: "/srv/other,mp=/other"},
				{Key: "mp0", After: "/mnt/pve/quickOS/lxc-persistent-data/101/logs,mp=/var/log/nginx"},
				{Key: "mp2", After: "fastData-shared-bulk-data:50,mp=/vllm_models"},
			},
		},
		"every option is written the way Proxmox reads it": {
			mounts: []spec.Mount{{Path: "/d", Storage: "local-lvm", Size: 4, ReadOnly: true, Backup: true, Quota: true, ACL: &no, Replicate: &no, MountOptions: []string{"noatime", "nosuid"}},
				{Path: "/s", HostPath: "/srv/s", Shared: true}},
			fields: []FieldChange{
				{Key: "mp0", After: "local-lvm:4,mp=/d,acl=0,backup=1,mountoptions=noatime;nosuid,quota=1,replicate=0,ro=1"},
				{Key: "mp1", After: "/srv/s,mp=/s,shared=1"},
			},
		},
		"a converged volume is no change, whatever the key order and defaults": {
			mounts: []spec.Mount{models},
			have:   map[string]string{"mp3": "fastdata-shared-bulk-data:vm-101-disk-1,mp=/vllm_models/,replicate=1,size=50G"},
		},
		"a larger volume grows with a resize; its key is kept": {
			mounts: []spec.Mount{{Path: "/vllm_models", Storage: "fastData-shared-bulk-data", Size: 80}},
			have:   map[string]string{"mp3": "fastData-shared-bulk-data:vm-101-disk-1,mp=/vllm_models,size=50G"},
			grows:  []mountGrowth{{key: "mp3", gib: 80}},
		},
		"an option change keeps the volume and its size": {
			mounts: []spec.Mount{{Path: "/vllm_models", Storage: "fastData-shared-bulk-data", Size: 50, ReadOnly: true}},
			have:   map[string]string{"mp0": "fastData-shared-bulk-data:vm-101-disk-1,mp=/vllm_models,size=50G"},
			fields: []FieldChange{{Key: "mp0", Before: "fastData-shared-bulk-data:vm-101-disk-1,mp=/vllm_models,size=50G",
				After: "fastData-shared-bulk-data:vm-101-disk-1,mp=/vllm_models,ro=1,size=50G"}},
		},
		"a smaller volume is a problem": {
			mounts: []spec.Mount{{Path: "/vllm_models", Storage: "fastData-shared-bulk-data", Size: 10}},
			have:   map[string]string{"mp0": "fastData-shared-bulk-data:vm-101-disk-1,mp=/vllm_models,size=50G"},
			errs:   []string{"the volume of mp0 (/vllm_models) is 50 GiB and the spec asks for 10 GiB: volumes cannot shrink"},
		},
		"a volume on another storage is not moved": {
			mounts: []spec.Mount{{Path: "/vllm_models", Storage: "local-zfs", Size: 50}},
			have:   map[string]string{"mp0": "local-lvm:vm-101-disk-1,mp=/vllm_models,size=50G"},
			errs:   []string{"mp0 (/vllm_models) is a volume on storage local-lvm and the spec says local-zfs: phoenix does not move volumes"},
		},
		"a bind mount's new host path replaces the value": {
			mounts: []spec.Mount{{Path: "/logs", HostPath: "/srv/new"}},
			have:   map[string]string{"mp0": "/srv/old,mp=/logs"},
			fields: []FieldChange{{Key: "mp0", Before: "/srv/old,mp=/logs", After: "/srv/new,mp=/logs"}},
		},
		"an explicit empty list removes every mount point": {
			mounts: []spec.Mount{},
			have:   map[string]string{"mp0": "local-lvm:vm-101-disk-1,mp=/a,size=4G", "mp2": "/srv/b,mp=/b"},
			fields: []FieldChange{{Key: "mp0", Before: "local-lvm:vm-101-disk-1,mp=/a,size=4G"}, {Key: "mp2", Before: "/srv/b,mp=/b"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fields, grows, errs := mountDiff(desired{mounts: tc.mounts}, tc.have)
			if diff := cmp.Diff(tc.fields, fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.grows, grows, cmp.AllowUnexported(mountGrowth{})); diff != "" {
				t.Errorf("grows (-want +got):\n%s", diff)
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("problems %v, want %v", errs, tc.errs)
			}
			for i, e := range errs {
				if !strings.Contains(e.Message, tc.errs[i]) || e.Kind != ProblemSpec {
					t.Errorf("problem %q (%s), want one with %q (spec)", e.Message, e.Kind, tc.errs[i])
				}
			}
		})
	}
}

func TestMountRootOnly(t *testing.T) {
	cases := map[string]bool{
		"/mnt/data,mp=/data":                 true,
		"volume=/mnt/data,mp=/data":          true,
		"local-lvm:4,mp=/data":               false,
		"local-lvm:vm-1-disk-1,mp=/d,size=4": false,
	}
	for v, want := range cases {
		if got := rootOnly("mp0", v, ""); got != want {
			t.Errorf("rootOnly(mp0, %q) = %t, want %t", v, got, want)
		}
	}
	if rootOnly("mp0", "", "/mnt/data,mp=/data") {
		t.Error("deleting a bind mount needs no root@pam (check_ct_modify_config_perm returns on a delete)")
	}
}

const mountSpec = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 900
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  mounts: [{path: /models, storage: local-lvm, size: 50}]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: web}
spec:
  vmid: 101
  from: {template: base}
  mounts:
    - {path: /models, storage: local-lvm, size: 60}
    - {path: /var/log/nginx, hostPath: /mnt/pve/quickOS/lxc-persistent-data/101/logs, owner: "33:33"}
`

func TestMountPlan(t *testing.T) {
	cases := map[string]struct {
		unprivileged bool
		lxc          [][2]string
		dirs         map[string]HostDirectory
		dirsErr      error
		want         []string // lines of the rendered plan, in order
		absent       string
		problem      string
	}{
		"a new clone: directory first, then the bind mount, then the volume grows": {
			unprivileged: true,
			want: []string{
				"+ clone: linked clone of base",
				"+ directory: the host directories of its bind mounts, which Proxmox does not make (owners mapped through the container's id map)",
				`+ /mnt/pve/quickOS/lxc-persistent-data/101/logs = "100033:100033"`,
				"~ update: settings of the spec",
				`+ mp1 = "/mnt/pve/quickOS/lxc-persistent-data/101/logs,mp=/var/log/nginx"`,
				"~ resize mp0 to 60 GiB: the spec's volume at /models is larger than the template's (mp0)",
			},
		},
		"the directory is there with its owner: no directory change": {
			unprivileged: true,
			dirs:         map[string]HostDirectory{"/mnt/pve/quickOS/lxc-persistent-data/101/logs": {Exists: true, Owner: "100033:100033"}},
			want:         []string{"+ clone: linked clone of base", `+ mp1 = "/mnt/pve/quickOS/lxc-persistent-data/101/logs,mp=/var/log/nginx"`},
			absent:       "+ directory",
		},
		"a privileged container's ids are the node's": {
			want: []string{`+ /mnt/pve/quickOS/lxc-persistent-data/101/logs = "33:33"`},
		},
		"something else at the host path is the node's problem": {
			unprivileged: true,
			dirs:         map[string]HostDirectory{"/mnt/pve/quickOS/lxc-persistent-data/101/logs": {Other: true}},
			problem:      "is not a directory: the bind mount at /var/log/nginx needs one [node]",
		},
		"an unreadable node is an observe problem": {
			unprivileged: true,
			dirsErr:      errString("ssh: connection refused"),
			problem:      "the bind mount directories on pve1 could not be read: ssh: connection refused [observe]",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := mountSpec
			if !tc.unprivileged {
				src = strings.Replace(src, "  mounts: [{path: /models", "  unprivileged: false\n  mounts: [{path: /models", 1)
			}
			res := resolve(t, src)
			obs := converged(res, "")
			delete(obs.Guests, 101)
			base := obs.Guests[900]
			base.Config.Values["mp0"] = "local-lvm:base-900-disk-1,mp=/models,size=50G"
			base.Config.LXC = tc.lxc
			obs.HostDirs = map[string]*HostDirObservation{"pve1": {Dirs: tc.dirs, Err: tc.dirsErr}}
			if obs.HostDirs["pve1"].Dirs == nil {
				obs.HostDirs["pve1"].Dirs = map[string]HostDirectory{}
			}
			p := MakePlan(res, obs, PlanOptions{})
			var b bytes.Buffer
			if err := p.WriteText(&b, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			text := b.String()
			at := 0
			for _, line := range tc.want {
				i := strings.Index(text[at:], line)
				if i < 0 {
					t.Fatalf("plan lacks %q after offset %d:\n%s", line, at, text)
				}
				at += i + len(line)
			}
			if tc.absent != "" && strings.Contains(text, tc.absent) {
				t.Errorf("plan has %q:\n%s", tc.absent, text)
			}
			if tc.problem != "" && !strings.Contains(text, tc.problem) {
				t.Errorf("plan lacks the problem %q:\n%s", tc.problem, text)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestIDMaps(t *testing.T) {
	cases := map[string]struct {
		unprivileged bool
		lxc          [][2]string
		id           int
		want         int
		ok           bool
	}{
		"default unprivileged map":  {unprivileged: true, id: 33, want: 100033, ok: true},
		"privileged: the node's id": {id: 33, want: 33, ok: true},
		"a custom lxc.idmap passes one id through": {unprivileged: true, lxc: [][2]string{
			{"lxc.idmap", "u 0 100000 1000"}, {"lxc.idmap", "g 0 100000 1000"},
			{"lxc.idmap", "u 1000 1000 1"}, {"lxc.idmap", "g 1000 1000 1"},
			{"lxc.idmap", "u 1001 101001 64535"}, {"lxc.idmap", "g 1001 101001 64535"},
		}, id: 1000, want: 1000, ok: true},
		"an id outside a custom map": {unprivileged: true, lxc: [][2]string{{"lxc.idmap", "u 0 100000 1000"}}, id: 5000},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			uids, _ := idMaps(tc.unprivileged, tc.lxc)
			got, ok := mapID(uids, tc.id, !tc.unprivileged)
			if got != tc.want || ok != tc.ok {
				t.Errorf("mapID(%d) = %d, %t; want %d, %t", tc.id, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// convergedDirs gives a converged observation the host directories of a
// guest's bind mounts, owned as its spec says.
func convergedDirs(obs *Observed, r *spec.Resolved, lxc [][2]string) {
	for _, m := range r.Settings.Mounts {
		if !m.IsBind() {
			continue
		}
		if obs.HostDirs == nil {
			obs.HostDirs = map[string]*HostDirObservation{}
		}
		h := obs.HostDirs[r.Settings.Node]
		if h == nil {
			h = &HostDirObservation{Dirs: map[string]HostDirectory{}}
			obs.HostDirs[r.Settings.Node] = h
		}
		owner := "0:0"
		if uid, gid, ok := m.OwnerIDs(); ok {
			uids, gids := idMaps(r.Settings.Unprivileged, lxc)
			hu, _ := mapID(uids, uid, !r.Settings.Unprivileged)
			hg, _ := mapID(gids, gid, !r.Settings.Unprivileged)
			owner = fmt.Sprintf("%d:%d", hu, hg)
		}
		h.Dirs[m.HostPath] = HostDirectory{Exists: true, Owner: owner}
	}
}
