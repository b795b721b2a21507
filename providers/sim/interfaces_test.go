package sim

import (
	"net/url"
	"testing"
	"time"
)

// A start asked for with the create is a vzstart task of its own, which ends
// after the create does; a start asked for meanwhile waits for it and
// succeeds (pve-container's vm_start: systemctl start of an active unit does
// nothing). Before, the simulator ran the container the moment its create
// ended and failed the second start.
func TestStartAfterCreateIsATaskOfItsOwn(t *testing.T) {
	// At time scale 0.002 a 100 s start takes 200 ms.
	_, c := startAPISim(t, apiWorld+"  durations: {create: 5s, start: 100s}\n")
	c.create("pve1", 300, url.Values{"start": {"1"}})
	if s := c.call("GET", "/nodes/pve1/lxc/300/status/current", nil).data.(map[string]any); s["status"] != "stopped" {
		t.Fatalf("the container runs as its create ends: %v", s["status"])
	}
	var start map[string]any
	for _, e := range c.call("GET", "/nodes/pve1/tasks", url.Values{"vmid": {"300"}, "source": {"all"}}).data.([]any) {
		if e := e.(map[string]any); e["type"] == "vzstart" {
			start = e
		}
	}
	if start == nil {
		t.Fatal("no vzstart task after a create with start=1")
	}
	again := c.call("POST", "/nodes/pve1/lxc/300/status/start", nil)
	if again.code != 200 {
		t.Fatalf("a start while the first runs: %d %s", again.code, again.reason)
	}
	if st := c.waitTask("pve1", start["upid"]); st["exitstatus"] != "OK" {
		t.Errorf("the create's start: %v", st["exitstatus"])
	}
	if st := c.waitTask("pve1", again.data); st["exitstatus"] != "OK" {
		t.Errorf("a start that finds the container running: %v, want OK", st["exitstatus"])
	}
	if s := c.call("GET", "/nodes/pve1/lxc/300/status/current", nil).data.(map[string]any); s["status"] != "running" {
		t.Errorf("status %v after both starts", s["status"])
	}
	// Once it runs, the API refuses a start at once.
	if r := c.call("POST", "/nodes/pve1/lxc/300/status/start", nil); r.code != 500 || r.reason != "CT 300 already running" {
		t.Errorf("a start of a running container: %d %q", r.code, r.reason)
	}
}

// GET .../interfaces is `ip --json a` in the container's network namespace
// (PVE::LXC::get_interfaces): null for a stopped container; lo and each
// netN by name and MAC, with a link-local IPv6 address at once and the IPv4
// addresses once the network is up.
func TestInterfaces(t *testing.T) {
	// At time scale 0.002 the network comes up 300 ms after the start.
	_, c := startAPISim(t, apiWorld+"  durations: {create: 5s, start: 5s, networkUp: [150s, 150s]}\n")
	if r := c.call("GET", "/nodes/pve1/lxc/101/interfaces", nil); r.code != 200 || r.data != nil {
		t.Fatalf("a stopped container: %d %v, want 200 and null", r.code, r.data)
	}
	c.create("pve1", 300, url.Values{
		"net0": {"name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp"},
		"net1": {"name=eth1,bridge=vmbr0,hwaddr=BC:24:11:00:00:02,ip=192.168.7.5/24,ip6=fd00::5/64"},
	})
	if st := c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/300/status/start", nil).data); st["exitstatus"] != "OK" {
		t.Fatalf("start: %v", st["exitstatus"])
	}
	read := func() map[string]map[string]any {
		t.Helper()
		r := c.call("GET", "/nodes/pve1/lxc/300/interfaces", nil)
		if r.code != 200 {
			t.Fatalf("interfaces: %d %s", r.code, r.reason)
		}
		checkReturns(t, "GET", "/nodes/{node}/lxc/{vmid}/interfaces", r.data)
		out := map[string]map[string]any{}
		for _, e := range r.data.([]any) {
			e := e.(map[string]any)
			out[e["name"].(string)] = e
		}
		return out
	}
	before := read()
	if len(before) != 3 || before["lo"]["inet"] != "127.0.0.1/8" {
		t.Fatalf("interfaces: %v", before)
	}
	eth0 := before["eth0"]
	if eth0["hwaddr"] != "bc:24:11:00:00:01" || eth0["inet6"] != "fe80::be24:11ff:fe00:1/64" || eth0["inet"] != nil {
		t.Errorf("eth0 before the network is up: %v", eth0)
	}
	deadline := time.Now().Add(5 * time.Second)
	var after map[string]map[string]any
	for after = read(); after["eth0"]["inet"] == nil && time.Now().Before(deadline); after = read() {
		time.Sleep(20 * time.Millisecond)
	}
	// 300 is 0x12c: the simulated DHCP server's address of VMID 300.
	if got := after["eth0"]["inet"]; got != "10.0.1.44/8" {
		t.Errorf("eth0's DHCP address: %v", got)
	}
	eth1 := after["eth1"]
	if eth1["inet"] != "192.168.7.5/24" || eth1["inet6"] != "fe80::be24:11ff:fe00:2/64" {
		t.Errorf("eth1: %v", eth1)
	}
	if n := len(eth1["ip-addresses"].([]any)); n != 3 {
		t.Errorf("eth1 has %d addresses, want 3 (IPv4, static IPv6, link-local): %v", n, eth1["ip-addresses"])
	}
}
