package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// PathError is a field of the original's config that cannot be read: the
// wrong type, or a value that means nothing. Path is the field's JSON path.
type PathError struct {
	Path string
	Msg  string
}

func (e *PathError) Error() string { return e.Path + ": " + e.Msg }

// Finding is a field the import did not carry over into the specs, or carried
// over in a way a person should look at.
type Finding struct {
	File string // the config file
	Path string // the JSON path, such as $.lxc_configs["801"].ports
	Why  string
}

// reader walks a decoded JSON document, keeping every error and every field
// that was not read, so that nothing is dropped without a word.
type reader struct {
	file     string // the file being read, for the findings
	errs     []error
	findings []Finding
}

func (r *reader) fail(path, format string, args ...any) {
	r.errs = append(r.errs, &PathError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (r *reader) note(path, format string, args ...any) {
	r.findings = append(r.findings, Finding{File: r.file, Path: path, Why: fmt.Sprintf(format, args...)})
}

// decode reads one JSON document whole, numbers kept as written.
func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &PathError{Path: "$", Msg: "not JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err == nil {
		return nil, &PathError{Path: "$", Msg: "more than one JSON value in the file"}
	}
	return v, nil
}

var identifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// member is the path of key in the object at path: .key, or ["key"] where the
// key is not an identifier (numbers, dots).
func member(path, key string) string {
	if identifier.MatchString(key) {
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// object is a JSON object being read: the keys read so far are marked, and
// whatever is left is reported at the end.
type object struct {
	path string
	m    map[string]any
	read map[string]bool
}

func (r *reader) object(path string, v any) *object {
	m, ok := v.(map[string]any)
	if !ok {
		r.fail(path, "expected an object, got %s", describe(v))
		return nil
	}
	return &object{path: path, m: m, read: map[string]bool{}}
}

// take marks key read and returns its value; ok is false when it is absent or
// null (older versions write null for "not set").
func (o *object) take(key string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.m[key]
	if ok {
		o.read[key] = true
	}
	return v, ok && v != nil
}

func (o *object) at(key string) string { return member(o.path, key) }

func (r *reader) str(o *object, key string) (string, bool) {
	v, ok := o.take(key)
	if !ok {
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		r.fail(o.at(key), "expected a string, got %s", describe(v))
		return "", false
	}
	return s, true
}

func (r *reader) integer(o *object, key string) (int, bool) {
	v, ok := o.take(key)
	if !ok {
		return 0, false
	}
	return r.intValue(o.at(key), v)
}

func (r *reader) intValue(path string, v any) (int, bool) {
	n, isNum := v.(json.Number)
	if !isNum {
		r.fail(path, "expected an integer, got %s", describe(v))
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 32)
	if err != nil {
		r.fail(path, "expected an integer, got %s", n)
		return 0, false
	}
	return int(i), true
}

func (r *reader) boolean(o *object, key string) (bool, bool) {
	v, ok := o.take(key)
	if !ok {
		return false, false
	}
	b, isBool := v.(bool)
	if !isBool {
		r.fail(o.at(key), "expected true or false, got %s", describe(v))
		return false, false
	}
	return b, true
}

func (r *reader) list(o *object, key string) ([]any, bool) {
	v, ok := o.take(key)
	if !ok {
		return nil, false
	}
	l, isList := v.([]any)
	if !isList {
		r.fail(o.at(key), "expected a list, got %s", describe(v))
		return nil, false
	}
	return l, true
}

func (r *reader) strings(o *object, key string) ([]string, bool) {
	l, ok := r.list(o, key)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, isStr := e.(string)
		if !isStr {
			r.fail(index(o.at(key), i), "expected a string, got %s", describe(e))
			continue
		}
		out = append(out, s)
	}
	return out, true
}

func (r *reader) child(o *object, key string) *object {
	v, ok := o.take(key)
	if !ok {
		return nil
	}
	return r.object(o.at(key), v)
}

// skip reads key without carrying it over, and reports it with why unless its
// value says nothing (false, "none", empty).
func (r *reader) skip(o *object, key, why string) {
	v, ok := o.take(key)
	if !ok || empty(v) {
		return
	}
	r.note(o.at(key), "%s", why)
}

// rest reports every key of o that nothing read.
func (r *reader) rest(o *object) {
	if o == nil {
		return
	}
	var keys []string
	for k := range o.m {
		if !o.read[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.note(o.at(k), "unknown field: the import does not know what it means")
	}
}

func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case string:
		return v == "" || strings.EqualFold(v, "none")
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "the string " + strconv.Quote(v)
	case json.Number:
		return "the number " + string(v)
	case bool:
		return strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// errorsOf joins the reader's errors, nil when there are none.
func (r *reader) err() error { return errors.Join(r.errs...) }
