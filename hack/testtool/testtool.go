// Package testtool finds the external programs some tests check phoenix's
// output with (shellcheck, OpenSSH, graphviz): real tools are the judge of
// what phoenix writes for them, not phoenix's own parsers.
package testtool

import (
	"os"
	"os/exec"
	"testing"
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
