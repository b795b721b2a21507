package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, must
// answer with Diagnostics that carry a file and line, and whatever it accepts
// must resolve.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"../examples/homelab", "../examples/homelab/features"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if data, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && !e.IsDir() {
				f.Add(data)
			}
		}
	}
	f.Add([]byte(header))
	f.Add([]byte(header + "  gpus: all\n  features: [vllm]\n  featureConfig: {vllm: {version: 1.2.3}}\n"))
	f.Add([]byte("a: &a {<<: *a}\n"))
	f.Add([]byte("--- !!binary\n---\n[\n"))
	f.Add([]byte(header + "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: \"a\\u200bb\"}\nspec: {vmid: 101, from: {template: \"BASE\\u202e\"}}\n"))
	f.Add([]byte("apiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: \"\xff\x07\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err != nil {
			var diags Diagnostics
			if !errors.As(err, &diags) || len(diags) == 0 {
				t.Fatalf("Parse error %T %q is not Diagnostics", err, err)
			}
			for _, d := range diags {
				if d.File != "fuzz.yaml" || d.Line < 1 || strings.TrimSpace(d.Message) == "" {
					t.Fatalf("diagnostic without a place or message: %#v", d)
				}
				// What a spec file holds is shown escaped: one line of
				// printable ASCII per diagnostic.
				for _, r := range d.String() {
					if r < 0x20 || r > 0x7e {
						t.Fatalf("diagnostic shows %U as it is: %q", r, d.String())
					}
				}
			}
			return
		}
		if _, err := Resolve(set); err != nil {
			t.Fatalf("Parse accepted a set that does not resolve: %v", err)
		}
	})
}
