package sim

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A host reboot, as a world change: what pve-guests does to the node's
// containers on the way down and up (pve-manager PVE/API2/Nodes.pm stopall
// and startall), and nvidia-uvm, which nothing loads at boot unless a unit
// does.

const rebootWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: reboot}
spec:
  seed: 5
  timeScale: 0.002
  nodes:
    - name: pve1
      gpus: 1
      driverVersion: "580.76.05"
      uvmLoaded: false
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
    - name: pve2
  guests:
    - {vmid: 100, name: second, node: pve1, running: true, config: {unprivileged: "1", onboot: "1", startup: "order=2"}}
    - {vmid: 101, name: unordered, node: pve1, config: {onboot: "1"}}
    - {vmid: 102, name: first, node: pve1, running: true, config: {onboot: "1", startup: "1,up=3"}}
    - {vmid: 103, name: manual, node: pve1, running: true}
    - {vmid: 104, name: tmpl, node: pve1, template: true, config: {onboot: "1"}}
    - {vmid: 105, name: gpu, node: pve1, config: {onboot: "1", dev0: /dev/nvidia0, dev1: /dev/nvidia-uvm}}
    - {vmid: 200, name: other, node: pve2, running: true, config: {onboot: "1"}}
`

// tasksOf lists a node's tasks with the given filters.
func (c *apiClient) tasksOf(node string, p url.Values) []map[string]any {
	c.t.Helper()
	return c.list("/nodes/"+node+"/tasks", p)
}

func (c *apiClient) status(node string, vmid int) string {
	c.t.Helper()
	r := c.call("GET", fmt.Sprintf("/nodes/%s/lxc/%d/status/current", node, vmid), nil)
	if r.code != 200 {
		c.t.Fatalf("status %d: %d %s", vmid, r.code, r.reason)
	}
	return r.data.(map[string]any)["status"].(string)
}

// eventually polls ok until it reports true, failing the test after
// labDeadline.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(labDeadline)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, labDeadline)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func postWorld(t *testing.T, s *Sim, body string) int {
	t.Helper()
	res, err := apiFor(t, s).hc.Post(s.Env()["PHOENIX_SIM_URL"]+"/world", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestHostReboot(t *testing.T) {
	s, c := startAPISim(t, rebootWorld)
	root := c.asRoot(s)
	// Something loaded nvidia-uvm after boot (nvidia-modprobe -c0 -u), so
	// the GPU CT started; a change to CT 100 waits for its next start.
	if code := postWorld(t, s, `{"nodes":{"pve1":{"uvmLoaded":true}}}`); code != 200 {
		t.Fatalf("load uvm: %d", code)
	}
	root.waitTask("pve1", root.call("POST", "/nodes/pve1/lxc/105/status/start", nil).data)
	if c.status("pve1", 105) != "running" {
		t.Fatal("CT 105 did not start with nvidia-uvm loaded")
	}
	if r := c.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"features": {"nesting=1"}}); r.code != 200 {
		t.Fatalf("put: %d %q", r.code, r.reason)
	}
	journalFrom := len(s.Journal())

	if code := postWorld(t, s, `{"nodes":{"pve1":{"reboot":true}}}`); code != 200 {
		t.Fatalf("reboot: %d", code)
	}
	// On the way down every CT stopped, and the poststop hook applied what
	// was pending.
	if cur := c.current("pve1", 100); cur["features"] != "nesting=1" {
		t.Errorf("CT 100's pending change was not applied at the stop: %v", cur)
	}
	if c.status("pve2", 200) != "running" {
		t.Error("a CT of another node stopped")
	}
	// On the way up pve-guests runs startall: onboot CTs only, templates
	// never, by startup order, then VMID; each group waits for its starts.
	var startall map[string]any
	eventually(t, "startall ends", func() bool {
		for _, e := range c.tasksOf("pve1", url.Values{"typefilter": {"startall"}, "source": {"all"}}) {
			if e["status"] != "RUNNING" {
				startall = e
				return true
			}
		}
		return false
	})
	if startall["status"] != "OK" || startall["user"] != "root@pam" || startall["id"] != "" {
		t.Errorf("startall %v", startall)
	}
	var starts []int
	for _, e := range s.Journal()[journalFrom:] {
		if e.Kind == "task" && e.Name == "vzstart" && strings.HasPrefix(e.Detail, "started ") {
			starts = append(starts, e.VMID)
		}
	}
	if diff := cmp.Diff([]int{102, 100, 101, 105}, starts); diff != "" {
		t.Errorf("start order (-want +got):\n%s", diff)
	}
	want := map[int]string{100: "running", 101: "running", 102: "running", 103: "stopped", 104: "stopped", 105: "stopped"}
	for vmid, st := range want {
		if got := c.status("pve1", vmid); got != st {
			t.Errorf("CT %d is %s, want %s", vmid, got, st)
		}
	}
	// nvidia-uvm is gone again: CT 105's start failed before lxc-start, and
	// nothing tries again.
	const uvm = "Device /dev/nvidia-uvm does not exist"
	var failed []string
	for _, e := range c.tasksOf("pve1", url.Values{"vmid": {"105"}, "typefilter": {"vzstart"}, "source": {"all"}}) {
		st := c.waitTask("pve1", e["upid"])
		failed = append(failed, fmt.Sprint(st["exitstatus"]))
	}
	if diff := cmp.Diff([]string{uvm, "OK"}, failed); diff != "" {
		t.Errorf("CT 105's starts, newest first (-want +got):\n%s", diff)
	}
	log := root.call("GET", "/nodes/pve1/tasks/"+url.PathEscape(startall["upid"].(string))+"/log", nil).data.([]any)
	var lines []string
	for _, l := range log {
		lines = append(lines, l.(map[string]any)["t"].(string))
	}
	if !slices.Contains(lines, "Starting CT 105 failed: "+uvm) || !slices.Contains(lines, "Starting CT 102") ||
		!slices.Contains(lines, "Waiting for 3 seconds (startup delay)") {
		t.Errorf("startall log %q", lines)
	}
	if r := c.call("PUT", "/nodes/pve1/lxc/105/config", url.Values{"description": {"waiting"}}); r.code != 500 || r.reason != uvm {
		t.Errorf("a change to CT 105: %d %q", r.code, r.reason)
	}

	// Loading the module later (nvidia-modprobe -c0 -u) lets it start.
	if code := postWorld(t, s, `{"nodes":{"pve1":{"uvmLoaded":true}}}`); code != 200 {
		t.Fatalf("load uvm: %d", code)
	}
	if st := c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/105/status/start", nil).data); st["exitstatus"] != "OK" {
		t.Errorf("start after loading uvm: %v", st["exitstatus"])
	}
}

func TestHostRebootInterruptsTasks(t *testing.T) {
	// Creates and clones take half a second here: the reboot comes first.
	s, c := startAPISim(t, rebootWorld+"  durations: {clone: 250s, create: 250s}\n")
	create := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"300"}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"}})
	clone := c.call("POST", "/nodes/pve1/lxc/104/clone", url.Values{"newid": {"301"}})
	if create.code != 200 || clone.code != 200 {
		t.Fatalf("create %d %q, clone %d %q", create.code, create.reason, clone.code, clone.reason)
	}
	if code := postWorld(t, s, `{"nodes":{"pve1":{"reboot":true}}}`); code != 200 {
		t.Fatalf("reboot: %d", code)
	}
	// The workers die of the signal (pve-common src/PVE/RESTEnvironment.pm
	// fork_worker) and clean up as on any error.
	check := func(when string) {
		t.Helper()
		if st := c.waitTask("pve1", create.data); st["exitstatus"] != "unable to create CT 300 - received interrupt" {
			t.Errorf("%s: create %v", when, st["exitstatus"])
		}
		if st := c.waitTask("pve1", clone.data); st["exitstatus"] != "clone failed: received interrupt" {
			t.Errorf("%s: clone %v", when, st["exitstatus"])
		}
		for _, vmid := range []int{300, 301} {
			if r := c.call("GET", fmt.Sprintf("/nodes/pve1/lxc/%d/config", vmid), nil); r.code != 500 {
				t.Errorf("%s: CT %d is left behind", when, vmid)
			}
		}
		if _, locked := c.config("pve1", 104)["lock"]; locked {
			t.Errorf("%s: the clone's source is still locked", when)
		}
	}
	check("after the reboot")
	// The interrupted workers never finish later.
	time.Sleep(800 * time.Millisecond)
	check("after their time")
	if r := c.call("POST", "/nodes/pve1/lxc/104/clone", url.Values{"newid": {"301"}}); r.code != 200 {
		t.Errorf("a new clone: %d %q", r.code, r.reason)
	}
}

func TestRebootOfAnUnknownNode(t *testing.T) {
	s, _ := startAPISim(t, rebootWorld)
	if code := postWorld(t, s, `{"nodes":{"pve9":{"reboot":true}}}`); code != 404 {
		t.Errorf("reboot of pve9: %d", code)
	}
}
