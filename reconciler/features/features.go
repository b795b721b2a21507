// Package features is phoenix's feature catalog: for every built-in feature
// the ordered steps that install it, each a shell script with a check (exit 0:
// already done), an apply and a verify phase, embedded from scripts/ (shellcheck
// runs on them in make lint); and the same for user-defined Feature documents,
// whose bodies come from the specs. Parameters reach a script as environment
// variables, never spliced into its text.
package features

import (
	"embed"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

//go:embed scripts
var scripts embed.FS

// prelude runs ahead of every feature step's own body: the helpers that make
// a failing step say what failed and what to do in its last line, remove its
// temporary files however it ends, download without leaving partial files in
// place, and wait for another apt's lock.
//
//go:embed prelude.sh
var prelude string

// Where a step runs.
type Where int

const (
	// InGuest runs with pct exec inside the container.
	InGuest Where = iota
	// OnHost runs on the container's node.
	OnHost
)

// Step is one idempotent unit of a feature.
type Step struct {
	// Name is feature/step: it shows in ps, logs and the simulator's journal.
	Name  string
	Where Where
	// Body is the script; it receives the phase (check, apply, verify,
	// uninstall) as $1. Steps of user features have one body per phase
	// instead.
	Body                            string
	Check, Apply, Verify, Uninstall string
	Env                             map[string]string
	// Push, when set, is a file on the node copied into the container before
	// the apply phase.
	Push *Push
	// Wait marks a step that is only polled (its check) until it passes or
	// the wait times out: the container finishing its start.
	Wait bool
	// NoVerify skips the verify phase (the check is the verify).
	NoVerify bool
	// Timeout bounds one run of the apply or uninstall phase (see
	// TimeoutFor); zero takes DefaultTimeout.
	Timeout time.Duration
}

// The bounds of a step's phases. A step that runs out of its time is
// signalled where it runs (timeout(1)), and fails that guest.
const (
	// DefaultTimeout bounds a step that sets no timeout of its own: a user
	// feature's step without one.
	DefaultTimeout = 30 * time.Minute
	// CheckTimeout bounds a check or a verify: probes, which answer in
	// seconds when nothing is wrong.
	CheckTimeout = 5 * time.Minute
)

// builtinTimeouts are the apply bounds of the built-in steps: downloads and
// the CUDA and vLLM installs fetch gigabytes, a configuration takes seconds.
var builtinTimeouts = map[string]time.Duration{
	"base/packages":                      20 * time.Minute,
	"nvidia-driver/download":             30 * time.Minute,
	"nvidia-driver/userspace":            30 * time.Minute,
	"cuda-toolkit/repository":            10 * time.Minute,
	"cuda-toolkit/toolkit":               60 * time.Minute,
	"docker/engine":                      20 * time.Minute,
	"nvidia-container-toolkit/install":   20 * time.Minute,
	"nvidia-container-toolkit/configure": 5 * time.Minute,
	"ollama/install":                     30 * time.Minute,
	"vllm/install":                       60 * time.Minute,
	"phoenix/identity":                   5 * time.Minute,
}

// TimeoutFor is the bound of one run of a phase: the step's Timeout (or
// DefaultTimeout) for apply and uninstall; for check and verify
// CheckTimeout, or the step's own Timeout where that is shorter.
func (s Step) TimeoutFor(phase string) time.Duration {
	d := s.Timeout
	if d <= 0 {
		d = DefaultTimeout
	}
	if phase == "check" || phase == "verify" {
		return min(d, CheckTimeout)
	}
	return d
}

// BodyFor returns the script run for a phase.
func (s Step) BodyFor(phase string) string {
	if s.Body != "" {
		return s.Body
	}
	switch phase {
	case "check":
		return s.Check
	case "verify":
		return s.Verify
	case "uninstall":
		return s.Uninstall
	}
	return s.Apply
}

// HasVerify reports whether the step has a verify phase to run.
func (s Step) HasVerify() bool {
	if s.NoVerify {
		return false
	}
	return s.Body != "" || strings.TrimSpace(s.Verify) != ""
}

// Push copies a node file into the container.
type Push struct {
	Src, Dst string
	Mode     uint32
}

// Context is what a feature's steps are computed from.
type Context struct {
	Guest *spec.Resolved
	// Params are the feature's effective parameters on this guest.
	Params spec.Params
	// DriverVersion is the host's NVIDIA driver version.
	DriverVersion string
	// Devices are the device nodes passed into the container.
	Devices []string
	NVIDIA  spec.NVIDIASettings
}

// DefaultRunfileURLs are where NVIDIA publishes the Linux driver runfiles:
// the consumer drivers under XFree86/, the datacenter ones (H100, H200
// class) under tesla/. Drivers from NVIDIA's apt repository have no runfile.
var DefaultRunfileURLs = []string{
	"https://download.nvidia.com/XFree86/Linux-x86_64/{version}/NVIDIA-Linux-x86_64-{version}.run",
	"https://us.download.nvidia.com/tesla/{version}/NVIDIA-Linux-x86_64-{version}.run",
}

// RunfileURLs are the URLs a node tries, in order, for a driver version's
// runfile: those of RunfileSources it may use.
func RunfileURLs(s spec.NVIDIASettings, version string) []string {
	use, _ := RunfileSources(s, version)
	return use
}

// RunfilePath is where a node keeps a driver version's runfile.
func RunfilePath(version string) string {
	return RunfileDir + "/NVIDIA-Linux-x86_64-" + version + ".run"
}

// RunfileDir is where a node keeps downloaded runfiles.
const RunfileDir = "/var/lib/phoenix"

func script(name string) string {
	b, err := scripts.ReadFile(path.Join("scripts", name+".sh"))
	if err != nil {
		panic(fmt.Sprintf("features: no embedded script %s: %v", name, err)) // a build error, caught by tests
	}
	return string(b)
}

// Initialized is the step that waits for a started container to have its
// network and the given device nodes.
func Initialized(devices []string) Step {
	return Step{Name: "phoenix/initialized", Body: script("phoenix/initialized"), Wait: true,
		Env: map[string]string{"PHOENIX_DEVICES": strings.Join(devices, " ")}}
}

// Identity is the step that gives a clone SSH host keys of its own: a clone
// copies its source's disk, keys included, and Proxmox regenerates only the
// machine-id (which it empties; systemd makes a new one at boot).
func Identity() Step {
	return Step{Name: "phoenix/identity", Body: script("phoenix/identity"), NoVerify: true, Timeout: builtinTimeouts["phoenix/identity"]}
}

// Steps returns the steps of a feature on a guest, in order.
func Steps(c *spec.Catalog, feature string, ctx Context) ([]Step, error) {
	def, ok := c.Lookup(feature)
	if !ok {
		return nil, fmt.Errorf("unknown feature %q", feature)
	}
	if !def.BuiltIn() {
		return userSteps(def, ctx), nil
	}
	// A parameter's value: the one set, or its default (source parameters'
	// defaults are not among the effective parameters).
	param := func(name string) string { return def.Params[name].Value(ctx.Params, name) }
	step := func(name string, env map[string]string) Step {
		full := feature + "/" + name
		return Step{Name: full, Body: prelude + script(full), Env: env, Timeout: builtinTimeouts[full]}
	}
	switch feature {
	case spec.FeatureBase:
		return []Step{step("packages", nil)}, nil
	case spec.FeatureNVIDIADriver:
		v := ctx.DriverVersion
		if v == "" {
			return nil, fmt.Errorf("nvidia-driver: the host has no NVIDIA driver")
		}
		file := "NVIDIA-Linux-x86_64-" + v + ".run"
		urls := RunfileURLs(ctx.NVIDIA, v)
		download := step("download", map[string]string{
			"NVIDIA_VERSION": v, "NVIDIA_URLS": strings.Join(urls, "\n"), "NVIDIA_RUNFILE": RunfilePath(v),
		})
		if sum := ctx.NVIDIA.SHA256[v]; sum != "" {
			download.Env["NVIDIA_SHA256"] = sum
		}
		download.Where, download.NoVerify = OnHost, true
		userspace := step("userspace", map[string]string{"NVIDIA_VERSION": v, "NVIDIA_RUNFILE": "/root/" + file})
		if ctx.Guest.Settings.GPUGroup == nil {
			// The nodes are passed with the host's mode, open to every user:
			// check as one who is not root, and not in any group.
			userspace.Env["NVIDIA_CHECK_USER"] = "nobody"
		}
		userspace.Push = &Push{Src: RunfileDir + "/" + file, Dst: "/root/" + file, Mode: 0o755}
		return []Step{Initialized(ctx.Devices), download, userspace}, nil
	case spec.FeatureCUDAToolkit:
		v := param("version")
		repo := step("repository", map[string]string{"CUDA_REPOSITORY": param("repository")})
		return []Step{repo, step("toolkit", map[string]string{
			"CUDA_VERSION": v, "CUDA_PACKAGE": "cuda-toolkit-" + strings.ReplaceAll(v, ".", "-"),
			"CUDA_MIN_DRIVER": CUDAMinDriver(v),
		})}, nil
	case spec.FeatureDocker:
		return []Step{step("engine", map[string]string{
			"DOCKER_SOURCE": param("source"), "DOCKER_REPOSITORY": param("repository"),
		})}, nil
	case spec.FeatureNVIDIAContainerToolkit:
		noCgroups := "false"
		if ctx.Guest.Settings.Unprivileged {
			noCgroups = "true"
		}
		install := step("install", map[string]string{"NCT_REPOSITORY": param("repository")})
		return []Step{install, step("configure", map[string]string{"NCT_NO_CGROUPS": noCgroups, "NCT_DEFAULT_RUNTIME": param("default-runtime")})}, nil
	case spec.FeatureOllama:
		return []Step{step("install", map[string]string{
			"OLLAMA_VERSION": param("version"), "OLLAMA_INSTALLER": param("installer"),
		})}, nil
	case spec.FeatureVLLM:
		return []Step{step("install", map[string]string{
			"VLLM_VERSION": param("version"), "VLLM_INDEX": param("index"),
		})}, nil
	}
	return nil, fmt.Errorf("built-in feature %s has no steps", feature)
}

// UninstallSteps returns the steps whose uninstall phase removes a feature
// from a guest, in the order they run: the reverse of the install order. The
// waits and the steps on the node have nothing to undo in the guest.
func UninstallSteps(c *spec.Catalog, feature string, ctx Context) ([]Step, error) {
	def, ok := c.Lookup(feature)
	if !ok {
		return nil, fmt.Errorf("unknown feature %q", feature)
	}
	if !def.Uninstallable {
		return nil, fmt.Errorf("feature %s cannot be uninstalled: it has no uninstall steps", feature)
	}
	if def.BuiltIn() && ctx.DriverVersion == "" {
		// The nvidia-driver steps are computed from the host's version;
		// what they undo does not depend on it.
		ctx.DriverVersion = "0"
	}
	steps, err := Steps(c, feature, ctx)
	if err != nil {
		return nil, err
	}
	var out []Step
	for _, s := range slices.Backward(steps) {
		if !s.Wait && s.Where == InGuest {
			out = append(out, s)
		}
	}
	return out, nil
}

// userSteps turns a Feature document's steps into named scripts, with its
// parameters as environment variables.
func userSteps(def *spec.FeatureDef, ctx Context) []Step {
	env := map[string]string{}
	maps.Copy(env, ctx.Params)
	var out []Step
	for _, s := range def.Doc.Spec.Steps {
		// Validation refused a timeout that does not parse.
		timeout, _ := spec.ParseStepTimeout(s.Timeout)
		out = append(out, Step{
			Name: def.Name + "/" + s.Name, Check: s.Check, Apply: s.Apply, Verify: s.Verify, Uninstall: s.Uninstall,
			Env: maps.Clone(env), Timeout: timeout,
		})
	}
	return out
}

// Scripts lists the embedded scripts by name, for checks of the catalog.
func Scripts() []string {
	var out []string
	dirs, _ := scripts.ReadDir("scripts")
	for _, d := range dirs {
		files, _ := scripts.ReadDir("scripts/" + d.Name())
		for _, f := range files {
			out = append(out, d.Name()+"/"+strings.TrimSuffix(f.Name(), ".sh"))
		}
	}
	slices.Sort(out)
	return out
}
