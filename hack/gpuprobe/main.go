// Command gpuprobe runs phoenix's host probe (the local provider) and the
// NVIDIA verify steps on a machine with a real NVIDIA GPU and driver, and
// writes what they printed as JSON: the figures phoenix's tests hold the
// simulator and the stand-ins to (providers/internal/nodecmd/testdata/gpu,
// reconciler/features/testdata/gpu). hack/gpuprobe/collect.sh runs it
// together with the raw captures.
//
//	gpuprobe -examples examples/homelab -out DIR
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/phoenixhv/phoenix/providers/local"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// run is one phase of one step as it ran.
type run struct {
	Step  string            `json:"step"`
	Phase string            `json:"phase"`
	Case  string            `json:"case"`
	Env   map[string]string `json:"env"`
	Exit  int               `json:"exit"`
	Out   string            `json:"stdout"`
	Err   string            `json:"stderr"`
	Error string            `json:"error,omitempty"`
}

func main() {
	examples := flag.String("examples", "examples/homelab", "the spec directory whose guest the steps are computed for")
	guest := flag.String("guest", "vllm-qwen", "a GPU guest of that directory with nvidia-driver and cuda-toolkit")
	out := flag.String("out", ".", "where to write probe.json and steps.json")
	flag.Parse()
	if err := collect(*examples, *guest, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gpuprobe:", err)
		os.Exit(1)
	}
}

func collect(examples, guest, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := local.New("gpu-host")

	info, err := node.HostProbe(ctx)
	probe := map[string]any{"info": info}
	if err != nil {
		probe["error"] = err.Error()
	}
	if err := write(filepath.Join(out, "probe.json"), probe); err != nil {
		return err
	}
	if info.DriverVersion == "" {
		return fmt.Errorf("the host probe found no NVIDIA driver (%v)", err)
	}

	res, err := spec.LoadResolved(examples)
	if err != nil {
		return err
	}
	g, ok := res.Guest(guest)
	if !ok {
		return fmt.Errorf("no guest %s in %s", guest, examples)
	}
	var devices []string
	for _, d := range info.Devices {
		devices = append(devices, d.Path)
	}
	steps := map[string]features.Step{}
	for _, f := range []string{spec.FeatureNVIDIADriver, spec.FeatureCUDAToolkit} {
		ss, err := features.Steps(res.Catalog, f, features.Context{Guest: g, Params: g.Params[f],
			DriverVersion: info.DriverVersion, Devices: devices})
		if err != nil {
			return err
		}
		for _, s := range ss {
			steps[s.Name] = s
		}
	}

	// The host is its own guest here: the steps that run in a container run
	// on the machine, which has the driver's userspace at the module's
	// version, as a converged guest does.
	var runs []run
	do := func(name, phase, what string, env map[string]string) {
		s, ok := steps[name]
		if !ok {
			runs = append(runs, run{Step: name, Phase: phase, Case: what, Error: "no such step"})
			return
		}
		e := map[string]string{}
		for k, v := range s.Env {
			e[k] = v
		}
		for k, v := range env {
			e[k] = v
		}
		r, err := node.ExecHost(ctx, reconciler.Script{Name: s.Name, Phase: phase, Body: s.BodyFor(phase), Env: e, Timeout: s.TimeoutFor(phase)})
		one := run{Step: name, Phase: phase, Case: what, Env: e, Exit: r.ExitCode, Out: r.Stdout, Err: r.Stderr}
		if err != nil {
			one.Error = err.Error()
		}
		runs = append(runs, one)
	}
	do("phoenix/initialized", "apply", "the host's own device nodes", nil)
	do("nvidia-driver/userspace", "check", "converged", nil)
	do("nvidia-driver/userspace", "verify", "converged", nil)
	do("nvidia-driver/userspace", "check", "another driver version wanted", map[string]string{"NVIDIA_VERSION": "1.0.1"})
	do("nvidia-driver/userspace", "verify", "another driver version wanted", map[string]string{"NVIDIA_VERSION": "1.0.1"})
	do("cuda-toolkit/toolkit", "check", "as the machine is", nil)
	do("cuda-toolkit/toolkit", "verify", "as the machine is", nil)
	cuda13 := map[string]string{"CUDA_VERSION": "13.0", "CUDA_PACKAGE": "cuda-toolkit-13-0", "CUDA_MIN_DRIVER": features.CUDAMinDriver("13.0")}
	do("cuda-toolkit/toolkit", "check", "the machine's CUDA 13.0", cuda13)
	do("cuda-toolkit/toolkit", "verify", "the machine's CUDA 13.0", cuda13)
	do("cuda-toolkit/toolkit", "verify", "a CUDA newer than the driver", map[string]string{"CUDA_VERSION": "13.0", "CUDA_MIN_DRIVER": "9999.0"})
	return write(filepath.Join(out, "steps.json"), runs)
}

func write(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}
