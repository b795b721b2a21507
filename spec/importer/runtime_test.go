package importer

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

// runtimeLab is a copy source and clones of it, in the shapes the
// original's versions wrote vLLM servers, health checks and snapshots.
const runtimeLab = `{"lxc_configs": {
  "900": {"name": "base", "features": ["base_setup"], "template": "/var/lib/vz/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
          "storage_pool": "local-lvm", "enable_lifecycle_snapshots": true, "template_snapshot_name": "final-form",
          "health_check": {"command": "nc -z localhost 9000", "retries": 30, "interval": 10}},
  "911": {"gpu_assignment": "0", "name": "vllm-src", "clone_from_ctid": "900", "features": ["nvidia", "vllm"], "template_snapshot_name": "final-form",
          "vllm_engine_config": {"ModelConfig": {"model": "Qwen/Qwen2-7B-Instruct", "trust_remote_code": true, "dtype": "auto", "max_model_len": 8192},
            "CacheConfig": {"quantization": "fp8", "gpu_memory_utilization": 0.90}, "ParallelConfig": {"tensor_parallel_size": 1},
            "ServerConfig": {"host": "0.0.0.0", "port": 8000, "served_model_name": "qwen2-7b-fp8"}}},
  "801": {"gpu_assignment": "0", "name": "embed", "clone_from_ctid": "911", "features": ["vllm"],
          "vllm_engine_config": {"ModelConfig": {"model": "ibm-granite/granite-embedding-english-r2", "trust_remote_code": false, "max_model_len": 1024},
            "CacheConfig": {"gpu_memory_utilization": 0.1}, "ParallelConfig": {"tensor_parallel_size": 1},
            "ServerConfig": {"host": "0.0.0.0", "port": 8001, "served_model_name": "granite embedding"}}},
  "950": {"gpu_assignment": "0", "name": "flat", "clone_from_ctid": "911", "features": [],
          "vllm_model": "Qwen/Qwen2.5-7B-Instruct-AWQ", "vllm_model_type": "chat", "vllm_port": 8002, "vllm_tensor_parallel_size": 2,
          "vllm_args": ["--quantization", "awq", "--max-model-len", "4096", "--tensor-parallel-size", "1", "--trust-remote-code", "--enforce-eager"],
          "vllm_parameters": {"max_num_seqs": 1, "kv_cache_dtype": "auto"}},
  "951": {"gpu_assignment": "0", "name": "path-model", "clone_from_ctid": "911", "features": [], "vllm_model": "/models/test-model", "vllm_port": 8003},
  "960": {"name": "ca", "clone_from_ctid": "900", "features": [], "enable_lifecycle_snapshots": true,
          "health_check": {"command": "/usr/local/phoenix_hypervisor/bin/health_checks/check_step_ca.sh", "retries": 5, "interval": 3}},
  "961": {"name": "db", "clone_from_ctid": "900", "features": [], "enable_lifecycle_snapshots": false,
          "health_check": {"command": "curl -s --fail http://localhost:6333", "retries": 5, "interval": 5}},
  "970": {"name": "no-vllm", "clone_from_ctid": "900", "features": [], "vllm_engine_config": {"ModelConfig": {"model": "a/b"}}}
}}`

func findings(res *Result) map[string]string {
	why := map[string]string{}
	for _, f := range res.Findings {
		why[f.Path] += f.Why + "\n"
	}
	return why
}

func wantFinding(t *testing.T, why map[string]string, path, part string) {
	t.Helper()
	if !strings.Contains(why[path], part) {
		t.Errorf("the report at %s lacks %q: %q", path, part, why[path])
	}
}

