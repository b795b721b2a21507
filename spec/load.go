package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Load reads every document in the given files and directories (recursively,
// *.yaml and *.yml, skipping hidden directories), then validates the whole set.
// On any problem it returns Diagnostics listing all of them.
func Load(paths ...string) (*Set, error) {
	files, err := specFiles(paths)
	if err != nil {
		return nil, err
	}
	l := &loader{set: &Set{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			l.diags = append(l.diags, Diagnostic{File: f, Message: err.Error()})
			continue
		}
		l.parse(f, data)
	}
	return l.finish()
}

// Parse reads and validates the documents of one file's contents; name is used
// in diagnostics.
func Parse(name string, data []byte) (*Set, error) {
	l := &loader{set: &Set{}}
	l.parse(name, data)
	return l.finish()
}

func specFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no spec paths given (use -f FILE or -f DIR)")
	}
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("spec path: %w", err)
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				if path != p && strings.HasPrefix(e.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("spec path: %w", err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("spec path %s: no *.yaml or *.yml files in it", p)
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	// A file named twice (directly and through its directory) is read once.
	seen := map[string]bool{}
	unique := files[:0]
	for _, f := range files {
		if key := filepath.Clean(f); !seen[key] {
			seen[key] = true
			unique = append(unique, f)
		}
	}
	return unique, nil
}

type loader struct {
	set   *Set
	diags Diagnostics
	paths *pathTable        // the field paths of every document's positions
	strs  map[string]string // the strings decoded, each kept once
}

// finish validates what was decoded, even after decoding problems, so that one
// run reports everything. A field that failed to decode is left unset; checks
// that would then complain about the same field again are dropped.
func (l *loader) finish() (*Set, error) {
	decoding := l.diags
	for _, d := range validate(l.set) {
		if !coveredBy(decoding, d) {
			l.diags = append(l.diags, d)
		}
	}
	if len(l.diags) > 0 {
		return nil, l.diags.sorted()
	}
	return l.set, nil
}

// coveredBy reports whether a decoding problem already concerns v's field.
func coveredBy(decoding Diagnostics, v Diagnostic) bool {
	for _, d := range decoding {
		if d.File == v.File && d.Subject == v.Subject && d.Field != "" &&
			(v.Field == d.Field || strings.HasPrefix(v.Field, d.Field+".") || strings.HasPrefix(v.Field, d.Field+"[")) {
			return true
		}
	}
	return false
}

// yamlErrLine finds the line in yaml.v3's syntax errors ("yaml: line 4: ...").
var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlMessage splits a yaml.v3 syntax error into the line it prints (0 when
// none) and its message.
func yamlMessage(err error) (int, string) {
	text := err.Error()
	if m := yamlErrLine.FindStringSubmatch(text); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, text[len(m[0]):]
	}
	return 0, strings.TrimPrefix(text, "yaml: ")
}

// yamlErrorLine returns the one-based line in data of a yaml.v3 syntax error,
// and its message.
//
// The line yaml.v3 prints is not where the mistake is. It prints where the
// enclosing construct begins (the mapping a badly indented key belongs to, which
// in a later document may be that document's first line), zero-based for parser
// errors; where the problem was found when that construct begins on the first
// line of the file; and no line at all for an unknown anchor. Parsing stops at
// the first error, though, so a prefix of the file fails with the same message
// exactly when it holds the mistake: the mistake is on the first line at which
// the file, read up to that line, fails with that message. The search starts at
// the enclosing construct, so that a multi-line value before it, cut in two,
// cannot fail the same way.
func yamlErrorLine(data []byte, err error) (int, string) {
	printed, msg := yamlMessage(err)
	ends := lineEnds(data)
	lo := min(yamlContextLine(data, msg), len(ends))
	i := sort.Search(len(ends)-lo+1, func(i int) bool { return failsWith(data[:ends[lo-1+i]], msg) })
	line := lo + i
	if line > len(ends) {
		// No prefix fails the same way, not even the whole file: the error did not
		// come from parsing data, so keep what yaml.v3 said.
		line = max(1, min(printed, len(ends)))
	}
	start := 0
	if line > 1 {
		start = ends[line-2]
	}
	return line, msg + yamlHint(string(data[start:ends[line-1]]), msg)
}

// yamlContextLine returns a line no later than the start of the construct in
// which data fails with msg, or 1. yaml.v3 prints that start unless it is on the
// first line, so data is parsed again below one added line; the printed line
// is then the start's, zero-based, or one past it for a scanner error.
func yamlContextLine(data []byte, msg string) int {
	err := yamlError(append([]byte("\n"), data...))
	if err == nil {
		return 1
	}
	printed, m := yamlMessage(err)
	if m != msg {
		return 1
	}
	return max(printed-1, 1)
}

// lineEnds returns the offset just past each line of data, the last one
// len(data), so that data[:ends[k-1]] is data up to and including line k.
func lineEnds(data []byte) []int {
	var ends []int
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] < len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// yamlError returns the first syntax error in the YAML documents of data, or nil.
func yamlError(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// failsWith reports whether data fails to parse as YAML with the message msg.
func failsWith(data []byte, msg string) bool {
	err := yamlError(data)
	if err == nil {
		return false
	}
	_, m := yamlMessage(err)
	return m == msg
}

// yamlHint explains the two syntax errors whose yaml.v3 messages do not say
// what is wrong, given the line the error is on.
func yamlHint(line, msg string) string {
	indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
	switch {
	case strings.Contains(indent, "\t") && !strings.Contains(msg, "tab"):
		return " (a tab in the indentation: YAML indents with spaces)"
	case msg == "found unexpected end of stream" && strings.ContainsAny(line, `"'`):
		return " (a quote opened on this line is not closed)"
	}
	return ""
}

func (l *loader) parse(file string, data []byte) {
	l.set.Files = append(l.set.Files, file)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			line, msg := yamlErrorLine(data, err)
			l.diags = append(l.diags, Diagnostic{File: file, Line: line, Message: "invalid YAML: " + msg})
			return // the parser cannot resynchronise after a syntax error
		}
		l.document(file, &root)
	}
}

