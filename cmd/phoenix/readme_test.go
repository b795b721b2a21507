package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestREADMEExamples runs every `$ phoenix ...` line of the README's console
// blocks from the repository root and compares the output with what follows it.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir("../..")
	examples := 0
	inConsole := false
	var cmdLine string
	var want []string
	check := func() {
		if cmdLine == "" {
			return
		}
		examples++
		var out bytes.Buffer
		run(strings.Fields(strings.TrimPrefix(cmdLine, "$ phoenix ")), &out, &out)
		if diff := cmp.Diff(strings.Join(want, "\n")+"\n", out.String()); diff != "" {
			t.Errorf("README: %s (-README +actual):\n%s", cmdLine, diff)
		}
		cmdLine, want = "", nil
	}
	for line := range strings.Lines(string(readme)) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "```console":
			inConsole = true
		case inConsole && line == "```":
			check()
			inConsole = false
		case inConsole && strings.HasPrefix(line, "$ "):
			check()
			if !strings.HasPrefix(line, "$ phoenix ") {
				t.Fatalf("README console line %q: only phoenix commands are run here", line)
			}
			cmdLine = line
		case inConsole:
			want = append(want, line)
		}
	}
	if examples < 3 {
		t.Errorf("found %d README examples, want at least 3", examples)
	}
}
