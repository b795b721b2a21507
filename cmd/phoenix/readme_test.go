package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/sim"
)

// TestREADMEExamples runs every `$ phoenix ...` line of the README's console
// blocks, in order, from the repository root, against a simulator serving the
// example world, and compares the output with what follows the line. A "..."
// line stands for any number of lines.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	w, err := sim.LoadWorld("../../examples/homelab/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(w, sim.Options{TimeScale: 0.002})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	t.Chdir("../..")
	examples := 0
	// fence is the open console block's fence: ```console, or a longer
	// one around output that has ``` lines of its own (plan -o markdown).
	fence := ""
	var cmdLine string
	var want []string
	check := func() {
		if cmdLine == "" {
			return
		}
		examples++
		var out bytes.Buffer
		// The flag goes before a "--", after which the words are a command's.
		args := strings.Fields(strings.TrimPrefix(cmdLine, "$ phoenix "))
		dash := slices.Index(args, "--")
		if dash < 0 {
			dash = len(args)
		}
		run(slices.Concat(args[:dash], []string{"--log-level", "warn"}, args[dash:]), &out, &out)
		got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if !matchLines(want, got) {
			t.Errorf("README: %s (-README +actual):\n%s", cmdLine, cmp.Diff(strings.Join(want, "\n"), strings.Join(got, "\n")))
		}
		cmdLine, want = "", nil
	}
	for line := range strings.Lines(string(readme)) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case fence == "" && strings.HasPrefix(line, "```") && strings.TrimLeft(line, "`") == "console":
			fence = strings.TrimSuffix(line, "console")
		case fence != "" && line == fence:
			check()
			fence = ""
		case fence != "" && strings.HasPrefix(line, "$ "):
			check()
			if !strings.HasPrefix(line, "$ phoenix ") {
				t.Fatalf("README console line %q: only phoenix commands are run here", line)
			}
			cmdLine = line
		case fence != "":
			want = append(want, line)
		}
	}
	if examples < 7 {
		t.Errorf("found %d README examples, want at least 7", examples)
	}
}

// matchLines matches got against want, where a "..." line in want stands for
// any number of lines.
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && got[0] == want[0] && matchLines(want[1:], got[1:])
}
