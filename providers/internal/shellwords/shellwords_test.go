package shellwords

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "''"},
		{"pct", "pct"},
		{"--", "--"},
		{"-rf", "-rf"},
		{"/etc/pve/lxc/100.conf", "/etc/pve/lxc/100.conf"},
		{"net0=name=eth0,bridge=vmbr0", "net0=name=eth0,bridge=vmbr0"},
		{"user@host:1%2+3", "user@host:1%2+3"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"''", `''\'''\'''`},
		{"$(rm -rf /)", "'$(rm -rf /)'"},
		{"a;b", "'a;b'"},
		{"~", "'~'"},
		{"a\nb", "'a\nb'"},
		{"héllo", "'héllo'"},
		{`back\slash`, `'back\slash'`},
		{"*", "'*'"},
		{"#x", "'#x'"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"pct", "exec", "100", "--", "sh", "-c", "echo hi; exit 3"},
			"pct exec 100 -- sh -c 'echo hi; exit 3'"},
		{[]string{"echo", ""}, "echo ''"},
		// Command-name position: these would be syntax, not a command name.
		{[]string{"A=b", "x"}, "'A=b' x"},
		{[]string{"time", "x"}, "'time' x"},
		{[]string{"if"}, "'if'"},
		// ...but only there.
		{[]string{"env", "A=b", "time", "if"}, "env A=b time if"},
		// Not assignment-shaped: left bare.
		{[]string{"=x"}, "=x"},
		{[]string{"1A=b"}, "1A=b"},
		{[]string{"a-b=c"}, "a-b=c"},
	}
	for _, tt := range tests {
		if got := Join(tt.in); got != tt.want {
			t.Errorf("Join(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  \t ", nil},
		{"pct", []string{"pct"}},
		{"  pct  exec\t100 ", []string{"pct", "exec", "100"}},
		{"''", []string{""}},
		{`""`, []string{""}},
		{"a '' b", []string{"a", "", "b"}},
		{"'a b'", []string{"a b"}},
		{`'a\b'`, []string{`a\b`}},
		{`'$x "y" *'`, []string{`$x "y" *`}},
		{`"a b"`, []string{"a b"}},
		{`"a\"b"`, []string{`a"b`}},
		{`"a\\b"`, []string{`a\b`}},
		{`"a\$b"`, []string{`a$b`}},
		{"\"a\\`b\"", []string{"a`b"}},
		{`"a\qb"`, []string{`a\qb`}}, // other backslashes are literal in "..."
		{`"it's"`, []string{"it's"}},
		{`a\ b`, []string{"a b"}},
		{`\'`, []string{"'"}},
		{`\$HOME`, []string{"$HOME"}},
		{`\*`, []string{"*"}},
		{`\\`, []string{`\`}},
		{`\#x`, []string{"#x"}},
		{`a#b`, []string{"a#b"}},
		{`''#b`, []string{"#b"}},
		{`'it'\''s'`, []string{"it's"}},
		{`a'b'"c"\d`, []string{"abcd"}},
		{"a\\\nb", []string{"ab"}},       // line continuation inside a word
		{"a \\\n b", []string{"a", "b"}}, // ...and between words
		{"\"a\\\nb\"", []string{"ab"}},   // ...and inside double quotes
		{"'a\\\nb'", []string{"a\\\nb"}}, // but not inside single quotes
		{"'a\nb'", []string{"a\nb"}},     // quoted newline is data
		{"\"a\nb\"", []string{"a\nb"}},   // quoted newline is data
		{"-- -x --y=z", []string{"--", "-x", "--y=z"}},
		{"héllo wörld", []string{"héllo", "wörld"}}, // UTF-8 is never special
		{"a]b ^c", []string{"a]b", "^c"}},
		{"echo A=b", []string{"echo", "A=b"}}, // assignment-shaped, but not first
		{"=x", []string{"=x"}},
		{"1A=b", []string{"1A=b"}},
		{"a-b=c", []string{"a-b=c"}},
		{"'A'=b", []string{"A=b"}},          // quoted name: not an assignment
		{`A\=b`, []string{"A=b"}},           // quoted '=': not an assignment
		{"'time' x", []string{"time", "x"}}, // quoted reserved word
		{"echo if then fi", []string{"echo", "if", "then", "fi"}},
		{"'\x01\x7f'", []string{"\x01\x7f"}}, // control characters, quoted
		{"\"!\"", []string{"!"}},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if err != nil {
			t.Errorf("Split(%q): unexpected error: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Split(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		in         string
		wantOffset int
		wantReason string // substring of Reason
	}{
		{"a | b", 2, "operator"},
		{"a&", 1, "operator"},
		{"a; b", 1, "operator"},
		{"a > f", 2, "operator"},
		{"a <f", 2, "operator"},
		{"(a)", 0, "operator"},
		{"a\nb", 1, "newline"},
		{"a\n", 1, "newline"},
		{"$HOME", 0, "expansion"},
		{"a$", 1, "expansion"},
		{"$(rm -rf /)", 0, "expansion"},
		{"$'x'", 0, "expansion"},
		{"`id`", 0, "command substitution"},
		{`"$HOME"`, 1, "expansion"},
		{"\"`id`\"", 1, "command substitution"},
		{"*", 0, "pathname"},
		{"a?", 1, "pathname"},
		{"[ab]", 0, "pathname"},
		{"a{b,c}", 1, "brace"},
		{"}", 0, "brace"},
		{"!", 0, "!"},
		{"~", 0, "tilde"},
		{"~root", 0, "tilde"},
		{"echo a=~", 7, "tilde"}, // bash expands this one
		{"#c", 0, "comment"},
		{"a #c", 2, "comment"},
		{"a \\\n#c", 4, "comment"}, // a continuation does not start a word
		{"'abc", 0, "unterminated single"},
		{`a "bc`, 2, "unterminated double"},
		{`"a\`, 0, "unterminated double"},
		{`a\`, 1, "trailing backslash"},
		{"a\x00b", 1, "NUL"},
		{"'a\x00b'", 2, "NUL"},
		{"\"a\x00b\"", 2, "NUL"},
		{"\\\x00", 1, "NUL"},
		{"a\rb", 1, "control"},
		{"a\x7f", 1, "control"},
		{"if true", 0, "reserved word"},
		{"time x", 0, "reserved word"},
		{"i\\\nf", 0, "reserved word"}, // continuation removed before parsing
		{"A=b", 0, "assignment"},
		{"A=b cmd", 0, "assignment"},
		{"_x1=", 0, "assignment"},
		{"A\\\n=b", 0, "assignment"},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Split(%q) = %q, %v; want *SyntaxError", tt.in, got, err)
			continue
		}
		if got != nil {
			t.Errorf("Split(%q) returned words %q along with an error", tt.in, got)
		}
		if se.Offset != tt.wantOffset || !strings.Contains(se.Reason, tt.wantReason) {
			t.Errorf("Split(%q) error = {Offset: %d, Reason: %q}; want offset %d, reason containing %q",
				tt.in, se.Offset, se.Reason, tt.wantOffset, tt.wantReason)
		}
	}
}

// trickyArgvs are argument lists that exercise every quoting path.
var trickyArgvs = [][]string{
	{"pct", "exec", "100", "--", "sh", "-c", "echo hi; exit 3"},
	{"echo", ""},
	{"", "", ""},
	{"'"},
	{"''"},
	{`'\''`},
	{`"`, `\`, `\\`, `\"`, "`"},
	{"$(rm -rf /)", "`rm -rf /`", "${HOME}", "$HOME", "$'x'"},
	{";", "&&", "|", ">", "<", "2>&1", "(", ")", "&"},
	{"a\nb", "\n", "\\\n", "line1\nline2\n"},
	{"\t", " ", "  lead", "trail  "},
	{"-rf", "--", "-", "--force=yes", "-n"},
	{"*", "?", "[a-z]", "{a,b}", "!", "~", "~root", "a=~", "#c", "a#b"},
	{"héllo", "日本語", "emoji 🚀", "\u00a0nbsp"},
	{"A=b", "x"},
	{"time", "if"},
	{"\x01\x02\x1b[31m\x7f"},
	{"\xff\xfe invalid utf-8"},
	{"it's a \"test\" with $vars and `cmds`"},
}

func TestRoundTrip(t *testing.T) {
	for _, argv := range trickyArgvs {
		line := Join(argv)
		got, err := Split(line)
		if err != nil {
			t.Errorf("Split(Join(%q)) = error %v (line %q)", argv, err, line)
			continue
		}
		if diff := cmp.Diff(argv, got); diff != "" {
			t.Errorf("Split(Join(argv)) mismatch for line %q (-want +got):\n%s", line, diff)
		}
	}
}

// runShell runs script with sh -c, the way sshd hands a remote command to
// the login shell.
func runShell(t *testing.T, sh, script string, env ...string) []byte {
	t.Helper()
	cmd := exec.Command(sh, "-c", script)
	if env != nil {
		cmd.Env = env
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v\nstderr: %s", sh, script, err, stderr.String())
	}
	return out
}

// nulJoined is what printf '%s\0' words... writes.
func nulJoined(words []string) []byte {
	var b bytes.Buffer
	for _, w := range words {
		b.WriteString(w)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// TestJoinRealShell lets real shells parse Join's output: the shell's view,
// not Split's, is the truth Join must satisfy.
func TestJoinRealShell(t *testing.T) {
	for _, sh := range testtool.Shells(t) {
		for _, argv := range trickyArgvs {
			script := Join(append([]string{"printf", `%s\0`}, argv...))
			got := runShell(t, sh, script)
			if want := nulJoined(argv); !bytes.Equal(got, want) {
				t.Errorf("%s -c %q:\n got %q\nwant %q", sh, script, got, want)
			}
		}
	}
}

// TestSplitAgreesWithRealShell checks that every input Split accepts means
// the same thing to real shells. The words are put after printf so the
// command-name rules (covered by TestJoinFirstWordRealShell) do not apply.
func TestSplitAgreesWithRealShell(t *testing.T) {
	inputs := []string{
		"a '' b", `'a\b'`, `'$x "y" *'`, `"a\"b"`, `"a\\b"`, `"a\$b"`, "\"a\\`b\"",
		`"a\qb"`, `a\ b`, `\'`, `\$HOME`, `\*`, `\\`, `\#x`, `a#b`, `''#b`,
		`'it'\''s'`, `a'b'"c"\d`, "a\\\nb", "a \\\n b", "\"a\\\nb\"", "'a\\\nb'",
		"'a\nb'", "-- -x --y=z", "héllo wörld", "a]b ^c", "x A=b =x", `"!"`,
		"x\t\ty", "'\x01\x7f'",
	}
	for _, sh := range testtool.Shells(t) {
		for _, in := range inputs {
			words, err := Split(in)
			if err != nil {
				t.Errorf("Split(%q): %v", in, err)
				continue
			}
			got := runShell(t, sh, `printf '%s\0' `+in)
			if want := nulJoined(words); !bytes.Equal(got, want) {
				t.Errorf("%s parses %q as %q; Split says %q", sh, in, got, want)
			}
		}
	}
}

// TestJoinFirstWordRealShell checks that Join's extra quoting of the first
// word makes real shells run a command literally named A=b or time, instead
// of performing an assignment or timing the rest of the line.
func TestJoinFirstWordRealShell(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"A=b", "time", "if", "function"} {
		script := "#!/bin/sh\nprintf '%s\\0' " + Quote(name) + ` "$@"` + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=" + dir + ":/usr/bin:/bin"}
	for _, sh := range testtool.Shells(t) {
		for _, argv := range [][]string{{"A=b", "x y"}, {"time", "z"}, {"if"}, {"function", "f"}} {
			line := Join(argv)
			got := runShell(t, sh, line, env...)
			if want := nulJoined(argv); !bytes.Equal(got, want) {
				t.Errorf("%s -c %q:\n got %q\nwant %q", sh, line, got, want)
			}
		}
	}
}

// randomString builds a string of n bytes drawn from alphabet, which is
// weighted towards the bytes a shell cares about.
func randomString(r *rand.Rand, alphabet []string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

var shellAlphabet = []string{
	"a", "b", "Z", "0", "_", "-", "=", ".", "/", ":", " ", " ", "\t", "\n",
	"'", "'", `"`, `"`, `\`, `\`, "$", "`", "#", "~", "*", "?", "[", "]",
	"{", "}", "!", ";", "|", "&", "(", ")", "<", ">", "^", "%", "@", ",",
	"é", "日", "\x01", "\x7f",
}

// randomCommandLine strings together fragments of shell syntax: mostly the
// quoting forms Split accepts, so that a good share of inputs gets through to
// the comparison, with the occasional hostile byte in between.
func randomCommandLine(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(6) {
		switch r.IntN(7) {
		case 0:
			b.WriteString(randomString(r, shellAlphabet, 1+r.IntN(3)))
		case 1:
			b.WriteString(" ")
		case 2:
			b.WriteString("'" + strings.ReplaceAll(randomString(r, shellAlphabet, r.IntN(5)), "'", "") + "'")
		case 3:
			b.WriteString(`"`)
			for range r.IntN(5) {
				c := shellAlphabet[r.IntN(len(shellAlphabet))]
				switch c {
				case `"`, "$", "`":
					c = `\` + c
				}
				b.WriteString(c)
			}
			b.WriteString(`"`)
		case 4:
			b.WriteString(`\` + shellAlphabet[r.IntN(len(shellAlphabet))])
		case 5:
			b.WriteString("\\\n")
		case 6:
			b.WriteString(Quote(randomString(r, shellAlphabet, r.IntN(4))))
		}
	}
	return b.String()
}

// TestRandomAgainstRealShell is a cheap differential test against real
// shells with a fixed seed: random argv must survive Join through the
// shell, and every random command line Split accepts must be split the
// same way by the shell.
func TestRandomAgainstRealShell(t *testing.T) {
	shs := testtool.Shells(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 150 {
		argv := make([]string, 1+r.IntN(4))
		for j := range argv {
			argv[j] = randomString(r, shellAlphabet, r.IntN(8))
		}
		sh := shs[i%len(shs)]
		script := Join(append([]string{"printf", `%s\0`}, argv...))
		if got, want := runShell(t, sh, script), nulJoined(argv); !bytes.Equal(got, want) {
			t.Errorf("%s -c %q:\n got %q\nwant %q", sh, script, got, want)
		}
	}
	accepted := 0
	for i := 0; accepted < 300 && i < 20000; i++ {
		in := randomCommandLine(r)
		words, err := Split(in)
		if err != nil || len(words) == 0 {
			continue
		}
		sh := shs[accepted%len(shs)]
		accepted++
		if got, want := runShell(t, sh, `printf '%s\0' `+in), nulJoined(words); !bytes.Equal(got, want) {
			t.Errorf("%s parses %q as %q; Split says %q", sh, in, got, want)
		}
	}
	if accepted < 300 {
		t.Errorf("only %d random inputs accepted by Split; alphabet too hostile", accepted)
	}
}