// TestVLLMServersAreCarried: vllm_engine_config, and the first versions'
// flat vllm_* keys, become the vllm feature's model, host, port and args
// settings, each only where it differs from what the template gives; a
// value that cannot be carried is reported at its JSON path.
func TestVLLMServersAreCarried(t *testing.T) {
	res, set, _ := importTo(t, []byte(runtimeLab), nil, Options{})
	why := findings(res)
	src := guestNamed(t, set, 911)
	if d := cmp.Diff(spec.Params{"model": "Qwen/Qwen2-7B-Instruct", "host": "0.0.0.0", "port": "8000",
		"args": "--served-model-name qwen2-7b-fp8 --max-model-len 8192 --dtype auto --trust-remote-code --quantization fp8 --gpu-memory-utilization 0.90 --tensor-parallel-size 1"},
		src.Spec.FeatureConfig["vllm"]); d != "" {
		t.Errorf("911 (-want +got):\n%s", d)
	}
	// 801: host as its template's, left out; trust_remote_code false is
	// vLLM's default; a served name with a space cannot be a word of args.
	embed := guestNamed(t, set, 801)
	if d := cmp.Diff(spec.Params{"model": "ibm-granite/granite-embedding-english-r2", "port": "8001",
		"args": "--max-model-len 1024 --gpu-memory-utilization 0.1 --tensor-parallel-size 1"},
		embed.Spec.FeatureConfig["vllm"]); d != "" {
		t.Errorf("801 (-want +got):\n%s", d)
	}
	wantFinding(t, why, `$.lxc_configs["801"].vllm_engine_config.ServerConfig.served_model_name`, `not carried: "granite embedding" cannot be a word`)
	// 950: the flat keys; vllm_args first, a key that says a flag again
	// differently is reported; the model type has no home.
	flat := guestNamed(t, set, 950)
	if d := cmp.Diff(spec.Params{"model": "Qwen/Qwen2.5-7B-Instruct-AWQ", "port": "8002",
		"args": "--max-model-len 4096 --trust-remote-code --quantization awq --kv-cache-dtype auto --tensor-parallel-size 1 --max-num-seqs 1 --enforce-eager"},
		flat.Spec.FeatureConfig["vllm"]); d != "" {
		t.Errorf("950 (-want +got):\n%s", d)
	}
	wantFinding(t, why, `$.lxc_configs["950"].vllm_tensor_parallel_size`, `ignored: $.lxc_configs["950"].vllm_args[4] says --tensor-parallel-size 1`)
	wantFinding(t, why, `$.lxc_configs["950"].vllm_model_type`, "not carried")
	// 951: a model path phoenix's model setting does not take: no server,
	// and the clone keeps its template's.
	if got := guestNamed(t, set, 951).Spec.FeatureConfig["vllm"]; got != nil {
		t.Errorf("951: %v", got)
	}
	wantFinding(t, why, `$.lxc_configs["951"].vllm_model`, `not carried: "/models/test-model" is not a model`)
	// 970: no vllm feature, nothing to serve with.
	if got := guestNamed(t, set, 970).Spec.FeatureConfig["vllm"]; got != nil {
		t.Errorf("970: %v", got)
	}
	wantFinding(t, why, `$.lxc_configs["970"].vllm_engine_config`, "no vllm feature")
	for p := range why {
		if strings.HasPrefix(p, `$.lxc_configs["911"].vllm`) || p == `$.lxc_configs["801"].vllm_engine_config` {
			t.Errorf("carried, yet reported: %s %s", p, why[p])
		}
	}
}

