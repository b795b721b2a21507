package features

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/spec"
)

func examples(t *testing.T) *spec.Resolution {
	t.Helper()
	res, err := spec.LoadResolved("../../examples/homelab")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEveryBuiltinHasSteps(t *testing.T) {
	res := examples(t)
	g, _ := res.Guest("vllm-qwen")
	used := map[string]bool{"phoenix/initialized": true, "phoenix/identity": true}
	for _, f := range spec.BuiltinFeatureNames() {
		steps, err := Steps(res.Catalog, f, Context{Guest: g, Params: g.Params[f], DriverVersion: "580.76.05",
			Devices: []string{"/dev/nvidia0"}})
		if err != nil || len(steps) == 0 {
			t.Errorf("%s: %v %v", f, steps, err)
		}
		for _, s := range steps {
			if !strings.HasPrefix(s.Name, f+"/") && s.Name != "phoenix/initialized" {
				t.Errorf("step %s of %s is not named feature/step", s.Name, f)
			}
			used[s.Name] = true
		}
	}
	for _, s := range Scripts() {
		if !used[s] {
			t.Errorf("script %s belongs to no step", s)
		}
	}
}

func TestNVIDIADriverOrderAndParameters(t *testing.T) {
	res := examples(t)
	g, _ := res.Guest("gpu-base")
	steps, err := Steps(res.Catalog, spec.FeatureNVIDIADriver, Context{Guest: g, DriverVersion: "580.76.05",
		Devices: []string{"/dev/nvidia0", "/dev/nvidiactl"},
		NVIDIA:  spec.NVIDIASettings{SHA256: map[string]string{"580.76.05": strings.Repeat("a", 64)}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	// Wait for the started container, fetch the host's version once per node,
	// then install it in the container from the pushed file.
	if diff := cmp.Diff([]string{"phoenix/initialized", "nvidia-driver/download", "nvidia-driver/userspace"}, names); diff != "" {
		t.Fatal(diff)
	}
	if !steps[0].Wait || steps[0].Env["PHOENIX_DEVICES"] != "/dev/nvidia0 /dev/nvidiactl" {
		t.Errorf("wait step %+v", steps[0])
	}
	dl := steps[1]
	if dl.Where != OnHost || dl.Env["NVIDIA_URLS"] != "https://download.nvidia.com/XFree86/Linux-x86_64/580.76.05/NVIDIA-Linux-x86_64-580.76.05.run\n"+
		"https://us.download.nvidia.com/tesla/580.76.05/NVIDIA-Linux-x86_64-580.76.05.run" ||
		dl.Env["NVIDIA_SHA256"] != strings.Repeat("a", 64) {
		t.Errorf("download %+v", dl)
	}
	us := steps[2]
	if us.Push == nil || us.Push.Src != dl.Env["NVIDIA_RUNFILE"] || us.Env["NVIDIA_RUNFILE"] != us.Push.Dst ||
		!strings.Contains(us.Body, "--no-kernel-module") {
		t.Errorf("userspace %+v", us)
	}
	if _, err := Steps(res.Catalog, spec.FeatureNVIDIADriver, Context{Guest: g}); err == nil {
		t.Error("nvidia-driver steps without a host driver version")
	}
}

func TestCUDAInstallsOnlyTheToolkit(t *testing.T) {
	res := examples(t)
	g, _ := res.Guest("gpu-base")
	steps, _ := Steps(res.Catalog, spec.FeatureCUDAToolkit, Context{Guest: g, Params: g.Params[spec.FeatureCUDAToolkit]})
	if steps[1].Env["CUDA_PACKAGE"] != "cuda-toolkit-12-8" || steps[1].Env["CUDA_VERSION"] != "12.8" {
		t.Errorf("toolkit %+v", steps[1].Env)
	}
}

func TestContainerToolkitNoCgroupsForUnprivileged(t *testing.T) {
	res := examples(t)
	g, _ := res.Guest("docker-gpu")
	steps, _ := Steps(res.Catalog, spec.FeatureNVIDIAContainerToolkit, Context{Guest: g})
	if steps[1].Env["NCT_NO_CGROUPS"] != "true" {
		t.Errorf("unprivileged guest: %v", steps[1].Env)
	}
}

func TestUserFeatureParametersAreEnvironment(t *testing.T) {
	res := examples(t)
	g, _ := res.Guest("nginx")
	steps, err := Steps(res.Catalog, "nginx", Context{Guest: g, Params: spec.Params{"NGINX_PORT": "8080; rm -rf /"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Env["NGINX_PORT"] != "8080; rm -rf /" || strings.Contains(s.BodyFor("apply"), "rm -rf") {
			t.Errorf("%s: parameter not passed as environment: %+v", s.Name, s)
		}
	}
	if steps[1].HasVerify() {
		t.Errorf("%s has no verify body but claims one", steps[1].Name)
	}
}

// TestScriptsPassShellcheck runs shellcheck on every embedded script.
func TestScriptsPassShellcheck(t *testing.T) {
	shellcheck := testtool.Require(t, "shellcheck")
	files := []string{"prelude.sh"}
	for _, s := range Scripts() {
		files = append(files, filepath.Join("scripts", s+".sh"))
	}
	out, err := exec.Command(shellcheck, append([]string{"-s", "sh"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// TestScriptsRefuseUnknownPhases runs each script with a bad phase in a real
// shell: every script dispatches on $1 and fails loudly otherwise.
func TestScriptsRefuseUnknownPhases(t *testing.T) {
	steps := append(featureSteps(t), builtinStep(t, "nvidia-driver/download", nil), Identity())
	eachShell(t, func(t *testing.T, sh string) {
		for _, st := range steps {
			cmd := exec.Command(sh, "-c", st.BodyFor("bogus"), st.Name, "bogus")
			cmd.Env = os.Environ()
			for k, v := range st.Env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err == nil || !slices.Contains([]int{2}, exitCode(err, &exit)) || !strings.Contains(string(out), "unknown phase bogus") {
				t.Errorf("%s bogus: %v %s", st.Name, err, out)
			}
		}
	})
}

func exitCode(err error, target **exec.ExitError) int {
	if e, ok := err.(*exec.ExitError); ok {
		*target = e
		return e.ExitCode()
	}
	return -1
}
