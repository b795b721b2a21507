package sim

import (
	"strings"
	"testing"
)

// TestDottedHostname: a container's hostname may be a DNS name with dots
// (pve-container's hostname option, format dns-name). The config and the
// cluster's listing keep the whole name; inside, the host name is the part
// before the first dot, which Setup::Base::set_hostname writes to
// /etc/hostname. A name that is no DNS name is refused with PVE's text.
func TestDottedHostname(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	l.create("pve1", 300, map[string]any{"hostname": "vllm-qwen2.5-7b-awq"})
	l.start("pve1", 300)
	if got := l.config("pve1", 300)["hostname"]; got != "vllm-qwen2.5-7b-awq" {
		t.Errorf("config hostname %v", got)
	}
	var res []map[string]any
	l.get("/cluster/resources?type=vm", &res)
	found := false
	for _, r := range res {
		if r["vmid"] == 300.0 {
			found = r["name"] == "vllm-qwen2.5-7b-awq"
		}
	}
	if !found {
		t.Errorf("/cluster/resources does not list 300 as vllm-qwen2.5-7b-awq: %v", res)
	}
	if r := l.exec("pve1", 300, "hostname"); r.code != 0 || r.stdout != "vllm-qwen2\n" {
		t.Errorf("hostname inside: %v", r)
	}

	_, err := l.post("/nodes/pve1/lxc", map[string]any{"vmid": 301, "ostemplate": labUbuntu, "rootfs": "local-lvm:8", "hostname": "vllm_qwen"})
	if err == nil || !strings.Contains(err.Error(), "value does not look like a valid DNS name") {
		t.Errorf("create with hostname vllm_qwen: %v", err)
	}
}
