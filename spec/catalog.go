package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Built-in feature names. Their install steps live with the reconciler; their
// names, requirements and parameters are part of the language.
const (
	FeatureBase                   = "base"
	FeatureNVIDIADriver           = "nvidia-driver"
	FeatureCUDAToolkit            = "cuda-toolkit"
	FeatureDocker                 = "docker"
	FeatureNVIDIAContainerToolkit = "nvidia-container-toolkit"
	FeatureOllama                 = "ollama"
	FeatureVLLM                   = "vllm"
)

// FeatureDef is what the language knows of a feature.
type FeatureDef struct {
	Name     string
	Requires []string
	// GPU is set on a feature that needs the guest to have GPUs passed through
	// itself; features that require one (cuda-toolkit) need GPUs through it.
	GPU     bool
	Version string
	Params  map[string]ParamDef
	// Uninstallable is set on a feature that can be removed from a guest:
	// a built-in with uninstall steps, or a Feature document whose every
	// step has an uninstall body.
	Uninstallable bool
	// Doc is the Feature document of a user-defined feature; nil for built-ins.
	Doc *Feature
	// Health are the feature's health checks (spec/health.go).
	Health []HealthCheck
	// runtime gives a built-in's files and services for its parameters.
	runtime func(Params) ([]File, []Service)
}

// BuiltIn reports whether the feature ships with phoenix.
func (f *FeatureDef) BuiltIn() bool { return f.Doc == nil }

// ParamDef describes one feature parameter.
type ParamDef struct {
	Default string
	// Format, when set, is what a value must match; FormatHelp says it in words.
	Format     *regexp.Regexp
	FormatHelp string
	// Source marks where a feature comes from (a vendor's URL, which a
	// mirror may replace; Docker's repository or the distribution): its
	// default reaches the steps (Value) but is no part of the guest's
	// effective parameters, so that guests installed before the parameter
	// existed keep their records, and only a value set in a spec is recorded
	// and compared (a changed one reinstalls the feature from there).
	Source bool
	// Runtime marks a setting of the running software, read by the
	// feature's files and services: no part of the install record, so a
	// changed value rewrites files and restarts services, never reinstalls.
	Runtime bool
}

// Value is a parameter's value among a feature's effective parameters:
// the one set, or the default.
func (p ParamDef) Value(params Params, name string) string {
	if v, ok := params[name]; ok {
		return v
	}
	return p.Default
}

