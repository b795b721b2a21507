package spec

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

func TestGraphGolden(t *testing.T) {
	set, err := Load("../examples/homelab")
	if err != nil {
		t.Fatalf("the examples must be valid: %v", err)
	}
	res, err := Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	for format, file := range map[string]string{
		"text": "graph-examples.txt", "dot": "graph-examples.dot",
		"mermaid": "graph-examples.mmd", "json": "graph-examples.json",
	} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := res.WriteGraph(&b, format); err != nil {
				t.Fatal(err)
			}
			testtool.Golden(t, file, b.Bytes())
		})
	}
}

func TestGraphJSONShape(t *testing.T) {
	res := resolveDocs(t,
		doc("Template", "a", 100, root, "  gpus: [0]\n  features: [cuda-toolkit]\n"),
		doc("Container", "b", 101, "{template: a}", "  features: [vllm]\n"),
		doc("Container", "c", 102, "{template: a}", "  dependsOn: [B]\n"),
	)
	var b bytes.Buffer
	if err := res.WriteGraph(&b, "json"); err != nil {
		t.Fatal(err)
	}
	var got map[string][]map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]map[string]any{"guests": {
		{
			"name": "a", "kind": "Template", "vmid": 100.0, "node": "pve1", "parent": "",
			"lineage": []any{}, "own": []any{"cuda-toolkit"}, "inherited": []any{},
			"effective": []any{"base", "cuda-toolkit", "nvidia-driver"}, "install": []any{"base", "nvidia-driver", "cuda-toolkit"},
			"dependsOn": []any{},
		},
		{
			"name": "b", "kind": "Container", "vmid": 101.0, "node": "pve1", "parent": "a",
			"lineage": []any{"a"}, "own": []any{"vllm"}, "inherited": []any{"base", "cuda-toolkit", "nvidia-driver"},
			"effective": []any{"base", "cuda-toolkit", "nvidia-driver", "vllm"}, "install": []any{"vllm"},
			"dependsOn": []any{},
		},
		{
			"name": "c", "kind": "Container", "vmid": 102.0, "node": "pve1", "parent": "a",
			"lineage": []any{"a"}, "own": []any{}, "inherited": []any{"base", "cuda-toolkit", "nvidia-driver"},
			"effective": []any{"base", "cuda-toolkit", "nvidia-driver"}, "install": []any{},
			"dependsOn": []any{"b"},
		},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("graph JSON (-want +got):\n%s", diff)
	}
}

func TestGraphUnknownFormat(t *testing.T) {
	res := resolveDocs(t, doc("Template", "a", 100, root, ""))
	if err := res.WriteGraph(&bytes.Buffer{}, "svg"); err == nil {
		t.Error("WriteGraph accepted format svg")
	}
}

// TestGraphDotParses hands the dot output to Graphviz itself.
func TestGraphDotParses(t *testing.T) {
	dot := testtool.Require(t, "dot")
	set, err := Load("../examples/homelab")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	if err := res.WriteGraph(&in, "dot"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("<svg")) {
		t.Fatalf("dot -Tsvg: %v\n%s", err, out)
	}
}
