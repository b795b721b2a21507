package sim

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Health checks: phoenix runs each as the script health/NAME, phase check,
// inside the container (pct exec, so a stopped container refuses it as
// pct does: "container 'N' not running!"). The model knows them by name and
// by the environment phoenix's probe reads:
//
//	PHOENIX_HEALTH_HTTP     a URL; PHOENIX_HEALTH_TCP host:port
//	PHOENIX_HEALTH_FEATURE  the feature that owns the check
//
// What the model has running answers: ollama's API (127.0.0.1:11434, or the
// check of feature ollama) once ollama is installed, docker (the check of
// feature docker) once docker is installed and the container started with
// nesting. Any other check (a user's command, a probe of a service the model
// does not know) passes, as a script the model does not know succeeds. The
// world's faults.health makes a named check fail: always, for a number of
// runs, or until the container next starts (a hung service a restart cures).

const healthScriptPrefix = "health/"

// healthFaultKey is a key of faults.health: VMID/CHECK.
var healthFaultKey = regexp.MustCompile(`^[0-9]+/[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// HealthFault makes a health check fail. In a world file it is fail (every
// run), untilRestart (until the container next starts), or a number of runs.
type HealthFault struct {
	Fail         bool
	Runs         int
	UntilRestart bool
	// boot is the run the untilRestart fault holds: a start after it cures
	// the check.
	boot *runState
}

// UnmarshalYAML reads fail, untilRestart or a number of runs.
func (f *HealthFault) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "fail":
		*f = HealthFault{Fail: true}
		return nil
	case "untilRestart":
		*f = HealthFault{UntilRestart: true}
		return nil
	}
	runs, err := strconv.Atoi(n.Value)
	if err != nil || runs < 0 || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a health fault is fail, untilRestart or a number of failing runs, got %q", n.Line, n.Value)
	}
	*f = HealthFault{Runs: runs}
	return nil
}

// MarshalYAML writes the fault the way UnmarshalYAML reads it.
func (f HealthFault) MarshalYAML() (any, error) {
	switch {
	case f.Fail:
		return "fail", nil
	case f.UntilRestart:
		return "untilRestart", nil
	}
	return f.Runs, nil
}

// SetHealthFault makes the check of a container fail as f says (the zero
// HealthFault heals it), as a test breaks and heals a service.
func (s *Sim) SetHealthFault(vmid int, check string, f HealthFault) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	faults := maps.Clone(s.c.world.Spec.Faults.Health)
	if faults == nil {
		faults = map[string]HealthFault{}
	}
	key := fmt.Sprintf("%d/%s", vmid, check)
	if f == (HealthFault{}) {
		delete(faults, key)
	} else {
		faults[key] = f
	}
	s.c.world.Spec.Faults.Health = faults
}

// health runs a health check, under the cluster lock.
func (x *script) health() int {
	check := strings.TrimPrefix(x.name, healthScriptPrefix)
	if x.phase != "check" {
		return x.fail(2, "%s: a health check runs in phase check, not %q", x.name, x.phase)
	}
	if why := x.healthFault(check); why != "" {
		fmt.Fprintln(&x.out, why)
		return 1
	}
	url, target := x.env["PHOENIX_HEALTH_HTTP"], x.env["PHOENIX_HEALTH_TCP"]
	if url != "" && !strings.HasPrefix(url, "http://") && !x.g.disk.base {
		// Without base there is no curl; bash's /dev/tcp speaks no TLS.
		fmt.Fprintf(&x.out, "no curl or wget in the guest to request %s (bash's /dev/tcp speaks plain http only)\n", url)
		return 127
	}
	switch feature := x.env["PHOENIX_HEALTH_FEATURE"]; {
	case feature == "ollama" || servesOllama(url, target):
		// The API answers while ollama's service runs.
		if x.g.disk.ollama == "" || x.g.run.serviceState("ollama") != "active" {
			fmt.Fprintf(&x.out, "no answer from %s (curl exit 7)\n", cmpOr(url, target))
			return 1
		}
		fmt.Fprintf(&x.out, "HTTP 200 from %s\n", cmpOr(url, target))
	case feature == "vllm":
		// vLLM's OpenAI server, once its unit runs (the vllm feature's
		// model setting writes it) on an installed vllm.
		if x.g.disk.vllm == "" || x.g.run.serviceState("vllm") != "active" {
			fmt.Fprintf(&x.out, "no answer from %s (curl exit 7)\n", cmpOr(url, target))
			return 1
		}
		fmt.Fprintf(&x.out, "HTTP 200 from %s\n", cmpOr(url, target))
	case feature == "docker":
		switch {
		case !x.g.disk.docker:
			fmt.Fprintln(&x.err, "sh: 1: docker: not found")
			return 127
		case propString(x.g.run.features, "")["nesting"] != "1":
			fmt.Fprintln(&x.err, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
			return 1
		}
	}
	return 0
}

// healthFault reports why the world makes a check fail now, or "".
func (x *script) healthFault(check string) string {
	faults := x.c.world.Spec.Faults.Health
	key := fmt.Sprintf("%d/%s", x.g.vmid, check)
	f, ok := faults[key]
	if !ok {
		return ""
	}
	switch {
	case f.Fail:
		return "injected failure (faults.health " + key + ": fail)"
	case f.Runs > 0:
		f.Runs--
		if f.Runs == 0 {
			delete(faults, key)
		} else {
			faults[key] = f
		}
		return "injected failure (faults.health " + key + ")"
	case f.UntilRestart:
		if f.boot == nil {
			f.boot = x.g.run
			faults[key] = f
		}
		if f.boot == x.g.run {
			return "no answer: the service hangs until the container restarts (faults.health " + key + ": untilRestart)"
		}
		delete(faults, key)
	}
	return ""
}

// servesOllama reports whether a probe targets ollama's API on the guest.
func servesOllama(url, target string) bool {
	hostport := target
	if url != "" {
		rest := strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
		hostport, _, _ = strings.Cut(rest, "/")
	}
	host, port, err := net.SplitHostPort(hostport)
	return err == nil && port == "11434" && (host == "127.0.0.1" || host == "localhost" || host == "::1")
}