var (
	majorMinor  = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	semverish   = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	versionWord = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+){0,3}([-+~][0-9A-Za-z.\-+~]+)?$`)
	// sourceURL is an http(s) URL with a host, no credentials and nothing a
	// shell or an apt sources line would split: it reaches the guest in an
	// environment variable and is written into apt's sources lists.
	sourceURL    = regexp.MustCompile(`^https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._~%+/-]*)?$`)
	dockerSource = regexp.MustCompile(`^(` + DockerFromDocker + `|` + DockerFromDistribution + `)$`)
)

// sourceParam is a Source parameter: a URL with the vendor's default.
func sourceParam(def, what string) ParamDef {
	return ParamDef{Default: def, Source: true, Format: sourceURL,
		FormatHelp: what + " (an http or https URL without a user name, password, query or spaces)"}
}

// builtins returns fresh definitions of the built-in catalog.
func builtins() []*FeatureDef {
	return []*FeatureDef{
		// base is what everything else stands on: it is never removed.
		{Name: FeatureBase},
		{Name: FeatureNVIDIADriver, GPU: true, Uninstallable: true},
		// The steps of cuda-toolkit, docker, nvidia-container-toolkit and
		// ollama download with curl (and gpg), which base installs.
		{Name: FeatureCUDAToolkit, Requires: []string{FeatureBase, FeatureNVIDIADriver}, Uninstallable: true, Params: map[string]ParamDef{
			"version": {Default: "12.8", Format: majorMinor, FormatHelp: "MAJOR.MINOR, e.g. 12.8 (installs cuda-toolkit-12-8)"},
			"repository": sourceParam("https://developer.download.nvidia.com/compute/cuda/repos",
				"NVIDIA's CUDA repositories or a mirror of them: the keyring package and the packages of the container's distribution are under <repository>/<distro>/x86_64/ (distro: debian12, ubuntu2404, ...)"),
		}},
		{Name: FeatureDocker, Requires: []string{FeatureBase}, Uninstallable: true, Health: builtinHealth[FeatureDocker], Params: map[string]ParamDef{
			"source": {Default: DockerFromDocker, Source: true, Format: dockerSource,
				FormatHelp: DockerFromDocker + " (Docker's repository: docker-ce, containerd.io and the buildx and compose plugins) or " + DockerFromDistribution + " (the distribution's docker.io)"},
			"repository": sourceParam("https://download.docker.com/linux",
				"Docker's apt repository or a mirror of it, for source docker: the key is <repository>/<distribution id>/gpg, the suite <repository>/<distribution id> <codename> stable"),
		}},
		{Name: FeatureNVIDIAContainerToolkit, Requires: []string{FeatureBase, FeatureDocker, FeatureNVIDIADriver}, Uninstallable: true, Params: map[string]ParamDef{
			"repository": sourceParam("https://nvidia.github.io/libnvidia-container",
				"NVIDIA's libnvidia-container repository or a mirror of it: the key is <repository>/gpgkey, the packages are under <repository>/stable/deb/<architecture>/"),
			// nvidia-ctk runtime configure leaves runc docker's default
			// unless told otherwise.
			"default-runtime": {Default: "false", Format: boolWord,
				FormatHelp: "true makes nvidia docker's default runtime (every container gets the GPUs without --runtime or --gpus), false leaves runc"},
		}},
		{Name: FeatureOllama, Requires: []string{FeatureBase}, Uninstallable: true, Health: builtinHealth[FeatureOllama], Params: map[string]ParamDef{
			"version":   {Format: semverish, FormatHelp: "MAJOR.MINOR.PATCH, e.g. 0.12.6; empty installs the current release"},
			"installer": sourceParam("https://ollama.com/install.sh", "ollama's install script, or a mirror's copy"),
			// OLLAMA_HOST's upstream default: loopback only.
			"host": {Default: "127.0.0.1:11434", Runtime: true, Format: listenAddress,
				FormatHelp: "the address ollama listens on, HOST:PORT (OLLAMA_HOST), e.g. 0.0.0.0:11434 for every interface"},
		}, runtime: ollamaRuntime},
		{Name: FeatureVLLM, Requires: []string{FeatureCUDAToolkit}, Uninstallable: true, Params: map[string]ParamDef{
			"version": {Default: "0.11.0", Format: semverish, FormatHelp: "MAJOR.MINOR.PATCH of the vllm Python package, e.g. 0.11.0"},
			"index":   sourceParam("https://pypi.org/simple", "the Python package index pip installs vllm from (PyPI's simple index, or a mirror's)"),
			"model": {Runtime: true, Format: modelName,
				FormatHelp: "the model vLLM serves as an OpenAI-compatible server (a Hugging Face id such as Qwen/Qwen2.5-7B-Instruct, or a path); empty serves nothing"},
			"host": {Default: "0.0.0.0", Runtime: true, Format: hostAddress, FormatHelp: "the address the OpenAI server listens on"},
			// vllm serve's upstream default port.
			"port": {Default: "8000", Runtime: true, Format: portNumber, FormatHelp: "the OpenAI server's port, 1-65535"},
			"args": {Runtime: true, Format: serveArgs,
				FormatHelp: "further arguments of vllm serve, e.g. --max-model-len 8192 --tensor-parallel-size 2 (words without quotes or shell characters)"},
		}, runtime: vllmRuntime},
	}
}

// The values of the docker feature's source parameter.
const (
	DockerFromDocker       = "docker"
	DockerFromDistribution = "distribution"
)

// BuiltinFeatureNames lists the built-in features, in catalog order.
func BuiltinFeatureNames() []string {
	var names []string
	for _, f := range builtins() {
		names = append(names, f.Name)
	}
	return names
}

// Catalog is every feature a spec set can use: the built-ins plus its Feature
// documents.
type Catalog struct {
	defs map[string]*FeatureDef
}

// newCatalog builds the catalog of a set. Name clashes are reported by validate;
// here a Feature document never replaces a built-in.
func newCatalog(features []*Feature) *Catalog {
	c := &Catalog{defs: map[string]*FeatureDef{}}
	for _, f := range builtins() {
		c.defs[f.Name] = f
	}
	for _, f := range features {
		if _, taken := c.defs[f.Metadata.Name]; taken {
			continue
		}
		params := map[string]ParamDef{}
		for k, v := range f.Spec.Config {
			params[k] = ParamDef{Default: v}
		}
		for k, v := range f.Spec.Settings {
			params[k] = ParamDef{Default: v, Runtime: true}
		}
		c.defs[f.Metadata.Name] = &FeatureDef{
			Name: f.Metadata.Name, Requires: f.Spec.Requires, Version: f.Spec.Version, Params: params, Doc: f,
			Uninstallable: everyStepUninstalls(f.Spec.Steps), Health: f.Spec.Health,
		}
	}
	return c
}

func everyStepUninstalls(steps []Step) bool {
	for _, s := range steps {
		if strings.TrimSpace(s.Uninstall) == "" {
			return false
		}
	}
	return len(steps) > 0
}

// Lookup finds a feature by name.
func (c *Catalog) Lookup(name string) (*FeatureDef, bool) {
	f, ok := c.defs[name]
	return f, ok
}

// Names lists every feature, sorted.
func (c *Catalog) Names() []string {
	return slices.Sorted(maps.Keys(c.defs))
}

// NeedsGPU reports whether a feature, or anything it requires, needs GPUs.
func (c *Catalog) NeedsGPU(name string) bool {
	return c.gpuVia(name, map[string]bool{}) != ""
}

// gpuVia returns the GPU feature that name needs (itself or a requirement), or "".
func (c *Catalog) gpuVia(name string, seen map[string]bool) string {
	if seen[name] {
		return ""
	}
	seen[name] = true
	f, ok := c.defs[name]
	if !ok {
		return ""
	}
	if f.GPU {
		return name
	}
	for _, r := range f.Requires {
		if via := c.gpuVia(r, seen); via != "" {
			return via
		}
	}
	return ""
}

// Closure returns names plus everything they require, transitively, sorted.
// Unknown names are kept as they are.
func (c *Catalog) Closure(names []string) []string {
	set := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if set[n] {
			return
		}
		set[n] = true
		if f, ok := c.defs[n]; ok {
			for _, r := range f.Requires {
				visit(r)
			}
		}
	}
	for _, n := range names {
		visit(n)
	}
	return slices.Sorted(maps.Keys(set))
}

// Order sorts features so that each comes after what it requires; among features
// free to go next, the alphabetically first goes first, so the order is stable.
// Requirements outside names are ignored (they are installed elsewhere).
func (c *Catalog) Order(names []string) []string {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	indeg := map[string]int{}
	dependents := map[string][]string{}
	for n := range want {
		indeg[n] += 0
		if f, ok := c.defs[n]; ok {
			for _, r := range f.Requires {
				if want[r] && r != n {
					indeg[n]++
					dependents[r] = append(dependents[r], n)
				}
			}
		}
	}
	var ready, out []string
	for n, d := range indeg {
		if d == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		slices.Sort(ready)
		n := ready[0]
		ready = ready[1:]
		out = append(out, n)
		for _, m := range dependents[n] {
			if indeg[m]--; indeg[m] == 0 {
				ready = append(ready, m)
			}
		}
	}
	// A cycle leaves features behind; validation reports it, so keep them rather
	// than drop them silently.
	if len(out) < len(want) {
		var rest []string
		for n, d := range indeg {
			if d > 0 {
				rest = append(rest, n)
			}
		}
		slices.Sort(rest)
		out = append(out, rest...)
	}
	return out
}

// requireCycles finds dependency cycles among the catalog's features, each as
// the path that closes it (a -> b -> a), starting at its alphabetically first member.
func (c *Catalog) requireCycles() [][]string {
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var cycles [][]string
	var visit func(string)
	visit = func(n string) {
		state[n] = active
		stack = append(stack, n)
		if f, ok := c.defs[n]; ok {
			for _, r := range f.Requires {
				if _, known := c.defs[r]; !known {
					continue
				}
				switch state[r] {
				case unvisited:
					visit(r)
				case active:
					i := slices.Index(stack, r)
					cycles = append(cycles, rotateCycle(slices.Clone(stack[i:])))
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
	}
	for _, n := range c.Names() {
		if state[n] == unvisited {
			visit(n)
		}
	}
	return cycles
}

// rotateCycle starts a cycle at its smallest member and closes it.
func rotateCycle(members []string) []string {
	i := slices.Index(members, slices.Min(members))
	out := append(slices.Clone(members[i:]), members[:i]...)
	return append(out, out[0])
}

func formatCycle(path []string) string { return strings.Join(path, " -> ") }

// effectiveParams merges a feature's defaults with the values set for it.
func (f *FeatureDef) effectiveParams(set Params) Params {
	out := Params{}
	for k, p := range f.Params {
		if p.Default != "" && !p.Source && !p.Runtime {
			out[k] = p.Default
		}
	}
	for k, v := range set {
		if !f.Params[k].Runtime {
			out[k] = v
		}
	}
	return out
}

// runtimeParams are the values of a feature's Runtime parameters: those set,
// else their defaults.
func (f *FeatureDef) runtimeParams(set Params) Params {
	var out Params
	for k, p := range f.Params {
		if !p.Runtime {
			continue
		}
		if out == nil {
			out = Params{}
		}
		out[k] = p.Value(set, k)
	}
	return out
}

// checkParam validates one parameter value against the feature's definition.
func (f *FeatureDef) checkParam(key, value string) error {
	p, ok := f.Params[key]
	if !ok {
		known := slices.Sorted(maps.Keys(f.Params))
		if len(known) == 0 {
			return fmt.Errorf("feature %s takes no parameters", f.Name)
		}
		return fmt.Errorf("feature %s has no parameter %q (known: %s)", f.Name, key, strings.Join(known, ", "))
	}
	if value == "" && p.Default != "" {
		return fmt.Errorf("empty value: leave %s out to use the default %s", key, p.Default)
	}
	if p.Format != nil && value != "" && !p.Format.MatchString(value) {
		return fmt.Errorf("malformed value %q: want %s", value, p.FormatHelp)
	}
	return nil
}
