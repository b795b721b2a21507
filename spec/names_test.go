package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNamesThatDifferOnlyInCaseCollide(t *testing.T) {
	src := `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: GPU-base}
spec:
  vmid: 9000
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: gpu-base}
spec: {vmid: 101, node: pve1, storage: local-lvm, from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: GPU-Base}
spec: {vmid: 102, from: {template: GPU-base}}
`
	want := []problem{
		{12, "metadata.name", "name gpu-base is the same hostname as GPU-base, the Template at test.yaml:1 (hostnames ignore case)"},
		{17, "metadata.name", "name GPU-Base is the same hostname as GPU-base, the Template at test.yaml:1 (hostnames ignore case)"},
	}
	if diff := cmp.Diff(want, problems(t, src, want), cmp.AllowUnexported(problem{})); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

// A name differing from a Template's only in case is the Template's name:
// the clone resolves to it, and its records name the Template as it is
// written in its own document.
func TestTemplateReferenceIgnoresCase(t *testing.T) {
	res, err := parseResolve(t, header+`---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec: {vmid: 101, from: {template: BASE}}
`)
	if err != nil {
		t.Fatal(err)
	}
	app, _ := res.Guest("app")
	if app.Parent != "base" || !cmp.Equal(app.Lineage, []string{"base"}) {
		t.Errorf("parent %q, lineage %v: want base", app.Parent, app.Lineage)
	}
}

func parseResolve(t *testing.T, src string) (*Resolution, error) {
	t.Helper()
	set, err := Parse("test.yaml", []byte(src))
	if err != nil {
		return nil, err
	}
	return Resolve(set)
}

// Names with characters one cannot see (a zero-width space, a right-to-left
// override, a control character) or that look like others (a Cyrillic a)
// are shown escaped wherever a diagnostic repeats them, so that the message
// says what is really there.
func TestInvisibleCharactersInNamesAreShownEscaped(t *testing.T) {
	src := header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: "gpu\u200b-base"}
spec: {vmid: 101, from: {template: "base\u202e"}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: "t\u0430\x07"}
spec: {vmid: 102, from: {template: base}, features: ["docker\u2060"]}
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: "tool\ufeff"}
spec: {steps: [{name: s, check: "true", apply: "true"}]}
`
	_, err := Parse("test.yaml", []byte(src))
	var diags Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("Parse: %v, want Diagnostics", err)
	}
	text := diags.Error()
	for _, r := range text {
		if r != '\n' && (r < 0x20 || r > 0x7e) {
			t.Errorf("the diagnostics show %U as it is:\n%s", r, text)
			break
		}
	}
	for _, want := range []string{
		`Container gpu\u200b-base: metadata.name: "gpu\u200b-base" is not a valid hostname`,
		`Container gpu\u200b-base: spec.from.template: no Template named base\u202e`,
		`Template t\u0430\a: metadata.name:`,
		`Template t\u0430\a: spec.features[0]: unknown feature "docker\u2060"`,
		`Feature tool\ufeff: metadata.name: "tool\ufeff" is not a valid feature name`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in:\n%s", want, text)
		}
	}
	for _, d := range diags {
		if strings.ContainsRune(d.Subject+d.Message, '\u200b') {
			t.Errorf("diagnostic %#v holds the raw character", d)
		}
	}
}

func TestEscapeText(t *testing.T) {
	for in, want := range map[string]string{
		"gpu-base":         "gpu-base",
		"gpu\u200b-base":   `gpu\u200b-base`,
		"evil\u202etxt":    `evil\u202etxt`,
		"t\u0430b\x07":     `t\u0430b\a`,
		"tab\there":        `tab\there`,
		"bad \xff byte":    `bad \xff byte`,
		"emoji \U0001F600": `emoji \U0001f600`,
		`"quoted\u200b"`:   `"quoted\u200b"`,
	} {
		if got := escapeText(in); got != want {
			t.Errorf("escapeText(%q) = %s, want %s", in, got, want)
		}
	}
}
