package sim

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The node inventory a plan checks before it creates a container (storages,
// their content, bridges) and the refusals Proxmox answers when one of them
// is not there, not enabled or not active, over the real wire and checked
// against what the schemas say the answers hold.

const inventoryWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: inventory}
spec:
  seed: 5
  timeScale: 0.002
  version: "%s"
  nodes:
    - name: pve1
      storages:
        - {name: local, type: dir, content: [vztmpl, iso, backup]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
        - {name: nfs-shared, type: nfs, content: [rootdir, vztmpl, backup]}
        - {name: offline-nfs, type: nfs, content: [rootdir], active: false}
        - {name: old, type: dir, content: [rootdir, vztmpl], enabled: false}
        - {name: tank, type: zfspool, content: [rootdir, images], active: false}
        - {name: usb, type: dir, content: [rootdir], active: false}
        - {name: thin2, type: lvmthin, content: [rootdir], active: false}
        - {name: vg0, type: lvm, content: [rootdir, images], active: false}
      osTemplates:
        - local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst
        - nfs-shared:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
        - old:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz
      bridges: [vmbr0, vmbr1]
      ovsBridges: [vmbr2]
      vnets: [blue]
    - name: pve2
      storages:
        - {name: local, type: dir, content: [vztmpl, iso, backup]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
        - {name: nfs-shared, type: nfs, content: [rootdir, vztmpl, backup]}
        - {name: offline-nfs, type: nfs, content: [rootdir]}
        - {name: old, type: dir, content: [rootdir, vztmpl], enabled: false}
      osTemplates: [local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst]
  guests:
    - {vmid: 100, name: web, node: pve1, running: true, config: {net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"}}
    - {vmid: 101, name: shared, node: pve2, config: {rootfs: "nfs-shared:101/vm-101-disk-0.raw,size=8G"}}
`

func inventorySim(t *testing.T, version string) (*Sim, *apiClient) {
	t.Helper()
	return startAPISim(t, fmt.Sprintf(inventoryWorld, version))
}

// list reads a list and checks it against what the schemas say it returns.
func (c *apiClient) list(path string, params url.Values) []map[string]any {
	c.t.Helper()
	r := c.call("GET", path, params)
	if r.code != 200 {
		c.t.Fatalf("GET %s %v: %d %s %v", path, params, r.code, r.reason, r.body["errors"])
	}
	checkReturns(c.t, "GET", path, r.data)
	var out []map[string]any
	for _, e := range r.data.([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

// byKey indexes list entries by one of their fields.
func byKey(entries []map[string]any, key string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, e := range entries {
		out[e[key].(string)] = e
	}
	return out
}

// names lists the entries' key field, sorted.
func names(entries []map[string]any, key string) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e[key].(string))
	}
	slices.Sort(out)
	return out
}

func TestStorageList(t *testing.T) {
	_, c := inventorySim(t, "9.1.2")
	all := c.list("/nodes/pve1/storage", nil)
	st := byKey(all, "storage")
	if diff := cmp.Diff([]string{"local", "local-lvm", "nfs-shared", "offline-nfs", "old", "tank", "thin2", "usb", "vg0"}, names(all, "storage")); diff != "" {
		t.Fatalf("storages of pve1 (-want +got):\n%s", diff)
	}
	t.Run("an active storage has sizes and the fraction used", func(t *testing.T) {
		e := st["local"]
		for k, want := range map[string]any{"type": "dir", "content": "vztmpl,iso,backup", "shared": 0.0, "active": 1.0, "enabled": 1.0} {
			if e[k] != want {
				t.Errorf("local %s = %#v, want %#v", k, e[k], want)
			}
		}
		total, used, avail := e["total"].(float64), e["used"].(float64), e["avail"].(float64)
		if total <= 0 || used <= 0 || avail != total-used || e["used_fraction"] != used/total {
			t.Errorf("local sizes %v", e)
		}
		if st["nfs-shared"]["shared"] != 1.0 || st["local-lvm"]["shared"] != 0.0 {
			t.Errorf("shared: nfs %v, lvm-thin %v", st["nfs-shared"]["shared"], st["local-lvm"]["shared"])
		}
	})
	t.Run("inactive and disabled storages are listed with zero sizes", func(t *testing.T) {
		for id, want := range map[string][2]float64{"tank": {1, 0}, "offline-nfs": {1, 0}, "vg0": {1, 0}, "old": {0, 0}} {
			e := st[id]
			if e["enabled"] != want[0] || e["active"] != want[1] || e["total"] != 0.0 || e["used"] != 0.0 || e["avail"] != 0.0 {
				t.Errorf("%s: %v, want enabled %v active %v and zero sizes", id, e, want[0], want[1])
			}
			if _, ok := e["used_fraction"]; ok {
				t.Errorf("%s has used_fraction without a total: %v", id, e)
			}
		}
	})
	t.Run("a storage only other nodes have is listed as not enabled", func(t *testing.T) {
		e := byKey(c.list("/nodes/pve2/storage", nil), "storage")["tank"]
		if e == nil || e["enabled"] != 0.0 || e["active"] != 0.0 {
			t.Errorf("tank on pve2: %v", e)
		}
	})
	t.Run("content keeps the enabled storages holding one of the types", func(t *testing.T) {
		for _, tc := range []struct {
			node, content string
			want          []string
		}{
			{"pve1", "rootdir", []string{"local-lvm", "nfs-shared", "offline-nfs", "tank", "thin2", "usb", "vg0"}},
			{"pve2", "rootdir", []string{"local-lvm", "nfs-shared", "offline-nfs"}},
			{"pve1", "vztmpl", []string{"local", "nfs-shared"}},
			{"pve1", "iso,images", []string{"local", "local-lvm", "tank", "vg0"}},
			{"pve1", "snippets", nil},
		} {
			got := names(c.list("/nodes/"+tc.node+"/storage", url.Values{"content": {tc.content}}), "storage")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s content=%s (-want +got):\n%s", tc.node, tc.content, diff)
			}
		}
	})
	t.Run("enabled drops what storage.cfg disables, not what it restricts to other nodes", func(t *testing.T) {
		got := names(c.list("/nodes/pve2/storage", url.Values{"enabled": {"1"}}), "storage")
		if diff := cmp.Diff([]string{"local", "local-lvm", "nfs-shared", "offline-nfs", "tank", "thin2", "usb", "vg0"}, got); diff != "" {
			t.Errorf("pve2 enabled=1 (-want +got):\n%s", diff)
		}
	})
	t.Run("storage names one entry, or is a parameter error", func(t *testing.T) {
		if got := names(c.list("/nodes/pve1/storage", url.Values{"storage": {"local"}}), "storage"); !slices.Equal(got, []string{"local"}) {
			t.Errorf("storage=local: %v", got)
		}
		for _, p := range []url.Values{{"storage": {"nosuch"}}, {"storage": {"local"}, "content": {"rootdir"}}, {"storage": {"old"}, "content": {"rootdir"}}} {
			r := c.call("GET", "/nodes/pve1/storage", p)
			if r.code != 400 || !cmp.Equal(r.body["errors"], map[string]any{"storage": "No such storage."}) {
				t.Errorf("%v: %d %v", p, r.code, r.body)
			}
		}
	})
	t.Run("target keeps the shared storages both nodes reach", func(t *testing.T) {
		if got := names(c.list("/nodes/pve1/storage", url.Values{"target": {"pve2"}}), "storage"); !slices.Equal(got, []string{"nfs-shared", "offline-nfs"}) {
			t.Errorf("target=pve2: %v", got)
		}
		if got := c.list("/nodes/pve1/storage", url.Values{"target": {"pve1"}}); len(got) != len(all) {
			t.Errorf("target is the node itself: %d entries, want all %d", len(got), len(all))
		}
	})
	t.Run("format adds the plugin's formats to enabled storages", func(t *testing.T) {
		st := byKey(c.list("/nodes/pve1/storage", url.Values{"format": {"1"}}), "storage")
		want := map[string]any{"supported": []any{"qcow2", "raw", "subvol", "vmdk"}, "default": "raw"}
		if diff := cmp.Diff(want, st["local"]["formats"]); diff != "" {
			t.Errorf("local formats (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]any{map[string]any{"raw": 1.0}, "raw"}, st["local-lvm"]["format"]); diff != "" {
			t.Errorf("local-lvm format (-want +got):\n%s", diff)
		}
		if _, ok := st["old"]["formats"]; ok {
			t.Errorf("a disabled storage got formats: %v", st["old"])
		}
	})
	t.Run("the order is a hash's, the same on every call", func(t *testing.T) {
		var order []string
		for _, e := range c.list("/nodes/pve1/storage", nil) {
			order = append(order, e["storage"].(string))
		}
		var again []string
		for _, e := range c.list("/nodes/pve1/storage", nil) {
			again = append(again, e["storage"].(string))
		}
		if !slices.Equal(order, again) {
			t.Errorf("%v then %v", order, again)
		}
	})
}

func TestStorageResources(t *testing.T) {
	_, c := inventorySim(t, "9.1.2")
	got := map[string]string{}
	for _, e := range c.list("/cluster/resources", url.Values{"type": {"storage"}}) {
		got[e["id"].(string)] = fmt.Sprintf("%v %v", e["status"], e["maxdisk"] != nil)
	}
	// Only the storages enabled on a node; sizes only for the active ones.
	want := map[string]string{
		"storage/pve1/local": "available true", "storage/pve1/local-lvm": "available true", "storage/pve1/nfs-shared": "available true",
		"storage/pve1/offline-nfs": "unknown false", "storage/pve1/tank": "unknown false", "storage/pve1/usb": "unknown false",
		"storage/pve1/thin2": "unknown false", "storage/pve1/vg0": "unknown false",
		"storage/pve2/local": "available true", "storage/pve2/local-lvm": "available true", "storage/pve2/nfs-shared": "available true",
		"storage/pve2/offline-nfs": "available true",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("storage resources (-want +got):\n%s", diff)
	}
}

func TestStorageListOnPVE8(t *testing.T) {
	_, c := inventorySim(t, "8.3.5")
	st := byKey(c.list("/nodes/pve1/storage", url.Values{"format": {"1"}}), "storage")
	if _, ok := st["local"]["formats"]; ok {
		t.Errorf("8.3 has no formats: %v", st["local"])
	}
	if diff := cmp.Diff([]any{map[string]any{"qcow2": 1.0, "raw": 1.0, "subvol": 1.0, "vmdk": 1.0}, "raw"}, st["local"]["format"]); diff != "" {
		t.Errorf("local format (-want +got):\n%s", diff)
	}
	if _, ok := st["local-lvm"]["format"]; ok {
		t.Errorf("8.3's lvmthin plugin has no format: %v", st["local-lvm"])
	}
}

func TestStorageRefusals(t *testing.T) {
	_, c := inventorySim(t, "9.1.2")
	create := func(node string, vmid int, p url.Values) apiResponse {
		q := url.Values{"vmid": {fmt.Sprint(vmid)}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"}}
		for k, v := range p {
			q[k] = v
		}
		return c.call("POST", "/nodes/"+node+"/lxc", q)
	}
	t.Run("create refuses a storage that is not enabled, not on the node or not active, at once", func(t *testing.T) {
		for _, tc := range []struct {
			node, rootfs, want string
		}{
			{"pve1", "old:8", "storage 'old' is disabled"},
			{"pve2", "tank:8", "storage 'tank' is not available on node 'pve2'"},
			{"pve1", "nosuch:8", "storage 'nosuch' does not exist"},
			{"pve1", "offline-nfs:8", "storage 'offline-nfs' is not online"},
			{"pve1", "tank:8", "could not activate storage 'tank', zfs error: cannot import 'tank': no such pool available"},
			{"pve1", "usb:8", "unable to activate storage 'usb' - directory is expected to be a mount point but is not mounted: '/mnt/pve/usb'"},
			{"pve1", "thin2:8", "no such logical volume thin2/data"},
		} {
			r := create(tc.node, 200, url.Values{"rootfs": {tc.rootfs}})
			if r.code != 500 || r.reason != tc.want {
				t.Errorf("%s rootfs %s: %d %q, want 500 %q", tc.node, tc.rootfs, r.code, r.reason, tc.want)
			}
		}
		// The storage parameter is checked the same way when rootfs is a size.
		if r := create("pve1", 200, url.Values{"rootfs": nil, "storage": {"old"}}); r.code != 500 || r.reason != "storage 'old' is disabled" {
			t.Errorf("storage=old: %d %q", r.code, r.reason)
		}
		r := create("pve1", 200, url.Values{"rootfs": {"local:8"}})
		if r.code != 400 || !cmp.Equal(r.body["errors"], map[string]any{"storage": "storage 'local' does not support container directories"}) {
			t.Errorf("no rootdir: %d %v", r.code, r.body)
		}
		if r := create("pve1", 200, url.Values{"ostemplate": {"nosuch:vztmpl/x.tar.zst"}}); r.code != 500 || r.reason != "storage 'nosuch' does not exist" {
			t.Errorf("template on an unknown storage: %d %q", r.code, r.reason)
		}
	})
	t.Run("what shows only in the worker fails the task and leaves no container", func(t *testing.T) {
		for vmid, tc := range map[int]struct{ rootfs, template, want string }{
			201: {"vg0:8", ubuntu, "unable to create CT 201 - no such volume group 'vg0'"},
			202: {"local-lvm:8", "old:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz", "unable to create CT 202 - storage 'old' is disabled"},
		} {
			r := create("pve1", vmid, url.Values{"rootfs": {tc.rootfs}, "ostemplate": {tc.template}})
			if r.code != 200 {
				t.Fatalf("create %d: %d %q", vmid, r.code, r.reason)
			}
			if st := c.waitTask("pve1", r.data); st["exitstatus"] != tc.want {
				t.Errorf("create %d: %v, want %q", vmid, st["exitstatus"], tc.want)
			}
			if r := c.call("GET", fmt.Sprintf("/nodes/pve1/lxc/%d/config", vmid), nil); r.code != 500 {
				t.Errorf("CT %d exists after a failed create", vmid)
			}
		}
	})
	t.Run("a template on a shared storage creates on any node", func(t *testing.T) {
		r := create("pve2", 203, url.Values{"ostemplate": {"nfs-shared:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}, "rootfs": {"nfs-shared:4"}})
		if r.code != 200 {
			t.Fatalf("create: %d %q", r.code, r.reason)
		}
		if st := c.waitTask("pve2", r.data); st["exitstatus"] != "OK" {
			t.Errorf("create on pve2: %v", st["exitstatus"])
		}
		if cfg := c.config("pve2", 203); cfg["rootfs"] != "nfs-shared:203/vm-203-disk-0.raw,size=4G" {
			t.Errorf("rootfs %v", cfg["rootfs"])
		}
	})
	t.Run("clone checks its storage on both nodes", func(t *testing.T) {
		c.create("pve1", 210, nil)
		r := c.call("POST", "/nodes/pve1/lxc/210/clone", url.Values{"newid": {"211"}, "full": {"1"}, "storage": {"old"}})
		if r.code != 500 || r.reason != "storage 'old' is disabled" {
			t.Errorf("clone to old: %d %q", r.code, r.reason)
		}
		r = c.call("POST", "/nodes/pve1/lxc/210/clone", url.Values{"newid": {"211"}, "full": {"1"}, "storage": {"tank"}, "target": {"pve2"}})
		if r.code != 500 || r.reason != "storage 'tank' is not available on node 'pve2'" {
			t.Errorf("clone to tank on pve2: %d %q", r.code, r.reason)
		}
	})
	t.Run("content lists only what the storage holds, once it is activated", func(t *testing.T) {
		got := names(c.list("/nodes/pve1/storage/local/content", url.Values{"content": {"vztmpl"}}), "volid")
		if !slices.Equal(got, []string{ubuntu}) {
			t.Errorf("local vztmpl: %v", got)
		}
		if got := c.list("/nodes/pve1/storage/local/content", url.Values{"content": {"rootdir"}}); len(got) != 0 {
			t.Errorf("rootdir on a storage without it: %v", got)
		}
		if got := names(c.list("/nodes/pve1/storage/nfs-shared/content", nil), "volid"); !slices.Equal(got, []string{
			"nfs-shared:101/vm-101-disk-0.raw", "nfs-shared:203/vm-203-disk-0.raw", "nfs-shared:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
		}) {
			t.Errorf("a shared storage lists every node's volumes: %v", got)
		}
		for path, want := range map[string]string{
			"/nodes/pve1/storage/old/content":    "storage 'old' is disabled",
			"/nodes/pve2/storage/tank/content":   "storage 'tank' is not available on node 'pve2'",
			"/nodes/pve1/storage/tank/content":   "could not activate storage 'tank', zfs error: cannot import 'tank': no such pool available",
			"/nodes/pve1/storage/nosuch/content": "storage 'nosuch' does not exist",
		} {
			if r := c.call("GET", path, nil); r.code != 500 || r.reason != want {
				t.Errorf("%s: %d %q, want %q", path, r.code, r.reason, want)
			}
		}
	})
}

func TestNetworkList(t *testing.T) {
	_, c := inventorySim(t, "9.1.2")
	all := c.list("/nodes/pve1/network", nil)
	ifaces := byKey(all, "iface")
	if diff := cmp.Diff([]string{"eno1", "vmbr0", "vmbr1", "vmbr2"}, names(all, "iface")); diff != "" {
		t.Fatalf("interfaces without a type (-want +got):\n%s", diff)
	}
	t.Run("entries read as the interfaces file parses", func(t *testing.T) {
		want := map[string]map[string]any{
			"eno1": {"iface": "eno1", "type": "eth", "method": "manual", "method6": "manual", "families": []any{"inet"},
				"priority": 3.0, "active": 1.0, "exists": 1.0},
			"vmbr0": {"iface": "vmbr0", "type": "bridge", "method": "static", "method6": "manual", "families": []any{"inet"},
				"priority": 4.0, "active": 1.0, "autostart": 1.0, "bridge_ports": "eno1", "bridge_stp": "off", "bridge_fd": "0",
				"address": "127.0.0.2", "netmask": "24", "cidr": "127.0.0.2/24", "gateway": "127.0.0.1"},
			"vmbr1": {"iface": "vmbr1", "type": "bridge", "method": "manual", "method6": "manual", "families": []any{"inet"},
				"priority": 5.0, "active": 1.0, "autostart": 1.0, "bridge_ports": "", "bridge_stp": "off", "bridge_fd": "0"},
			"vmbr2": {"iface": "vmbr2", "type": "OVSBridge", "ovs_type": "OVSBridge", "method": "manual", "method6": "manual",
				"families": []any{"inet"}, "priority": 6.0, "active": 1.0, "autostart": 1.0},
		}
		if diff := cmp.Diff(want, ifaces); diff != "" {
			t.Errorf("interfaces (-want +got):\n%s", diff)
		}
	})
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{"any_bridge", []string{"blue", "vmbr0", "vmbr1", "vmbr2"}},
		{"any_local_bridge", []string{"vmbr0", "vmbr1", "vmbr2"}},
		{"bridge", []string{"vmbr0", "vmbr1"}},
		{"OVSBridge", []string{"vmbr2"}},
		{"eth", []string{"eno1"}},
		{"vnet", []string{"blue"}},
		{"include_sdn", []string{"blue", "eno1", "vmbr0", "vmbr1", "vmbr2"}},
		{"bond", nil},
		{"fabric", nil},
	} {
		got := names(c.list("/nodes/pve1/network", url.Values{"type": {tc.typ}}), "iface")
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("type=%s (-want +got):\n%s", tc.typ, diff)
		}
	}
	vnet := byKey(c.list("/nodes/pve1/network", url.Values{"type": {"any_bridge"}}), "iface")["blue"]
	if diff := cmp.Diff(map[string]any{"iface": "blue", "type": "vnet", "active": "1", "ipam": 1.0, "vlanaware": 0.0, "comments": nil}, vnet); diff != "" {
		t.Errorf("vnet entry (-want +got):\n%s", diff)
	}
	if got := names(c.list("/nodes/pve2/network", url.Values{"type": {"any_bridge"}}), "iface"); !slices.Equal(got, []string{"vmbr0"}) {
		t.Errorf("pve2 gets the installer's vmbr0 by default: %v", got)
	}
}

func TestNetworkListOnPVE8(t *testing.T) {
	_, c := inventorySim(t, "8.3.5")
	if got := names(c.list("/nodes/pve1/network", url.Values{"type": {"any_bridge"}}), "iface"); !slices.Equal(got, []string{"blue", "vmbr0", "vmbr1", "vmbr2"}) {
		t.Errorf("any_bridge includes the vnets in 8.3 too: %v", got)
	}
	if got := c.list("/nodes/pve1/network", url.Values{"type": {"vnet"}}); len(got) != 0 {
		t.Errorf("8.3 fetches vnets for any_bridge only, so type=vnet lists nothing: %v", got)
	}
	r := c.call("GET", "/nodes/pve1/network", url.Values{"type": {"include_sdn"}})
	want := map[string]any{"type": "value 'include_sdn' does not have a value in the enumeration '" + networkTypes83 + "'"}
	if r.code != 400 || !cmp.Equal(r.body["errors"], want) {
		t.Errorf("include_sdn on 8.3: %d %v", r.code, r.body)
	}
}

func TestBridgeRefusals(t *testing.T) {
	_, c := inventorySim(t, "9.1.2")
	put := func(vmid int, p url.Values) apiResponse {
		return c.call("PUT", fmt.Sprintf("/nodes/pve1/lxc/%d/config", vmid), p)
	}
	t.Run("a container on a missing bridge is created, and fails to start", func(t *testing.T) {
		c.create("pve1", 300, url.Values{"net0": {"name=eth0,bridge=vmbr9,ip=dhcp"}})
		st := c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/300/status/start", nil).data)
		if st["exitstatus"] != "bridge 'vmbr9' does not exist" {
			t.Errorf("start: %v", st["exitstatus"])
		}
		if s := c.call("GET", "/nodes/pve1/lxc/300/status/current", nil).data.(map[string]any); s["status"] != "stopped" {
			t.Errorf("status %v", s["status"])
		}
	})
	t.Run("with start=1 the create succeeds and its start fails", func(t *testing.T) {
		c.create("pve1", 301, url.Values{"net0": {"name=eth0,bridge=vmbr9,ip=dhcp"}, "start": {"1"}})
		var start map[string]any
		// source=all: the default archive lists a task only once it has
		// been archived, up to 10 s after it ended.
		for _, e := range c.call("GET", "/nodes/pve1/tasks", url.Values{"vmid": {"301"}, "source": {"all"}}).data.([]any) {
			if e := e.(map[string]any); e["type"] == "vzstart" {
				start = e
			}
		}
		if start == nil {
			t.Fatal("no vzstart task")
		}
		st := c.waitTask("pve1", start["upid"])
		if st["exitstatus"] != "bridge 'vmbr9' does not exist" {
			t.Errorf("start after create: %v", st["exitstatus"])
		}
	})
	t.Run("an mtu makes create read the bridge at once", func(t *testing.T) {
		for net, want := range map[string]string{
			"name=eth0,bridge=vmbr9,mtu=1400": "bridge 'vmbr9' does not exist",
			"name=eth0,bridge=vmbr0,mtu=9000": "net0: MTU size '9000' is bigger than bridge MTU '1500'",
		} {
			r := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"302"}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"}, "net0": {net}})
			if r.code != 500 || r.reason != want {
				t.Errorf("%s: %d %q, want %q", net, r.code, r.reason, want)
			}
		}
	})
	t.Run("a stopped container's change is saved, then answered with a 500", func(t *testing.T) {
		c.create("pve1", 310, nil)
		r := put(310, url.Values{"net1": {"name=eth1,bridge=vmbr9"}})
		if r.code != 500 || r.reason != "bridge 'vmbr9' does not exist" {
			t.Errorf("put: %d %q", r.code, r.reason)
		}
		if net, _ := c.config("pve1", 310)["net1"].(string); !strings.Contains(net, "bridge=vmbr9") {
			t.Errorf("net1 not saved: %q", net)
		}
		// Every later change answers the same, until the bridge is fixed.
		if r := put(310, url.Values{"cores": {"2"}}); r.code != 500 || r.reason != "bridge 'vmbr9' does not exist" || c.config("pve1", 310)["cores"] != 2.0 {
			t.Errorf("unrelated change: %d %q", r.code, r.reason)
		}
		if r := put(310, url.Values{"net1": {"name=eth1,bridge=blue"}}); r.code != 200 {
			t.Errorf("onto the vnet: %d %q", r.code, r.reason)
		}
	})
	t.Run("a running container's hot-plug fails and nothing is saved", func(t *testing.T) {
		before := c.config("pve1", 100)
		r := put(100, url.Values{"net1": {"name=eth1,bridge=vmbr9"}, "cores": {"3"}})
		if r.code != 400 || !cmp.Equal(r.body["errors"], map[string]any{"net1": "unable to hotplug net1: bridge 'vmbr9' does not exist\n"}) {
			t.Errorf("new net1: %d %v", r.code, r.body)
		}
		// The MAC goes along: without it the value is a new interface
		// (parse_lxc_network gives it a new MAC) and the hot-plug recreates
		// it rather than re-plugging the port.
		const mac = "hwaddr=BC:24:11:00:00:01"
		r = put(100, url.Values{"net0": {"name=eth0,bridge=vmbr9,ip=dhcp," + mac}})
		want := map[string]any{"net0": "unable to hotplug net0: bridge 'vmbr9' is neither a linux nor an OVS bridge!\n\n"}
		if r.code != 400 || !cmp.Equal(r.body["errors"], want) {
			t.Errorf("net0 onto vmbr9: %d %v", r.code, r.body)
		}
		if diff := cmp.Diff(before, c.config("pve1", 100)); diff != "" {
			t.Errorf("config changed (-before +after):\n%s", diff)
		}
		for _, b := range []string{"vmbr1", "vmbr2", "blue"} {
			if r := put(100, url.Values{"net0": {"name=eth0,bridge=" + b + ",ip=dhcp," + mac}}); r.code != 200 {
				t.Errorf("net0 onto %s: %d %q %v", b, r.code, r.reason, r.body["errors"])
			}
		}
	})
	t.Run("a recreated interface is written away before the hot-plug fails", func(t *testing.T) {
		c.create("pve1", 320, url.Values{"net0": {"name=eth0,bridge=vmbr0,ip=dhcp"}})
		c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/320/status/start", nil).data)
		r := put(320, url.Values{"net0": {"name=eth0,bridge=vmbr9,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp"}, "tags": {"web"}, "swap": {"256"}})
		if r.code != 400 || !cmp.Equal(r.body["errors"], map[string]any{"net0": "unable to hotplug net0: bridge 'vmbr9' does not exist\n"}) {
			t.Errorf("put: %d %v", r.code, r.body)
		}
		cfg := c.config("pve1", 320)
		if _, ok := cfg["net0"]; ok || cfg["tags"] != "web" {
			t.Errorf("config after the failed recreate: %v", cfg)
		}
		pending := byKey(c.list("/nodes/pve1/lxc/320/pending", nil), "key")
		if pending["swap"]["pending"] != 256.0 {
			t.Errorf("swap, still to be hot-plugged when the config was written, is not pending: %v", pending["swap"])
		}
	})
	t.Run("a port with link_down passes the hot-plug, the 500 comes after the save", func(t *testing.T) {
		r := put(100, url.Values{"net0": {"name=eth0,bridge=vmbr9,ip=dhcp,link_down=1,hwaddr=BC:24:11:00:00:01"}})
		if r.code != 500 || r.reason != "bridge 'vmbr9' does not exist" {
			t.Errorf("put: %d %q", r.code, r.reason)
		}
		st := c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/100/status/reboot", nil).data)
		if st["exitstatus"] != "bridge 'vmbr9' does not exist" {
			t.Errorf("reboot: %v", st["exitstatus"])
		}
		if s := c.call("GET", "/nodes/pve1/lxc/100/status/current", nil).data.(map[string]any); s["status"] != "stopped" {
			t.Errorf("after the failed reboot: %v", s["status"])
		}
	})
}
