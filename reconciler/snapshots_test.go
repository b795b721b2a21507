package reconciler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

// snapshotLab is the homelab examples converged, with ollama (955, no mount
// points) asking for snapshots and its node's storages known.
func snapshotLab(t *testing.T, s spec.Snapshots) (*spec.Resolution, *Observed, *ObservedGuest) {
	t.Helper()
	res := examples(t)
	r, _ := res.Guest("ollama")
	r.Guest.Spec.Snapshots = &s
	obs := converged(res, "580.76.05")
	og := obs.Guests[955]
	og.StorageTypes = map[string]string{"local": "dir", "local-lvm": "lvmthin"}
	return res, obs, og
}

func snapshotBrief(p *Plan) []string {
	g, _ := p.Guest("ollama")
	out := []string{g.Action.String()}
	for _, c := range g.Changes {
		l := c.Action.String()
		for _, f := range c.Fields {
			l += " " + f.Key
		}
		if c.Snapshot != nil {
			l = strings.Join(slices.DeleteFunc([]string{l, c.Snapshot.Kind, c.Snapshot.Name}, func(s string) bool { return s == "" }), " ")
			if len(c.Snapshot.Prune) > 0 {
				l += " prune " + strings.Join(c.Snapshot.Prune, ",")
			}
			if c.Snapshot.Replace {
				l += " replace"
			}
		}
		out = append(out, strings.TrimSpace(l))
	}
	for _, n := range g.Notes {
		out = append(out, "note: "+n)
	}
	return out
}

func TestSnapshotPlan(t *testing.T) {
	keep2 := 2
	at := func(h int) time.Time { return time.Date(2026, 11, 1, h, 0, 0, 0, time.UTC) }
	cases := map[string]struct {
		snaps  spec.Snapshots
		change func(og *ObservedGuest)
		want   []string
	}{
		"a converged guest that first asks for after snapshots gets one": {
			snaps: spec.Snapshots{Before: true, After: true},
			want:  []string{"update", "snapshot after"},
		},
		"a converged guest whose newest after snapshot records it is left alone": {
			snaps: spec.Snapshots{Before: true, After: true},
			change: func(og *ObservedGuest) {
				og.Snapshots = []Snapshot{{Name: "phoenix-after-20261101-100000", Time: at(10), Description: "phoenix: after ollama\n" + snapshotStampPrefix + snapshotStamp(og)}}
			},
			want: []string{"no-op"},
		},
		"a change is wrapped in a before and an after snapshot, the oldest of phoenix's deleted beyond keep, the user's never": {
			snaps: spec.Snapshots{Before: true, After: true, Keep: &keep2},
			change: func(og *ObservedGuest) {
				stamp := snapshotStamp(og)
				og.Config.Values["cores"] = "3"
				og.Snapshots = []Snapshot{
					{Name: "mine", Time: at(1)},
					{Name: "phoenix-before-20261101-020000", Time: at(2)},
					{Name: "phoenix-before-20261101-030000", Time: at(3)},
					{Name: "phoenix-after-20261101-040000", Time: at(4), Description: snapshotStampPrefix + stamp},
				}
			},
			want: []string{"update", "snapshot before prune phoenix-before-20261101-020000", "update cores", "snapshot after"},
		},
		"a fixed after name is made again": {
			snaps: spec.Snapshots{After: true, Name: "final-form"},
			change: func(og *ObservedGuest) {
				og.Config.Values["cores"] = "3"
				og.Snapshots = []Snapshot{{Name: "final-form", Time: at(4)}}
			},
			want: []string{"update", "update cores", "snapshot after final-form replace"},
		},
		"storage that cannot snapshot is a note, no snapshot": {
			snaps: spec.Snapshots{Before: true, After: true},
			change: func(og *ObservedGuest) {
				og.Config.Values["cores"] = "3"
				og.StorageTypes["local-lvm"] = "dir"
			},
			want: []string{"update", "update cores", "note: snapshots skipped: storage local-lvm (dir) cannot snapshot a container volume"},
		},
		"a bind mount point is a note, no snapshot": {
			snaps: spec.Snapshots{Before: true},
			change: func(og *ObservedGuest) {
				og.Config.Values["cores"] = "3"
				og.Config.Values["mp0"] = "/srv/x,mp=/x"
			},
			want: []string{"update", "update cores", "note: snapshots skipped: mp0 is a bind or device mount point, which Proxmox cannot snapshot"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res, obs, og := snapshotLab(t, tc.snaps)
			if tc.change != nil {
				tc.change(og)
			}
			got := snapshotBrief(MakePlan(res, obs, PlanOptions{}))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

// Starting a stopped container (and what only runs once it runs) changes
// nothing a snapshot holds.
func TestStartIsNoChangeToSnapshot(t *testing.T) {
	res, obs, og := snapshotLab(t, spec.Snapshots{Before: true})
	og.Status = "stopped"
	got := snapshotBrief(MakePlan(res, obs, PlanOptions{}))
	if !slices.Contains(got, "start") || slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "snapshot") }) {
		t.Errorf("plan %q: want a start and no snapshot", got)
	}
}

func TestCannotSnapshot(t *testing.T) {
	types := map[string]string{"local": "dir", "local-lvm": "lvmthin", "tank": "zfspool", "vg": "lvm"}
	cases := map[string]struct {
		values map[string]string
		want   string
	}{
		"lvm-thin root and zfs volume":     {map[string]string{"rootfs": "local-lvm:vm-1-disk-0,size=8G", "mp0": "tank:subvol-1-disk-1,mp=/data"}, ""},
		"a bind mount":                     {map[string]string{"rootfs": "local-lvm:vm-1-disk-0,size=8G", "mp1": "/srv/data,mp=/data"}, "mp1 is a bind or device mount point"},
		"plain LVM":                        {map[string]string{"rootfs": "vg:vm-1-disk-0,size=8G"}, "storage vg (lvm) cannot snapshot"},
		"directory":                        {map[string]string{"rootfs": "local:1/vm-1-disk-0.raw,size=8G"}, "storage local (dir) cannot snapshot"},
		"a storage the node does not list": {map[string]string{"rootfs": "gone:vm-1-disk-0,size=8G"}, "storage gone of rootfs is not on the node's storage list"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := cannotSnapshot(tc.values, types)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSnapshotActionIsListed(t *testing.T) {
	if !slices.Contains(Actions, TakeSnapshot) || TakeSnapshot.String() != "snapshot" {
		t.Error("TakeSnapshot is not a listed action named snapshot")
	}
}
