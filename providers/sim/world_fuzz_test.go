package sim

import (
	"os"
	"testing"
)

// FuzzParseWorld: a world file is input like any other: never a panic,
// and what parses passes its own check.
func FuzzParseWorld(f *testing.F) {
	for _, p := range []string{"../../examples/homelab/world.yaml", "testdata/small.yaml", "testdata/ssh-cluster.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a, gpus: -1}]}\n"))
	f.Add([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a, bridges: [vmbr0, vmbr1], ovsBridges: [vmbr2], vnets: [blue], " +
		"storages: [{name: st, type: nfs, content: [rootdir], enabled: false, active: false}]}], " +
		"guests: [{vmid: 100, node: a, running: true, config: {net0: 'name=eth0,bridge=blue'}}]}\n"))
	f.Add([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}], faults: {services: {101/ollama: -1, 102/web: 2, x: -3}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := ParseWorld(data)
		if err != nil {
			return
		}
		if err := w.check(); err != nil {
			t.Fatalf("ParseWorld accepted a world its check refuses: %v", err)
		}
	})
}
