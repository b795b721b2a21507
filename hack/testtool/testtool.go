// Package testtool finds the external programs some tests check phoenix's
// output with (shellcheck, OpenSSH, graphviz): real tools are the judge of
// what phoenix writes for them, not phoenix's own parsers.
package testtool

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// RequireEnv names the variable that turns a missing tool from a skip into a
// failure. CI (.ci/run) sets it after installing every tool, so that no check
// passes there by skipping itself.
const RequireEnv = "PHOENIX_REQUIRE_TOOLS"

// Require returns the path of the named program. When it is not installed the
// test is skipped, or fails where RequireEnv is set.
func Require(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is not installed, and %s is set: install it (see .ci/run)", name, RequireEnv)
	}
	t.Skipf("%s is not installed; install it to run this check (.ci/run does)", name)
	return ""
}

// Unable ends a test that this machine cannot run (no CAP_MKNOD, say): a
// skip, or a failure where RequireEnv is set, as on CI, where a check that
// did not run has not passed.
func Unable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s, and %s is set", msg, RequireEnv)
	}
	t.Skip(msg)
}

// MainNoLeaks runs a package's tests and fails it if goroutines outlive them:
// every test closes what it started, so a goroutine left over is a leak.
// Call it from TestMain.
func MainNoLeaks(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	// The fuzzing engine keeps goroutines of its own (a signal handler).
	if f := flag.Lookup("test.fuzz"); code == 0 && (f == nil || f.Value.String() == "") {
		// Client-side goroutines wind down asynchronously after a Close.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if after := runtime.NumGoroutine(); after > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before tests, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

// Shells returns the POSIX shells installed here (dash is Proxmox VE's
// /bin/sh, bash is root's login shell there), for tests that let real shells
// judge what phoenix writes for them. None is a skip, or a failure where
// RequireEnv is set.
func Shells(t testing.TB) []string {
	t.Helper()
	var found []string
	for _, sh := range []string{"dash", "bash", "sh"} {
		if p, err := exec.LookPath(sh); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		Require(t, "sh")
	}
	return found
}
