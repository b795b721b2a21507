package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// OS templates that are not on their storage: the plan downloads them before
// the create, from the node's appliance index or from a URL with a checksum;
// roots that need one volume on a node download it once.

const osTemplateWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: ostemplates}
spec:
  seed: 5
  timeScale: 0.002
  nodes:
    - name: pve1
      storages:
        - {name: local, type: dir, content: [vztmpl, iso, backup]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
    - name: pve2
      storages:
        - {name: local, type: dir, content: [vztmpl, iso, backup]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
  appliances:
    - {template: debian-12-standard_12.7-1_amd64.tar.zst}
    - {template: ubuntu-24.04-standard_24.04-2_amd64.tar.zst}
  urls:
    - {url: "https://images.example.com/custom-24.04_amd64.tar.zst", content: "a custom image"}
`

const customContent = "a custom image"

func osTemplateSpecs(checksum string) string {
	guest := func(kind, name string, vmid int, node, from string) string {
		return fmt.Sprintf("---\napiVersion: phoenix/v1alpha1\nkind: %s\nmetadata:\n  name: %s\nspec:\n  vmid: %d\n  node: %s\n  from:\n%s  network:\n    - name: eth0\n      ip: dhcp\n",
			kind, name, vmid, node, from)
	}
	ubuntu := "    ostemplate: local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst\n"
	return `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata:
  name: ostemplates
spec:
  defaults:
    storage: local-lvm
  ssh:
    username: root
` + guest("Template", "base-a", 900, "pve1", ubuntu) +
		guest("Template", "base-b", 901, "pve1", ubuntu) +
		guest("Template", "base-c", 902, "pve2", ubuntu) +
		guest("Template", "custom", 903, "pve2", "    ostemplate: local:vztmpl/custom-24.04_amd64.tar.zst\n    download:\n      url: https://images.example.com/custom-24.04_amd64.tar.zst\n      checksum: "+checksum+"\n")
}

func osTemplateRig(t *testing.T, specs string) *rig {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"world.yaml": osTemplateWorld, "guests.yaml": specs} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return newRigAt(t, dir, nil, false)
}

func sha256Of(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func downloadTasks(events []sim.Event) map[string][]string {
	out := map[string][]string{}
	for _, e := range events {
		if e.Kind == "task" && e.Name == "download" && strings.HasPrefix(e.Detail, "started") {
			out[e.Node] = append(out[e.Node], e.Detail)
		}
	}
	return out
}

// TestOSTemplateDownloadConverges: a world without the OS template volumes
// plans a download before each root's create, converges with one download
// task per volume and node, and a second apply is a no-op.
func TestOSTemplateDownloadConverges(t *testing.T) {
	r := osTemplateRig(t, osTemplateSpecs("sha256:"+sha256Of(customContent)))
	_, p := r.plan(reconciler.PlanOptions{})
	for _, name := range []string{"base-a", "base-b", "base-c", "custom"} {
		g, _ := p.Guest(name)
		if len(g.Errors) > 0 || len(g.Changes) < 2 || g.Changes[0].Action != reconciler.Download || g.Changes[1].Action != reconciler.Create {
			t.Fatalf("%s: want download, then create:\n%s", name, planText(p))
		}
	}
	if g, _ := p.Guest("custom"); !strings.Contains(g.Changes[0].Reason, "from https://images.example.com/custom-24.04_amd64.tar.zst, sha256 checked") {
		t.Errorf("custom's download: %q", g.Changes[0].Reason)
	}
	if g, _ := p.Guest("base-a"); g.Changes[0].Reason != "ubuntu-24.04-standard_24.04-2_amd64.tar.zst to local from the appliance index" {
		t.Errorf("base-a's download: %q", g.Changes[0].Reason)
	}
	from := r.lastSeq()
	r.mustConverge(r.options())
	tasks := downloadTasks(r.events(from))
	// pve1: the ubuntu volume once for two roots; pve2: ubuntu and custom.
	if len(tasks["pve1"]) != 1 || len(tasks["pve2"]) != 2 {
		t.Errorf("download tasks: %v, want one on pve1 and two on pve2", tasks)
	}
	from = r.lastSeq()
	res := r.apply(context.Background(), r.options())
	for _, g := range res.Guests {
		if g.Err != nil {
			t.Errorf("second apply: %s: %v", g.Name, g.Err)
		}
	}
	for _, e := range r.events(from) {
		if e.Kind == "task" || e.Kind == "api" && !strings.HasPrefix(e.Name, "GET ") {
			t.Errorf("the second apply did %s %s", e.Kind, e.Name)
		}
	}
}

// TestOSTemplateDownloadChecksumMismatch: a URL whose file does not have the
// spec's checksum fails its guest with Proxmox's words, and leaves no volume.
func TestOSTemplateDownloadChecksumMismatch(t *testing.T) {
	wrong := sha256Of("another image")
	r := osTemplateRig(t, osTemplateSpecs("sha256:"+wrong))
	res := r.apply(context.Background(), r.options())
	var failed bool
	for _, g := range res.Guests {
		if g.Name == "custom" {
			failed = g.Err != nil && strings.Contains(g.Err.Error(), fmt.Sprintf("checksum mismatch: got '%s' != expect '%s'", sha256Of(customContent), wrong))
			if !failed {
				t.Errorf("custom: %v, want the checksum mismatch", g.Err)
			}
		} else if g.Err != nil {
			t.Errorf("%s: %v", g.Name, g.Err)
		}
	}
	if _, p := r.plan(reconciler.PlanOptions{}); failed {
		if g, _ := p.Guest("custom"); len(g.Changes) == 0 || g.Changes[0].Action != reconciler.Download {
			t.Errorf("after the failed download, custom's plan:\n%s", planText(p))
		}
	}
}

// TestOSTemplateDownloadProblems: a missing volume without a download that the
// appliance index does not have is a problem naming both ways out; a
// storage without vztmpl content cannot take a download.
func TestOSTemplateDownloadProblems(t *testing.T) {
	specs := osTemplateSpecs("sha256:" + sha256Of(customContent))
	specs = strings.Replace(specs, "vmid: 902\n  node: pve2\n  from:\n    ostemplate: local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
		"vmid: 902\n  node: pve2\n  from:\n    ostemplate: local:vztmpl/ubuntu-25.04-standard_25.04-1_amd64.tar.zst", 1)
	specs = strings.Replace(specs, "vmid: 901\n  node: pve1\n  from:\n    ostemplate: local:", "vmid: 901\n  node: pve1\n  from:\n    ostemplate: local-lvm:", 1)
	r := osTemplateRig(t, specs)
	_, p := r.plan(reconciler.PlanOptions{})
	g, _ := p.Guest("base-c")
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemNode ||
		!strings.Contains(g.Errors[0].Message, "ubuntu-25.04-standard_25.04-1_amd64.tar.zst is not in the node's appliance index") ||
		!strings.Contains(g.Errors[0].Message, "from.download") {
		t.Errorf("base-c: %+v", g.Errors)
	}
	g, _ = p.Guest("base-b")
	if len(g.Errors) != 1 || g.Errors[0].Kind != reconciler.ProblemSpec ||
		!strings.Contains(g.Errors[0].Message, "storage local-lvm does not hold container templates (content vztmpl), so it cannot be downloaded there: local does") {
		t.Errorf("base-b: %+v", g.Errors)
	}
}
