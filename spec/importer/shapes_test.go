package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/phoenixhv/phoenix/spec"
)

func guestNamed(t *testing.T, s *spec.Set, vmid int) *spec.Guest {
	t.Helper()
	for _, g := range s.Guests {
		if g.Spec.VMID == vmid {
			return g
		}
	}
	t.Fatalf("no guest %d imported", vmid)
	return nil
}

// TestTheEarlyShapes: the shapes of the first versions (is_template,
// clone_from_template_ctid, template_file, static_ip, features as pct
// flags, nameserver, secondary_network_config, volumes, flat vllm_* keys)
// import into specs that validate.
func TestTheEarlyShapes(t *testing.T) {
	data, err := os.ReadFile("testdata/early.json")
	if err != nil {
		t.Fatal(err)
	}
	res, set, _ := importTo(t, data, nil, Options{Node: "pve1", World: true})
	base := guestNamed(t, set, 900)
	if base.Kind != spec.KindTemplate || base.Name() != "Base-Template" || base.Spec.Hostname != "" {
		t.Errorf("900: %s %s hostname %q", base.Kind, base.Name(), base.Spec.Hostname)
	}
	if got := base.Spec.From.OSTemplate; got != "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst" {
		t.Errorf("900 from %q", got)
	}
	if d := cmp.Diff([]string{"8.8.8.8"}, base.Spec.Nameservers); d != "" {
		t.Errorf("900 nameservers: %s", d)
	}
	gpu := guestNamed(t, set, 901)
	if gpu.Name() != "gpu-template" || gpu.Spec.Hostname != "gpu.template" || gpu.Spec.From.Template != "Base-Template" {
		t.Errorf("901: %s hostname %q from %q", gpu.Name(), gpu.Spec.Hostname, gpu.Spec.From.Template)
	}
	if d := cmp.Diff([]string{"nvidia-driver", "cuda-toolkit", "docker"}, gpu.Spec.Features); d != "" {
		t.Errorf("901 features: %s", d)
	}
	vllm := guestNamed(t, set, 950)
	if vllm.Kind != spec.KindContainer || vllm.Spec.From.OSTemplate != "fastData-shared-iso:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst" {
		t.Errorf("950: %s from %+v", vllm.Kind, vllm.Spec.From)
	}
	sec := vllm.Spec.Security
	if sec == nil || sec.Features == nil || sec.Features.Nesting == nil || !*sec.Features.Nesting || sec.Features.Keyctl == nil || !*sec.Features.Keyctl {
		t.Errorf("950: features nesting=1,keyctl=1 not in security: %+v", sec)
	}
	if vllm.Spec.Unprivileged == nil || *vllm.Spec.Unprivileged || vllm.Spec.Network[0].IP != "10.0.0.110/24" || vllm.Spec.Storage != "" {
		t.Errorf("950: %+v", vllm.Spec)
	}
	ollama := guestNamed(t, set, 955)
	if ollama.Name() != "ollama-gpu" || ollama.Spec.Hostname != "" || ollama.Spec.From.Template != "gpu-template" {
		t.Errorf("955: %s from %q", ollama.Name(), ollama.Spec.From.Template)
	}
	if len(ollama.Spec.Network) != 2 || ollama.Spec.Network[1].Name != "eth1" || ollama.Spec.Network[1].Bridge != "vmbr1" || ollama.Spec.Network[1].HWAddr != "52:54:00:67:89:C5" {
		t.Errorf("955 network: %+v", ollama.Spec.Network)
	}
	if d := cmp.Diff([]spec.Mount{{Path: "/ollama", Storage: "fastData-shared-bulk-data", Size: 20}}, ollama.Spec.Mounts); d != "" {
		t.Errorf("955 mounts: %s", d)
	}
	if d := cmp.Diff([]string{"vllmQwen25C-7B-GPU0"}, ollama.Spec.DependsOn); d != "" {
		t.Errorf("955 dependsOn: %s", d)
	}
	if ollama.Spec.Startup == nil || *ollama.Spec.Startup.Order != 3 || *ollama.Spec.Startup.Up != 10 || ollama.Spec.OnBoot == nil {
		t.Errorf("955 startup: %+v", ollama.Spec.Startup)
	}
	var report strings.Builder
	for _, f := range res.Findings {
		report.WriteString(f.Path + " " + f.Why + "\n")
	}
	for _, want := range []string{
		`$.lxc_configs["955"].favourite_colour unknown field`,
		`$.lxc_configs["955"].dependencies[1] not carried: a dependency on 1002`,
		`$.lxc_configs["950"].vllm_model not carried: the container has no vllm feature`,
		`$.lxc_configs["950"].vllm_tensor_parallel_size not carried: the container has no vllm feature`,
		`$.lxc_configs["950"].portainer_role no home`,
		`$.lxc_configs["955"].integration_tests no home`,
		`$.lxc_configs["955"].features python_api_service: no --scripts`,
		`$.lxc_configs["955"].storage_pool`, // none: storage_pool absent; reported by no one
	} {
		if want == `$.lxc_configs["955"].storage_pool` {
			if strings.Contains(report.String(), want) {
				t.Errorf("a field that is absent is reported: %s", want)
			}
			continue
		}
		if !strings.Contains(report.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, report.String())
		}
	}
}

