package spec

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HealthCheck is a probe run inside a running container, on an interval:
// a shell command, an HTTP request or a TCP connect, each from inside the
// guest (so that 127.0.0.1 is the guest's own). A check that fails Retries
// times in a row makes the guest Unhealthy, which status shows and which
// keeps it from being Ready; OnFailure says what phoenix run does then.
//
// Where checks come from: a Container's own health list (not inherited: a
// clone is a guest of its own, and a Template never runs, so it has none),
// and the health lists of the guest's effective features, built-in or
// Feature documents, which follow the feature wherever it is installed or
// inherited. Check names are unique among a guest's effective checks: they
// name the script (health/NAME), the metrics and the status.
type HealthCheck struct {
	// Name identifies the check: lower-case letters, digits and hyphens.
	Name string `json:"name"`
	// Command is a shell body run inside the guest (sh -c): exit status 0
	// is healthy. A feature's check gets the feature's parameters as
	// environment variables, as its steps do.
	Command string `json:"command,omitempty"`
	// HTTP is a URL requested from inside the guest: a 2xx or 3xx answer
	// is healthy.
	HTTP string `json:"http,omitempty"`
	// TCP is host:port connected to from inside the guest: a connection
	// that opens is healthy.
	TCP string `json:"tcp,omitempty"`
	// Interval is the time between two runs, e.g. 30s or 5m (default 30s);
	// a bare number is seconds.
	Interval string `json:"interval,omitempty"`
	// Timeout bounds one run, e.g. 5s (default 5s); a bare number is
	// seconds. A run that takes longer fails.
	Timeout string `json:"timeout,omitempty"`
	// Retries is how many runs in a row must fail before the guest is
	// Unhealthy (default 3).
	Retries int `json:"retries,omitempty"`
	// OnFailure is what phoenix run does about an Unhealthy check: report
	// (the default: status and metrics say so), restart (reboot the
	// container) or reapply (install the feature that owns the check
	// again; only for a feature's checks).
	OnFailure HealthAction `json:"onFailure,omitempty"`
}

// HealthAction is what phoenix run does about a check that keeps failing.
type HealthAction string

const (
	HealthReport  HealthAction = "report"
	HealthRestart HealthAction = "restart"
	HealthReapply HealthAction = "reapply"
)

// The defaults and bounds of a check's numbers.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 5 * time.Second
	DefaultHealthRetries  = 3
	minHealthInterval     = time.Second
	maxHealthInterval     = 24 * time.Hour
	maxHealthTimeout      = 10 * time.Minute
	maxHealthRetries      = 100
)

