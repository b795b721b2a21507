package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

const testWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: provider}
spec:
  seed: 3
  timeScale: 0.002
  nodes:
    - name: pve1
      gpus: 2
      driverVersion: "580.76.05"
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
    - name: pve2
  guests:
    - {vmid: 100, name: busy, node: pve1, running: true, config: {cpulimit: "1.5", dev0: /dev/nvidia0, lxc.cgroup2.devices.allow: "c 195:* rwm"}}
    - {vmid: 101, name: keep, node: pve1, config: {protection: "1"}}
  durations: {clone: 100s}
`

const ubuntu = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"

type fixture struct {
	sim *sim.Sim
	rec *recorder
}

func startSim(t *testing.T, world string) *fixture {
	t.Helper()
	w, err := sim.ParseWorld([]byte(world))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(w, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &fixture{sim: s, rec: &recorder{}}
}

// client connects with the simulator's environment; drop removes variables
// (e.g. the token, to log in with the password).
func (f *fixture) client(t *testing.T, drop ...string) *proxmox.Client {
	t.Helper()
	env := f.sim.Env()
	for _, k := range drop {
		delete(env, k)
	}
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TaskPoll, cfg.TaskPollMax = time.Millisecond, 20*time.Millisecond
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { f.rec.base = rt; return f.rec }
	c, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { f.rec.check(t) })
	return c
}

// unrecorded connects around the recorder, for requests meant to be refused.
func (f *fixture) unrecorded(t *testing.T) *proxmox.Client {
	t.Helper()
	env := f.sim.Env()
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createCT(t *testing.T, c *proxmox.Client, vmid int, opts map[string]string) {
	t.Helper()
	o := map[string]string{"hostname": fmt.Sprintf("ct%d", vmid), "unprivileged": "1"}
	for k, v := range opts {
		o[k] = v
	}
	if err := c.Create(context.Background(), reconciler.CreateRequest{Node: "pve1", VMID: vmid, OSTemplate: ubuntu, Storage: "local-lvm", DiskGiB: 8, Options: o}); err != nil {
		t.Fatalf("Create %d: %v", vmid, err)
	}
}

func TestOperations(t *testing.T) {
	f := startSim(t, testWorld)
	c := f.client(t)
	ctx := context.Background()

	guests, err := c.Guests(ctx)
	if err != nil || len(guests) != 2 || guests[0].VMID != 100 || guests[0].Status != "running" || guests[0].Name != "busy" {
		t.Fatalf("Guests: %v %+v", err, guests)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].IP != "127.0.0.2" || !nodes[0].Online {
		t.Fatalf("Nodes: %v %+v", err, nodes)
	}
	cfg, err := c.GuestConfig(ctx, "pve1", 100)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing dropped: the keys go-proxmox's typed struct loses or chokes on.
	if cfg.Values["cpulimit"] != "1.5" || cfg.Values["dev0"] != "/dev/nvidia0" || len(cfg.Digest) != 40 ||
		len(cfg.LXC) != 1 || cfg.LXC[0] != [2]string{"lxc.cgroup2.devices.allow", "c 195:* rwm"} {
		t.Errorf("config %+v", cfg)
	}

	createCT(t, c, 200, map[string]string{"cores": "2", "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "tags": "phoenix-managed"})
	cfg, _ = c.GuestConfig(ctx, "pve1", 200)
	if cfg.Values["cores"] != "2" || cfg.Values["rootfs"] != "local-lvm:vm-200-disk-0,size=8G" || cfg.Values["tags"] != "phoenix-managed" {
		t.Errorf("created %+v", cfg.Values)
	}
	if err := c.SetConfig(ctx, "pve1", 200, map[string]string{"memory": "1024"}, []string{"tags"}, cfg.Digest); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	cfg, _ = c.GuestConfig(ctx, "pve1", 200)
	if cfg.Values["memory"] != "1024" || cfg.Values["tags"] != "" {
		t.Errorf("after SetConfig %+v", cfg.Values)
	}
	if err := c.Resize(ctx, "pve1", 200, "rootfs", "12G"); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if err := c.Resize(ctx, "pve1", 200, "rootfs", "12G"); err != nil {
		t.Errorf("Resize to the same size: %v", err)
	}
	if err := c.ConvertToTemplate(ctx, "pve1", 200); err != nil {
		t.Fatalf("ConvertToTemplate: %v", err)
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 200); cfg.Values["template"] != "1" {
		t.Errorf("not a template after ConvertToTemplate: %v", cfg.Values)
	}
	if err := c.ConvertToTemplate(ctx, "pve1", 200); err != nil {
		t.Errorf("converting a template again: %v", err)
	}
	if err := c.Clone(ctx, reconciler.CloneRequest{Node: "pve1", SourceVMID: 200, NewID: 201, Hostname: "linked"}); err != nil {
		t.Fatalf("linked Clone: %v", err)
	}
	if err := c.Clone(ctx, reconciler.CloneRequest{Node: "pve1", SourceVMID: 200, NewID: 202, Hostname: "full", Full: true, Storage: "local-lvm"}); err != nil {
		t.Fatalf("full Clone: %v", err)
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 201); !strings.Contains(cfg.Values["rootfs"], "base-200-disk-0/vm-201") || cfg.Values["hostname"] != "linked" {
		t.Errorf("linked clone %v", cfg.Values)
	}
	for _, step := range []struct {
		name string
		fn   func(context.Context, string, int) error
	}{{"Start", c.Start}, {"Start again", c.Start}, {"Reboot", c.Reboot}, {"Shutdown", c.Shutdown}, {"Shutdown again", c.Shutdown}} {
		if err := step.fn(ctx, "pve1", 201); err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}
	if err := c.Delete(ctx, "pve1", 202); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.GuestConfig(ctx, "pve1", 202); !errors.Is(err, reconciler.ErrNotFound) {
		t.Errorf("deleted CT: %v", err)
	}
	if err := c.Delete(ctx, "pve1", 202); err != nil {
		t.Errorf("deleting what is gone: %v", err)
	}
	if err := c.Delete(ctx, "pve1", 101); !errors.Is(err, reconciler.ErrRefused) || !strings.Contains(err.Error(), "protection") {
		t.Errorf("Delete of a protected CT: %v", err)
	}
	if c.RootSession() {
		t.Error("a token session claims to be root@pam's ticket")
	}
}

func TestTypedErrors(t *testing.T) {
	// A clone holds its source's lock for 4 s here: long enough for a
	// second clone to find it locked on a loaded machine.
	f := startSim(t, strings.Replace(testWorld, "durations: {clone: 100s}", "durations: {clone: 2000s}", 1))
	c := f.client(t)
	ctx := context.Background()

	_, err := c.GuestConfig(ctx, "pve1", 999)
	var apiErr *reconciler.APIError
	if !errors.Is(err, reconciler.ErrNotFound) || reconciler.Retryable(err) || !errors.As(err, &apiErr) ||
		apiErr.Message != "Configuration file 'nodes/pve1/lxc/999.conf' does not exist" {
		t.Errorf("missing: %v", err)
	}
	err = c.Create(ctx, reconciler.CreateRequest{Node: "pve1", VMID: 100, OSTemplate: ubuntu, Storage: "local-lvm", DiskGiB: 8,
		Options: map[string]string{"unprivileged": "1"}})
	if !errors.Is(err, reconciler.ErrAlreadyExists) || reconciler.Retryable(err) {
		t.Errorf("exists: %v", err)
	}
	err = c.SetConfig(ctx, "pve1", 101, map[string]string{"dev1": "/dev/nvidia1"}, nil, "")
	if !errors.Is(err, reconciler.ErrPermission) || !strings.Contains(err.Error(), "configuring device passthrough is only allowed for root@pam") {
		t.Errorf("dev[n] with a token: %v (Proxmox's text must survive)", err)
	}
	err = c.SetConfig(ctx, "pve1", 101, map[string]string{"cores": "3"}, nil, strings.Repeat("0", 40))
	if !errors.Is(err, reconciler.ErrConflict) || !reconciler.Retryable(err) {
		t.Errorf("digest mismatch: %v", err)
	}
	// A request the schema refuses, sent around the recorder on purpose.
	err = f.unrecorded(t).SetConfig(ctx, "pve1", 101, map[string]string{"cores": "lots"}, nil, "")
	if !errors.As(err, &apiErr) || !errors.Is(err, reconciler.ErrBadRequest) || apiErr.Params["cores"] != "type check ('integer') failed - got 'lots'" {
		t.Errorf("bad request: %v", err)
	}

	createCT(t, c, 300, nil)
	if err := c.ConvertToTemplate(ctx, "pve1", 300); err != nil {
		t.Fatal(err)
	}
	// Two clones of one source at once: the second finds the source locked.
	done := make(chan error, 1)
	go func() { done <- c.Clone(ctx, reconciler.CloneRequest{Node: "pve1", SourceVMID: 300, NewID: 301}) }()
	for {
		cfg, err := c.GuestConfig(ctx, "pve1", 300)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Values["lock"] == "disk" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	err = c.Clone(ctx, reconciler.CloneRequest{Node: "pve1", SourceVMID: 300, NewID: 302})
	if !errors.Is(err, reconciler.ErrLocked) || !reconciler.Retryable(err) || !strings.Contains(err.Error(), "CT is locked (disk)") {
		t.Errorf("second clone: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("first clone: %v", err)
	}

	err = c.Create(ctx, reconciler.CreateRequest{Node: "pve1", VMID: 400, OSTemplate: "local:vztmpl/gone.tar.zst", Storage: "local-lvm", DiskGiB: 8,
		Options: map[string]string{"unprivileged": "1"}})
	var taskErr *reconciler.TaskError
	if !errors.As(err, &taskErr) || !errors.Is(err, reconciler.ErrTaskFailed) || taskErr.ExitStatus != "unable to create CT 400 - can't find file 'local:vztmpl/gone.tar.zst'" ||
		len(taskErr.LogTail) == 0 || !strings.HasPrefix(taskErr.LogTail[len(taskErr.LogTail)-1], "TASK ERROR:") {
		t.Errorf("failed task: %v", err)
	}
}

func TestRootTicketSetsDevices(t *testing.T) {
	f := startSim(t, testWorld)
	c := f.client(t, proxmox.EnvToken)
	if !c.RootSession() {
		t.Fatal("a root@pam password session is not a root session")
	}
	if err := c.SetConfig(context.Background(), "pve1", 101, map[string]string{"dev1": "/dev/nvidia1,gid=44"}, nil, ""); err != nil {
		t.Errorf("dev[n] with root's ticket: %v", err)
	}
}

func TestWrongPassword(t *testing.T) {
	f := startSim(t, testWorld)
	env := f.sim.Env()
	env[proxmox.EnvPassword] = "wrong"
	delete(env, proxmox.EnvToken)
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = proxmox.New(context.Background(), cfg, nil)
	if !errors.Is(err, reconciler.ErrPermission) || !strings.Contains(err.Error(), "authentication failure") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("New with a wrong password: %v", err)
	}
}

func TestWarningsAreSuccess(t *testing.T) {
	f := startSim(t, testWorld+"  faults: {taskWarnings: 1}\n")
	var logs strings.Builder
	env := f.sim.Env()
	cfg, _ := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	cfg.TaskPoll = time.Millisecond
	c, err := proxmox.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	createCT(t, c, 500, nil)
	if !strings.Contains(logs.String(), "WARNINGS: 1") {
		t.Errorf("warnings not logged: %s", logs.String())
	}
}

func TestCancelDuringTaskWait(t *testing.T) {
	slow := strings.Replace(testWorld, "timeScale: 0.002", "timeScale: 1", 1)
	f := startSim(t, slow)
	c := f.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Create(ctx, reconciler.CreateRequest{Node: "pve1", VMID: 600, OSTemplate: ubuntu, Storage: "local-lvm", DiskGiB: 8,
		Options: map[string]string{"unprivileged": "1"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	// A 20 s create must not hold the caller: the wait watches ctx.
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("returned after %v", waited)
	}
}

func TestTLSIsVerified(t *testing.T) {
	f := startSim(t, testWorld)
	env := f.sim.Env()
	delete(env, proxmox.EnvCAFile)
	cfg, err := proxmox.ConfigFromEnv(func(k string) string { return env[k] }, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	// The first contact meets the certificate: New fails, and says what to set.
	_, err = proxmox.New(context.Background(), cfg, nil)
	if !errors.Is(err, reconciler.ErrUnavailable) || reconciler.Retryable(err) || !strings.Contains(err.Error(), "PROXMOX_VE_CA_FILE") {
		t.Errorf("unknown CA: %v", err)
	}
	var logs strings.Builder
	cfg.Insecure = true
	c, err := proxmox.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Guests(context.Background()); err != nil {
		t.Errorf("insecure: %v", err)
	}
	if !strings.Contains(logs.String(), "TLS verification") {
		t.Errorf("insecure mode not warned about: %q", logs.String())
	}
}

// TestInjectedFaultsAreRetryable: under injected 500s, lock timeouts and
// dropped connections, every failure is classified as worth another try,
// and task waits poll through them.
func TestInjectedFaultsAreRetryable(t *testing.T) {
	f := startSim(t, testWorld+"  faults: {api: {error500: 0.2, lockTimeout: 0.2, dropConnection: 0.2}}\n")
	c := f.unrecorded(t)
	ctx := context.Background()
	failures := 0
	for i := range 40 {
		_, err := c.Guests(ctx)
		if err == nil {
			continue
		}
		failures++
		if !reconciler.Retryable(err) || !(errors.Is(err, reconciler.ErrUnavailable) || errors.Is(err, reconciler.ErrLocked)) {
			t.Errorf("request %d: %v is not retryable", i, err)
		}
		err = c.SetConfig(ctx, "pve1", 101, map[string]string{"cores": "2"}, nil, "")
		if err != nil && !reconciler.Retryable(err) {
			t.Errorf("write %d: %v is not retryable", i, err)
		}
	}
	if failures == 0 {
		t.Error("no injected fault seen in 40 requests")
	}
}

// TestUnreachableNodeIsRetryable: a node the cluster cannot reach answers
// 595 through the proxy, which passes when the node is back.
func TestUnreachableNodeIsRetryable(t *testing.T) {
	f := startSim(t, testWorld)
	c := f.client(t)
	if err := f.sim.Change(sim.WorldChange{Nodes: map[string]sim.NodeChange{"pve1": {Online: ptr(false)}}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GuestConfig(context.Background(), "pve1", 100)
	if !errors.Is(err, reconciler.ErrUnavailable) || !reconciler.Retryable(err) || !strings.Contains(err.Error(), "595 Connection refused") {
		t.Errorf("unreachable node: %v", err)
	}
	nodes, _ := c.Nodes(context.Background())
	if nodes[0].Online {
		t.Errorf("pve1 reported online: %+v", nodes[0])
	}
}

// TestFullClonesContendForTheStorageLock: two full clones onto one storage at
// once whose allocation holds the storage's lock longer than Proxmox VE waits
// for it (10 s); the second task fails on the storage lock, which is worth a
// retry.
func TestFullClonesContendForTheStorageLock(t *testing.T) {
	f := startSim(t, strings.Replace(testWorld, "durations: {clone: 100s}", "durations: {clone: 100s, alloc: 30s}", 1))
	c := f.client(t)
	ctx := context.Background()
	createCT(t, c, 700, nil)
	createCT(t, c, 701, nil)
	done := make(chan error, 2)
	for i, src := range []int{700, 701} {
		go func() {
			done <- c.Clone(ctx, reconciler.CloneRequest{Node: "pve1", SourceVMID: src, NewID: 710 + i, Full: true, Storage: "local-lvm"})
		}()
		time.Sleep(20 * time.Millisecond)
	}
	var failures []error
	for range 2 {
		if err := <-done; err != nil {
			failures = append(failures, err)
		}
	}
	if len(failures) != 1 || !errors.Is(failures[0], reconciler.ErrTaskFailed) || !reconciler.Retryable(failures[0]) ||
		!strings.Contains(failures[0].Error(), "pve-storage-local-lvm' - got timeout") {
		t.Errorf("concurrent full clones: %v", failures)
	}
}

// inventoryWorld has what a plan checks before it creates a container: storages
// of every kind of state (shared, disabled in storage.cfg, restricted to one
// node, inactive), OS templates, and Linux, OVS and SDN bridges.
const inventoryWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: inventory}
spec:
  seed: 11
  timeScale: 0.002
  nodes:
    - name: pve1
      storages:
        - {name: local, type: dir, content: [vztmpl, iso, backup]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
        - {name: nfs-shared, type: nfs, content: [rootdir, backup]}
        - {name: old, type: dir, content: [rootdir], enabled: false}
        - {name: tank, type: zfspool, content: [images, rootdir], active: false}
      osTemplates:
        - local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst
        - local:vztmpl/Debian-12-standard_12.7-1_amd64.tar.zst
      bridges: [vmbr0, vmbr1]
      ovsBridges: [vmbr2]
      vnets: [blue]
    - name: pve2
      storages:
        - {name: local, type: dir, content: [vztmpl, iso, backup]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
        - {name: nfs-shared, type: nfs, content: [rootdir, backup]}
        - {name: old, type: dir, content: [rootdir], enabled: false}
  guests:
    - {vmid: 100, name: busy, node: pve1, running: true, config: {net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"}}
`

