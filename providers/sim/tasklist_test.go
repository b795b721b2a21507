package sim

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	proxmox "github.com/luthermonson/go-proxmox"
)

// The task list (pve-manager PVE/API2/Tasks.pm) and the template worker
// (pve-container src/PVE/API2/LXC.pm template, src/PVE/LXC.pm
// template_create), whose UPID POST .../template does not return.

const templateWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: templates}
spec:
  seed: 9
  timeScale: 0.002
  nodes:
    - name: pve1
      storages:
        - {name: local, type: dir, content: [vztmpl, rootdir]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
        - {name: vg0, type: lvm, content: [rootdir, images]}
        - {name: tank, type: zfspool, content: [rootdir, images]}
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
`

func upids(entries []map[string]any) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e["upid"].(string))
	}
	return out
}

func TestTemplateFeatureByStorage(t *testing.T) {
	_, c := startAPISim(t, templateWorld)
	for _, tc := range []struct {
		vmid    int
		storage string
		rootfs  string // after the conversion; empty when it fails
		exit    string
	}{
		{300, "local", "local:300/base-300-disk-0.raw,size=8G", "OK"},
		{301, "local-lvm", "local-lvm:base-301-disk-0,size=8G", "OK"},
		{302, "tank", "tank:basevol-302-disk-0,size=8G", "OK"},
		// LVMPlugin.pm has no template feature: no base volumes on plain LVM.
		{303, "vg0", "", "Template feature is not available for 'vg0:vm-303-disk-0'"},
	} {
		t.Run(tc.storage, func(t *testing.T) {
			c.create("pve1", tc.vmid, url.Values{"rootfs": {tc.storage + ":8"}})
			r := c.call("POST", fmt.Sprintf("/nodes/pve1/lxc/%d/template", tc.vmid), nil)
			if r.code != 200 || r.data != nil {
				t.Fatalf("template: %d %q %#v", r.code, r.reason, r.data)
			}
			// The worker is listed at once with source=all, running.
			list := c.tasksOf("pve1", url.Values{"vmid": {strconv.Itoa(tc.vmid)}, "typefilter": {"vztemplate"}, "source": {"all"}})
			if len(list) != 1 || list[0]["type"] != "vztemplate" || list[0]["id"] != strconv.Itoa(tc.vmid) {
				t.Fatalf("task list %v", list)
			}
			st := c.waitTask("pve1", list[0]["upid"])
			if st["exitstatus"] != tc.exit {
				t.Errorf("vztemplate: %v, want %s", st["exitstatus"], tc.exit)
			}
			cfg := c.config("pve1", tc.vmid)
			if tc.rootfs == "" {
				if _, ok := cfg["template"]; ok || cfg["rootfs"] != fmt.Sprintf("vg0:vm-%d-disk-0,size=8G", tc.vmid) {
					t.Errorf("a failed conversion changed the config: %v", cfg)
				}
				return
			}
			if cfg["template"] != 1.0 || cfg["rootfs"] != tc.rootfs {
				t.Errorf("template %v rootfs %v", cfg["template"], cfg["rootfs"])
			}
		})
	}
}

func TestTaskListSources(t *testing.T) {
	// The archiver runs every 10 s of world time: 20 ms here.
	_, c := startAPISim(t, templateWorld)
	c.create("pve1", 300, url.Values{"rootfs": {"vg0:8"}})
	if r := c.call("POST", "/nodes/pve1/lxc/300/template", nil); r.code != 200 {
		t.Fatalf("template: %d %q", r.code, r.reason)
	}
	filter := url.Values{"vmid": {"300"}, "typefilter": {"vztemplate"}}
	// By default only the archive is read: a running task is not in it.
	if got := c.tasksOf("pve1", filter); len(got) != 0 {
		t.Errorf("archive lists a running task: %v", got)
	}
	active := c.tasksOf("pve1", url.Values{"vmid": {"300"}, "typefilter": {"vztemplate"}, "source": {"active"}})
	if len(active) != 1 || active[0]["status"] != "RUNNING" || active[0]["endtime"] != nil {
		t.Fatalf("active %v", active)
	}
	upid := active[0]["upid"]
	st := c.waitTask("pve1", upid)
	// Ended, not yet archived: the active list still says RUNNING, the
	// task's own status says how it ended.
	if st["exitstatus"] != "Template feature is not available for 'vg0:vm-300-disk-0'" {
		t.Errorf("status %v", st)
	}
	var archived []map[string]any
	eventually(t, "the task is archived", func() bool {
		archived = c.tasksOf("pve1", filter)
		return len(archived) > 0
	})
	if len(archived) != 1 || archived[0]["upid"] != upid || archived[0]["status"] != st["exitstatus"] ||
		archived[0]["endtime"] == nil || archived[0]["user"] != "root@pam" || archived[0]["tokenid"] != "phoenix" {
		t.Fatalf("archived %v", archived)
	}
	if got := c.tasksOf("pve1", url.Values{"vmid": {"300"}, "source": {"active"}}); len(got) != 0 {
		t.Errorf("an archived task is still active: %v", got)
	}
	if got := c.tasksOf("pve1", url.Values{"vmid": {"300"}, "typefilter": {"vztemplate"}, "source": {"all"}}); !cmp.Equal(upids(got), upids(archived)) {
		t.Errorf("all: %v", got)
	}
}

func TestTaskListFilters(t *testing.T) {
	s, c := startAPISim(t, templateWorld)
	root := c.asRoot(s)
	c.create("pve1", 300, nil)                                                       // vzcreate OK, token
	root.create("pve1", 301, nil)                                                    // vzcreate OK, root@pam
	c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/300/status/start", nil).data) // vzstart OK
	r := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"302"}, "ostemplate": {"local:vztmpl/gone.tar.zst"}, "rootfs": {"local-lvm:8"}})
	c.waitTask("pve1", r.data) // vzcreate failed
	all := url.Values{"source": {"all"}}
	// Wait for the archiver, then read the archive.
	var tasks []map[string]any
	eventually(t, "four tasks archived", func() bool {
		tasks = c.tasksOf("pve1", nil)
		return len(tasks) >= 4
	})
	if len(tasks) != 4 {
		t.Fatalf("archive %v", tasks)
	}
	byUPID := map[string]map[string]any{}
	for _, e := range tasks {
		byUPID[e["upid"].(string)] = e
	}
	ids := func(entries []map[string]any) []string {
		var out []string
		for _, e := range entries {
			out = append(out, e["type"].(string)+" "+e["id"].(string))
		}
		return out
	}
	// The index's order is the archiver's; the filters are what is tested.
	sorted := func(entries []map[string]any) []string {
		out := ids(entries)
		slices.Sort(out)
		return out
	}
	for name, tc := range map[string]struct {
		params url.Values
		want   []string
	}{
		"vmid":                   {url.Values{"vmid": {"300"}}, []string{"vzcreate 300", "vzstart 300"}},
		"typefilter":             {url.Values{"typefilter": {"vzcreate"}}, []string{"vzcreate 300", "vzcreate 301", "vzcreate 302"}},
		"typefilter is exact":    {url.Values{"typefilter": {"vzc"}}, nil},
		"errors":                 {url.Values{"errors": {"1"}}, []string{"vzcreate 302"}},
		"statusfilter":           {url.Values{"statusfilter": {"error,warning"}}, []string{"vzcreate 302"}},
		"statusfilter ok":        {url.Values{"statusfilter": {"ok"}}, []string{"vzcreate 300", "vzcreate 301", "vzstart 300"}},
		"userfilter, any case":   {url.Values{"userfilter": {"ROOT@"}}, []string{"vzcreate 300", "vzcreate 301", "vzcreate 302", "vzstart 300"}},
		"userfilter, no match":   {url.Values{"userfilter": {"alice"}}, nil},
		"since the far future":   {url.Values{"since": {strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)}}, nil},
		"until the distant past": {url.Values{"until": {"1000"}}, nil},
		"limit 0":                {url.Values{"limit": {"0"}}, nil},
	} {
		got := c.tasksOf("pve1", tc.params)
		if diff := cmp.Diff(tc.want, sorted(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	// start and limit page through the same order.
	first := c.tasksOf("pve1", url.Values{"limit": {"2"}})
	rest := c.tasksOf("pve1", url.Values{"start": {"2"}, "limit": {"5"}})
	if diff := cmp.Diff(upids(tasks), append(upids(first), upids(rest)...)); diff != "" {
		t.Errorf("paging (-want +got):\n%s", diff)
	}
	if got := c.tasksOf("pve1", all); !cmp.Equal(upids(got), upids(tasks)) {
		t.Errorf("source=all after archiving: %v", ids(got))
	}
	for upid, e := range byUPID {
		if e["status"] == "RUNNING" || e["endtime"] == nil || e["node"] != "pve1" || e["pstart"] == nil || e["pid"] == nil {
			t.Errorf("%s: %v", upid, e)
		}
	}
}

// TestGoProxmoxTemplateOfADeadWorker: go-proxmox's Template returns nil
// whatever the worker does; only the task list knows that it died.
func TestGoProxmoxTemplateOfADeadWorker(t *testing.T) {
	s, c := startAPISim(t, templateWorld)
	client, node := goProxmox(t, s, c)
	ctx := context.Background()
	c.create("pve1", 300, url.Values{"rootfs": {"vg0:8"}})
	ct, err := node.Container(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	if err := ct.Template(ctx); err != nil {
		t.Fatalf("Template: %v", err)
	}
	tasks, err := node.Tasks(ctx, &proxmox.NodeTasksOptions{VMID: 300, TypeFilter: "vztemplate", Source: "all"})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("Tasks: %v %v", err, tasks)
	}
	task := proxmox.NewTask(tasks[0].UPID, client)
	if err := task.Wait(ctx, 5*time.Millisecond, 10*time.Second); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !task.IsFailed || task.ExitStatus != "Template feature is not available for 'vg0:vm-300-disk-0'" {
		t.Errorf("task %+v", task)
	}
	if cfg := c.config("pve1", 300); cfg["template"] != nil {
		t.Errorf("template: %v after the worker died", cfg["template"])
	}
}