// TestScriptsBecomeFeatures: with the original's bin/ directory, an
// application script and a feature script become user Features that run
// them as they are, once, marked by a file the apply writes last.
func TestScriptsBecomeFeatures(t *testing.T) {
	data, err := os.ReadFile("testdata/early.json")
	if err != nil {
		t.Fatal(err)
	}
	app := "#!/bin/bash\necho serving ollama for CT $1\n"
	res, set, _ := importTo(t, data, nil, Options{Scripts: map[string][]byte{
		"phoenix_hypervisor_lxc_955.sh":                                      []byte(app),
		"lxc_setup/phoenix_hypervisor_feature_install_python_api_service.sh": []byte("#!/bin/bash\npip install fastapi\n"),
	}})
	feats := map[string]*spec.Feature{}
	for _, f := range set.Features {
		feats[f.Metadata.Name] = f
	}
	a := feats["app-lxc-955"]
	if a == nil {
		t.Fatalf("no feature for the application script: %v", feats)
	}
	step := a.Spec.Steps[0]
	if !strings.Contains(step.Apply, app) || !strings.Contains(step.Apply, "touch /var/lib/phoenix/imported/app-lxc-955.done") ||
		step.Check != "test -e /var/lib/phoenix/imported/app-lxc-955.done" || !strings.Contains(step.Apply, `"${CTID}"`) {
		t.Errorf("app feature step: %+v", step)
	}
	ollama := guestNamed(t, set, 955)
	if ollama.Spec.FeatureConfig["app-lxc-955"]["CTID"] != "955" {
		t.Errorf("955 featureConfig %v", ollama.Spec.FeatureConfig)
	}
	if p := feats["python-api-service"]; p == nil || !strings.Contains(p.Spec.Steps[0].Apply, "pip install fastapi") {
		t.Errorf("feature script not carried: %+v", p)
	}
	found := false
	for _, f := range res.Findings {
		if f.Path == `$.lxc_configs["955"].application_script` && strings.Contains(f.Why, "carried over as it is") {
			found = true
		}
	}
	if !found {
		t.Errorf("the report does not say the script was carried over as it is: %v", res.Findings)
	}
}

// TestWrongTypesNameTheirPath: a value of the wrong type is an error naming
// its JSON path, not a silent default.
func TestWrongTypesNameTheirPath(t *testing.T) {
	cases := map[string]struct {
		edit func(ct map[string]any)
		path string
	}{
		"memory as a string":  {func(ct map[string]any) { ct["memory_mb"] = "lots" }, `$.lxc_configs["950"].memory_mb`},
		"gpu list malformed":  {func(ct map[string]any) { ct["gpu_assignment"] = "zero" }, `$.lxc_configs["950"].gpu_assignment`},
		"features an object":  {func(ct map[string]any) { ct["features"] = map[string]any{} }, `$.lxc_configs["950"].features`},
		"rule port a number":  {func(ct map[string]any) { ct["firewall"] = map[string]any{"rules": []any{map[string]any{"port": 22}}} }, `$.lxc_configs["950"].firewall.rules[0].port`},
		"mount owner string":  {func(ct map[string]any) { ct["mount_points"] = []any{map[string]any{"owner_uid": "33"}} }, `$.lxc_configs["950"].mount_points[0].owner_uid`},
		"clone from a name":   {func(ct map[string]any) { ct["clone_from_ctid"] = "base" }, `$.lxc_configs["950"].clone_from_ctid`},
		"clone from nowhere":  {func(ct map[string]any) { ct["clone_from_ctid"] = "4000"; delete(ct, "template") }, `$.lxc_configs["950"].clone_from_ctid`},
		"dependency a number": {func(ct map[string]any) { ct["dependencies"] = []any{103} }, `$.lxc_configs["950"].dependencies[0]`},
		"lxc option no value": {func(ct map[string]any) { ct["lxc_options"] = []any{"lxc.cap.drop"} }, `$.lxc_configs["950"].lxc_options[0]`},
	}
	data, err := os.ReadFile("testdata/early.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			c.edit(doc["lxc_configs"].(map[string]any)["950"].(map[string]any))
			b, _ := json.Marshal(doc)
			_, err := Import(b, nil, Options{})
			if err == nil || !strings.Contains(err.Error(), c.path+": ") {
				t.Errorf("error %v, want one naming %s", err, c.path)
			}
		})
	}
}

