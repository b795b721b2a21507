package features

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// A step waits for one that still runs in its container (an earlier run's,
// whose session ended): the check after a lost apply sees its work done,
// never half of it. A daemon a step started keeps the lock's file open, and
// is not waited for.
func TestStepLockWaitsForTheStepStillRunning(t *testing.T) {
	testtool.Require(t, "flock")
	eachShell(t, func(t *testing.T, shell string) {
		s := newSandbox(t)
		s.fake("sleep", `exec /bin/sleep "$@"`)
		mark := func(name string) string { return filepath.Join(s.root, name) }
		first := Step{Name: "test/first", Body: prelude + `touch "$PHOENIX_TEST_ROOT/started"; sleep 2; echo done >"$PHOENIX_TEST_ROOT/work"`}
		cmd := exec.Command(shell, "-c", first.Body, first.Name, "apply")
		cmd.Env = []string{"PATH=" + s.bin + ":/usr/bin:/bin", "PHOENIX_TEST_ROOT=" + s.root, "TMPDIR=" + s.tmp}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Wait() })
		waitFile(t, mark("started"))
		check := Step{Name: "test/first", Body: prelude + `cat "$PHOENIX_TEST_ROOT/work"`}
		r := s.run(shell, check, "check")
		if r.code != 0 || !strings.Contains(r.stdout, "waiting for a phoenix step of an earlier run") || !strings.HasSuffix(r.stdout, "done\n") {
			t.Fatalf("the check beside a running apply: %+v, want it to wait and find the work done", r)
		}

		// A step that leaves a daemon behind (here a sleep in the
		// background, holding the lock's descriptor): the next step finds
		// the step itself gone and runs while the daemon still does.
		daemon := Step{Name: "test/daemon", Body: prelude + `sleep 30 >/dev/null 2>&1 & echo $! >"$PHOENIX_TEST_ROOT/daemon.pid"`}
		if r := s.run(shell, daemon, "apply"); r.code != 0 {
			t.Fatalf("the daemon's step: %+v", r)
		}
		b, err := os.ReadFile(mark("daemon.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := os.FindProcess(pid)
		t.Cleanup(func() { _ = p.Kill() })
		r = s.run(shell, Step{Name: "test/next", Body: prelude + `echo ran`}, "apply")
		if r.code != 0 || !strings.HasSuffix(r.stdout, "ran\n") {
			t.Fatalf("the step after the daemon's: %+v", r)
		}
		if err := exec.Command("kill", "-0", strconv.Itoa(pid)).Run(); err != nil {
			t.Fatalf("the daemon had ended before the next step ran, so the test proves nothing: %v", err)
		}
	})
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
