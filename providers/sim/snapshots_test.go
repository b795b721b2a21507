package sim

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Snapshots as pve-container's API2/LXC/Snapshot.pm and pve-guest-common's
// AbstractConfig.pm take, list, roll back and delete them (snapshots.go).

const snapshotWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: snapshots}
spec:
  seed: 1
  timeScale: 0.002
  nodes:
    - name: pve1
      storages:
        - {name: local, type: dir, content: [vztmpl, rootdir]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
        - {name: tank, type: zfspool, content: [rootdir, images]}
      directories: [/srv]
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
`

func (c *apiClient) snapTask(method, path string, params url.Values) map[string]any {
	c.t.Helper()
	r := c.call(method, path, params)
	if r.code != 200 {
		c.t.Fatalf("%s %s: %d %s %v", method, path, r.code, r.reason, r.body["errors"])
	}
	return c.waitTask("pve1", r.data)
}

func (c *apiClient) snapshots(vmid int) map[string]map[string]any {
	c.t.Helper()
	r := c.call("GET", fmt.Sprintf("/nodes/pve1/lxc/%d/snapshot", vmid), nil)
	if r.code != 200 {
		c.t.Fatalf("list: %d %s", r.code, r.reason)
	}
	out := map[string]map[string]any{}
	for _, e := range r.data.([]any) {
		m := e.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

func TestSnapshots(t *testing.T) {
	s, c := startAPISim(t, snapshotWorld)
	c.create("pve1", 200, url.Values{"memory": {"1024"}, "description": {"notes"}})
	base := "/nodes/pve1/lxc/200/snapshot"
	mark := func(vmid int, file string) {
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		s.c.guests[vmid].disk.files[file] = "x"
	}
	has := func(vmid int, file string) bool {
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		_, ok := s.c.guests[vmid].disk.files[file]
		return ok
	}
	mark(200, "/etc/first")

	// A snapshot keeps the config, and the container descends from it.
	if st := c.snapTask("POST", base, url.Values{"snapname": {"before-x"}, "description": {"the first"}}); st["exitstatus"] != "OK" {
		t.Fatalf("snapshot: %v", st["exitstatus"])
	}
	list := c.snapshots(200)
	if got := list["before-x"]; got["description"] != "the first" || got["snaptime"] == nil || got["parent"] != nil {
		t.Errorf("listed %v", got)
	}
	if cur := list["current"]; cur["parent"] != "before-x" || cur["description"] != "You are here!" || cur["running"] != 0.0 {
		t.Errorf("current %v", cur)
	}
	if cfg := c.config("pve1", 200); cfg["parent"] != "before-x" {
		t.Errorf("config parent %v", cfg["parent"])
	}
	r := c.call("GET", base+"/before-x/config", nil)
	// __snapshot_copy_config leaves the container's description out: the
	// section's description is the snapshot's comment.
	if cfg, _ := r.data.(map[string]any); r.code != 200 || cfg["memory"] != 1024.0 || cfg["description"] != "the first" || cfg["digest"] == nil {
		t.Errorf("snapshot config: %d %v", r.code, r.data)
	}

	// Names: current and vzdump are reserved, a used one fails the task,
	// the schema checks the form (pve-configid).
	if r := c.call("POST", base, url.Values{"snapname": {"current"}}); r.code != 500 || r.reason != "unable to use snapshot name 'current' (reserved name)" {
		t.Errorf("current: %d %q", r.code, r.reason)
	}
	if st := c.snapTask("POST", base, url.Values{"snapname": {"before-x"}}); st["exitstatus"] != "snapshot name 'before-x' already used" {
		t.Errorf("used name: %v", st["exitstatus"])
	}
	if r := c.call("POST", base, url.Values{"snapname": {"1st"}}); r.code != 400 || !strings.Contains(fmt.Sprint(r.body["errors"]), "invalid configuration ID") {
		t.Errorf("bad name: %d %v", r.code, r.body["errors"])
	}

	// Rollback stops a running container and puts the config and the disk
	// back, keeping the description; start=1 starts it again.
	mark(200, "/etc/second")
	if r := c.call("PUT", "/nodes/pve1/lxc/200/config", url.Values{"memory": {"2048"}, "description": {"changed notes"}}); r.code != 200 {
		t.Fatalf("config: %d %s", r.code, r.reason)
	}
	c.snapTask("POST", base, url.Values{"snapname": {"after-x"}})
	c.snapTask("POST", "/nodes/pve1/lxc/200/status/start", nil)
	if st := c.snapTask("POST", base+"/before-x/rollback", nil); st["exitstatus"] != "OK" {
		t.Fatalf("rollback: %v", st["exitstatus"])
	}
	cfg := c.config("pve1", 200)
	if cfg["memory"] != 1024.0 || cfg["description"] != "changed notes\n" || cfg["parent"] != "before-x" {
		t.Errorf("after the rollback: memory %v, description %q, parent %v", cfg["memory"], cfg["description"], cfg["parent"])
	}
	if has(200, "/etc/second") || !has(200, "/etc/first") {
		t.Errorf("the disk was not put back")
	}
	if st := c.call("GET", "/nodes/pve1/lxc/200/status/current", nil).data.(map[string]any); st["status"] != "stopped" {
		t.Errorf("a rollback leaves the container %v, want stopped", st["status"])
	}
	c.snapTask("POST", base+"/after-x/rollback", url.Values{"start": {"1"}})
	if st := c.call("GET", "/nodes/pve1/lxc/200/status/current", nil).data.(map[string]any); st["status"] != "running" || !has(200, "/etc/second") {
		t.Errorf("rollback with start=1: %v, disk back: %v", st["status"], has(200, "/etc/second"))
	}

	// A full clone of a running container is possible from a snapshot, and
	// copies the snapshot's disk; the snapshot's comment becomes its
	// description.
	r = c.call("POST", "/nodes/pve1/lxc/200/clone", url.Values{"newid": {"201"}})
	if r.code != 500 || r.reason != "Full clone of a running container is only possible from a snapshot" {
		t.Errorf("running clone: %d %q", r.code, r.reason)
	}
	if r := c.call("POST", "/nodes/pve1/lxc/200/clone", url.Values{"newid": {"201"}, "snapname": {"nope"}}); r.code != 500 || r.reason != "snapshot 'nope' does not exist" {
		t.Errorf("missing snapshot: %d %q", r.code, r.reason)
	}
	if st := c.snapTask("POST", "/nodes/pve1/lxc/200/clone", url.Values{"newid": {"201"}, "snapname": {"before-x"}, "full": {"1"}}); st["exitstatus"] != "OK" {
		t.Fatalf("clone of a snapshot: %v", st["exitstatus"])
	}
	if cfg := c.config("pve1", 201); cfg["memory"] != 1024.0 || cfg["description"] != "the first\n" || cfg["parent"] != nil {
		t.Errorf("clone of the snapshot: %v", cfg)
	}
	if has(201, "/etc/second") || !has(201, "/etc/first") {
		t.Errorf("the clone did not get the snapshot's disk")
	}

	// Deleting a snapshot points what descended from it at its parent.
	c.snapTask("DELETE", base+"/after-x", nil)
	list = c.snapshots(200)
	if _, ok := list["after-x"]; ok || list["current"]["parent"] != "before-x" {
		t.Errorf("after the delete: %v", list)
	}
	if st := c.snapTask("DELETE", base+"/after-x", nil); st["exitstatus"] != "snapshot 'after-x' does not exist" {
		t.Errorf("delete again: %v", st["exitstatus"])
	}

	// A container with snapshots cannot become a template.
	c.snapTask("POST", "/nodes/pve1/lxc/200/status/stop", nil)
	if r := c.call("POST", "/nodes/pve1/lxc/200/template", nil); r.code != 500 || r.reason != "unable to create template, because CT contains snapshots" {
		t.Errorf("template: %d %q", r.code, r.reason)
	}
}

func TestSnapshotStorages(t *testing.T) {
	s, c := startAPISim(t, snapshotWorld)
	root := c.asRoot(s)
	// Directory storage holds a container's volume raw: no snapshots
	// (pve-storage Plugin.pm has the feature for qcow2 only).
	c.create("pve1", 210, url.Values{"rootfs": {"local:4"}})
	if st := c.snapTask("POST", "/nodes/pve1/lxc/210/snapshot", url.Values{"snapname": {"s1"}}); st["exitstatus"] != "snapshot feature is not available" {
		t.Errorf("dir: %v", st["exitstatus"])
	}
	// A bind mount point is no volume at all.
	root.create("pve1", 211, url.Values{"mp0": {"/srv,mp=/srv"}})
	if st := c.snapTask("POST", "/nodes/pve1/lxc/211/snapshot", url.Values{"snapname": {"s1"}}); st["exitstatus"] != "snapshot feature is not available" {
		t.Errorf("bind mount: %v", st["exitstatus"])
	}
	// ZFS rolls back only to its most recent snapshot.
	c.create("pve1", 212, url.Values{"rootfs": {"tank:4"}})
	c.snapTask("POST", "/nodes/pve1/lxc/212/snapshot", url.Values{"snapname": {"s1"}})
	c.snapTask("POST", "/nodes/pve1/lxc/212/snapshot", url.Values{"snapname": {"s2"}})
	if st := c.snapTask("POST", "/nodes/pve1/lxc/212/snapshot/s1/rollback", nil); st["exitstatus"] != "can't rollback, 's1' is not most recent snapshot on 'tank:subvol-212-disk-0'" {
		t.Errorf("zfs rollback: %v", st["exitstatus"])
	}
	if st := c.snapTask("POST", "/nodes/pve1/lxc/212/snapshot/s2/rollback", nil); st["exitstatus"] != "OK" {
		t.Errorf("zfs rollback to the newest: %v", st["exitstatus"])
	}
	// A template cannot be snapshotted.
	c.makeTemplate("pve1", 213, nil)
	if st := c.snapTask("POST", "/nodes/pve1/lxc/213/snapshot", url.Values{"snapname": {"s1"}}); st["exitstatus"] != "you can't take a snapshot if it's a template" {
		t.Errorf("template: %v", st["exitstatus"])
	}
}
