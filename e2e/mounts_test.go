package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

const mountSpecs = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: mbase}
spec:
  vmid: 930
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  mounts: [{path: /vllm_models, storage: local-lvm, size: 4}]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: mweb}
spec:
  vmid: 931
  from: {template: mbase}
  mounts:
    - {path: /vllm_models, storage: local-lvm, size: 6, backup: true}
    - {path: /var/log/nginx, hostPath: /mnt/pve/quickOS/lxc-persistent-data/931/logs, owner: "33:33", mountOptions: [noatime]}
`

// mountRig is the examples' cluster with a spec set of mount points, the
// node having the storage's mount directory but not the container's.
func mountRig(t *testing.T, specs string) *rig {
	t.Helper()
	r := newRig(t, func(w *sim.World) { w.Spec.Nodes[0].Directories = []string{"/mnt/pve/quickOS"} })
	r.res = withCluster(t, "mounts.yaml", specs)
	return r
}

// TestMountPointsConverge: a template's volume comes to its clone as a
// linked clone and grows there; the clone's bind mount gets its host
// directory (owned by 33:33 inside, 100033:100033 on the node) before the
// mount point is set with pct set (an API token may not set a bind mount),
// and the container starts; a second apply does nothing.
func TestMountPointsConverge(t *testing.T) {
	r := mountRig(t, mountSpecs)
	from := r.lastSeq()
	r.mustConverge(r.options())

	ctx := context.Background()
	cfg, err := r.cluster.GuestConfig(ctx, "pve1", 931)
	if err != nil {
		t.Fatal(err)
	}
	vals := cfg.Values
	if !strings.HasPrefix(vals["mp0"], "local-lvm:base-930-disk-1/vm-931-disk-") || !strings.Contains(vals["mp0"], "size=6G") ||
		!strings.Contains(vals["mp0"], "backup=1") || !strings.Contains(vals["mp0"], "mp=/vllm_models") {
		t.Errorf("mp0 = %q, want a linked clone of the template's volume, grown to 6G, with backup=1", vals["mp0"])
	}
	if want := "/mnt/pve/quickOS/lxc-persistent-data/931/logs"; !strings.HasPrefix(vals["mp1"], want+",") ||
		!strings.Contains(vals["mp1"], "mountoptions=noatime") {
		t.Errorf("mp1 = %q, want the bind mount of %s", vals["mp1"], want)
	}
	if base, _ := r.cluster.GuestConfig(ctx, "pve1", 930); !strings.HasPrefix(base.Values["mp0"], "local-lvm:base-930-disk-1,") {
		t.Errorf("template mp0 = %q, want its allocated, then based, volume", base.Values["mp0"])
	}
	st, err := r.cluster.Status(ctx, "pve1", 931)
	if err != nil || st.Status != "running" {
		t.Errorf("931: %v %s, want running", err, st.Status)
	}

	obs, _ := r.plan(reconciler.PlanOptions{})
	if d := obs.HostDirs["pve1"].Dirs["/mnt/pve/quickOS/lxc-persistent-data/931/logs"]; !d.Exists || d.Owner != "100033:100033" {
		t.Errorf("host directory %+v, want one owned by 100033:100033", d)
	}
	events := r.events(from)
	dirs := first(events, func(e sim.Event) bool {
		return e.Kind == "exec" && e.Name == reconciler.HostDirsScriptName && e.Phase == "apply" && e.OK
	})
	set := first(events, func(e sim.Event) bool {
		return e.Kind == "exec" && e.VMID == 931 && e.Name == "pct set" && e.OK && strings.Contains(e.Detail, "mp1")
	})
	resize := first(events, func(e sim.Event) bool { return e.Kind == "task" && e.VMID == 931 && e.Name == "resize" && e.OK })
	if dirs == 0 || set == 0 || resize == 0 || dirs > set {
		t.Errorf("host directory made at %d, bind mount set with pct set at %d, volume resized at %d: want all, the directory first", dirs, set, resize)
	}

	// A mount point taken out of the spec: its volume is kept as unused0.
	r.res = mustResolve(t, r, strings.Replace(mountSpecs, "    - {path: /vllm_models, storage: local-lvm, size: 6, backup: true}\n", "", 1))
	r.mustConverge(r.options())
	cfg, _ = r.cluster.GuestConfig(ctx, "pve1", 931)
	if _, ok := cfg.Values["mp0"]; ok || !strings.HasPrefix(cfg.Values["unused0"], "local-lvm:base-930-disk-1/vm-931-disk-") {
		t.Errorf("after removing /vllm_models: mp0 %q, unused0 %q; want no mp0 and the volume kept as unused0", cfg.Values["mp0"], cfg.Values["unused0"])
	}
}

func mustResolve(t *testing.T, r *rig, specs string) *spec.Resolution {
	t.Helper()
	dir := t.TempDir()
	cluster, _ := os.ReadFile("../examples/homelab/cluster.yaml")
	_ = os.WriteFile(filepath.Join(dir, "cluster.yaml"), cluster, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "mounts.yaml"), []byte(specs), 0o600)
	res, err := spec.LoadResolved(dir)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestMountPointRefusals: what Proxmox refuses about mount points, through
// go-proxmox over HTTPS: a bind mount with an API token (403), a clone of a
// container with a bind mount (shared or not), a linked clone of a volume on
// a storage without the clone feature, a start whose bind mount has no
// directory; and a new volume from STORAGE:SIZE named vm-VMID-disk-N.
func TestMountPointRefusals(t *testing.T) {
	world, err := os.ReadFile("../examples/homelab/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Replace(string(world), "        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}\n",
		"        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}\n        - {name: bulk, type: lvm, content: [rootdir, images]}\n", 1)
	f := startSim(t, w)
	token := f.unrecorded(t)
	root := f.client(t, proxmox.EnvToken)
	ctx := context.Background()

	createCT(t, token, 700, map[string]string{"mp0": "local-lvm:2,mp=/data"})
	cfg, err := token.GuestConfig(ctx, "pve1", 700)
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Values["mp0"]; !strings.HasPrefix(v, "local-lvm:vm-700-disk-1,") || !strings.Contains(v, "size=2G") {
		t.Errorf("mp0 = %q, want a new volume vm-700-disk-1 of 2G (disk-0 is the root disk)", v)
	}

	err = token.SetConfig(ctx, "pve1", 700, map[string]string{"mp1": "/srv/x,mp=/x"}, nil, "")
	if !strings.Contains(err.Error(), "Permission check failed") && !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("a bind mount with a token: %v, want a permission error", err)
	}

	if err := root.SetConfig(ctx, "pve1", 700, map[string]string{"mp1": "/srv/missing,mp=/x,shared=1"}, nil, ""); err != nil {
		t.Fatalf("a bind mount as root@pam: %v", err)
	}
	if err := root.Start(ctx, "pve1", 700); err == nil || !strings.Contains(err.Error(), "startup for container '700' failed") {
		t.Errorf("start with a missing bind mount directory: %v, want startup for container '700' failed", err)
	}
	if err := root.ConvertToTemplate(ctx, "pve1", 700); err != nil {
		t.Fatal(err)
	}
	err = root.Clone(ctx, reconciler.CloneRequest{Node: "pve1", SourceVMID: 700, NewID: 701, Hostname: "c701"})
	if err == nil || !strings.Contains(err.Error(), "unable to clone mountpoint 'mp1' (type bind)") {
		t.Errorf("clone of a template with a bind mount: %v, want unable to clone mountpoint 'mp1' (type bind)", err)
	}

	createCT(t, token, 710, map[string]string{"mp0": "bulk:2,mp=/data"})
	if cfg, _ := token.GuestConfig(ctx, "pve1", 710); !strings.HasPrefix(cfg.Values["mp0"], "bulk:vm-710-disk-0,") {
		t.Errorf("mp0 on bulk = %q, want vm-710-disk-0 (the first free number on that storage)", cfg.Values["mp0"])
	}
	if err := token.Resize(ctx, "pve1", 710, "mp0", "3G"); err != nil {
		t.Errorf("resize mp0: %v", err)
	}
	if cfg, _ := token.GuestConfig(ctx, "pve1", 710); !strings.Contains(cfg.Values["mp0"], "size=3G") {
		t.Errorf("mp0 after the resize = %q, want size=3G", cfg.Values["mp0"])
	}
	if err := token.Resize(ctx, "pve1", 710, "mp0", "1G"); err == nil || !strings.Contains(err.Error(), "unable to shrink disk size") {
		t.Errorf("shrinking mp0: %v", err)
	}
}
