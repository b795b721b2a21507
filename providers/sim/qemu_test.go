package sim

import (
	"net/url"
	"strings"
	"testing"
)

// A QEMU VM in the world: Proxmox VE lists it in /cluster/resources with
// the containers (type qemu, id qemu/N; pve-manager src/PVE/API2/Cluster.pm),
// a tag does not make it a container, every container path misses it
// (pve-container finds a CT by its config file under nodes/N/lxc/), and its
// VMID cannot be taken (PVE::Cluster::check_vmid_unused, pve-cluster
// src/PVE/Cluster.pm, which names the holder's type).
const qemuWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: qemu}
spec:
  seed: 1
  timeScale: 0.002
  nodes:
    - name: pve1
      storages:
        - {name: local, type: dir, content: [vztmpl, rootdir]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
  guests:
    - {vmid: 100, name: ct, node: pve1}
    - {vmid: 300, name: windows, node: pve1, type: qemu, running: true, tags: [phoenix-managed, Desktop]}
`

func TestQEMUVMIsListedAndMissedByContainerPaths(t *testing.T) {
	_, c := startAPISim(t, qemuWorld)
	var vm map[string]any
	for _, e := range c.call("GET", "/cluster/resources", url.Values{"type": {"vm"}}).data.([]any) {
		if m := e.(map[string]any); m["vmid"] == 300.0 {
			vm = m
		}
	}
	if vm == nil || vm["type"] != "qemu" || vm["id"] != "qemu/300" || vm["status"] != "running" || vm["tags"] != "desktop;phoenix-managed" || vm["name"] != "windows" {
		t.Fatalf("the VM in /cluster/resources: %v", vm)
	}
	for _, e := range c.call("GET", "/nodes/pve1/lxc", nil).data.([]any) {
		if e.(map[string]any)["vmid"] == "300" {
			t.Errorf("the VM is in the node's container list: %v", e)
		}
	}
	missing := "Configuration file 'nodes/pve1/lxc/300.conf' does not exist"
	for _, r := range []struct{ method, path string }{
		{"GET", "/nodes/pve1/lxc/300/config"},
		{"GET", "/nodes/pve1/lxc/300/status/current"},
		{"DELETE", "/nodes/pve1/lxc/300"},
	} {
		if got := c.call(r.method, r.path, nil); got.code != 500 || got.reason != missing {
			t.Errorf("%s %s: %d %q, want 500 %q", r.method, r.path, got.code, got.reason, missing)
		}
	}
	create := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"300"}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"}})
	if create.code != 500 || create.reason != "VM 300 already exists on node 'pve1'" {
		t.Errorf("create at the VM's VMID: %d %q", create.code, create.reason)
	}
	clone := c.call("POST", "/nodes/pve1/lxc/100/clone", url.Values{"newid": {"300"}})
	if clone.code != 500 || clone.reason != "VM 300 already exists on node 'pve1'" {
		t.Errorf("clone to the VM's VMID: %d %q", clone.code, clone.reason)
	}
	if r := c.call("GET", "/cluster/nextid", url.Values{"vmid": {"300"}}); r.code != 400 || !strings.Contains(r.reason, "Parameter verification failed") {
		t.Errorf("nextid of the VM's VMID: %d %q", r.code, r.reason)
	}
}

func TestWorldQEMUGuestChecks(t *testing.T) {
	for name, body := range map[string]string{
		"unknown type":        "    - {vmid: 300, name: x, node: pve1, type: kvm}\n",
		"a VM with a config":  "    - {vmid: 300, name: x, node: pve1, type: qemu, config: {cores: \"2\"}}\n",
		"a VMID held by both": "    - {vmid: 100, name: x, node: pve1, type: qemu}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseWorld([]byte(qemuWorld + body)); err == nil {
				t.Errorf("accepted:\n%s", body)
			}
		})
	}
}
