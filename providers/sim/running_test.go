package sim

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Running containers: what a change does to a CT that runs (hot-plugged or
// pending), the device checks of pve-container since 556ddd3 (2024-04), and
// netN values as Proxmox prints and applies them. Each case names the
// Proxmox source it follows in the code it tests.

// apiFor is an API client with the token of a simulator a lab started, for
// the raw status lines and bodies go-proxmox hides.
func apiFor(t *testing.T, s *Sim) *apiClient {
	t.Helper()
	env := s.Env()
	pem, err := os.ReadFile(env["PROXMOX_VE_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	hc := &http.Client{Timeout: labDeadline, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return &apiClient{t: t, base: strings.TrimSuffix(env["PROXMOX_VE_ENDPOINT"], "/") + "/api2/json", hc: hc,
		token: env["PROXMOX_VE_API_TOKEN"]}
}

// pendingOf reads GET .../pending as key -> entry.
func (c *apiClient) pendingOf(node string, vmid int) map[string]map[string]any {
	c.t.Helper()
	r := c.call("GET", fmt.Sprintf("/nodes/%s/lxc/%d/pending", node, vmid), nil)
	if r.code != 200 {
		c.t.Fatalf("pending %d: %d %s", vmid, r.code, r.reason)
	}
	out := map[string]map[string]any{}
	for _, e := range r.data.([]any) {
		m := e.(map[string]any)
		out[m["key"].(string)] = m
	}
	return out
}

func (c *apiClient) current(node string, vmid int) map[string]any {
	c.t.Helper()
	r := c.call("GET", fmt.Sprintf("/nodes/%s/lxc/%d/config", node, vmid), url.Values{"current": {"1"}})
	if r.code != 200 {
		c.t.Fatalf("config %d: %d %s", vmid, r.code, r.reason)
	}
	return r.data.(map[string]any)
}

func TestANewDeviceIsHotPluggedAChangedOneWaits(t *testing.T) {
	t.Parallel()
	// The devices a CT starts with appear long after its start; one
	// hot-plugged later is there at once.
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.DevicesVisible = [2]Duration{worldTime(1000 * time.Second), worldTime(1000 * time.Second)}
	})
	root := apiFor(t, l.s).asRoot(l.s)
	put := func(p url.Values) apiResponse {
		return root.call("PUT", ctPath("pve1", 300, "/config"), p)
	}
	visible := func(dev string) int { return l.exec("pve1", 300, "test", "-c", dev).code }

	l.create("pve1", 300, map[string]any{"dev0": "/dev/nvidia0"})
	l.start("pve1", 300)
	if visible("/dev/nvidia0") != 1 {
		t.Fatal("the device the CT started with is visible at once; the test needs it late")
	}
	if r := put(url.Values{"dev1": {"/dev/nvidia1,mode=0666"}}); r.code != 200 {
		t.Fatalf("new dev1: %d %q %v", r.code, r.reason, r.body["errors"])
	}
	if visible("/dev/nvidia1") != 0 {
		t.Error("a hot-plugged device is not visible inside at once")
	}
	if cur := root.current("pve1", 300); cur["dev1"] != "/dev/nvidia1,mode=0666" {
		t.Errorf("a hot-plugged device is written to the config, not pending: %v", cur["dev1"])
	}

	// Setting a device to what it is changes nothing, and leaves nothing
	// pending.
	if r := put(url.Values{"dev0": {"/dev/nvidia0"}}); r.code != 200 {
		t.Fatalf("dev0 unchanged: %d %q %v", r.code, r.reason, r.body["errors"])
	}
	if e := root.pendingOf("pve1", 300)["dev0"]; e["pending"] != nil {
		t.Errorf("an unchanged dev0 is pending: %v", e)
	}
	// Changing or deleting an existing device waits for the next start.
	if r := put(url.Values{"dev0": {"/dev/nvidiactl"}, "delete": {"dev1"}}); r.code != 200 {
		t.Fatalf("change dev0, delete dev1: %d %q %v", r.code, r.reason, r.body["errors"])
	}
	pending := root.pendingOf("pve1", 300)
	if diff := cmp.Diff(map[string]any{"key": "dev0", "value": "/dev/nvidia0", "pending": "/dev/nvidiactl"}, pending["dev0"]); diff != "" {
		t.Errorf("dev0 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"key": "dev1", "value": "/dev/nvidia1,mode=0666", "delete": 1.0}, pending["dev1"]); diff != "" {
		t.Errorf("dev1 (-want +got):\n%s", diff)
	}
	if cur := root.current("pve1", 300); cur["dev0"] != "/dev/nvidia0" || cur["dev1"] != "/dev/nvidia1,mode=0666" {
		t.Errorf("the current config changed: %v", cur)
	}
	if visible("/dev/nvidia1") != 0 || visible("/dev/nvidiactl") != 1 {
		t.Error("a pending change reached the running CT")
	}

	l.reboot("pve1", 300)
	if cur := root.current("pve1", 300); cur["dev0"] != "/dev/nvidiactl" || cur["dev1"] != nil {
		t.Errorf("after the reboot: %v", cur)
	}
	if len(root.pendingOf("pve1", 300)["dev0"]) != 2 {
		t.Errorf("still pending after the reboot: %v", root.pendingOf("pve1", 300)["dev0"])
	}
}

func TestAMissingDeviceIsRefusedBeforeAnythingIsSaved(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	root := c.asRoot(s)
	const missing = "Device /dev/nvidia7 does not exist"
	// update_pct_config (pve-container src/PVE/LXC/Config.pm) stats the
	// device before it writes anything: a 500, no parameter map.
	r := root.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"200"}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"},
		"dev0": {"/dev/nvidia7"}})
	if r.code != 500 || r.reason != missing || r.body["errors"] != nil {
		t.Errorf("create: %d %q %v", r.code, r.reason, r.body)
	}
	if r := c.call("GET", "/nodes/pve1/lxc/200/config", nil); r.code != 500 {
		t.Errorf("a refused create left CT 200: %d", r.code)
	}
	for _, vmid := range []int{100, 101} { // running, stopped
		before := c.config("pve1", vmid)
		r := root.call("PUT", fmt.Sprintf("/nodes/pve1/lxc/%d/config", vmid), url.Values{"dev1": {"/dev/nvidia7"}, "cores": {"3"}})
		if r.code != 500 || r.reason != missing || r.body["errors"] != nil {
			t.Errorf("CT %d: %d %q %v", vmid, r.code, r.reason, r.body)
		}
		if diff := cmp.Diff(before, c.config("pve1", vmid)); diff != "" {
			t.Errorf("CT %d changed (-before +after):\n%s", vmid, diff)
		}
	}
}