// TestHealthChecksAreCarried: a health_check whose command runs inside the
// container is a command check with its retries and interval; a script of
// the original's on the Proxmox host goes into the container with
// --scripts, and is reported as not carried without; a Template runs none.
func TestHealthChecksAreCarried(t *testing.T) {
	res, set, _ := importTo(t, []byte(runtimeLab), nil, Options{})
	why := findings(res)
	if d := cmp.Diff([]spec.HealthCheck{{Name: "health-check", Command: "curl -s --fail http://localhost:6333", Interval: "5s", Retries: 5}},
		guestNamed(t, set, 961).Spec.Health); d != "" {
		t.Errorf("961 (-want +got):\n%s", d)
	}
	wantFinding(t, why, `$.lxc_configs["961"].health_check`, "carried as the health check health-check")
	if h := guestNamed(t, set, 960).Spec.Health; h != nil {
		t.Errorf("960 without --scripts: %v", h)
	}
	wantFinding(t, why, `$.lxc_configs["960"].health_check.command`, "not carried: /usr/local/phoenix_hypervisor/bin/health_checks/check_step_ca.sh is a file of the original's on the Proxmox host")
	wantFinding(t, why, `$.lxc_configs["900"].health_check`, "not carried: base is a Template")

	script := "#!/bin/bash\nsystemctl is-active --quiet step-ca.service\n"
	res, set, _ = importTo(t, []byte(runtimeLab), nil, Options{Scripts: map[string][]byte{"health_checks/check_step_ca.sh": []byte(script)}})
	ca := guestNamed(t, set, 960)
	const prog = "/usr/local/phoenix_hypervisor/bin/health_checks/check_step_ca.sh"
	// An interval shorter than the default timeout bounds the run too.
	if d := cmp.Diff([]spec.HealthCheck{{Name: "check-step-ca", Command: prog, Interval: "3s", Timeout: "3s", Retries: 5}}, ca.Spec.Health); d != "" {
		t.Errorf("960 with --scripts (-want +got):\n%s", d)
	}
	if len(ca.Spec.Files) != 1 || ca.Spec.Files[0].Path != prog || ca.Spec.Files[0].Body() != script || ca.Spec.Files[0].Mode != "0755" || !ca.Spec.Files[0].Verbatim {
		t.Errorf("960's script is not written into it: %+v", ca.Spec.Files)
	}
	wantFinding(t, findings(res), `$.lxc_configs["960"].health_check.command`, "carried over as it is")
}

// TestSnapshotsAreCarried: enable_lifecycle_snapshots is phoenix's before
// and after snapshots on a Container; on a Template, which Proxmox takes no
// snapshot of, it and template_snapshot_name are reported; on a copy source
// that is a Container, template_snapshot_name names the after snapshot.
func TestSnapshotsAreCarried(t *testing.T) {
	res, set, _ := importTo(t, []byte(runtimeLab), nil, Options{})
	why := findings(res)
	if d := cmp.Diff(&spec.Snapshots{Before: true, After: true}, guestNamed(t, set, 960).Spec.Snapshots); d != "" {
		t.Errorf("960 (-want +got):\n%s", d)
	}
	if s := guestNamed(t, set, 961).Spec.Snapshots; s != nil {
		t.Errorf("961, enable_lifecycle_snapshots false: %+v", s)
	}
	if s := guestNamed(t, set, 900).Spec.Snapshots; s != nil {
		t.Errorf("900, a Template: %+v", s)
	}
	wantFinding(t, why, `$.lxc_configs["900"].enable_lifecycle_snapshots`, "not carried: base is a Template")
	wantFinding(t, why, `$.lxc_configs["900"].template_snapshot_name`, "its clones are made from the template itself")
	wantFinding(t, why, `$.lxc_configs["911"].template_snapshot_name`, "not carried")

	// A copy source with a bind mount and nothing cloned from it is a
	// Container: its snapshot name is its after snapshot's.
	const lone = `{"lxc_configs": {
  "901": {"name": "copy", "features": [], "template": "/var/lib/vz/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
          "template_snapshot_name": "golden", "mount_points": [{"host_path": "/srv/copy", "container_path": "/data"}]},
  "902": {"name": "copy2", "features": [], "template": "/var/lib/vz/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
          "template_snapshot_name": "current", "enable_lifecycle_snapshots": true, "mount_points": [{"host_path": "/srv/copy", "container_path": "/data"}]}
}}`
	res, set, _ = importTo(t, []byte(lone), nil, Options{})
	if d := cmp.Diff(&spec.Snapshots{After: true, Name: "golden"}, guestNamed(t, set, 901).Spec.Snapshots); d != "" {
		t.Errorf("901 (-want +got):\n%s", d)
	}
	if d := cmp.Diff(&spec.Snapshots{Before: true, After: true}, guestNamed(t, set, 902).Spec.Snapshots); d != "" {
		t.Errorf("902 (-want +got):\n%s", d)
	}
	wantFinding(t, findings(res), `$.lxc_configs["902"].template_snapshot_name`, `not carried: "current" is not a snapshot name`)
}
