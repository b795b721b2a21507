package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
)

// The wide GPU lab: one OS template (base), two GPU templates cloned from it
// (gpu-cuda: the driver and the CUDA toolkit; gpu-docker: the driver, docker
// and the NVIDIA container toolkit) and 24 clones over three nodes on shared
// Ceph storage: 8 vLLM servers from gpu-cuda, 8 ollama servers from
// gpu-docker, 8 docker hosts from base. Its durations are the example
// world's real-world ones. The vLLM chain (base, gpu-cuda, 8 clones of one
// source one after another, a 4-minute install) is the critical path; the
// rest is short work that must not take its slots.

const wideLabNodes = 3

func wideLabWorld(timeScale float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: widelab}
spec:
  seed: 17
  timeScale: %g
  nodes:
`, timeScale)
	for i := 1; i <= wideLabNodes; i++ {
		fmt.Fprintf(&b, `    - name: pve%d
      gpus: 2
      driverVersion: "580.76.05"
      uvmMajor: 508
      capsMajor: 509
      storages:
        - {name: local, type: dir, content: [vztmpl, iso, backup]}
        - {name: ceph, type: rbd, content: [rootdir, images]}
      osTemplates: [local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst]
`, i)
	}
	b.WriteString(`  durations:
    create: 25s
    clone: 4s
    fullClone: 45s
    start: 3s
    networkUp: [2s, 10s]
    devicesVisible: [1s, 4s]
    exec: 300ms
    scripts:
      base/packages: 40s
      nvidia-driver/download: 20s
      nvidia-driver/userspace: 90s
      cuda-toolkit/repository: 15s
      cuda-toolkit/toolkit: 180s
      docker/engine: 60s
      nvidia-container-toolkit/install: 30s
      ollama/install: 45s
      vllm/install: 240s
`)
	return b.String()
}

func wideLabSpecs() string {
	var b strings.Builder
	b.WriteString(`apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: widelab}
spec:
  defaults: {node: pve1, storage: ceph, bridge: vmbr0}
  ssh: {username: root}
  nvidia:
    runfileURL: https://download.nvidia.com/XFree86/Linux-x86_64/{version}/NVIDIA-Linux-x86_64-{version}.run
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 900
  from: {ostemplate: local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst}
  network: [{name: eth0, ip: dhcp}]
  features: [base]
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu-cuda}
spec:
  vmid: 901
  from: {template: base}
  gpus: [0, 1]
  features: [nvidia-driver, cuda-toolkit]
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu-docker}
spec:
  vmid: 902
  from: {template: base}
  gpus: [0, 1]
  features: [nvidia-driver, docker, nvidia-container-toolkit]
`)
	for i := range 8 {
		node := fmt.Sprintf("pve%d", i%wideLabNodes+1)
		for k, c := range []struct{ name, from, feature string }{
			{"vllm", "gpu-cuda", "vllm"}, {"ollama", "gpu-docker", "ollama"}, {"docker", "base", "docker"},
		} {
			fmt.Fprintf(&b, "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: %s-%d}\nspec:\n  vmid: %d\n  node: %s\n  from: {template: %s}\n  features: [%s]\n",
				c.name, i, 1000+100*k+i, node, c.from, c.feature)
		}
	}
	return b.String()
}

// wideLabRig is a rig on the wide lab at a time scale.
func wideLabRig(tb testing.TB, timeScale float64) *rig {
	tb.Helper()
	return rigOf(tb, wideLabWorld(timeScale), wideLabSpecs(), func(w *sim.World) { w.Spec.TimeScale = timeScale })
}

// TestWideLabCriticalPathFirst: the wide lab converges from empty at the
// default parallelism (derived from its three nodes), and of base's clones
// gpu-cuda, the head of the critical path, is cloned first, before base's
// short docker hosts and before gpu-docker, whose chain is shorter (clones of
// one source end in the order they get its clone lock).
func TestWideLabCriticalPathFirst(t *testing.T) {
	r := wideLabRig(t, 0.002)
	opts := r.options()
	opts.Parallelism = 0
	var mu sync.Mutex
	var clones []string
	events := opts.Events
	opts.Events = func(ev reconciler.Event) {
		if ev.Action == reconciler.Clone && ev.ActionLevel() && ev.Outcome == reconciler.Done {
			mu.Lock()
			clones = append(clones, ev.Guest)
			mu.Unlock()
		}
		events(ev)
	}
	r.mustConverge(opts)
	fromBase := slices.DeleteFunc(slices.Clone(clones), func(g string) bool {
		return !strings.HasPrefix(g, "docker-") && !strings.HasPrefix(g, "gpu-")
	})
	if len(fromBase) != 10 || fromBase[0] != "gpu-cuda" || fromBase[1] != "gpu-docker" {
		t.Errorf("base's clones were made in the order %v, want gpu-cuda, gpu-docker, then the docker hosts", fromBase)
	}
	// Each record keeps what its steps took, which the next apply's schedule
	// starts from: the last install's too (written with its own record).
	for name, steps := range map[string][]string{"vllm-0": {"clone", "start", "install vllm"}, "base": {"create", "start", "install base"}} {
		_, _, st, _ := r.description(name)
		for _, step := range steps {
			if st == nil || st.Took[step] < 1 {
				t.Errorf("%s's record keeps no duration of %q: %+v", name, step, st)
			}
		}
	}
}

// rigOf is a rig on a world and a spec set given as text; edit adjusts the
// world after the rig's defaults (time scale, latency).
func rigOf(tb testing.TB, world, specs string, edit func(*sim.World)) *rig {
	tb.Helper()
	dir := tb.TempDir()
	for name, text := range map[string]string{"world.yaml": world, "specs.yaml": specs} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return newRigAt(tb, dir, edit, false)
}
