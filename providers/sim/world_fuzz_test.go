package sim

import (
	"os"
	"testing"
)

// FuzzParseWorld: a world file is input like any other: never a panic,
// and what parses passes its own check.
func FuzzParseWorld(f *testing.F) {
	for _, p := range []string{"../../examples/world.yaml", "testdata/small.yaml", "testdata/ssh-cluster.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a, gpus: -1}]}\n"))
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
