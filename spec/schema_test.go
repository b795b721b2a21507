package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	godoc "go/doc"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// TestSchemaDescribesEveryField walks the decoded types on its own, not through
// the generator, and wants a description for each field and none for a field
// that is gone.
func TestSchemaDescribesEveryField(t *testing.T) {
	fields := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			walk(t.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[t] || t == reflect.TypeFor[GPUSet]() { // GPUSet decodes itself: all or a list
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			fields[typeName(t)+"."+f.Name] = true
			walk(f.Type)
		}
	}
	for _, k := range documentKinds {
		walk(k.typ)
	}
	for key := range fields {
		if fieldDescriptions[key] == "" {
			t.Errorf("%s has no description: add one to fieldDescriptions in spec/schema.go", key)
		}
	}
	for key := range fieldDescriptions {
		if !fields[key] {
			t.Errorf("fieldDescriptions describes %s, which the types no longer have", key)
		}
	}
	generated, err := schemaFields()
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(generated, want) {
		t.Errorf("the generator reflects over\n%v\nwant\n%v", generated, want)
	}
	if _, err := JSONSchema(); err != nil {
		t.Fatal(err)
	}
}

// TestSchemaDescriptionsFollowDocComments keeps a description in step with the
// field's doc comment in the source: the description starts with its first
// sentence.
func TestSchemaDescriptionsFollowDocComments(t *testing.T) {
	fset := token.NewFileSet()
	var pkg godoc.Package // for Synopsis: the first sentence, as go doc finds it
	checked := 0
	for _, file := range []string{"types.go", "load.go"} {
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			for _, field := range st.Fields.List {
				if field.Doc == nil {
					continue
				}
				first := pkg.Synopsis(field.Doc.Text())
				for _, name := range field.Names {
					key := ts.Name.Name + "." + name.Name
					desc, ok := fieldDescriptions[key]
					if !ok {
						continue // not decoded: TestSchemaDescribesEveryField has the rest
					}
					checked++
					if !strings.HasPrefix(strings.Join(strings.Fields(desc), " "), first) {
						t.Errorf("%s: description %q does not start with the doc comment's first sentence %q", key, desc, first)
					}
				}
			}
			return false
		})
	}
	if checked < 5 {
		t.Errorf("checked %d documented fields; the parse found too few", checked)
	}
}

// regexpsInSchema are the Go regexps the schema's patterns come from. A pattern
// from any other must be added here, so that its translation is checked.
var regexpsInSchema = []*regexp.Regexp{
	hostnameLabel, dnsName, macAddress, nicType, nodeName, storageID, bridgeName, nicName, osTemplate, tagFormat,
	featureName, envName, driverVersion, sha256Hex, majorMinor, semverish, versionWord, stepTimeout,
	deploymentID, sourceURL, dockerSource, mountPath, mountOwner,
	firewallGroupName, firewallIface, firewallProto, firewallAliasName, firewallIPSetName,
	appArmorProfile, rawLXCKey, fsType, downloadURL, downloadChecksum,
	healthDuration, healthURL, healthTCP, snapshotName,
	listenAddress, hostAddress, portNumber, modelName, serveArgs, boolWord, fileMode, ownerName, unitName, secretName,
}

