package reconciler

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFeaturesChange(t *testing.T) {
	cases := map[string]struct {
		want    map[string]string
		have    string
		after   string
		changed bool
	}{
		"flags set, others kept":         {want: map[string]string{"fuse": "1", "mount": "nfs;cifs"}, have: "nesting=1", after: "fuse=1,mount=nfs;cifs,nesting=1", changed: true},
		"false removes a flag":           {want: map[string]string{"keyctl": ""}, have: "keyctl=1,nesting=1", after: "nesting=1", changed: true},
		"false is 0 or absent":           {want: map[string]string{"keyctl": "", "fuse": ""}, have: "keyctl=0,nesting=1"},
		"mount is a set":                 {want: map[string]string{"mount": "nfs;cifs"}, have: "mount=cifs; nfs"},
		"an empty mount list clears it":  {want: map[string]string{"mount": ""}, have: "mount=nfs,nesting=1", after: "nesting=1", changed: true},
		"nothing wanted: nothing to say": {want: map[string]string{}, have: "fuse=1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			after, changed := featuresChange(tc.want, tc.have)
			if changed != tc.changed || (changed && after != tc.after) {
				t.Errorf("featuresChange = %q, %t; want %q, %t", after, changed, tc.after, tc.changed)
			}
		})
	}
}

func TestRootOnlyFeatures(t *testing.T) {
	cases := []struct {
		before, after string
		unprivileged  bool
		want          bool
	}{
		{"", "nesting=1", true, false},
		{"nesting=1", "keyctl=1,nesting=1", true, true},
		{"fuse=1", "fuse=1,nesting=1", true, false},
		// check_ct_modify_config_perm: a privileged container's flags are root@pam's, nesting too.
		{"", "nesting=1", false, true},
	}
	for _, tc := range cases {
		if got := rootOnlyFeatures(tc.before, tc.after, tc.unprivileged); got != tc.want {
			t.Errorf("rootOnlyFeatures(%q, %q, %t) = %t", tc.before, tc.after, tc.unprivileged, got)
		}
	}
}

func TestRawDiffAndLXCAfter(t *testing.T) {
	owned := map[string][]string{"lxc.apparmor.profile": {"unconfined"}, "lxc.cap.drop": {}, "lxc.mount.auto": {"sys:rw"}}
	have := [][2]string{{"lxc.apparmor.profile", "generated"}, {"lxc.cgroup2.devices.allow", "c 10:200 rwm"}, {"lxc.cap.drop", "sys_time"}, {"lxc.mount.auto", "sys:rw"}}
	fields := rawDiff(owned, have)
	want := []FieldChange{
		{Key: "lxc.apparmor.profile", Before: "generated", After: "unconfined"},
		{Key: "lxc.cap.drop", Before: "sys_time"},
	}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("rawDiff (-want +got):\n%s", diff)
	}
	after := lxcAfter(have, fields, owned)
	wantAfter := [][2]string{{"lxc.cgroup2.devices.allow", "c 10:200 rwm"}, {"lxc.mount.auto", "sys:rw"}, {"lxc.apparmor.profile", "unconfined"}}
	if diff := cmp.Diff(wantAfter, after); diff != "" {
		t.Errorf("lxcAfter (-want +got):\n%s", diff)
	}
	if rawDiff(owned, after) != nil {
		t.Error("the lines after the write still differ")
	}
}

const securitySpec = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 900
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  security:
    apparmor: unconfined
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: web}
spec:
  vmid: 101
  from: {template: base}
  security:
    features: {nesting: true, fuse: true, mount: [nfs]}
    idMap: [{type: gid, container: 33, host: 33}]
    rawLXC: {lxc.mount.auto: ["sys:rw"]}