var (
	// healthDuration is a bare number of seconds or a Go-style duration
	// of hours, minutes, seconds and milliseconds (30s, 1m30s, 500ms).
	healthDuration = regexp.MustCompile(`^([0-9]+|([0-9]+(h|m|s|ms))+)$`)
	// healthURL is an http(s) URL without spaces or quotes: the probe
	// passes it to curl, wget or bash as one word.
	healthURL = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$`)
	// healthTCP is host:port with a DNS name or IPv4 address, or
	// [IPv6]:port.
	healthTCP = regexp.MustCompile(`^([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$`)
)

// ParseHealthDuration reads a check's interval or timeout: a bare number is
// seconds; empty is unset (0).
func ParseHealthDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if !healthDuration.MatchString(s) {
		return 0, fmt.Errorf("%q: want seconds (10) or a duration such as 30s, 5m or 1m30s", s)
	}
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %v", s, err)
	}
	return d, nil
}

// EffectiveCheck is a check as a guest runs it: its numbers with their
// defaults, the feature that owns it ("" for the guest's own) and the
// environment its command gets.
type EffectiveCheck struct {
	HealthCheck
	// Feature owns the check; empty for a check of the guest's own spec.
	Feature   string
	Interval  time.Duration
	Timeout   time.Duration
	Retries   int
	OnFailure HealthAction
	// Env are the owning feature's parameters (a Feature document's),
	// for a command check.
	Env Params
}

// Owner says where the check comes from, for messages.
func (c EffectiveCheck) Owner() string {
	if c.Feature == "" {
		return "the guest's spec"
	}
	return "feature " + c.Feature
}

// HealthChecks are the checks a guest runs: its own (a Container's spec),
// then those of its effective features in install order. A Template has
// none of its own and runs none: it never runs.
func (res *Resolution) HealthChecks(r *Resolved) []EffectiveCheck {
	if r == nil || r.IsTemplate() {
		return nil
	}
	var out []EffectiveCheck
	if r.Guest != nil {
		for _, h := range r.Guest.Spec.Health {
			out = append(out, effectiveCheck(h, "", nil))
		}
	}
	for _, f := range res.Catalog.Order(r.Effective) {
		def, ok := res.Catalog.Lookup(f)
		if !ok {
			continue
		}
		var env Params
		if !def.BuiltIn() {
			env = maps.Clone(r.Params[f])
		}
		checks := def.Health
		if def.BuiltIn() {
			checks = builtinChecks(f, r.Runtime[f])
		}
		for _, h := range checks {
			out = append(out, effectiveCheck(h, f, env))
		}
	}
	return out
}

func effectiveCheck(h HealthCheck, feature string, env Params) EffectiveCheck {
	c := EffectiveCheck{HealthCheck: h, Feature: feature, Env: env,
		Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries, OnFailure: HealthReport}
	// Validation refused what does not parse.
	if d, err := ParseHealthDuration(h.Interval); err == nil && d > 0 {
		c.Interval = d
	}
	if d, err := ParseHealthDuration(h.Timeout); err == nil && d > 0 {
		c.Timeout = d
	}
	if h.Retries > 0 {
		c.Retries = h.Retries
	}
	if h.OnFailure != "" {
		c.OnFailure = h.OnFailure
	}
	return c
}

// checkHealthList checks a list of health checks on their own; owned says
// whether a feature owns them (reapply is allowed).
func checkHealthList(list []HealthCheck, owned bool, bad func(field, format string, args ...any)) {
	seen := map[string]bool{}
	for i, h := range list {
		field := fmt.Sprintf("spec.health[%d]", i)
		checkListedName(field+".name", "health check", h.Name, seen, bad)
		var kinds []string
		if strings.TrimSpace(h.Command) != "" {
			kinds = append(kinds, "command")
		}
		if h.HTTP != "" {
			kinds = append(kinds, "http")
			if !healthURL.MatchString(h.HTTP) {
				bad(field+".http", "%q is not an http or https URL such as http://127.0.0.1:8080/health (no spaces or quotes)", h.HTTP)
			} else if p := urlPort(h.HTTP); p != "" && !validPort(p) {
				bad(field+".http", "port %s is outside 1..65535", p)
			}
		}
		if h.TCP != "" {
			kinds = append(kinds, "tcp")
			host, port, err := net.SplitHostPort(h.TCP)
			switch {
			case err != nil || !healthTCP.MatchString(h.TCP) || host == "":
				bad(field+".tcp", "%q is not host:port such as 127.0.0.1:5432 ([::1]:5432 for IPv6)", h.TCP)
			case !validPort(port):
				bad(field+".tcp", "port %s is outside 1..65535", port)
			}
		}
		switch len(kinds) {
		case 0:
			bad(field, "a health check needs one of command, http or tcp")
		case 1:
		default:
			bad(field, "a health check is one of command, http or tcp, not %s", strings.Join(kinds, " and "))
		}
		numbersOK := true
		interval, err := ParseHealthDuration(h.Interval)
		switch {
		case err != nil:
			bad(field+".interval", "interval %v", err)
			numbersOK = false
		case h.Interval != "" && (interval < minHealthInterval || interval > maxHealthInterval):
			bad(field+".interval", "interval %s is outside %v..%v", h.Interval, minHealthInterval, maxHealthInterval)
			numbersOK = false
		}
		timeout, err := ParseHealthDuration(h.Timeout)
		switch {
		case err != nil:
			bad(field+".timeout", "timeout %v", err)
			numbersOK = false
		case h.Timeout != "" && (timeout < 100*time.Millisecond || timeout > maxHealthTimeout):
			bad(field+".timeout", "timeout %s is outside 100ms..%v", h.Timeout, maxHealthTimeout)
			numbersOK = false
		}
		if interval == 0 {
			interval = DefaultHealthInterval
		}
		if timeout == 0 {
			timeout = DefaultHealthTimeout
		}
		if numbersOK && timeout > interval {
			bad(field+".timeout", "timeout %v is longer than the interval %v: a run would still be going when the next is due", timeout, interval)
		}
		if h.Retries < 0 || h.Retries > maxHealthRetries {
			bad(field+".retries", "retries %d is outside 1..%d (failures in a row before the check is unhealthy)", h.Retries, maxHealthRetries)
		}
		switch h.OnFailure {
		case "", HealthReport, HealthRestart:
		case HealthReapply:
			if !owned {
				bad(field+".onFailure", "reapply installs again the feature that owns a check; a guest's own check has none: use restart or report (or put the check on a Feature)")
			}
		default:
			bad(field+".onFailure", "want report, restart or reapply, got %q", h.OnFailure)
		}
	}
}

func urlPort(u string) string {
	rest := u[strings.Index(u, "://")+3:]
	host, _, _ := strings.Cut(rest, "/")
	if _, p, ok := strings.Cut(host, ":"); ok {
		return p
	}
	return ""
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// health checks a guest's own health list.
func (v *validator) health(g *Guest, bad func(field, format string, args ...any)) {
	if len(g.Spec.Health) == 0 {
		return
	}
	if g.Kind == KindTemplate {
		bad("spec.health", "a Template never runs, so it runs no health checks, and its clones do not inherit a guest's own checks: put them on the Containers, or on a Feature the template installs")
		return
	}
	checkHealthList(g.Spec.Health, false, bad)
}

// healthResolved checks what depends on the effective features: that no
// two checks a guest runs share a name.
func (v *validator) healthResolved(r *Resolved, bad func(field, format string, args ...any)) {
	if r.IsTemplate() {
		return
	}
	res := &Resolution{Catalog: v.res.catalog}
	owner := map[string]string{}
	for _, c := range res.HealthChecks(r) {
		if c.Name == "" {
			continue
		}
		if prev, dup := owner[c.Name]; dup && prev != c.Owner() {
			field := "spec.features"
			if c.Feature == "" || strings.HasPrefix(prev, "the guest") {
				field = "spec.health"
			}
			bad(field, "health check %s comes from both %s and %s: check names are unique on a guest (they name its script, metrics and status); rename one", c.Name, prev, c.Owner())
			continue
		}
		owner[c.Name] = c.Owner()
	}
}

// healthDescriptions and healthFieldRules document and check health checks
// in the JSON Schema (schema.go merges them in).
var healthDescriptions = map[string]string{
	"GuestSpec.Health": "Health are the container's own health checks, run inside it by phoenix run on their interval and once by phoenix status. " +
		"Not inherited (a Template has none: it never runs); the checks of the guest's features are added to them.",
	"FeatureSpec.Health": "Health are the feature's health checks: every running container that has the feature (installed or inherited) runs them. " +
		"A check here may say onFailure: reapply, which installs the feature again.",
	"HealthCheck.Name": "Name identifies the check: lower-case letters, digits and hyphens, unique among a guest's checks. The script runs as health/NAME.",
	"HealthCheck.Command": "Command is a shell body run inside the guest (sh -c): exit status 0 is healthy. " +
		"A feature's check gets the feature's parameters as environment variables, as its steps do. Exactly one of command, http and tcp.",
	"HealthCheck.HTTP": "HTTP is a URL requested from inside the guest: a 2xx or 3xx answer is healthy. " +
		"The probe uses curl, else wget, else bash's /dev/tcp (plain http only), and says so when the guest has none of them.",
	"HealthCheck.TCP": "TCP is host:port connected to from inside the guest: a connection that opens is healthy. " +
		"The probe uses bash's /dev/tcp, else nc.",
	"HealthCheck.Interval": "Interval is the time between two runs, e.g. 30s or 5m (default 30s); a bare number is seconds.",
	"HealthCheck.Timeout":  "Timeout bounds one run, e.g. 5s (default 5s); a bare number is seconds. A run that takes longer fails.",
	"HealthCheck.Retries":  "Retries is how many runs in a row must fail before the guest is Unhealthy (default 3).",
	"HealthCheck.OnFailure": "OnFailure is what phoenix run does about an Unhealthy check: report (the default: status and metrics say so), " +
		"restart (reboot the container, with backoff) or reapply (install the feature that owns the check again; only for a feature's checks).",
}

var healthFieldRules = map[string][]rule{
	"GuestSpec.Health":      {items(notNull)},
	"FeatureSpec.Health":    {items(notNull)},
	"HealthCheck.Name":      {required, pattern(featureName)},
	"HealthCheck.HTTP":      {optPattern(healthURL)},
	"HealthCheck.TCP":       {optPattern(healthTCP)},
	"HealthCheck.Interval":  {optPattern(healthDuration)},
	"HealthCheck.Timeout":   {optPattern(healthDuration)},
	"HealthCheck.Retries":   {between(0, maxHealthRetries)},
	"HealthCheck.OnFailure": {oneOfStrings(string(HealthReport), string(HealthRestart), string(HealthReapply), "")},
}

func init() {
	maps.Copy(fieldDescriptions, healthDescriptions)
	maps.Copy(fieldRules, healthFieldRules)
}

// builtinHealth are the built-in features' checks: modest ones, that say the
// software answers, no more. ollama's API answers "Ollama is running" on /;
// docker info fails while the daemon is down.
// builtinChecks are a built-in feature's checks on a guest: its servers are
// probed where their settings make them listen.
func builtinChecks(feature string, settings Params) []HealthCheck {
	switch feature {
	case FeatureOllama:
		if host := settings["host"]; host != "" {
			return []HealthCheck{{Name: "ollama", HTTP: "http://" + probeAddress(host) + "/"}}
		}
	case FeatureVLLM:
		// vLLM's OpenAI server lists the model it serves at /v1/models.
		if settings["model"] != "" {
			return []HealthCheck{{Name: "vllm", HTTP: "http://" + probeAddress(net.JoinHostPort(settings["host"], settings["port"])) + "/v1/models",
				Interval: "30s", Timeout: "10s", Retries: 5}}
		}
		return nil
	}
	return builtinHealth[feature]
}

// probeAddress is where a server listening on HOST:PORT is reached from
// inside its guest: loopback for the wildcard addresses.
func probeAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

var builtinHealth = map[string][]HealthCheck{
	FeatureOllama: {{Name: "ollama", HTTP: "http://127.0.0.1:11434/"}},
	FeatureDocker: {{Name: "docker", Command: "docker info >/dev/null"}},
}

// checkListedName checks the name of one of a list's items (a feature's
// steps, a guest's health checks): present, lower-case letters, digits and
// hyphens, and not taken by an earlier item; seen collects the names.
func checkListedName(field, what, name string, seen map[string]bool, bad func(field, format string, args ...any)) {
	switch {
	case name == "":
		bad(field, "a %s needs a name (lower-case letters, digits and hyphens)", what)
	case !featureName.MatchString(name):
		bad(field, "%q is not a valid %s name (lower-case letters, digits and hyphens)", name, what)
	case seen[name]:
		bad(field, "%s %s is listed twice", what, name)
	}
	seen[name] = true
}
