package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// second is a valid Container for the second document of a file after header.
const second = `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
`

// lineOf returns the one-based line of src that is exactly text.
func lineOf(t *testing.T, src, text string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if l == text {
			return i + 1
		}
	}
	t.Fatalf("no line %q in\n%s", text, src)
	return 0
}

// TestYAMLSyntaxErrorsAtTheirLine checks that a syntax error is reported on the
// line where the mistake is, counted from the start of the file whatever
// document it is in, and not where yaml.v3 says: the start of the enclosing
// mapping, or no line at all.
func TestYAMLSyntaxErrorsAtTheirLine(t *testing.T) {
	cases := map[string]struct {
		src  string
		at   string // the line with the mistake
		want string
	}{
		"a tab in the indentation": {
			src:  header + "  resources:\n\tcores: 2\n",
			at:   "\tcores: 2",
			want: "invalid YAML: found character that cannot start any token (a tab in the indentation: YAML indents with spaces)",
		},
		"a tab after the spaces of the indentation": {
			src:  header + second + "  resources:\n    cores: 2\n  \tmemory: 512\n",
			at:   "  \tmemory: 512",
			want: "invalid YAML: found a tab character that violates indentation",
		},
		"an unclosed double quote": {
			src:  header + second + "  node: \"pve1\n  storage: local-lvm\n",
			at:   "  node: \"pve1",
			want: "invalid YAML: found unexpected end of stream (a quote opened on this line is not closed)",
		},
		"an unclosed single quote on the first line": {
			src:  "apiVersion: 'phoenix/v1alpha1\nkind: Template\n",
			at:   "apiVersion: 'phoenix/v1alpha1",
			want: "invalid YAML: found unexpected end of stream (a quote opened on this line is not closed)",
		},
		"a key without its colon": {
			src:  header + second + "  resources\n    cores: 2\n",
			at:   "  resources",
			want: "invalid YAML: could not find expected ':'",
		},
		"a value that is itself a key and value on one line": {
			src:  header + second + "  network: name: eth0\n",
			at:   "  network: name: eth0",
			want: "invalid YAML: mapping values are not allowed in this context",
		},
		"a key indented more than the one before it": {
			src:  header + "  onboot: true\n   protection: true\n",
			at:   "   protection: true",
			want: "invalid YAML: mapping values are not allowed in this context",
		},
		"a key indented less than its siblings, in the second document": {
			src:  header + second + "  resources:\n    cores: 2\n   memory: 512\n",
			at:   "   memory: 512",
			want: "invalid YAML: did not find expected key",
		},
		"a key indented less than its siblings, deep in the first document": {
			src:  header + "  resources:\n    cores: 2\n    swap: 0\n   memory: 512\n",
			at:   "   memory: 512",
			want: "invalid YAML: did not find expected key",
		},
		"a list item among the keys of a mapping": {
			src:  header + second + "  onboot: true\n  - docker\n",
			at:   "  - docker",
			want: "invalid YAML: did not find expected key",
		},
		"a key after the items of a top-level list": {
			src:  "- a\n- b\nc: d\n",
			at:   "c: d",
			want: "invalid YAML: did not find expected '-' indicator",
		},
		"an unclosed flow list": {
			src:  header + second + "  tags: [gpu, vllm\n  onboot: true\n",
			at:   "  tags: [gpu, vllm",
			want: "invalid YAML: did not find expected ',' or ']'",
		},
		"an unknown anchor in the third document": {
			src:  header + second + "---\nkind: Feature\nspec: *nothing\n",
			at:   "spec: *nothing",
			want: "invalid YAML: unknown anchor 'nothing' referenced",
		},
		"a duplicate key": {
			src:  header + "  vmid: 9001\n",
			at:   "  vmid: 9001",
			want: "Template base: spec.vmid: duplicate field (a YAML mapping may set a key once)",
		},
		"a duplicate key in the second document": {
			src:  header + second + "  from: {template: other}\n",
			at:   "  from: {template: other}",
			want: "Container app: spec.from: duplicate field (a YAML mapping may set a key once)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("specs.yaml", []byte(tc.src))
			var diags Diagnostics
			if !errors.As(err, &diags) {
				t.Fatalf("Parse = %v, want Diagnostics", err)
			}
			if len(diags) != 1 {
				t.Fatalf("%d diagnostics, want 1:\n%v", len(diags), err)
			}
			if got, want := diags[0].Line, lineOf(t, tc.src, tc.at); got != want {
				t.Errorf("line %d, want %d (%q): %v", got, want, tc.at, diags[0])
			}
			if diags[0].Message != tc.want && diags[0].Subject+": "+diags[0].Field+": "+diags[0].Message != tc.want {
				t.Errorf("message %q, want %q", diags[0], tc.want)
			}
		})
	}
}

// TestLoadReportsSyntaxErrorsAsFileAndLine reads a file from disk so that the
// whole FILE:LINE: text is checked.
func TestLoadReportsSyntaxErrorsAsFileAndLine(t *testing.T) {
	src := header + second + "  resources:\n    cores: 2\n   memory: 512\n"
	file := write(t, t.TempDir(), "specs.yaml", src)
	_, err := Load(file)
	want := fmt.Sprintf("%s:%d: invalid YAML: did not find expected key", file, lineOf(t, src, "   memory: 512"))
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}

func TestYAMLErrorLineKeepsTheLineOfAMistakeItCannotFindAgain(t *testing.T) {
	// yaml.v3's own line is used when no prefix of the file fails the same
	// way, which happens only if the message is not a parse error of the file.
	line, msg := yamlErrorLine([]byte("a: 1\nb: 2\n"), errors.New("yaml: line 2: something else"))
	if line != 2 || msg != "something else" {
		t.Errorf("yamlErrorLine = %d, %q, want 2 and the message", line, msg)
	}
}