func TestAVanishedDeviceFailsStartsAndChanges(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	c := apiFor(t, l.s)
	l.create("pve1", 300, map[string]any{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl", "dev2": "/dev/nvidia-uvm"})
	// nvidia-uvm is not loaded (the node rebooted and nothing loaded it).
	l.changeWorld(`{"nodes":{"pve1":{"uvmLoaded":false}}}`)
	const uvm = "Device /dev/nvidia-uvm does not exist"

	t.Run("vzstart fails before lxc-start runs", func(t *testing.T) {
		st := c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/300/status/start", nil).data)
		if st["exitstatus"] != uvm {
			t.Errorf("start: %v", st["exitstatus"])
		}
		if r := l.run("pve1", "pct", "status", "300"); r.stdout != "status: stopped\n" {
			t.Errorf("after the failed start: %v", r)
		}
	})
	t.Run("a change is saved, then answered with a 500", func(t *testing.T) {
		r := c.call("PUT", "/nodes/pve1/lxc/300/config", url.Values{"cores": {"3"}})
		if r.code != 500 || r.reason != uvm {
			t.Errorf("put: %d %q", r.code, r.reason)
		}
		if c.config("pve1", 300)["cores"] != 3.0 {
			t.Error("the change was not saved")
		}
	})
	t.Run("once loaded, the CT starts and takes changes", func(t *testing.T) {
		l.changeWorld(`{"nodes":{"pve1":{"uvmLoaded":true}}}`)
		if r := c.call("PUT", "/nodes/pve1/lxc/300/config", url.Values{"cores": {"2"}}); r.code != 200 {
			t.Errorf("put: %d %q", r.code, r.reason)
		}
		l.start("pve1", 300)
	})
	t.Run("a reboot checks the devices too, and leaves the CT stopped", func(t *testing.T) {
		// The second GPU falls off the bus under a running CT.
		l.create("pve1", 301, map[string]any{"dev0": "/dev/nvidia1"})
		l.start("pve1", 301)
		l.changeWorld(`{"nodes":{"pve1":{"gpus":1}}}`)
		if r := c.call("PUT", "/nodes/pve1/lxc/301/config", url.Values{"description": {"gone"}}); r.code != 500 ||
			r.reason != "Device /dev/nvidia1 does not exist" {
			t.Errorf("put on the running CT: %d %q", r.code, r.reason)
		}
		st := c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/301/status/reboot", nil).data)
		if st["exitstatus"] != "Device /dev/nvidia1 does not exist" {
			t.Errorf("reboot: %v", st["exitstatus"])
		}
		if r := l.run("pve1", "pct", "status", "301"); r.stdout != "status: stopped\n" {
			t.Errorf("after the failed reboot: %v", r)
		}
	})
}

var macRE = regexp.MustCompile(`^BC:24:11(:[0-9A-F]{2}){3}$`)

// netParts splits a netN value, keeping the order of its keys.
func netParts(t *testing.T, v any) (keys []string, vals map[string]string) {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("net value %#v", v)
	}
	vals = map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		k, val, _ := strings.Cut(part, "=")
		keys = append(keys, k)
		vals[k] = val
	}
	return keys, vals
}

