package importer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/phoenixhv/phoenix/spec"
)

// original is the original system's config at its release v01.06.01, beside
// the project checkout (CI has ../shared next to it). The tests fail, not
// skip, without it.
const original = "../../../shared/original"

func readOriginal(t *testing.T) (lxc, hv []byte) {
	t.Helper()
	var err error
	lxc, err = os.ReadFile(filepath.Join(original, "phoenix_lxc_configs.json"))
	if err != nil {
		t.Fatalf("the original's config must be beside the checkout: %v", err)
	}
	hv, err = os.ReadFile(filepath.Join(original, "phoenix_hypervisor_config.json"))
	if err != nil {
		t.Fatalf("the original's config must be beside the checkout: %v", err)
	}
	return lxc, hv
}

// importTo imports and writes the result to a new directory, and loads it
// back as phoenix loads specs.
func importTo(t *testing.T, lxc, hv []byte, opt Options) (*Result, *spec.Set, string) {
	t.Helper()
	res, err := Import(lxc, hv, opt)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := res.Write(dir); err != nil {
		t.Fatal(err)
	}
	set, err := spec.Load(dir)
	if err != nil {
		t.Fatalf("the imported specs do not validate: %v", err)
	}
	return res, set, dir
}

// TestTheOriginalImportsAsTheHandWrittenLab: the v01.06.01 config imports
// into the specs examples/original holds, written by hand: the same guests,
// kinds, lineage, VMIDs, host names, MACs, addresses, mounts, firewall,
// security, start order, dependencies and features.
func TestTheOriginalImportsAsTheHandWrittenLab(t *testing.T) {
	lxc, hv := readOriginal(t)
	res, got, _ := importTo(t, lxc, hv, Options{HypervisorFile: "phoenix_hypervisor_config.json", World: true})
	want, err := spec.Load("../../examples/original")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want.Cluster.Spec, got.Cluster.Spec); d != "" {
		t.Errorf("Cluster (-hand-written +imported):\n%s", d)
	}
	byVMID := func(s *spec.Set) map[int]*spec.Guest {
		m := map[int]*spec.Guest{}
		for _, g := range s.Guests {
			m[g.Spec.VMID] = g
		}
		return m
	}
	w, g := byVMID(want), byVMID(got)
	if len(w) != len(g) || len(g) != res.Guests {
		t.Errorf("%d guests imported (%d reported), the hand-written lab has %d", len(g), res.Guests, len(w))
	}
	for id, wg := range w {
		gg := g[id]
		if gg == nil {
			t.Errorf("%d %s: not imported", id, wg.Name())
			continue
		}
		if wg.Name() != gg.Name() || wg.Kind != gg.Kind {
			t.Errorf("%d: %s %s, want %s %s", id, gg.Kind, gg.Name(), wg.Kind, wg.Name())
		}
		// featureConfig: the import sets cuda-toolkit's version from the
		// hypervisor config (12.8, the default the hand-written lab relies on),
		// and the vLLM servers' settings; snapshots and health checks the
		// hand-written lab leaves out. Each is checked below.
		if d := cmp.Diff(wg.Spec, gg.Spec, cmpopts.IgnoreFields(spec.GuestSpec{}, "FeatureConfig", "Snapshots", "Health", "Files")); d != "" {
			t.Errorf("%d %s (-hand-written +imported):\n%s", id, wg.Name(), d)
		}
		for f, p := range gg.Spec.FeatureConfig {
			if (f != "cuda-toolkit" || p["version"] != "12.8") && f != "vllm" {
				t.Errorf("%d: featureConfig %s %v", id, f, p)
			}
		}
		// 102 and 103 ask for the original's lifecycle snapshots; the
		// Templates (900, 901, 910-912) cannot have any.
		var wantSnap *spec.Snapshots
		if id == 102 || id == 103 {
			wantSnap = &spec.Snapshots{Before: true, After: true}
		}
		if d := cmp.Diff(wantSnap, gg.Spec.Snapshots); d != "" {
			t.Errorf("%d snapshots: %s", id, d)
		}
		// 103's check is a script on the Proxmox host: without --scripts it
		// is not carried.
		if len(gg.Spec.Health) > 0 || len(gg.Spec.Files) > 0 {
			t.Errorf("%d: health %v, files %v", id, gg.Spec.Health, gg.Spec.Files)
		}
	}
	// The vLLM servers: the copy source 911 serves Qwen2-7B; 801, its clone,
	// another model, with host and port from 911.
	vllm := map[int]spec.Params{
		911: {"model": "Qwen/Qwen2-7B-Instruct", "host": "0.0.0.0", "port": "8000",
			"args": "--served-model-name qwen2-7b-fp8 --max-model-len 8192 --dtype auto --trust-remote-code --quantization fp8 --gpu-memory-utilization 0.9 --tensor-parallel-size 1"},
		801: {"model": "ibm-granite/granite-embedding-english-r2",
			"args": "--served-model-name ibm-granite/granite-embedding-english-r2 --max-model-len 1024 --dtype auto --trust-remote-code --gpu-memory-utilization 0.1 --tensor-parallel-size 1"},
	}
	for id, want := range vllm {
		if d := cmp.Diff(want, g[id].Spec.FeatureConfig["vllm"]); d != "" {
			t.Errorf("%d featureConfig.vllm (-want +got):\n%s", id, d)
		}
	}
	for _, id := range []int{802, 910, 912} {
		if g[id].Spec.FeatureConfig["vllm"]["model"] == "" {
			t.Errorf("%d: no vllm model: %v", id, g[id].Spec.FeatureConfig)
		}
	}
	var wf, gf []string
	for _, f := range want.Features {
		wf = append(wf, f.Metadata.Name)
	}
	for _, f := range got.Features {
		gf = append(gf, f.Metadata.Name)
	}
	slices.Sort(wf)
	slices.Sort(gf)
	if !slices.Equal(wf, gf) {
		t.Errorf("user features %v, want %v", gf, wf)
	}
	// The report names what the README says has no home, by JSON path.
	report := string(res.Files[len(res.Files)-1].Data)
	for _, p := range []string{
		`$.lxc_configs["801"].ports`, `$.lxc_configs["801"].traefik_service`,
		`$.lxc_configs["103"].health_check.command`, `$.lxc_configs["900"].enable_lifecycle_snapshots`, `$.lxc_configs["900"].template_snapshot_name`,
		`$.lxc_configs["101"].portainer_role`, `$.lxc_configs["901"].dependencies[0]`, `$.lxc_configs["101"].application_script`,
	} {
		if !strings.Contains(report, "`"+p+"`") {
			t.Errorf("the report does not name %s", p)
		}
	}
	if strings.Contains(report, "`$.lxc_configs[\"801\"].vllm_engine_config`") {
		t.Errorf("801's vllm_engine_config is carried, yet reported:\n%s", report)
	}
	if strings.Contains(report, "unknown field") {
		t.Errorf("a field of v01.06.01 is unknown to the import:\n%s", report)
	}
}

// TestTheImportIsStable: the same config gives the same bytes.
func TestTheImportIsStable(t *testing.T) {
	lxc, hv := readOriginal(t)
	a, err := Import(lxc, hv, Options{HypervisorFile: "h.json", World: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := Import(lxc, hv, Options{HypervisorFile: "h.json", World: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(a.Files, b.Files); d != "" {
			t.Fatalf("a second import differs:\n%s", d)
		}
	}
}
