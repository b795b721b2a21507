package main

import (
	"os"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestReferenceNamesEveryValue: the README's reference table names every
// action, outcome, problem kind, error kind and condition the code has.
func TestReferenceNamesEveryValue(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ref, ok := strings.Cut(string(b), "## Reference: actions, outcomes and kinds")
	if !ok {
		t.Fatal("the README has no reference section")
	}
	ref, _, _ = strings.Cut(ref, "\n## ")
	var values []string
	for _, a := range reconciler.Actions {
		values = append(values, a.String())
	}
	for _, o := range reconciler.Outcomes {
		values = append(values, string(o))
	}
	for _, k := range reconciler.ProblemKinds {
		values = append(values, string(k))
	}
	for _, k := range reconciler.ErrorKinds {
		values = append(values, string(k))
	}
	values = append(values, reconciler.CondExists, reconciler.CondConfigInSync, reconciler.CondFeaturesReady,
		reconciler.CondGPUReady, reconciler.CondReady, reconciler.CondStale)
	for _, v := range values {
		if !strings.Contains(ref, "`"+v+"`") {
			t.Errorf("the README's reference does not name `%s`", v)
		}
	}
}