`

var webIDMap = [][2]string{
	{"lxc.idmap", "u 0 100000 65536"}, {"lxc.idmap", "g 0 100000 33"}, {"lxc.idmap", "g 33 33 1"}, {"lxc.idmap", "g 34 100034 65502"},
}

func TestSecurityPlan(t *testing.T) {
	rootSubIDs := map[string][]SubIDRange{"u": {{100000, 65536}}, "g": {{100000, 65536}, {33, 1}}}
	convergedLXC := append([][2]string{{"lxc.apparmor.profile", "unconfined"}, {"lxc.cgroup2.devices.allow", "c 10:200 rwm"}}, append(webIDMap, [2]string{"lxc.mount.auto", "sys:rw"})...)
	cases := map[string]struct {
		status   string
		features string
		lxc      [][2]string
		subIDs   *SubIDObservation
		clone    bool // web is not made yet
		want     []string
		absent   []string
		problem  string
	}{
		"converged: nothing to do, someone else's raw line kept": {
			status: "running", features: "fuse=1,mount=nfs,nesting=1", lxc: convergedLXC,
			want: []string{"No changes."},
		},
		"a running container: flags through the API, raw lines written while it is stopped": {
			status: "running", features: "nesting=1", lxc: [][2]string{{"lxc.apparmor.profile", "unconfined"}, {"lxc.cgroup2.devices.allow", "c 10:200 rwm"}},
			want: []string{
				"~ update: config differs from the spec",
				`~ features: "nesting=1" -> "fuse=1,mount=nfs,nesting=1"`,
				"~ restart: lxc.idmap, lxc.mount.auto in /etc/pve/lxc/VMID.conf take effect when the container starts: phoenix stops it, writes them and starts it; features waits for a restart",
				`+ lxc.idmap = "u 0 100000 65536\ng 0 100000 33\ng 33 33 1\ng 34 100034 65502"`,
				`+ lxc.mount.auto = "sys:rw"`,
			},
			absent: []string{"lxc.cgroup2.devices.allow", "lxc.apparmor.profile"},
		},
		"a stopped container: the lines are written in the update, then it starts": {
			status: "stopped", features: "fuse=1,mount=nfs,nesting=1", lxc: [][2]string{{"lxc.apparmor.profile", "generated"}},
			want: []string{
				"~ update: config differs from the spec",
				`~ lxc.apparmor.profile: "generated" -> "unconfined"`,
				`+ lxc.idmap = "u 0 100000 65536`,
				"+ start: a Container runs, and it is stopped",
			},
		},
		"a new clone keeps its template's profile and gets its own keys": {
			clone: true,
			want: []string{
				"+ clone: linked clone of base",
				`+ lxc.idmap = "u 0 100000 65536`,
				`+ lxc.mount.auto = "sys:rw"`,
			},
			absent: []string{"lxc.apparmor.profile"},
		},
		"a gid root may not map is the node's problem, with the line to add": {
			status: "running", features: "fuse=1,mount=nfs,nesting=1", lxc: convergedLXC,
			subIDs:  &SubIDObservation{Ranges: map[string][]SubIDRange{"u": {{100000, 65536}}, "g": {{100000, 65536}}}},
			problem: "/etc/subgid on pve1 does not let root map host ids 33..33 (lxc.idmap: g 33 33 1), so the container would not start: add the line root:33:1 to /etc/subgid on pve1 [node]",
		},
		"unreadable sub-id files are an observe problem": {
			status: "running", lxc: convergedLXC,
			subIDs:  &SubIDObservation{Err: errString("ssh: connection refused")},
			problem: "/etc/subuid and /etc/subgid on pve1 could not be read: ssh: connection refused [observe]",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res := resolve(t, securitySpec)
			obs := converged(res, "")
			obs.Guests[900].Config.LXC = [][2]string{{"lxc.apparmor.profile", "unconfined"}}
			obs.Guests[900].Config.Values["features"] = ""
			web := obs.Guests[101]
			if tc.clone {
				delete(obs.Guests, 101)
			} else {
				web.Status = tc.status
				web.Config.Values["features"] = tc.features
				web.Config.LXC = tc.lxc
			}
			obs.SubIDs = map[string]*SubIDObservation{"pve1": {Ranges: rootSubIDs}}
			if tc.subIDs != nil {
				obs.SubIDs["pve1"] = tc.subIDs
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
			for _, s := range tc.absent {
				if strings.Contains(text, s) {
					t.Errorf("plan has %q:\n%s", s, text)
				}
			}
			if tc.problem != "" && !strings.Contains(text, tc.problem) {
				t.Errorf("plan lacks the problem %q:\n%s", tc.problem, text)
			}
		})
	}
}

func TestAllowedSubIDs(t *testing.T) {
	ranges := []SubIDRange{{100000, 65536}, {33, 1}, {165536, 10}}
	cases := []struct {
		host, count int
		want        bool
	}{
		{100000, 65536, true}, {33, 1, true}, {34, 1, false}, {100034, 65502, true},
		{160000, 5546, true}, // across two adjacent ranges
		{160000, 5547, false},
	}
	for _, tc := range cases {
		if got := allowed(ranges, tc.host, tc.count); got != tc.want {
			t.Errorf("allowed(%d, %d) = %t", tc.host, tc.count, got)
		}
	}
	if diff := cmp.Diff(map[string][]SubIDRange{"u": {{100000, 65536}}, "g": {{33, 1}}}, parseSubIDs("u 100000 65536\ng 33 1\nbogus\n")); diff != "" {
		t.Errorf("parseSubIDs (-want +got):\n%s", diff)
	}
}

// setFlags are the flags a converged config holds: those set, not those
// the spec clears.
func setFlags(flags map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range flags {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// convergedLXC are the raw lines a converged config holds: the owned keys'
// lines, key by key.
func convergedLXC(d desired) [][2]string {
	var out [][2]string
	for _, k := range slices.Sorted(maps.Keys(d.raw)) {
		for _, v := range d.raw[k] {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}
