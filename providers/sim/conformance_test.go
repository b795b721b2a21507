package sim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// The simulator driven by go-proxmox v0.8.2 itself, the client phoenix's
// provider is built on: what go-proxmox gets wrong against a real Proxmox VE
// (read in its source: typed structs that drop keys, waits that ignore ctx and
// call WARNINGS a failure, errors that lose Proxmox's text) must go wrong here
// too, or the simulator would hide the bugs the provider has to survive.

func goProxmox(t *testing.T, s *Sim, c *apiClient) (*proxmox.Client, *proxmox.Node) {
	t.Helper()
	id, secret, _ := strings.Cut(s.Env()["PROXMOX_VE_API_TOKEN"], "=")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: c.hc.Transport}
	client := proxmox.NewClient(s.Env()["PROXMOX_VE_ENDPOINT"]+"api2/json", proxmox.WithHTTPClient(hc), proxmox.WithAPIToken(id, secret))
	node, err := client.Node(context.Background(), "pve1")
	if err != nil {
		t.Fatalf("go-proxmox Node: %v", err)
	}
	return client, node
}

func TestGoProxmoxWorks(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	client, node := goProxmox(t, s, c)
	ctx := context.Background()
	v, err := client.Version(ctx)
	if err != nil || v.Release != "9.1" {
		t.Fatalf("Version: %+v %v", v, err)
	}
	task, err := node.NewContainer(ctx, 800,
		proxmox.ContainerOption{Name: "ostemplate", Value: ubuntu},
		proxmox.ContainerOption{Name: "rootfs", Value: "local-lvm:8"},
		proxmox.ContainerOption{Name: "hostname", Value: "gp"},
		proxmox.ContainerOption{Name: "unprivileged", Value: 1})
	if err != nil {
		t.Fatalf("NewContainer: %v", err)
	}
	if err := task.Wait(ctx, 5*time.Millisecond, 10*time.Second); err != nil || !task.IsSuccessful {
		t.Fatalf("create task: %v %+v", err, task)
	}
	ct, err := node.Container(ctx, 800)
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	if ct.ContainerConfig.Hostname != "gp" || !ct.ContainerConfig.Unprivileged {
		t.Errorf("config %+v", ct.ContainerConfig)
	}
	start, err := ct.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := start.Wait(ctx, 5*time.Millisecond, 10*time.Second); err != nil || !start.IsSuccessful {
		t.Fatalf("start: %v %+v", err, start)
	}
	vms, err := client.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := vms.Resources(ctx, "vm")
	if err != nil || len(res) < 3 {
		t.Errorf("resources: %v %d", err, len(res))
	}
}

func TestGoProxmoxTraps(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	client, node := goProxmox(t, s, c)
	ctx := context.Background()

	t.Run("cpulimit as a string breaks the typed container", func(t *testing.T) {
		// CT 100 has cpulimit 1.5: Container reads status/current (cpus 1.5
		// into an int) and the config (cpulimit "1.5" into an int).
		if _, err := node.Container(ctx, 100); err == nil {
			t.Error("go-proxmox read a container with cpulimit; the trap is gone?")
		}
		var raw map[string]any
		if err := client.Get(ctx, "/nodes/pve1/lxc/100/config", &raw); err != nil || raw["cpulimit"] != "1.5" {
			t.Errorf("raw map read: %v %v", err, raw["cpulimit"])
		}
	})
	t.Run("a missing CT is a 500 with the reason, not ErrNotFound", func(t *testing.T) {
		_, err := node.Container(ctx, 999)
		if err == nil || errors.Is(err, proxmox.ErrNotFound) || err.Error() != "500 Configuration file 'nodes/pve1/lxc/999.conf' does not exist" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("403 becomes a bare ErrNotAuthorized: Proxmox's text is lost", func(t *testing.T) {
		ct := &proxmox.Container{}
		err := client.Put(ctx, "/nodes/pve1/lxc/101/config", map[string]any{"dev0": "/dev/nvidia0"}, ct)
		if !errors.Is(err, proxmox.ErrNotAuthorized) || strings.Contains(err.Error(), "root@pam") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("Config returns a nil task: Proxmox answers null", func(t *testing.T) {
		c.create("pve1", 810, nil)
		ct, err := node.Container(ctx, 810)
		if err != nil {
			t.Fatal(err)
		}
		task, err := ct.Config(ctx, proxmox.ContainerOption{Name: "cores", Value: 2})
		if err != nil {
			t.Fatalf("Config: %v", err)
		}
		if task != nil {
			t.Errorf("Config answered a task %+v; Proxmox answers null", task)
		}
		if cfg := c.config("pve1", 810); cfg["cores"] != 2.0 {
			t.Errorf("the change is synchronous, yet cores = %v", cfg["cores"])
		}
	})
	t.Run("Template returns no task; the config says when it is done", func(t *testing.T) {
		c.create("pve1", 820, nil)
		ct, err := node.Container(ctx, 820)
		if err != nil {
			t.Fatal(err)
		}
		if err := ct.Template(ctx); err != nil {
			t.Fatalf("Template: %v", err)
		}
		c.waitConfig("pve1", 820, func(cfg map[string]any) bool { return cfg["template"] == 1.0 })
	})
	t.Run("Wait returns nil for a failed task", func(t *testing.T) {
		task, err := node.NewContainer(ctx, 830, proxmox.ContainerOption{Name: "ostemplate", Value: "local:vztmpl/gone.tar.zst"},
			proxmox.ContainerOption{Name: "rootfs", Value: "local-lvm:8"})
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Wait(ctx, 5*time.Millisecond, 10*time.Second); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if !task.IsFailed || task.ExitStatus != "unable to create CT 830 - can't find file 'local:vztmpl/gone.tar.zst'" {
			t.Errorf("task %+v", task)
		}
	})
	t.Run("Feature never sends its required parameter", func(t *testing.T) {
		bound, err := node.Container(ctx, 810)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bound.Feature(ctx)
		if err == nil || !strings.Contains(err.Error(), `"feature":"property is missing and it is not optional"`) {
			t.Errorf("Feature: %v", err)
		}
	})
}

func TestGoProxmoxCallsWarningsAFailure(t *testing.T) {
	s, c := startAPISim(t, apiWorld+"  faults: {taskWarnings: 1}\n")
	_, node := goProxmox(t, s, c)
	ctx := context.Background()
	task, err := node.NewContainer(ctx, 840, proxmox.ContainerOption{Name: "ostemplate", Value: ubuntu},
		proxmox.ContainerOption{Name: "rootfs", Value: "local-lvm:8"})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx, 5*time.Millisecond, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if task.ExitStatus != "WARNINGS: 1" || !task.IsFailed {
		t.Errorf("task %q failed=%v: go-proxmox should (wrongly) call WARNINGS a failure", task.ExitStatus, task.IsFailed)
	}
	// Yet the container exists: WARNINGS is success.
	if cfg := c.config("pve1", 840); cfg["rootfs"] == nil {
		t.Error("no container after a WARNINGS task")
	}
}
