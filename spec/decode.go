package spec

import (
	"cmp"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// positions records the line each field path ("spec.network[0].ip") of one
// document was written on. The paths are those of a pathTable that the
// documents of one load share, so that a thousand documents with the same
// fields keep each path once, and a document keeps a pair of numbers per
// field, sorted by path.
type positions struct {
	paths *pathTable
	lines []posLine
}

type posLine struct{ path, line int32 }

// pathTable numbers the field paths of a load's documents.
type pathTable struct {
	ids map[string]int32
}

func newPathTable() *pathTable { return &pathTable{ids: map[string]int32{}} }

// id numbers path, the first time it is seen.
func (t *pathTable) id(path string) int32 {
	id, ok := t.ids[path]
	if !ok {
		id = int32(len(t.ids))
		t.ids[path] = id
	}
	return id
}

// set records that path was written on line.
func (p *positions) set(path string, line int) {
	p.lines = append(p.lines, posLine{p.paths.id(path), int32(min(line, math.MaxInt32))})
}

// done sorts what was recorded, keeping the last line recorded for a path,
// and trims it to its size.
func (p *positions) done() *positions {
	slices.SortStableFunc(p.lines, func(a, b posLine) int { return cmp.Compare(a.path, b.path) })
	out := make([]posLine, 0, len(p.lines))
	for i, l := range p.lines {
		if i+1 < len(p.lines) && p.lines[i+1].path == l.path {
			continue
		}
		out = append(out, l)
	}
	p.lines = out
	return p
}

// lookup returns the line path was written on, and whether it was.
func (p *positions) lookup(path string) (int, bool) {
	if p == nil || p.paths == nil {
		return 0, false
	}
	id, ok := p.paths.ids[path]
	if !ok {
		return 0, false
	}
	i, found := slices.BinarySearchFunc(p.lines, id, func(l posLine, id int32) int { return cmp.Compare(l.path, id) })
	if !found {
		return 0, false
	}
	return int(p.lines[i].line), true
}

// line returns the line of path, or of its nearest written ancestor, or 0.
func (p *positions) line(path string) int {
	for path != "" {
		if l, ok := p.lookup(path); ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	l, _ := p.lookup("")
	return l
}

// has reports whether path was written in the document.
func (p *positions) has(path string) bool {
	_, ok := p.lookup(path)
	return ok
}

// maxNodeVisits bounds the work one document may cause, so that an alias bomb
// (anchors referencing anchors, exponentially) is an error rather than a hang.
const maxNodeVisits = 100_000

// decoder is a strict YAML-node-to-struct decoder. Unlike yaml.v3's own, it keeps
// going after an error so that one load reports every problem, records the line
// of every field for later validation messages, and treats a quoted number where
// an integer belongs as the type error it is. Field names come from json tags.
type decoder struct {
	file      string
	subject   string
	diags     *Diagnostics
	pos       *positions
	strs      map[string]string // see intern
	budget    int
	exhausted bool
}

func newDecoder(file string, diags *Diagnostics, paths *pathTable, strs map[string]string) *decoder {
	return &decoder{file: file, diags: diags, pos: &positions{paths: paths}, strs: strs, budget: maxNodeVisits}
}

// intern returns the copy of s that the documents of one load decoded first:
// a thousand guests on one node, storage and OS template keep each name once.
func (d *decoder) intern(s string) string {
	if d.strs == nil {
		return s
	}
	if c, ok := d.strs[s]; ok {
		return c
	}
	d.strs[s] = s
	return s
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	*d.diags = append(*d.diags, Diagnostic{
		File: d.file, Line: line, Subject: d.subject, Field: path,
		Message: fmt.Sprintf(format, args...),
	})
}

// nodeDecoder is implemented by types with their own YAML shape (GPUSet).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

var nodeDecoderType = reflect.TypeFor[nodeDecoder]()

// resolve follows aliases and charges the visit budget. It returns nil once the
// budget is spent, after reporting that once.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for {
		d.budget--
		if n.Kind != yaml.AliasNode || n.Alias == nil {
			break
		}
		n = n.Alias
	}
	if d.budget < 0 {
		if !d.exhausted {
			d.exhausted = true
			d.errorf(n.Line, "", "document too large or too deeply aliased (more than %d nodes)", maxNodeVisits)
		}
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n = d.resolve(n); n == nil {
		return
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && v.Addr().Type().Implements(nodeDecoderType) {
		v.Addr().Interface().(nodeDecoder).decodeNode(d, n, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || isNull(n) {
			d.errorf(n.Line, path, "expected a string, got %s", describe(n))
			return
		}
		// Numbers are written as they appear: version: 12.8 means "12.8".
		v.SetString(d.intern(n.Value))
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			d.errorf(n.Line, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
			d.errorf(n.Line, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n.Line, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("spec: decoder has no rule for %s", v.Type()))
	}
}

type pair struct{ key, value *yaml.Node }

// pairs lists a mapping's entries with YAML merge keys (<<) expanded: merged
// entries apply only where the mapping does not set the key itself.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			src := d.resolve(val)
			if src == nil {
				return nil
			}
			sources := []*yaml.Node{src}
			if src.Kind == yaml.SequenceNode {
				sources = src.Content
			}
			for _, s := range sources {
				if s = d.resolve(s); s == nil {
					return nil
				}
				if s.Kind != yaml.MappingNode {
					d.errorf(k.Line, path, "a merge key (<<) must refer to a mapping, got %s", describe(s))
					continue
				}
				merged = append(merged, d.pairs(s, path)...)
			}
			continue
		}
		own = append(own, pair{k, val})
	}
	if len(merged) == 0 {
		return own
	}
	set := map[string]bool{}
	for _, p := range own {
		set[p.key.Value] = true
	}
	for _, p := range merged {
		if !set[p.key.Value] {
			own = append(own, p)
			set[p.key.Value] = true
		}
	}
	return own
}

// key checks one mapping key: a scalar, not seen before in this mapping.
func (d *decoder) key(k *yaml.Node, seen map[string]bool, path string) (string, bool) {
	if k.Kind != yaml.ScalarNode || isNull(k) {
		d.errorf(k.Line, path, "expected a field name, got %s", describe(k))
		return "", false
	}
	if seen[k.Value] {
		d.errorf(k.Line, join(path, k.Value), "duplicate field (a YAML mapping may set a key once)")
		return "", false
	}
	seen[k.Value] = true
	return k.Value, true
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		if !isNull(n) {
			d.errorf(n.Line, path, "expected a mapping, got %s", describe(n))
		}
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for _, p := range d.pairs(n, path) {
		name, ok := d.key(p.key, seen, path)
		if !ok {
			continue
		}
		fp := join(path, name)
		idx, known := fields.index[name]
		if !known {
			d.errorf(p.key.Line, fp, "unknown field%s", unknownFieldHint(name, fields.names))
			continue
		}
		d.pos.set(fp, p.key.Line)
		d.decode(p.value, v.Field(idx), fp)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "expected a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]bool{}
	for _, p := range d.pairs(n, path) {
		name, ok := d.key(p.key, seen, path)
		if !ok {
			continue
		}
		fp := join(path, name)
		d.pos.set(fp, p.key.Line)
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(p.value, elem, fp)
		v.SetMapIndex(reflect.ValueOf(name).Convert(v.Type().Key()), elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, path, "expected a list, got %s", describe(n))
		return
	}
	// An explicit empty list is kept non-nil: it clears what a parent template set.
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		d.pos.set(ip, item.Line)
		d.decode(item, s.Index(i), ip)
	}
	v.Set(s)
}

// decodeNode reads `all` or a list of GPU indices.
func (s *GPUSet) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "all":
		*s = GPUSet{All: true}
	case n.Kind == yaml.SequenceNode:
		var idx []int
		d.decodeSlice(n, reflect.ValueOf(&idx).Elem(), path)
		*s = GPUSet{Indices: idx}
		if idx == nil {
			s.Indices = []int{}
		}
	default:
		d.errorf(n.Line, path, "expected all or a list of GPU indices, got %s", describe(n))
	}
}

type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // reflect.Type -> *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: map[string]int{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	slices.Sort(f.names)
	fieldCache.Store(t, f)
	return f
}

// unknownFieldHint suggests what the author may have meant, and steers secrets
// away from files that are committed to git.
func unknownFieldHint(name string, known []string) string {
	lower := strings.ToLower(name)
	for _, secret := range []string{"password", "token", "secret", "privatekey", "private_key", "apikey"} {
		if strings.Contains(lower, secret) {
			return " (credentials never go in spec files, which are committed to git: set them in the " +
				"environment, e.g. PROXMOX_VE_API_TOKEN, PROXMOX_VE_PASSWORD, PROXMOX_VE_SSH_PRIVATE_KEY)"
		}
	}
	if best := closest(name, known); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(known) > 0 {
		return " (known fields: " + strings.Join(known, ", ") + ")"
	}
	return ""
}

// closest returns the known word within two edits of name (ignoring case), or "".
func closest(name string, known []string) string {
	lower := strings.ToLower(name)
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(lower, strings.ToLower(k)); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
