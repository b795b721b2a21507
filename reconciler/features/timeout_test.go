package features

import (
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// TestEveryBuiltinStepHasItsBound: each built-in step that applies anything
// has a bound of its own, long for the downloads and installs, short for a
// configuration; checks and verifies get CheckTimeout.
func TestEveryBuiltinStepHasItsBound(t *testing.T) {
	res := examples(t)
	g, _ := res.Guest("vllm-qwen")
	steps := []Step{Identity()}
	for _, f := range spec.BuiltinFeatureNames() {
		fs, err := Steps(res.Catalog, f, Context{Guest: g, Params: g.Params[f], DriverVersion: "580.76.05"})
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, fs...)
	}
	for _, s := range steps {
		if s.Wait {
			continue // only polled: its checks are bounded, the wait by WaitTimeout
		}
		if s.Timeout <= 0 {
			t.Errorf("%s has no timeout of its own", s.Name)
		}
		if got := s.TimeoutFor("check"); got != min(s.Timeout, CheckTimeout) {
			t.Errorf("%s check: %v", s.Name, got)
		}
	}
	for name, want := range map[string]time.Duration{"cuda-toolkit/toolkit": time.Hour, "vllm/install": time.Hour,
		"nvidia-container-toolkit/configure": 5 * time.Minute} {
		if got := builtinTimeouts[name]; got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// TestUserStepTimeout: a Feature step's timeout bounds its apply and
// uninstall; without one, DefaultTimeout does.
func TestUserStepTimeout(t *testing.T) {
	set, err := spec.Parse("slow.yaml", []byte(`apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: slow}
spec:
  steps:
    - {name: fetch, check: "false", apply: "true", timeout: 2h}
    - {name: quick, check: "false", apply: "true", timeout: 90s}
    - {name: plain, check: "false", apply: "true"}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := spec.Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Steps(res.Catalog, "slow", Context{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][4]time.Duration{
		"slow/fetch": {2 * time.Hour, 2 * time.Hour, CheckTimeout, CheckTimeout},
		"slow/quick": {90 * time.Second, 90 * time.Second, 90 * time.Second, 90 * time.Second},
		"slow/plain": {DefaultTimeout, DefaultTimeout, CheckTimeout, CheckTimeout},
	}
	for _, s := range steps {
		w := want[s.Name]
		got := [4]time.Duration{s.TimeoutFor("apply"), s.TimeoutFor("uninstall"), s.TimeoutFor("check"), s.TimeoutFor("verify")}
		if got != w {
			t.Errorf("%s: apply, uninstall, check, verify %v, want %v", s.Name, got, w)
		}
	}
}
