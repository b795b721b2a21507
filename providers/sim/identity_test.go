package sim

import (
	"net/url"
	"testing"
)

// TestCloneKeepsTheHostKeysAndEmptiesTheMachineID: a create from an OS
// template makes SSH host keys and a machine-id; pct clone copies the disk,
// keys included, and its post-clone hook empties /etc/machine-id, which
// systemd fills at the clone's first boot.
func TestCloneKeepsTheHostKeysAndEmptiesTheMachineID(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	r := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"200"}, "ostemplate": {ubuntu}, "storage": {"local-lvm"},
		"rootfs": {"local-lvm:8"}, "unprivileged": {"1"}})
	c.waitTask("pve1", r.data)
	r = c.call("POST", "/nodes/pve1/lxc/200/clone", url.Values{"newid": {"201"}, "full": {"1"}, "storage": {"local-lvm"}})
	c.waitTask("pve1", r.data)

	keys, id, _ := s.GuestIdentity(200)
	cloneKeys, cloneID, _ := s.GuestIdentity(201)
	if keys == "" || id == "" {
		t.Fatalf("a created container has keys %q and machine-id %q", keys, id)
	}
	if cloneKeys != keys || cloneID != "" {
		t.Errorf("the clone has keys %q (its source's: %q) and machine-id %q (want it emptied)", cloneKeys, keys, cloneID)
	}
	r = c.call("POST", "/nodes/pve1/lxc/201/status/start", nil)
	c.waitTask("pve1", r.data)
	if _, id, _ := s.GuestIdentity(201); id == "" || id == cloneID {
		t.Errorf("after its first start the clone's machine-id is %q", id)
	}
}
