package sim

import (
	"context"
	"net"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestJoinNode: a node that joins the running cluster is listed by
// /cluster/status with its own address, answers SSH there with a host key
// known_hosts lists, and takes containers.
func TestJoinNode(t *testing.T) {
	l := startLab(t, "ssh-cluster.yaml", nil)
	if err := l.s.JoinNode(WorldNode{Name: "pve9", GPUs: 1, DriverVersion: "580.76.05", OSTemplates: []string{labUbuntu}}); err != nil {
		t.Fatal(err)
	}
	var members []map[string]any
	if err := l.token.Get(context.Background(), "/cluster/status", &members); err != nil {
		t.Fatal(err)
	}
	ip := ""
	for _, m := range members {
		if m["type"] == "node" && m["name"] == "pve9" {
			ip, _ = m["ip"].(string)
			if m["online"] != 1.0 {
				t.Errorf("pve9 %v: want online", m)
			}
		}
		if m["type"] == "cluster" && m["nodes"] != 4.0 {
			t.Errorf("cluster entry %v: want 4 nodes", m)
		}
	}
	if ip == "" || ip == l.ips["pve1"] {
		t.Fatalf("/cluster/status %v: want pve9 at an address of its own", members)
	}
	// known_hosts, read anew, has its key.
	hostKeys, err := knownhosts.New(l.s.Env()["PROXMOX_VE_SSH_KNOWN_HOSTS"])
	if err != nil {
		t.Fatal(err)
	}
	conf := *l.sshConf
	conf.HostKeyCallback = hostKeys
	c, err := ssh.Dial("tcp", net.JoinHostPort(ip, l.port), &conf)
	if err != nil {
		t.Fatalf("ssh pve9: %v", err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("cat /proc/driver/nvidia/version")
	if err != nil || !strings.Contains(string(out), "580.76.05") {
		t.Errorf("pve9's driver: %q %v", out, err)
	}
	l.create("pve9", 900, nil)
	if cfg := l.config("pve9", 900); cfg["hostname"] != "ct900" {
		t.Errorf("CT 900 on pve9: %v", cfg)
	}

	t.Run("refused", func(t *testing.T) {
		for _, wn := range []WorldNode{{Name: "pve9"}, {Name: "-bad"}, {Name: "pve8", GPUs: 17},
			{Name: "pve7", Storages: []WorldStorage{{Name: "local-lvm", Type: "zfspool", Content: []string{"rootdir"}}}}} {
			if err := l.s.JoinNode(wn); err == nil {
				t.Errorf("JoinNode(%+v) succeeded", wn)
			}
		}
	})
}