// FuzzImport: the reader never panics, and every error names a JSON path.
func FuzzImport(f *testing.F) {
	for _, p := range []string{"testdata/early.json", "../../examples/original/world.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"lxc_configs": {"100": {"name": "a", "template": "/x/template/cache/t.tar.zst", "gpu_assignment": "0, 1"}}}`))
	f.Add([]byte(`{"lxc_configs": {"101": {"clone_from_ctid": "101"}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Import(data, nil, Options{World: true})
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "$") {
					t.Fatalf("an error without a JSON path: %q", line)
				}
			}
			return
		}
		for _, f := range res.Findings {
			if !strings.HasPrefix(f.Path, "$") {
				t.Fatalf("a finding without a JSON path: %+v", f)
			}
		}
		// Specs that do not validate are allowed (the config may ask for what
		// phoenix refuses); YAML that does not parse back is not.
		for _, file := range res.Files {
			if !strings.HasSuffix(file.Name, ".yaml") {
				continue
			}
			dec := yaml.NewDecoder(bytes.NewReader(file.Data))
			for {
				var n yaml.Node
				err := dec.Decode(&n)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s does not parse: %v\n%s", file.Name, err, file.Data)
				}
			}
		}
	})
}

// TestWhatProxmoxCannotCloneIsSettled: versions of the config declare what a
// Proxmox clone cannot be (a disk smaller than its template's, another
// privilege mode, a bind mount on a copy source) or a gateway with dhcp.
// The import keeps what Proxmox would, says so in the report, and the specs
// validate, where they would fail without it.
func TestWhatProxmoxCannotCloneIsSettled(t *testing.T) {
	const lxc = `{"lxc_configs": {
  "900": {"name": "base", "memory_mb": 1024, "cores": 1, "storage_pool": "local-lvm", "storage_size_gb": 32,
          "network_config": {"name": "eth0", "bridge": "vmbr0", "ip": "dhcp", "gw": "10.0.0.1"},
          "mac_address": "52:54:00:00:00:01", "gpu_assignment": "none", "features": ["base_setup"], "unprivileged": true,
          "template": "/var/lib/vz/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"},
  "901": {"name": "copy", "memory_mb": 1024, "cores": 1, "storage_pool": "local-lvm", "storage_size_gb": 32,
          "network_config": {"name": "eth0", "bridge": "vmbr0", "ip": "10.0.0.11/24", "gw": "10.0.0.1"},
          "mac_address": "52:54:00:00:00:02", "gpu_assignment": "none", "features": [], "clone_from_ctid": "900",
          "template_snapshot_name": "golden", "mount_points": [{"host_path": "/srv/copy", "container_path": "/data"}]},
  "910": {"name": "small", "memory_mb": 1024, "cores": 1, "storage_pool": "local-lvm", "storage_size_gb": 16,
          "network_config": {"name": "eth0", "bridge": "vmbr0", "ip": "10.0.0.12/24", "gw": "10.0.0.1"},
          "mac_address": "52:54:00:00:00:03", "gpu_assignment": "none", "features": [], "clone_from_ctid": "900",
          "unprivileged": false}
}}`
	res, set, _ := importTo(t, []byte(lxc), nil, Options{Node: "pve1"})
	why := map[string]string{}
	for _, f := range res.Findings {
		why[f.Path] = f.Why
	}
	base, cp, small := guestNamed(t, set, 900), guestNamed(t, set, 901), guestNamed(t, set, 910)
	if base.Spec.Network[0].Gateway != "" || !strings.Contains(why[`$.lxc_configs["900"].network_config.gw`], "a gateway goes with a static ip") {
		t.Errorf("900's gateway with dhcp: %q, report %q", base.Spec.Network[0].Gateway, why[`$.lxc_configs["900"].network_config.gw`])
	}
	if cp.Kind != spec.KindContainer || len(cp.Spec.Mounts) != 1 || !strings.Contains(why[`$.lxc_configs["901"]`], "bind mount") {
		t.Errorf("901, a copy source with a bind mount and no clones: %s, %d mounts, report %q", cp.Kind, len(cp.Spec.Mounts), why[`$.lxc_configs["901"]`])
	}
	if small.Spec.Resources.Disk != nil || !strings.Contains(why[`$.lxc_configs["910"].storage_size_gb`], "32 GiB kept") {
		t.Errorf("910's smaller disk: %v, report %q", small.Spec.Resources.Disk, why[`$.lxc_configs["910"].storage_size_gb`])
	}
	if small.Spec.Unprivileged != nil || !strings.Contains(why[`$.lxc_configs["910"].unprivileged`], "keeps its template's privilege mode") {
		t.Errorf("910's privilege mode: %v, report %q", small.Spec.Unprivileged, why[`$.lxc_configs["910"].unprivileged`])
	}
}
