package sim

import "testing"

// TestBodyExit: a declared body fails its apply with the declared status and
// line and leaves no record; another body under the same name (the spec
// fixed) runs as any unknown script does, and its record is what
// StepRecorded reads. Checks never take the declared outcome.
func TestBodyExit(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	const broken, fixed = "echo 'no widget' >&2; exit 3", "touch /etc/widget"
	if err := l.s.SetBodyExit("mine/step", broken, 300, "x"); err == nil {
		t.Error("exit status 300 was accepted")
	}
	if err := l.s.SetBodyExit("mine/step", broken+"\n", 3, "no widget"); err != nil {
		t.Fatal(err)
	}
	wantExit(t, "declared body", l.script("pve1", 102, "mine/step", "apply", broken), 3, "no widget")
	wantExit(t, "check after the failure", l.script("pve1", 102, "mine/step", "check", broken), 1)
	if l.s.StepRecorded(102, "mine/step") {
		t.Error("the failed apply was recorded")
	}
	wantExit(t, "fixed body", l.script("pve1", 102, "mine/step", "apply", fixed), 0)
	wantExit(t, "check after the fix", l.script("pve1", 102, "mine/step", "check", broken), 0)
	if !l.s.StepRecorded(102, "mine/step") || l.s.StepRecorded(102, "other/step") || l.s.StepRecorded(999, "mine/step") {
		t.Error("StepRecorded does not say what was applied where")
	}
	// Code 0 takes the declaration back.
	if err := l.s.SetBodyExit("mine/step", broken, 0, ""); err != nil {
		t.Fatal(err)
	}
	wantExit(t, "undeclared body", l.script("pve1", 102, "mine/step", "apply", broken), 0)
}
