package sim

import (
	"net/url"
	"strings"
	"testing"
)

// TestFullClonesToOneStorageRunAtOnce: full clones of two sources to one
// storage run at the same time and both succeed. Proxmox VE holds the
// storage's lock only while it allocates the new volume (pve-container
// src/PVE/LXC.pm copy_volume -> alloc_disk; pve-storage
// src/PVE/Storage.pm vdisk_alloc -> cluster_lock_storage), not while it
// copies; what it serialises is each source (clone_vm's 'disk' lock).
func TestFullClonesToOneStorageRunAtOnce(t *testing.T) {
	s, c := startAPISim(t, apiWorld+"  durations: {fullClone: 500s}\n")
	root := c.asRoot(s)
	for _, vmid := range []int{330, 340} {
		root.create("pve1", vmid, url.Values{"rootfs": {"local:8"}})
		c.convert("pve1", vmid)
	}
	a := c.call("POST", "/nodes/pve1/lxc/330/clone", url.Values{"newid": {"331"}, "full": {"1"}, "storage": {"local-lvm"}})
	b := c.call("POST", "/nodes/pve1/lxc/340/clone", url.Values{"newid": {"341"}, "full": {"1"}, "storage": {"local-lvm"}})
	if a.code != 200 || b.code != 200 {
		t.Fatalf("full clones to one storage: %d %q, %d %q", a.code, a.reason, b.code, b.reason)
	}
	if cfg := c.config("pve1", 330); cfg["lock"] != "disk" {
		t.Errorf("the first clone's source is not locked while the second runs: lock %v", cfg["lock"])
	}
	for _, r := range []apiResponse{a, b} {
		if st := c.waitTask("pve1", r.data); st["exitstatus"] != "OK" {
			t.Errorf("a full clone beside another to the same storage: %v", st)
		}
	}
	for _, vmid := range []int{331, 341} {
		if cfg := c.config("pve1", vmid); cfg["lock"] != nil || cfg["rootfs"] == nil {
			t.Errorf("CT %d after its full clone: lock %v rootfs %v", vmid, cfg["lock"], cfg["rootfs"])
		}
	}
}

// TestSlowAllocationTimesOutOnTheStorageLock: where allocating a volume
// holds the storage's lock longer than the 10 s Proxmox VE waits for it, a
// second full clone to that storage fails on the lock with Proxmox's text;
// one to another storage does not wait.
func TestSlowAllocationTimesOutOnTheStorageLock(t *testing.T) {
	s, c := startAPISim(t, apiWorld+"  durations: {fullClone: 100s, alloc: 30s}\n")
	root := c.asRoot(s)
	for _, vmid := range []int{330, 340, 350} {
		root.create("pve1", vmid, url.Values{"rootfs": {"local:8"}})
		c.convert("pve1", vmid)
	}
	a := c.call("POST", "/nodes/pve1/lxc/330/clone", url.Values{"newid": {"331"}, "full": {"1"}, "storage": {"local-lvm"}})
	b := c.call("POST", "/nodes/pve1/lxc/340/clone", url.Values{"newid": {"341"}, "full": {"1"}, "storage": {"local-lvm"}})
	other := c.call("POST", "/nodes/pve1/lxc/350/clone", url.Values{"newid": {"351"}, "full": {"1"}, "storage": {"local"}})
	if a.code != 200 || b.code != 200 || other.code != 200 {
		t.Fatalf("full clones: %d %q, %d %q, %d %q", a.code, a.reason, b.code, b.reason, other.code, other.reason)
	}
	if st := c.waitTask("pve1", a.data); st["exitstatus"] != "OK" {
		t.Errorf("the first full clone: %v", st)
	}
	if st := c.waitTask("pve1", other.data); st["exitstatus"] != "OK" {
		t.Errorf("a full clone to another storage: %v", st)
	}
	st := c.waitTask("pve1", b.data)
	if es, _ := st["exitstatus"].(string); !strings.Contains(es, "can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout") {
		t.Errorf("the second full clone to the slow storage: %v", st)
	}
	if cfg := c.config("pve1", 340); cfg["lock"] != nil {
		t.Errorf("the failed clone left its source locked: %v", cfg["lock"])
	}
}
