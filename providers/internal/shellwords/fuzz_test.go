package shellwords

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzSplit feeds arbitrary command lines to Split. Split must never panic;
// a rejection must be a *SyntaxError pointing inside the input; and whatever
// it accepts must be stable: re-joining and re-splitting the words gives the
// same words back.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"", "pct exec 100 -- ls", `a "b c" 'd e' f\ g`, "'", `"`, `\`,
		"a\\\nb", "$(x)", "A=b", "#", "'it'\\''s'", "\"\\$\\`\\\"\\\\\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		words, err := Split(cmd)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Split(%q): error %T %v is not a *SyntaxError", cmd, err, err)
			}
			if se.Offset < 0 || se.Offset >= len(cmd) {
				t.Fatalf("Split(%q): offset %d outside input", cmd, se.Offset)
			}
			if words != nil {
				t.Fatalf("Split(%q): words %q returned with error", cmd, words)
			}
			return
		}
		for _, w := range words {
			if strings.IndexByte(w, 0) >= 0 {
				t.Fatalf("Split(%q) produced a word with NUL: %q", cmd, w)
			}
		}
		again, err := Split(Join(words))
		if err != nil {
			t.Fatalf("Split(Join(%q)): %v", words, err)
		}
		if diff := cmp.Diff(words, again); diff != "" {
			t.Fatalf("Split(%q) not stable under Join (-first +second):\n%s", cmd, diff)
		}
	})
}

// FuzzRoundTrip checks that Join never produces something Split rejects and
// that Split(Join(argv)) == argv. The fuzzer's string is cut at NUL bytes
// into argv words, which conveniently also keeps NUL, which no shell command
// line can carry, out of the words.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{
		"pct\x00exec\x00100\x00--\x00sh\x00-c\x00echo hi; exit 3",
		"", "\x00", "'", "A=b\x00x", "time", "$(rm -rf /)", "a\nb\x00\\\n",
		"héllo\x00\xff", "-rf\x00--\x00~\x00#c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		argv := strings.Split(data, "\x00")
		line := Join(argv)
		got, err := Split(line)
		if err != nil {
			t.Fatalf("Split(Join(%q)) = %v (line %q)", argv, err, line)
		}
		if diff := cmp.Diff(argv, got); diff != "" {
			t.Fatalf("Split(Join(argv)) mismatch for line %q (-want +got):\n%s", line, diff)
		}
	})
}