// TestSchemaPatternsAreECMA262 has Node.js compile every pattern the schema
// holds, as validators do (ECMA-262 with the u flag), and checks that each
// translation matches exactly what the Go regexp matches, over probes chosen
// where the dialects differ: spaces, line ends, case folding, non-ASCII.
//
// Node stays the judge here because no Go library is a real ECMA-262 engine
// with the u flag. dlclark/regexp2 (ECMAScript and Unicode options) matched
// like V8 on these probes but compiles many patterns the u flag refuses, among
// them Go-isms a translator could leak: (?i)k, (?s:.), \z, [[:alpha:]], \-
// and \_ outside a class, a lone { or ]. goja, a JavaScript engine in Go,
// translates patterns to Go's regexp or regexp2 in turn, so it took most of
// those too and matched \p{L} differently. Either would judge the translator
// with a second translator; V8 is the engine that browsers' and Node's
// validators run.
func TestSchemaPatternsAreECMA262(t *testing.T) {
	node := testtool.Require(t, "node")
	schema, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	collectPatterns(t, schema, &inSchema)

	// The translator beyond what the schema needs today.
	res := append(slices.Clone(regexpsInSchema),
		regexp.MustCompile(`(?i)k`), regexp.MustCompile(`^.$`), regexp.MustCompile(`\s`),
		regexp.MustCompile(`^\pL+$`), regexp.MustCompile(`(?m)^a$`), regexp.MustCompile(`^a{2,}b*?$`),
		regexp.MustCompile(`^[^a]$`), regexp.MustCompile(`\x{1F600}`), regexp.MustCompile(`^(a|bc)+$`),
		regexp.MustCompile(`x*`), regexp.MustCompile(`\bab\B`), regexp.MustCompile(`^[[:alpha:]]\z`),
		regexp.MustCompile(`^(?s:.)$`), regexp.MustCompile(`^a{3}$|^\$[{}()|]$`),
	)
	var patterns []string
	known := map[string]bool{}
	for _, re := range res {
		p, err := ecmaPattern(re)
		if err != nil {
			t.Fatalf("%s: %v", re, err)
		}
		patterns = append(patterns, p)
		known[p], known["^$|"+p] = true, true
	}
	for _, p := range inSchema {
		if !known[p] {
			t.Errorf("schema pattern %q comes from no regexp in regexpsInSchema: add its regexp there", p)
		}
	}
	patterns = append(patterns, inSchema...)

	probes := []string{
		"", "a", "A", "k", "K", "\u212a", "ab", "aa", "aaa", "aab", "abc", "bc", "bcbc", "x", "$(",
		"a-b", "-a", "a-", "a_b", "a.b", "a b", "ñ", "é", "日本", "\U0001F600", "a\U0001F600",
		"local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst", "local-lvm:vztmpl/a b",
		"local:vztmpl/a\vb", "local:vztmpl/a\u00a0b", "local:vztmpl/a\u2028b", "local:vztmpl/a\ufeffb",
		"local:vztmpl/a\u0085b", "local:vztmpl/", "local:vztmpl/a/b", "Local:vztmpl/a",
		"580.76.05", "12.8", "0.11.0", "v1.2.3-rc.1", "1.2.3.4.5", "1.2+build~1",
		strings.Repeat("0123456789abcdef", 4), strings.Repeat("0123456789ABCDEF", 4),
		"a\n", "\na", "a\nb", "a\r", "\u2028", "\u2029", "\r", "NGINX_PORT", "_x", "9x",
	}
	for c := rune(0); c < 0x80; c++ {
		probes = append(probes, string(c), "a"+string(c)+"b", "1.2"+string(c))
	}
	input, err := json.Marshal(map[string]any{"patterns": patterns, "probes": probes})
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "patterns.json")
	if err := os.WriteFile(in, input, 0o644); err != nil {
		t.Fatal(err)
	}
	const script = `
const { patterns, probes } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
process.stdout.write(JSON.stringify(patterns.map((p) => {
  try {
    const re = new RegExp(p, "u");
    return { matches: probes.map((s) => re.test(s)) };
  } catch (e) {
    return { error: String(e) };
  }
})));`
	out, err := exec.Command(node, "-e", script, in).Output()
	if err != nil {
		t.Fatalf("node: %v", errOutput(err))
	}
	var results []struct {
		Error   string
		Matches []bool
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Error != "" {
			t.Errorf("pattern %q is not ECMA-262: %s", patterns[i], r.Error)
			continue
		}
		if i >= len(res) {
			continue // the schema's own: compiled, and checked above through their regexps
		}
		for j, s := range probes {
			if want := res[i].MatchString(s); r.Matches[j] != want {
				t.Errorf("Go %s matches %q: %t, but ECMA-262 %s: %t", res[i], s, want, patterns[i], r.Matches[j])
			}
		}
	}
}

// collectPatterns finds every "pattern" keyword in a schema.
func collectPatterns(t *testing.T, schema []byte, into *[]string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(schema, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if p, ok := x.(string); ok && k == "pattern" {
					*into = append(*into, p)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
}

func errOutput(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Sprintf("%v\n%s", err, ee.Stderr)
	}
	return err.Error()
}

// namedDoc is one document to validate, as JSON would carry it.
type namedDoc struct {
	Name     string
	Document any
}

// yamlToJSON reads each document of a YAML stream into what JSON carries (the
// form a schema validator sees), skipping empty and simulator documents.
func yamlToJSON(t *testing.T, name string, data []byte) []namedDoc {
	t.Helper()
	var docs []namedDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v = jsonable(v)
		if m, ok := v.(map[string]any); ok && m["apiVersion"] == SimAPIVersion {
			continue
		}
		if v != nil {
			docs = append(docs, namedDoc{fmt.Sprintf("%s#%d", name, i), v})
		}
	}
}

