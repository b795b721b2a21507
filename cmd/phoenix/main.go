// Command phoenix keeps Proxmox VE LXC containers, the templates they are cloned
// from and the features installed in them (NVIDIA driver, GPU passthrough, CUDA,
// docker, ...) the way YAML specs describe them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
)

// version is the release this binary is, set at build time by make build:
// go build -ldflags "-X main.version=$(git describe --tags --always --dirty)".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// versionLine describes this build for phoenix version and phoenix --version:
// "v0.3.0 (commit 1a2b3c4d, modified, go1.26.0)".
func versionLine() string {
	info, _ := debug.ReadBuildInfo()
	return describeBuild(version, info)
}

// pseudoVersion matches the timestamp and commit of a Go pseudo-version
// (v0.0.0-20250102150405-1a2b3c4d5e6f), which names no release.
var pseudoVersion = regexp.MustCompile(`\d{14}-[0-9a-f]{12}`)

// describeBuild is versionLine for a given version and build information
// (nil when the binary has none).
func describeBuild(v string, info *debug.BuildInfo) string {
	if info == nil {
		return v
	}
	// go install .../cmd/phoenix@v0.3.0 sets no -ldflags but records the release.
	if m := info.Main.Version; v == "dev" && strings.HasPrefix(m, "v") && !pseudoVersion.MatchString(m) {
		v = m
	}
	var about []string
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		about = append(about, "commit "+rev[:min(8, len(rev))])
		if settings["vcs.modified"] == "true" {
			about = append(about, "modified")
		}
	}
	if info.GoVersion != "" {
		about = append(about, info.GoVersion)
	}
	if len(about) == 0 {
		return v
	}
	return v + " (" + strings.Join(about, ", ") + ")"
}

// exitError carries an exit status other than 1 out of a command, or a status 1
// whose explanation has already been printed.
type exitError struct {
	code int
	err  error // nil when the command printed its own explanation
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// terraformFlags accepts terraform's single-dash -out FILE and -out=FILE as
// --out, which a single-dash flag would otherwise read as -o ut.
func terraformFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "-out" || strings.HasPrefix(a, "-out=") {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// run executes the CLI and returns the process exit status: 0 on success, 1 on
// error (or invalid specs), other values where a command documents them.
// Everything it writes passes the redactor of the environment's credentials.
func run(args []string, stdout, stderr io.Writer) int {
	red := credentialRedactor(os.Getenv)
	out, errOut := red.Writer(stdout), red.Writer(stderr)
	defer func() { _ = out.Flush(); _ = errOut.Flush() }()
	stdout, stderr = out, errOut
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(terraformFlags(args))
	err := cmd.ExecuteContext(withRedactor(context.Background(), red))
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "phoenix:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "phoenix:", err)
	return 1
}