func TestInventoryStorages(t *testing.T) {
	f := startSim(t, inventoryWorld)
	c := f.client(t)
	ctx := context.Background()
	show := func(s reconciler.StorageInfo) string {
		return fmt.Sprintf("%s %s [%s] shared=%v active=%v enabled=%v", s.Name, s.Type, strings.Join(s.Content, ","), s.Shared, s.Active, s.Enabled)
	}
	for node, want := range map[string][]string{
		"pve1": {
			"local dir [backup,iso,vztmpl] shared=false active=true enabled=true",
			"local-lvm lvmthin [images,rootdir] shared=false active=true enabled=true",
			"nfs-shared nfs [backup,rootdir] shared=true active=true enabled=true",
			"old dir [rootdir] shared=false active=false enabled=false",
			"tank zfspool [images,rootdir] shared=false active=false enabled=true",
		},
		// tank is pve1's only: storage.cfg restricts it, pve2 lists it disabled.
		"pve2": {
			"local dir [backup,iso,vztmpl] shared=false active=true enabled=true",
			"local-lvm lvmthin [images,rootdir] shared=false active=true enabled=true",
			"nfs-shared nfs [backup,rootdir] shared=true active=true enabled=true",
			"old dir [rootdir] shared=false active=false enabled=false",
			"tank zfspool [images,rootdir] shared=false active=false enabled=false",
		},
	} {
		storages, err := c.Storages(ctx, node)
		if err != nil {
			t.Fatalf("Storages %s: %v", node, err)
		}
		got := map[string]string{}
		for _, s := range storages {
			got[s.Name] = show(s)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d storages %v, want %d", node, len(got), got, len(want))
		}
		for _, w := range want {
			name, _, _ := strings.Cut(w, " ")
			if got[name] != w {
				t.Errorf("%s: %q, want %q", node, got[name], w)
			}
		}
	}
	// What a plan concludes from the list: create refuses the same storages.
	for storage, want := range map[string]string{"old": "storage 'old' is disabled",
		"tank": "could not activate storage 'tank', zfs error: cannot import 'tank': no such pool available"} {
		err := c.Create(ctx, reconciler.CreateRequest{Node: "pve1", VMID: 300, OSTemplate: ubuntu, Storage: storage, DiskGiB: 8,
			Options: map[string]string{"unprivileged": "1"}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("create on %s: %v, want %q", storage, err, want)
		}
	}
}

func TestInventoryVolumes(t *testing.T) {
	f := startSim(t, inventoryWorld)
	c := f.client(t)
	ctx := context.Background()
	vols, err := c.Volumes(ctx, "pve1", "local", "vztmpl")
	// Proxmox sorts volumes by their lower-cased ID.
	if err != nil || strings.Join(vols, " ") != "local:vztmpl/Debian-12-standard_12.7-1_amd64.tar.zst "+ubuntu {
		t.Errorf("vztmpl on local: %v %q", err, vols)
	}
	if vols, err := c.Volumes(ctx, "pve1", "local", "rootdir"); err != nil || len(vols) != 0 {
		t.Errorf("rootdir on a storage without it: %v %q", err, vols)
	}
	if vols, err := c.Volumes(ctx, "pve2", "local", "vztmpl"); err != nil || len(vols) != 0 {
		t.Errorf("vztmpl on pve2's local: %v %q", err, vols)
	}
	if err := c.Create(ctx, reconciler.CreateRequest{Node: "pve1", VMID: 200, OSTemplate: ubuntu, Storage: "local-lvm", DiskGiB: 8,
		Options: map[string]string{"unprivileged": "1"}}); err != nil {
		t.Fatal(err)
	}
	if vols, err := c.Volumes(ctx, "pve1", "local-lvm", ""); err != nil || strings.Join(vols, " ") != "local-lvm:vm-100-disk-0 local-lvm:vm-200-disk-0" {
		t.Errorf("everything on local-lvm: %v %q", err, vols)
	}
	if _, err := c.Volumes(ctx, "pve1", "old", "rootdir"); err == nil || !strings.Contains(err.Error(), "storage 'old' is disabled") {
		t.Errorf("content of a disabled storage: %v", err)
	}
}

func TestInventoryBridges(t *testing.T) {
	f := startSim(t, inventoryWorld)
	c := f.client(t)
	ctx := context.Background()
	// Linux and OVS bridges and the SDN vnets: all a netN may name.
	if b, err := c.Bridges(ctx, "pve1"); err != nil || strings.Join(b, " ") != "blue vmbr0 vmbr1 vmbr2" {
		t.Errorf("pve1: %v %q", err, b)
	}
	if b, err := c.Bridges(ctx, "pve2"); err != nil || strings.Join(b, " ") != "vmbr0" {
		t.Errorf("pve2: %v %q", err, b)
	}
	// Every bridge listed takes a container; one that is not fails its start.
	for i, bridge := range []string{"blue", "vmbr1", "vmbr2", "vmbr9"} {
		vmid := 210 + i
		createCT(t, c, vmid, map[string]string{"net0": "name=eth0,bridge=" + bridge + ",ip=dhcp"})
		err := c.Start(ctx, "pve1", vmid)
		if bridge == "vmbr9" {
			if !errors.Is(err, reconciler.ErrTaskFailed) || !strings.Contains(err.Error(), "bridge 'vmbr9' does not exist") {
				t.Errorf("start on a missing bridge: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("start on %s: %v", bridge, err)
		}
	}
	// A running container refuses the hot-plug, and keeps its config.
	err := c.SetConfig(ctx, "pve1", 100, map[string]string{"net1": "name=eth1,bridge=vmbr9"}, nil, "")
	var apiErr *reconciler.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, reconciler.ErrBadRequest) || apiErr.Params["net1"] != "unable to hotplug net1: bridge 'vmbr9' does not exist\n" {
		t.Errorf("hot-plug onto a missing bridge: %v", err)
	}
	if cfg, _ := c.GuestConfig(ctx, "pve1", 100); cfg.Values["net1"] != "" {
		t.Errorf("net1 saved after a failed hot-plug: %q", cfg.Values["net1"])
	}
}

func TestPendingOnARunningContainer(t *testing.T) {
	f := startSim(t, testWorld)
	// dev[n] and features beyond nesting need root@pam's ticket.
	c := f.client(t, proxmox.EnvToken)
	ctx := context.Background()
	if err := c.SetConfig(ctx, "pve1", 100, map[string]string{"features": "nesting=1,keyctl=1", "dev1": "/dev/nvidia1"}, nil, ""); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	pending, err := c.Pending(ctx, "pve1", 100)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]reconciler.PendingOption{}
	var waiting []string
	for _, p := range pending {
		byKey[p.Key] = p
		if p.Waiting() {
			waiting = append(waiting, p.Key)
		}
	}
	// features waits for the next start; a new dev is hot-plugged at once.
	if len(waiting) != 1 || waiting[0] != "features" {
		t.Errorf("waiting: %q, want only features", waiting)
	}
	if p := byKey["features"]; p.Pending != "nesting=1,keyctl=1" || !p.HasPending || p.Value != "" || p.Delete {
		t.Errorf("features: %+v", p)
	}
	if p := byKey["dev1"]; p.Value != "/dev/nvidia1" || p.HasPending || p.Delete {
		t.Errorf("dev1: %+v", p)
	}
	if p := byKey["dev0"]; p.Value != "/dev/nvidia0" || p.Waiting() {
		t.Errorf("dev0: %+v", p)
	}
	cfg, err := c.GuestConfig(ctx, "pve1", 100)
	if err != nil {
		t.Fatal(err)
	}
	if p := byKey["digest"]; p.Value != cfg.Digest {
		t.Errorf("digest entry %+v, config digest %s", p, cfg.Digest)
	}
	if _, ok := byKey["lxc.cgroup2.devices.allow"]; ok {
		t.Error("raw lxc lines are not options: Proxmox leaves them out of pending")
	}
	// Deleting a key that waits for a restart is pending too; reboot applies both.
	if err := c.SetConfig(ctx, "pve1", 100, nil, []string{"dev0"}, ""); err != nil {
		t.Fatal(err)
	}
	pending, _ = c.Pending(ctx, "pve1", 100)
	deletes := map[string]bool{}
	for _, p := range pending {
		if p.Waiting() {
			deletes[p.Key] = p.Delete
		}
	}
	if d, ok := deletes["dev0"]; len(deletes) != 2 || !ok || !d || deletes["features"] {
		t.Errorf("waiting after deleting dev0 (key: delete): %v", deletes)
	}
	if err := c.Reboot(ctx, "pve1", 100); err != nil {
		t.Fatal(err)
	}
	pending, _ = c.Pending(ctx, "pve1", 100)
	for _, p := range pending {
		if p.Waiting() {
			t.Errorf("still waiting after reboot: %+v", p)
		}
	}
}