// jsonable turns mappings with non-string keys (yaml.v3 decodes 12.8: as a
// float key) into JSON objects.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = jsonable(x)
		}
		return v
	case map[any]any:
		m := map[string]any{}
		for k, x := range v {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range v {
			v[i] = jsonable(x)
		}
	}
	return v
}

func TestSchemaValidatesExamples(t *testing.T) {
	if _, err := Load("../examples/homelab"); err != nil {
		t.Fatalf("the examples must be valid: %v", err)
	}
	var docs []namedDoc
	err := filepath.WalkDir("../examples/homelab", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs = append(docs, yamlToJSON(t, path, data)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 8 {
		t.Fatalf("found %d example documents, want at least 8", len(docs))
	}
	results := validateDocs(t, docs)
	for _, d := range docs {
		if r := results[d.Name]; !r.Valid {
			t.Errorf("%s does not validate against the schema: %+v", d.Name, r.Errors)
		}
	}
}

// Documents that spec.Parse accepts on their own, for the cases below to break.
const (
	okContainer = `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: web}
spec:
  vmid: 950
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
`
	okFeature = `apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: hello}
spec:
  config: {GREETING: hi}
  steps:
    - {name: say, check: "false", apply: echo "$GREETING"}
`
	okCluster = `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  ssh: {port: 22}
  nvidia:
    sha256: {"580.76.05": 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}
`
)

// edit replaces one part of a document, which must be there.
func edit(t *testing.T, doc, old, new string) string {
	t.Helper()
	if strings.Count(doc, old) != 1 {
		t.Fatalf("edit: %q is not in the document once", old)
	}
	return strings.Replace(doc, old, new, 1)
}

// TestSchemaRejectsBadDocuments breaks valid documents one way each: the
// loader rejects each, and so must the schema, for that reason.
func TestSchemaRejectsBadDocuments(t *testing.T) {
	spec := func(add string) string { return edit(t, okContainer, "  vmid: 950\n", "  vmid: 950\n"+add+"\n") }
	long := strings.Repeat("a", 64)
	cases := []struct {
		name, doc, path, keyword string
	}{
		{"unknown field", spec("  memory: 512"), "/spec", "additionalProperties"},
		{"unknown top-level field", okContainer + "status: {}\n", "", "additionalProperties"},
		{"credential field", edit(t, okCluster, "  ssh:", "  password: hunter2\n  ssh:"), "/spec", "additionalProperties"},
		{"vmid as a string", edit(t, okContainer, "vmid: 950", `vmid: "950"`), "/spec/vmid", "type"},
		{"cores not a number", spec("  resources: {cores: many}"), "/spec/resources/cores", "type"},
		{"features not a list", spec("  features: base"), "/spec/features", "type"},
		{"null spec", edit(t, okContainer, okContainer[strings.Index(okContainer, "spec:"):], "spec:\n"), "/spec", "type"},
		{"vmid 99", edit(t, okContainer, "vmid: 950", "vmid: 99"), "/spec/vmid", "minimum"},
		{"vmid too large", edit(t, okContainer, "vmid: 950", "vmid: 1000000000"), "/spec/vmid", "maximum"},
		{"no vmid", edit(t, okContainer, "  vmid: 950\n", ""), "/spec", "required"},
		{"cloneMode copy", spec("  cloneMode: copy"), "/spec/cloneMode", "enum"},
		{"gpus some", spec("  gpus: some"), "/spec/gpus", "oneOf"},
		{"gpus twice", spec("  gpus: [0, 0]"), "/spec/gpus", "uniqueItems"},
		{"gpus negative", spec("  gpus: [-1]"), "/spec/gpus/0", "minimum"},
		{"from both", edit(t, okContainer, `from: {`, `from: {template: base, `), "/spec/from", "oneOf"},
		{"from neither", edit(t, okContainer, `{ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}`, "{}"), "/spec/from", "oneOf"},
		{"no from", edit(t, okContainer, `  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}`+"\n", ""), "/spec", "required"},
		{"ostemplate not a volume", edit(t, okContainer, `"local:vztmpl/`, `"`), "/spec/from/ostemplate", "pattern"},
		{"hostname", edit(t, okContainer, "name: web", "name: bad_name"), "/metadata/name", "pattern"},
		{"hostname too long", edit(t, okContainer, "name: web", "name: "+long), "/metadata/name", "maxLength"},
		{"no metadata", edit(t, okContainer, "metadata: {name: web}\n", ""), "", "required"},
		{"apiVersion", edit(t, okContainer, "phoenix/v1alpha1", "phoenix/v1"), "/apiVersion", "const"},
		{"kind", edit(t, okContainer, "kind: Container", "kind: Pod"), "/kind", "const"},
		{"cores 0", spec("  resources: {cores: 0}"), "/spec/resources/cores", "minimum"},
		{"cores 8193", spec("  resources: {cores: 8193}"), "/spec/resources/cores", "maximum"},
		{"memory 8", spec("  resources: {memory: 8}"), "/spec/resources/memory", "minimum"},
		{"swap -1", spec("  resources: {swap: -1}"), "/spec/resources/swap", "minimum"},
		{"disk 0", spec("  resources: {disk: 0}"), "/spec/resources/disk", "minimum"},
		{"vlan 5000", spec("  network: [{name: eth0, vlan: 5000}]"), "/spec/network/0/vlan", "maximum"},
		{"nic without name", spec("  network: [{ip: dhcp}]"), "/spec/network/0", "required"},
		{"nic name", spec("  network: [{name: eth0!}]"), "/spec/network/0/name", "pattern"},
		{"tag with a space", spec(`  tags: ["a b"]`), "/spec/tags/0", "pattern"},
		{"storage", edit(t, okContainer, "storage: local-lvm", "storage: 9local"), "/spec/storage", "pattern"},
		{"node", edit(t, okContainer, "node: pve1", "node: -pve1"), "/spec/node", "pattern"},
		{"feature twice", spec("  features: [base, base]"), "/spec/features", "uniqueItems"},
		{"feature name", spec("  features: [Base]"), "/spec/features/0", "pattern"},
		{"built-in without parameters", spec("  features: [base]\n  featureConfig: {base: {x: '1'}}"), "/spec/featureConfig/base", "additionalProperties"},
		{"built-in parameter format", spec("  gpus: all\n  features: [cuda-toolkit]\n  featureConfig: {cuda-toolkit: {version: '12'}}"), "/spec/featureConfig/cuda-toolkit/version", "pattern"},
		{"built-in parameter emptied", spec("  gpus: all\n  features: [vllm]\n  featureConfig: {vllm: {version: ''}}"), "/spec/featureConfig/vllm/version", "minLength"},
		{"feature without steps", edit(t, okFeature, okFeature[strings.Index(okFeature, "  steps:"):], ""), "/spec", "required"},
		{"feature with no steps", edit(t, okFeature, okFeature[strings.Index(okFeature, "  steps:"):], "  steps: []\n"), "/spec/steps", "minItems"},
		{"step without check", edit(t, okFeature, `check: "false", `, ""), "/spec/steps/0", "required"},
		{"step name", edit(t, okFeature, "name: say", "name: Say"), "/spec/steps/0/name", "pattern"},
		{"feature named like a built-in", edit(t, okFeature, "name: hello", "name: docker"), "/metadata/name", "not"},
		{"parameter name", edit(t, okFeature, "GREETING: hi", "1GREETING: hi"), "/spec/config", "propertyNames"},
		{"feature version", edit(t, okFeature, "spec:\n", "spec:\n  version: one\n"), "/spec/version", "pattern"},
		{"ssh port 0", edit(t, okCluster, "port: 22", "port: 0"), "/spec/ssh/port", "minimum"},
		{"sha256", edit(t, okCluster, "0123456789abcdef}", "0123456789ABCDEF}"), "/spec/nvidia/sha256/580.76.05", "pattern"},
		{"driver version", edit(t, okCluster, `"580.76.05"`, `"r580"`), "/spec/nvidia/sha256", "propertyNames"},
	}
	// The unbroken documents are valid to both, so each case has one fault.
	var docs []namedDoc
	for _, ok := range []string{okContainer, okFeature, okCluster} {
		if _, err := Parse("ok.yaml", []byte(ok)); err != nil {
			t.Fatalf("%s\nis not valid: %v", ok, err)
		}
		docs = append(docs, yamlToJSON(t, "ok"+fmt.Sprint(len(docs)), []byte(ok))...)
	}
	for _, c := range cases {
		if _, err := Parse(c.name, []byte(c.doc)); err == nil {
			t.Errorf("%s: spec.Parse accepts\n%s", c.name, c.doc)
		}
		d := yamlToJSON(t, c.name, []byte(c.doc))
		if len(d) != 1 {
			t.Fatalf("%s: want one document, got %d", c.name, len(d))
		}
		docs = append(docs, namedDoc{c.name, d[0].Document})
	}
	results := validateDocs(t, docs)
	for _, d := range docs[:3] {
		if r := results[d.Name]; !r.Valid {
			t.Errorf("%s: the valid document is not valid to the schema: %+v", d.Name, r.Errors)
		}
	}
	for _, c := range cases {
		r := results[c.name]
		if r.Valid {
			t.Errorf("%s: the schema accepts\n%s", c.name, c.doc)
			continue
		}
		if !slices.ContainsFunc(r.Errors, func(e schemaError) bool {
			return e.InstancePath == c.path && e.Keyword == c.keyword
		}) {
			t.Errorf("%s: no %s error at %q among %+v", c.name, c.keyword, c.path, r.Errors)
		}
	}
}

// TestSchemaAcceptsWhatTheLoaderAccepts covers the unusual documents phoenix
// reads, which the schema must not reject: nulls for unset, numbers and
// booleans where strings belong, empty strings for unset, anchors and merges.
func TestSchemaAcceptsWhatTheLoaderAccepts(t *testing.T) {
	cases := map[string]string{
		"nulls": edit(t, okContainer, "  vmid: 950\n", `  vmid: 950
  resources: ~
  network: ~
  unprivileged: ~
  gpus: ~
  features: ~
  featureConfig: ~
  tags: ~
  onboot: ~
`),
		"null fields": edit(t, okContainer, "  vmid: 950\n", "  vmid: 950\n  resources: {cores: ~, memory: ~}\n  network: [{name: eth0, vlan: ~}]\n"),
		"empty strings": `apiVersion: phoenix/v1alpha1
kind: Cluster
spec:
  defaults: {node: pve1, storage: local-lvm, bridge: ""}
---
` + edit(t, edit(t, edit(t, okContainer, "node: pve1", `node: ""`), "storage: local-lvm", `storage: ""`),
			"from: {", "cloneMode: \"\"\n  from: {template: \"\", "),
		"scalars as strings": okFeature + "---\n" + edit(t, edit(t, okFeature, "name: hello", "name: 2024"), "config: {GREETING: hi}", `version: 1.0
  description: true
  config: {PORT: 80, DEBUG: true, RATIO: 0.5}`) + "---\n" + edit(t, okContainer, "  vmid: 950\n", `  vmid: 950
  tags: [2024, true]
  features: [hello]
  featureConfig: {hello: {GREETING: 5}}
`),
		"built-in parameters": edit(t, okContainer, "  vmid: 950\n", `  vmid: 950
  gpus: all
  features: [cuda-toolkit, ollama, vllm]
  featureConfig:
    cuda-toolkit: {version: 12.8}
    ollama: {version: ""}
    vllm: {version: 0.11.0}
`),
		"no gpus": edit(t, okContainer, "  vmid: 950\n", "  vmid: 950\n  gpus: []\n  network: []\n  tags: []\n"),
		"clones": edit(t, okContainer, "kind: Container", "kind: Template") + "---\n" +
			edit(t, edit(t, edit(t, okContainer, "name: web", "name: app"), "vmid: 950", "vmid: 951"),
				`from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}`,
				"from: {template: web}\n  cloneMode: full\n  unprivileged: true\n  resources: {disk: 16}"),
		"anchors and merge keys": edit(t, okContainer, "  vmid: 950\n", `  vmid: 950
  network:
    - &nic {name: eth0, bridge: vmbr0, ip: dhcp}
    - <<: *nic
      name: eth1
      ip: 10.0.0.5/24
      gw: 10.0.0.1
`),
		"bare cluster":       "apiVersion: phoenix/v1alpha1\nkind: Cluster\n",
		"cluster with nulls": "apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: ~\nspec: {defaults: ~, ssh: {port: ~, nodes: {pve2: 192.168.1.12}}, nvidia: ~}\n",
	}
	var docs []namedDoc
	for name, stream := range cases {
		if _, err := Parse(name, []byte(stream)); err != nil {
			t.Fatalf("%s: spec.Parse rejects it, so it does not belong here: %v\n%s", name, err, stream)
		}
		docs = append(docs, yamlToJSON(t, name, []byte(stream))...)
	}
	for name, r := range validateDocs(t, docs) {
		if !r.Valid {
			t.Errorf("%s: phoenix accepts it, the schema does not: %+v", name, r.Errors)
		}
	}
}
