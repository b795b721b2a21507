package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// What the original configs declare: nesting (and more flags), AppArmor
// unconfined, www-data's group mapped to the node's, /sys read-write.
const securitySpecs = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: sbase}
spec:
  vmid: 940
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  security:
    features: {nesting: true}
    apparmor: unconfined
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: sweb}
spec:
  vmid: 941
  from: {template: sbase}
  security:
    features: {fuse: true, mount: [nfs]}
    idMap: [{type: gid, container: 33, host: 33, size: 1}]
    rawLXC: {lxc.mount.auto: ["sys:rw"]}
`

func securityRig(t *testing.T, subgid []string) *rig {
	t.Helper()
	r := newRig(t, func(w *sim.World) {
		w.Spec.Nodes[0].SubGID = subgid
	})
	r.res = withCluster(t, "security.yaml", securitySpecs)
	return r
}

// withCluster resolves the examples' Cluster document and one more file
// of specs, named file, beside it.
func withCluster(t *testing.T, file, specs string) *spec.Resolution {
	t.Helper()
	dir := t.TempDir()
	cluster, err := os.ReadFile(filepath.Join(examplesDir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), cluster, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(specs), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := spec.LoadResolved(dir)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var swebIDMap = [][2]string{
	{"lxc.idmap", "u 0 100000 65536"}, {"lxc.idmap", "g 0 100000 33"}, {"lxc.idmap", "g 33 33 1"}, {"lxc.idmap", "g 34 100034 65502"},
}

// TestSecuritySettingsConverge: with an API token, nesting goes through the
// API and the other flags through pct set; the profile, the id map and the
// raw key are written to the config file on the node (the clone inherits
// the template's profile); the container starts with its id map because
// /etc/subgid allows gid 33; a second apply does nothing. Drift on an owned
// line is planned and put back, with the running container restarted
// around the write; a line phoenix does not own is never touched.
func TestSecuritySettingsConverge(t *testing.T) {
	r := securityRig(t, []string{"root:100000:65536", "root:33:1"})
	from := r.lastSeq()
	r.mustConverge(r.options())
	ctx := context.Background()
	cfg, err := r.cluster.GuestConfig(ctx, "pve1", 941)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Values["features"]; got != "fuse=1,mount=nfs,nesting=1" {
		t.Errorf("features = %q", got)
	}
	want := slices.Concat([][2]string{{"lxc.apparmor.profile", "unconfined"}}, swebIDMap, [][2]string{{"lxc.mount.auto", "sys:rw"}})
	if diff := cmp.Diff(want, cfg.LXC); diff != "" {
		t.Errorf("raw lines (-want +got):\n%s", diff)
	}
	if st, err := r.cluster.Status(ctx, "pve1", 941); err != nil || st.Status != "running" {
		t.Errorf("941: %v %s, want running", err, st.Status)
	}
	events := r.events(from)
	if first(events, func(e sim.Event) bool {
		return e.Kind == "exec" && e.VMID == 941 && e.Name == "pct set" && e.OK && strings.Contains(e.Detail, "features")
	}) == 0 {
		t.Error("the flags beyond nesting were not set with pct set")
	}
	if first(events, func(e sim.Event) bool {
		return e.Kind == "exec" && e.VMID == 941 && e.Name == "phoenix/set-raw-lxc" && e.OK
	}) == 0 {
		t.Error("the raw lines were not written by the script on the node")
	}

	// Someone changes an owned line and adds one of their own.
	node, err := r.node("pve1")
	if err != nil {
		t.Fatal(err)
	}
	if err := node.SetRawLXC(ctx, 941, map[string][]string{"lxc.apparmor.profile": {"generated"}, "lxc.cap.drop": {"sys_time"}}); err != nil {
		t.Fatal(err)
	}
	p := r.mustPlan(reconciler.PlanOptions{})
	text := planText(p)
	for _, line := range []string{
		"~ restart: lxc.apparmor.profile in /etc/pve/lxc/VMID.conf take effect when the container starts: phoenix stops it, writes them and starts it",
		`~ lxc.apparmor.profile: "generated" -> "unconfined"`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("plan lacks %q:\n%s", line, text)
		}
	}
	if strings.Contains(text, "lxc.cap.drop") {
		t.Errorf("plan touches a line phoenix does not own:\n%s", text)
	}
	r.mustConverge(r.options())
	cfg, _ = r.cluster.GuestConfig(ctx, "pve1", 941)
	if !slices.Contains(cfg.LXC, [2]string{"lxc.cap.drop", "sys_time"}) || !slices.Contains(cfg.LXC, [2]string{"lxc.apparmor.profile", "unconfined"}) {
		t.Errorf("after the second apply: %v", cfg.LXC)
	}
}

// TestSecurityIDMapNeedsSubGID: on a node whose /etc/subgid does not let
// root map gid 33, the plan names the line to add and nothing is done to
// the container; Proxmox would fail its start.
func TestSecurityIDMapNeedsSubGID(t *testing.T) {
	r := securityRig(t, nil)
	_, p := r.plan(reconciler.PlanOptions{})
	g, _ := p.Guest("sweb")
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemNode ||
		!strings.Contains(g.Errors[0].Message, "add the line root:33:1 to /etc/subgid on pve1") {
		t.Fatalf("sweb: %+v", g.Errors)
	}
}
