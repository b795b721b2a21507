package spec

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// feature is a Feature document with extra appended to its spec, which
// starts at line 5.
func feature(name, extra string) string {
	return "---\napiVersion: phoenix/v1alpha1\nkind: Feature\nmetadata: {name: " + name + "}\nspec:\n" +
		"  steps: [{name: s, check: \"true\", apply: \"true\"}]\n" + extra
}

func TestHealthValidation(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"what the original configs declare is valid (interval in seconds)": {
			src: container(`  health:
    - {name: step-ca, command: /usr/local/phoenix_hypervisor/bin/health_checks/check_step_ca.sh, retries: 5, interval: 10}
    - {name: web, http: "http://127.0.0.1:8080/health?full=1", interval: 1m, timeout: 2s, onFailure: restart}
    - {name: db, tcp: "127.0.0.1:5432", onFailure: report}
    - {name: v6, tcp: "[::1]:22"}
`),
		},
		"a check is exactly one of command, http and tcp, and has a name": {
			src: container(`  health:
    - {interval: 10s}
    - {name: both, command: "true", tcp: "127.0.0.1:1"}
    - {name: Bad_Name, command: "true"}
    - {name: dup, command: "true"}
    - {name: dup, command: "false"}
`),
			want: []problem{
				{18, "spec.health[0].name", "needs a name"},
				{18, "spec.health[0]", "needs one of command, http or tcp"},
				{19, "spec.health[1]", "not command and tcp"},
				{20, "spec.health[2].name", "is not a valid health check name"},
				{22, "spec.health[4].name", "dup is listed twice"},
			},
		},
		"probes' targets, numbers and policy are checked": {
			src: container(`  health:
    - {name: a, http: "ftp://x/"}
    - {name: b, http: "http://x:70000/"}
    - {name: c, tcp: "localhost"}
    - {name: d, tcp: "h:0"}
    - {name: e, command: "true", interval: "ten", timeout: 1h, retries: -1}
    - {name: f, command: "true", interval: 5s, timeout: 10s}
    - {name: g, command: "true", onFailure: reboot}
    - {name: h, command: "true", onFailure: reapply}
`),
			want: []problem{
				{18, "spec.health[0].http", "is not an http or https URL"},
				{19, "spec.health[1].http", "port 70000 is outside 1..65535"},
				{20, "spec.health[2].tcp", "is not host:port"},
				{21, "spec.health[3].tcp", "port 0 is outside 1..65535"},
				{22, "spec.health[4].interval", `"ten": want seconds`},
				{22, "spec.health[4].timeout", "outside 100ms..10m0s"},
				{22, "spec.health[4].retries", "retries -1 is outside 1..100"},
				{23, "spec.health[5].timeout", "longer than the interval"},
				{24, "spec.health[6].onFailure", `want report, restart or reapply, got "reboot"`},
				{25, "spec.health[7].onFailure", "a guest's own check has none"},
			},
		},
		"a template runs no checks": {
			src: header + "  health: [{name: x, command: \"true\"}]\n",
			want: []problem{
				{10, "spec.health", "a Template never runs"},
			},
		},
		"a feature's checks may reapply it; names are unique on a guest": {
			src: container("  features: [web]\n  health: [{name: http, command: \"true\"}]\n") +
				feature("web", "  health:\n    - {name: http, http: \"http://127.0.0.1/\", onFailure: reapply}\n    - {name: x, command: \"\"}\n"),
			want: []problem{
				{18, "spec.health", "health check http comes from both the guest's spec and feature web"},
				{27, "spec.health[1]", "needs one of command, http or tcp"},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b problem) bool { return a == b })); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHealthChecksOfAGuest: a guest runs its own checks and those of its
// effective features, inherited ones included, with the defaults filled
// in; a template runs none, and a clone does not inherit a guest's own.
func TestHealthChecksOfAGuest(t *testing.T) {
	res := resolveDocs(t,
		doc("Template", "t", 100, root, "  features: [ollama, probe]\n"),
		doc("Container", "c", 101, "{template: t}", "  health: [{name: own, command: \"true\", interval: \"10\", retries: 5, onFailure: restart}]\n  featureConfig: {probe: {PORT: \"81\"}}\n"),
		"---\napiVersion: phoenix/v1alpha1\nkind: Feature\nmetadata: {name: probe}\nspec:\n  config: {PORT: \"80\"}\n  steps: [{name: s, check: \"true\", apply: \"true\"}]\n"+
			"  health: [{name: port, command: \"nc -z 127.0.0.1 $PORT\", onFailure: reapply, timeout: 2s}]\n",
	)
	tmpl, _ := res.Guest("t")
	if got := res.HealthChecks(tmpl); len(got) != 0 {
		t.Errorf("a template's checks: %v, want none", got)
	}
	c, _ := res.Guest("c")
	got := res.HealthChecks(c)
	want := []EffectiveCheck{
		{HealthCheck: HealthCheck{Name: "own", Command: "true", Interval: "10", Retries: 5, OnFailure: HealthRestart},
			Interval: 10 * time.Second, Timeout: DefaultHealthTimeout, Retries: 5, OnFailure: HealthRestart},
		{HealthCheck: HealthCheck{Name: "ollama", HTTP: "http://127.0.0.1:11434/"}, Feature: FeatureOllama,
			Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries, OnFailure: HealthReport},
		{HealthCheck: HealthCheck{Name: "port", Command: "nc -z 127.0.0.1 $PORT", OnFailure: HealthReapply, Timeout: "2s"}, Feature: "probe",
			Interval: DefaultHealthInterval, Timeout: 2 * time.Second, Retries: DefaultHealthRetries, OnFailure: HealthReapply, Env: Params{"PORT": "81"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
}

func TestParseHealthDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "10": 10 * time.Second, "30s": 30 * time.Second, "1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond} {
		if got, err := ParseHealthDuration(in); err != nil || got != want {
			t.Errorf("ParseHealthDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"10x", "-1s", "1.5s", "s", "1 m"} {
		if _, err := ParseHealthDuration(in); err == nil {
			t.Errorf("ParseHealthDuration(%q) took it", in)
		}
	}
}