func TestNetValuesAsProxmoxPrintsAndAppliesThem(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	put := func(vmid int, p url.Values) {
		t.Helper()
		if r := c.call("PUT", fmt.Sprintf("/nodes/pve1/lxc/%d/config", vmid), p); r.code != 200 {
			t.Fatalf("put %d %v: %d %q %v", vmid, p, r.code, r.reason, r.body["errors"])
		}
	}
	c.create("pve1", 200, url.Values{"net0": {"ip=dhcp,bridge=vmbr0,name=eth0"}, "net1": {"name=eth1,bridge=vmbr0,hwaddr=BC:24:11:0A:0B:0C,mtu=1400"}})
	cfg := c.config("pve1", 200)
	keys, net0 := netParts(t, cfg["net0"])
	if diff := cmp.Diff([]string{"name", "bridge", "hwaddr", "ip", "type"}, keys); diff != "" {
		t.Errorf("net0 %v: name first, then the rest sorted (-want +got):\n%s", cfg["net0"], diff)
	}
	if !macRE.MatchString(net0["hwaddr"]) || net0["type"] != "veth" {
		t.Errorf("net0 %v", cfg["net0"])
	}
	if cfg["net1"] != "name=eth1,bridge=vmbr0,hwaddr=BC:24:11:0A:0B:0C,mtu=1400,type=veth" {
		t.Errorf("net1 %v: a given MAC is kept", cfg["net1"])
	}

	// A value without hwaddr is a new interface to parse_lxc_network: a
	// new MAC, on a stopped CT as on a running one.
	put(200, url.Values{"net0": {"name=eth0,bridge=vmbr0,ip=dhcp"}})
	_, again := netParts(t, c.config("pve1", 200)["net0"])
	if !macRE.MatchString(again["hwaddr"]) || again["hwaddr"] == net0["hwaddr"] {
		t.Errorf("stopped CT: MAC %s after %s", again["hwaddr"], net0["hwaddr"])
	}
	c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/200/status/start", nil).data)
	put(200, url.Values{"net0": {"name=eth0,bridge=vmbr0,ip=dhcp"}})
	_, running := netParts(t, c.config("pve1", 200)["net0"])
	if !macRE.MatchString(running["hwaddr"]) || running["hwaddr"] == again["hwaddr"] {
		t.Errorf("running CT: MAC %s after %s", running["hwaddr"], again["hwaddr"])
	}
	put(200, url.Values{"net0": {"name=eth0,bridge=vmbr0,ip=dhcp,hwaddr=" + running["hwaddr"]}})
	if _, kept := netParts(t, c.config("pve1", 200)["net0"]); kept["hwaddr"] != running["hwaddr"] {
		t.Errorf("the MAC sent along changed: %s", kept["hwaddr"])
	}
	// A new interface on a running CT is hot-plugged the same way.
	put(200, url.Values{"net2": {"bridge=vmbr0,name=eth2"}})
	if keys, net2 := netParts(t, c.current("pve1", 200)["net2"]); !cmp.Equal(keys, []string{"name", "bridge", "hwaddr", "type"}) || !macRE.MatchString(net2["hwaddr"]) {
		t.Errorf("hot-plugged net2 %v", c.current("pve1", 200)["net2"])
	}
}

func TestAStopAppliesPendingChanges(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	if r := c.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"features": {"nesting=1"}}); r.code != 200 {
		t.Fatalf("put: %d %q", r.code, r.reason)
	}
	if c.pendingOf("pve1", 100)["features"]["pending"] != "nesting=1" {
		t.Fatal("features is not pending on the running CT")
	}
	// The poststop hook (pve-container src/lxc-pve-poststop-hook) applies
	// what waits, whoever stopped the CT.
	c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/100/status/stop", nil).data)
	if cur := c.current("pve1", 100); cur["features"] != "nesting=1" {
		t.Errorf("current config after the stop: %v", cur)
	}
	if e := c.pendingOf("pve1", 100)["features"]; e["pending"] != nil {
		t.Errorf("still pending after the stop: %v", e)
	}
}
