package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// A host reboot seen through the adapter: a GPU container whose devN names
// /dev/nvidia-uvm does not come back while nothing loads the module, and
// every change to it answers with the missing device until something does.

const rebootWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: reboot}
spec:
  seed: 13
  timeScale: 0.002
  nodes:
    - name: pve1
      gpus: 1
      driverVersion: "580.76.05"
      uvmLoaded: false
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
  guests:
    - {vmid: 100, name: gpu, node: pve1, config: {onboot: "1", dev0: /dev/nvidia0}}
    - {vmid: 101, name: plain, node: pve1, config: {onboot: "1"}}
`

func TestRebootLeavesAGPUContainerWithoutUVMStopped(t *testing.T) {
	f := startSim(t, rebootWorld)
	c := f.client(t, proxmox.EnvToken) // root@pam's ticket may set dev[n]
	ctx := context.Background()
	status := func(vmid int) string {
		t.Helper()
		g, err := c.Status(ctx, "pve1", vmid)
		if err != nil {
			t.Fatal(err)
		}
		return g.Status
	}
	const uvm = "Device /dev/nvidia-uvm does not exist"

	// Without nvidia-uvm loaded, the device cannot be configured at all.
	err := c.SetConfig(ctx, "pve1", 100, map[string]string{"dev1": "/dev/nvidia-uvm"}, nil, "")
	var apiErr *reconciler.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.Message != uvm || errors.Is(err, reconciler.ErrBadRequest) {
		t.Fatalf("dev1 before the module is loaded: %v", err)
	}
	// Loaded after boot (nvidia-modprobe -c0 -u), it can, and the CT runs.
	if err := f.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {UVMLoaded: ptr(true)}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetConfig(ctx, "pve1", 100, map[string]string{"dev1": "/dev/nvidia-uvm"}, nil, ""); err != nil {
		t.Fatalf("dev1: %v", err)
	}
	if err := c.Start(ctx, "pve1", 100); err != nil {
		t.Fatalf("Start: %v", err)
	}

	// The host reboots; nothing loads nvidia-uvm at boot.
	if err := f.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {Reboot: true}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for status(101) != "running" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if status(101) != "running" {
		t.Fatal("the onboot CT without devices did not come back")
	}
	if status(100) != "stopped" {
		t.Errorf("CT 100 is %s after the reboot", status(100))
	}
	err = c.Start(ctx, "pve1", 100)
	var taskErr *reconciler.TaskError
	if !errors.As(err, &taskErr) || taskErr.ExitStatus != uvm || !strings.Contains(taskErr.UPID, ":vzstart:100:") {
		t.Errorf("Start after the reboot: %v", err)
	}
	// A change is saved and still answered with the missing device.
	err = c.SetConfig(ctx, "pve1", 100, map[string]string{"description": "waits for nvidia-uvm"}, nil, "")
	if !errors.As(err, &apiErr) || apiErr.Message != uvm || reconciler.Retryable(err) {
		t.Errorf("SetConfig after the reboot: %v", err)
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 100); cfg.Values["description"] != "waits for nvidia-uvm\n" {
		t.Errorf("the change was not saved: %q", cfg.Values["description"])
	}

	if err := f.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {UVMLoaded: ptr(true)}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "pve1", 100); err != nil {
		t.Errorf("Start once nvidia-uvm is loaded: %v", err)
	}
	if status(100) != "running" {
		t.Errorf("CT 100 is %s", status(100))
	}
}