var kinds = []Kind{KindCluster, KindTemplate, KindContainer, KindFeature}

// envelope is the shape every document shares.
type envelope[S any] struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       S        `json:"spec"`
}

func (l *loader) document(file string, root *yaml.Node) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return
	}
	n := root.Content[0]
	if isNull(n) {
		return // an empty document, e.g. after a trailing ---
	}
	at := func(line int, msg string) {
		l.diags = append(l.diags, Diagnostic{File: file, Line: line, Message: msg})
	}
	if n.Kind != yaml.MappingNode {
		at(n.Line, "a document must be a mapping with apiVersion, kind, metadata and spec, got "+describe(n))
		return
	}
	apiVersion, avLine := scalarField(n, "apiVersion")
	kind, kindLine := scalarField(n, "kind")
	switch {
	case apiVersion == SimAPIVersion:
		return // a simulator world document living beside the specs
	case avLine == 0:
		at(n.Line, "apiVersion is missing (want "+APIVersion+")")
		return
	case apiVersion != APIVersion:
		at(avLine, fmt.Sprintf("unsupported apiVersion %q (phoenix reads %s)", apiVersion, APIVersion))
		return
	case kindLine == 0:
		at(n.Line, "kind is missing (one of Cluster, Template, Container, Feature)")
		return
	case !slices.Contains(kinds, Kind(kind)):
		at(kindLine, fmt.Sprintf("unknown kind %q (one of Cluster, Template, Container, Feature)", kind))
		return
	}

	if l.paths == nil {
		l.paths, l.strs = newPathTable(), map[string]string{}
	}
	d := newDecoder(file, &l.diags, l.paths, l.strs)
	name := ""
	if md := mappingField(n, "metadata"); md != nil {
		name, _ = scalarField(md, "name")
	}
	d.subject = strings.TrimSpace(kind + " " + name)
	d.pos.set("", n.Line)
	src := Source{File: file, Line: n.Line}

	switch Kind(kind) {
	case KindCluster:
		var e envelope[ClusterSpec]
		d.decode(n, reflect.ValueOf(&e).Elem(), "")
		c := &Cluster{Source: src, Metadata: e.Metadata, Spec: e.Spec, pos: d.pos.done()}
		if l.set.Cluster != nil {
			at(n.Line, fmt.Sprintf("a second Cluster document (the first is at %s:%d); there is at most one",
				l.set.Cluster.Source.File, l.set.Cluster.Source.Line))
			return
		}
		l.set.Cluster = c
	case KindTemplate, KindContainer:
		var e envelope[GuestSpec]
		d.decode(n, reflect.ValueOf(&e).Elem(), "")
		l.set.Guests = append(l.set.Guests, &Guest{
			Source: src, Kind: Kind(kind), Metadata: e.Metadata, Spec: e.Spec, pos: d.pos.done(),
		})
	case KindFeature:
		var e envelope[FeatureSpec]
		d.decode(n, reflect.ValueOf(&e).Elem(), "")
		l.set.Features = append(l.set.Features, &Feature{Source: src, Metadata: e.Metadata, Spec: e.Spec, pos: d.pos.done()})
	}
}

// scalarField returns the string value of a scalar key in a mapping and its line
// (0 when absent).
func scalarField(m *yaml.Node, key string) (string, int) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind == yaml.ScalarNode {
				return v.Value, m.Content[i].Line
			}
			return "", m.Content[i].Line
		}
	}
	return "", 0
}

func mappingField(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.MappingNode {
			return m.Content[i+1]
		}
	}
	return nil
}
