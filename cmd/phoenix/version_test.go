package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionCommandAndFlagPrintTheSameLine(t *testing.T) {
	want := regexp.MustCompile(`^phoenix dev( \((commit [0-9a-f]{8}(, modified)?, )?go[^ ]+\))?\n$`)
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		code, out, errOut := phoenix(t, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("phoenix %s: exit %d, stderr %q", args[0], code, errOut)
		}
		if !want.MatchString(out) {
			t.Errorf("phoenix %s = %q, want it to match %s", args[0], out, want)
		}
		outs = append(outs, out)
	}
	if outs[0] != outs[1] || outs[1] != outs[2] {
		t.Errorf("version, --version and -v differ: %q", outs)
	}
}

func TestVersionRefusesArguments(t *testing.T) {
	code, out, errOut := phoenix(t, "version", "extra")
	if want := "phoenix: version: unexpected argument \"extra\": it takes none\n"; code != 1 || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, out, errOut, want)
	}
}

func TestDescribeBuild(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"
	cases := map[string]struct {
		version string
		info    *debug.BuildInfo
		want    string
	}{
		"no build information": {"dev", nil, "dev"},
		"a release with uncommitted changes": {"v0.3.0", &debug.BuildInfo{GoVersion: "go1.26.0", Settings: vcs(rev, "true")},
			"v0.3.0 (commit 1a2b3c4d, modified, go1.26.0)"},
		"a clean commit": {"v0.3.0-4-g1a2b3c4", &debug.BuildInfo{GoVersion: "go1.26.0", Settings: vcs(rev, "false")},
			"v0.3.0-4-g1a2b3c4 (commit 1a2b3c4d, go1.26.0)"},
		"no version control information": {"dev", &debug.BuildInfo{GoVersion: "go1.26.0"}, "dev (go1.26.0)"},
		"a short revision is kept whole": {"dev", &debug.BuildInfo{Settings: vcs("abc", "false")}, "dev (commit abc)"},
		"go install of a release": {"dev", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.0"}},
			"v0.3.0 (go1.26.0)"},
		"-ldflags wins over the module version": {"v0.4.0-rc1", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}},
			"v0.4.0-rc1"},
		"a pseudo-version names no release": {"dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20250102150405-1a2b3c4d5e6f+dirty"}},
			"dev"},
		"a local build's module version": {"dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := describeBuild(tc.version, tc.info); got != tc.want {
				t.Errorf("describeBuild = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionOfABuildWithLdflags builds phoenix the way make build does and
// checks that the version it was given and the commit it was built from are
// what it prints.
func TestVersionOfABuildWithLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "phoenix")
	// -buildvcs=auto undoes a GOFLAGS=-buildvcs=false, and still builds where
	// git is missing.
	build := exec.Command("go", "build", "-buildvcs=auto", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "phoenix v9.9.9-test ("
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		want += "commit " + strings.TrimSpace(string(head))[:8]
	}
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("phoenix %s: %v", arg, err)
		}
		if !strings.HasPrefix(string(out), want) || !strings.HasSuffix(string(out), ")\n") {
			t.Errorf("phoenix %s = %q, want it to start with %q", arg, out, want)
		}
	}
}
