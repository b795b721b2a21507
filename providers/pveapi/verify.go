package pveapi

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// ParamVerificationMessage is the exception message PVE raises with a parameter error
// map (HTTP 400); PVE 9 repeats it in the body's "message".
const ParamVerificationMessage = "Parameter verification failed.\n"

// DuplicateParamMessage is PVE's error for a request parameter that repeats a path
// template parameter (PVE::HTTPServer::rest_handler).
const DuplicateParamMessage = "duplicate parameter (already defined in URI)"

// Errors maps a parameter name to PVE's message for it, exactly as the "errors" member
// of a 400 response carries it (format errors keep their trailing newline).
type Errors map[string]string

// Error renders the errors as PVE::Exception prints them: the message, then one
// "param: message" line per parameter, sorted by name.
func (e Errors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ParamVerificationMessage)
	for _, k := range keys {
		b.WriteString(k + ": " + e[k] + "\n")
	}
	return b.String()
}

// add is JSONSchema::add_error: a second message for the same path is appended after a
// literal backslash-n (the Perl source joins with '\n' in single quotes).
func (e Errors) add(path, msg string) {
	if path == "" {
		path = "_root"
	}
	if old, ok := e[path]; ok && perlTrue(old) {
		e[path] = old + `\n` + msg
		return
	}
	e[path] = msg
}

// MergeParams combines the path template parameters Lookup returned with the request's
// own, as PVE does before verification: a request parameter that repeats a path
// parameter is an error.
func MergeParams(pathParams map[string]string, params map[string]any) (map[string]any, Errors) {
	out := make(map[string]any, len(pathParams)+len(params))
	for k, v := range pathParams {
		out[k] = v
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, dup := pathParams[k]; dup {
			// raise_param_exc on the first duplicate found.
			return nil, Errors{k: DuplicateParamMessage}
		}
		out[k] = params[k]
	}
	return out, nil
}

// Verify checks params as PVE::RESTHandler::handle does before calling the method:
// array/list normalisation, then PVE::JSONSchema::validate. params holds every
// parameter including the path ones; values are strings (query or form), or what
// encoding/json decodes a JSON body into (string, float64, json.Number, bool, nil,
// []any, map[string]any). PVE's server drops the "_dc" cache-buster before this, and so
// must the caller. It returns nil when PVE accepts the request, else the per-parameter
// messages PVE answers with.
func (m *Method) Verify(params map[string]any) Errors {
	vals := make(map[string]pval, len(params))
	for k, v := range params {
		vals[k] = toPerl(v)
	}
	errs := Errors{}
	// check_prop only descends into the parameter hash when the schema has properties or
	// allows additional ones; "parameters => { additionalProperties => 0 }" alone checks
	// nothing.
	if !m.hasProperties && (m.AdditionalProperties == nil || !*m.AdditionalProperties) {
		return nil
	}
	m.normalizeLegacy(vals)
	v := &verifier{reg: m.schema.formats}
	v.checkObject("", methodObject{m, vals}, vals, m.AdditionalProperties, errs)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// normalizeLegacy is RESTHandler's $normalize_legacy_param_formats: arrays for '-list'
// strings are joined with commas, and a lone value for an array parameter becomes a
// one-element array, because www-form-urlencoded cannot say which was meant.
func (m *Method) normalizeLegacy(vals map[string]pval) {
	for k, val := range vals {
		p, ok := m.Property(k)
		if !ok || !val.truthy() {
			continue
		}
		switch {
		case val.kind == kArray && p.Type == "string" && strings.HasSuffix(p.Format, "-list"):
			parts := make([]string, len(val.arr))
			for i, e := range val.arr {
				parts[i] = e.str()
			}
			vals[k] = scalar(strings.Join(parts, ","))
		case !val.isRef() && p.Type == "array":
			vals[k] = pval{kind: kArray, arr: []pval{val}}
		}
	}
}

type pkind int

const (
	kUndef pkind = iota
	kScalar
	kBool
	kArray
	kHash
)

// pval is a value as Perl sees it after PVE decoded the request.
type pval struct {
	kind pkind
	s    string // scalar text; "1" or "0" for booleans
	arr  []pval
	hash map[string]pval
}

func scalar(s string) pval { return pval{kind: kScalar, s: s} }

func (v pval) defined() bool { return v.kind != kUndef }
func (v pval) isRef() bool   { return v.kind == kBool || v.kind == kArray || v.kind == kHash }

// refName is Perl's ref(): booleans from JSON bodies are JSON::PP::Boolean objects.
func (v pval) refName() string {
	switch v.kind {
	case kBool:
		return "JSON::PP::Boolean"
	case kArray:
		return "ARRAY"
	case kHash:
		return "HASH"
	}
	return ""
}

func (v pval) truthy() bool {
	switch v.kind {
	case kUndef:
		return false
	case kScalar, kBool:
		return perlTrue(v.s)
	}
	return true
}

// str is the value in string context.
func (v pval) str() string {
	switch v.kind {
	case kScalar, kBool:
		return v.s
	case kArray:
		return "ARRAY(0x0)"
	case kHash:
		return "HASH(0x0)"
	}
	return ""
}

func toPerl(v any) pval {
	switch t := v.(type) {
	case nil:
		return pval{}
	case pval:
		return t
	case string:
		return scalar(t)
	case bool:
		if t {
			return pval{kind: kBool, s: "1"}
		}
		return pval{kind: kBool, s: "0"}
	case json.Number:
		return scalar(jsonNumberText(string(t)))
	case float64:
		return scalar(perlNumString(t))
	case float32:
		return scalar(perlNumString(float64(t)))
	case int:
		return scalar(strconv.Itoa(t))
	case int64:
		return scalar(strconv.FormatInt(t, 10))
	case int32:
		return scalar(strconv.FormatInt(int64(t), 10))
	case uint64:
		return scalar(strconv.FormatUint(t, 10))
	case uint:
		return scalar(strconv.FormatUint(uint64(t), 10))
	case []any:
		out := make([]pval, len(t))
		for i, e := range t {
			out[i] = toPerl(e)
		}
		return pval{kind: kArray, arr: out}
	case []string:
		out := make([]pval, len(t))
		for i, e := range t {
			out[i] = scalar(e)
		}
		return pval{kind: kArray, arr: out}
	case map[string]any:
		out := make(map[string]pval, len(t))
		for k, e := range t {
			out[k] = toPerl(e)
		}
		return pval{kind: kHash, hash: out}
	case map[string]string:
		out := make(map[string]pval, len(t))
		for k, e := range t {
			out[k] = scalar(e)
		}
		return pval{kind: kHash, hash: out}
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar(strconv.FormatInt(rv.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar(strconv.FormatUint(rv.Uint(), 10))
	case reflect.String:
		return scalar(rv.String())
	}
	return scalar(fmt.Sprint(v))
}

// jsonNumberText is how Perl prints a number JSON decoded: integers that fit stay
// integers, the rest become doubles ("1.0" prints as "1").
func jsonNumberText(s string) string {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return strconv.FormatUint(u, 10)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) {
		return s
	}
	return perlNumString(f)
}

// objectSchema is what check_object iterates: a method's parameters or a property
// string's keys.
type objectSchema interface {
	// keys lists the schema keys check_object visits (indexed keys expanded as needed).
	keys() []string
	lookup(key string) (*Property, bool)
}

type methodObject struct {
	m    *Method
	vals map[string]pval
}

func (o methodObject) keys() []string {
	var out []string
	for name, p := range o.m.params {
		base, indexed := strings.CutSuffix(name, "[n]")
		if !indexed {
			out = append(out, name)
			continue
		}
		// PVE registers base0..baseN-1 separately; only present ones can fail unless a
		// key is mandatory.
		limit := o.m.indexed[base].limit
		if !p.Optional {
			for i := 0; i < limit; i++ {
				out = append(out, base+strconv.Itoa(i))
			}
			continue
		}
		for k := range o.vals {
			if q, ok := o.m.Property(k); ok && q == p {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (o methodObject) lookup(key string) (*Property, bool) { return o.m.Property(key) }

type propStringObject map[string]*Property

func (o propStringObject) keys() []string {
	out := make([]string, 0, len(o))
	for k := range o {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (o propStringObject) lookup(key string) (*Property, bool) {
	p, ok := o[key]
	return p, ok
}

type verifier struct {
	reg *formatRegistry
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// instanceType is check_object's get_instance_type: the value of the property named by
// 'type-property', if the schema key has one.
func instanceType(p *Property, vals map[string]pval) *string {
	if p.TypeProperty == "" {
		return nil
	}
	v, ok := vals[p.TypeProperty]
	if !ok || !v.defined() {
		return nil
	}
	s := v.str()
	return &s
}

// checkObject is JSONSchema::check_object. additional is nil when the schema does not
// set additionalProperties, which allows unknown keys.
func (v *verifier) checkObject(path string, schema objectSchema, vals map[string]pval, additional *bool, errs Errors) {
	for _, k := range schema.keys() {
		p, _ := schema.lookup(k)
		v.checkProp(vals[k], p, joinPath(path, k), errs, instanceType(p, vals))
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		newPath := joinPath(path, k)
		if sub, ok := schema.lookup(k); ok {
			if req := sub.Requires; req != "" {
				if rv, ok := vals[req]; !ok || !rv.defined() {
					errs.add(joinPath(path, req), fmt.Sprintf("missing property - '%s' requires this property", newPath))
				}
			}
			matched := true
			if len(sub.OneOf) > 0 {
				it := ""
				if t := instanceType(sub, vals); t != nil {
					it = *t
				}
				matched = false
				for _, alt := range sub.OneOf {
					if alt.InstanceTypes != nil && !contains(alt.InstanceTypes, it) {
						continue
					}
					matched = true
					break
				}
			}
			if matched {
				continue
			}
		}
		if additional != nil && !*additional {
			errs.add(newPath, "property is not defined in schema and the schema does not allow additional properties")
		}
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// checkProp is JSONSchema::check_prop.
func (v *verifier) checkProp(val pval, s *Property, path string, errs Errors, itype *string) {
	optionalForType := false
	switch {
	case len(s.OneOf) > 0 && s.TypeProperty != "":
		// Only the alternatives for the instance's type apply.
		optionalForType = true
		for _, alt := range s.OneOf {
			if itype == nil || !perlTrue(*itype) {
				break
			}
			if alt.InstanceTypes == nil {
				errs.add(path, "missing 'instance-types' in oneOf alternative")
				return
			}
			if !contains(alt.InstanceTypes, *itype) {
				continue
			}
			optionalForType = alt.Optional
			v.checkProp(val, alt, path, errs, nil)
		}
	case len(s.OneOf) > 0:
		valid := false
		collected := Errors{}
		for i, alt := range s.OneOf {
			inner := Errors{}
			v.checkProp(val, alt, fmt.Sprintf("%s.oneOf[%d]", path, i), inner, nil)
			if len(inner) == 0 {
				valid = true
				break
			}
			for ip, msg := range inner {
				collected.add(ip, msg)
			}
		}
		if !valid {
			for ip, msg := range collected {
				errs.add(ip, msg)
			}
		}
	case itype != nil && perlTrue(*itype):
		if s.InstanceTypes == nil {
			errs.add(path, "missing 'instance-types'")
			return
		}
		if contains(s.InstanceTypes, *itype) {
			optionalForType = true
		}
	}

	if !val.defined() {
		if s.Type == "null" {
			return
		}
		if !s.Optional && s.Alias == "" && !optionalForType {
			errs.add(path, "property is missing and it is not optional")
		}
		return
	}

	if !v.checkType(path, s.Type, val, errs) {
		return
	}

	if val.isRef() {
		if val.kind == kArray && s.Items != nil {
			for i, el := range val.arr {
				v.checkProp(el, s.Items, fmt.Sprintf("%s[%d]", path, i), errs, nil)
			}
		}
		// Nested object schemas do not occur among API parameters.
		return
	}

	value := val.s
	if s.PropertyString != nil || s.Format != "" {
		if err := v.checkFormat(s, value, path); err != nil {
			errs.add(path, "invalid format - "+err.Error())
			return
		}
	}
	if s.Pattern != "" {
		if s.pattern == nil || !s.pattern.match(value) {
			errs.add(path, "value does not match the regex pattern")
			return
		}
	}
	if s.MaxLength >= 0 && perlLength(value) > s.MaxLength {
		errs.add(path, fmt.Sprintf("value may only be %d characters long", s.MaxLength))
		return
	}
	if s.MinLength >= 0 && perlLength(value) < s.MinLength {
		errs.add(path, fmt.Sprintf("value must be at least %d characters long", s.MinLength))
		return
	}
	if isNumber(value) {
		if s.maximum.set && perlNumCompare(value, s.Maximum) > 0 {
			errs.add(path, "value must have a maximum value of "+s.Maximum)
			return
		}
		if s.minimum.set && perlNumCompare(value, s.Minimum) < 0 {
			errs.add(path, "value must have a minimum value of "+s.Minimum)
			return
		}
	}
	if s.Enum != nil && !contains(s.Enum, value) {
		errs.add(path, fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", value, strings.Join(s.Enum, ", ")))
	}
}

// checkType is JSONSchema::check_type.
func (v *verifier) checkType(path, typ string, val pval, errs Errors) bool {
	if typ == "" {
		return true
	}
	if strings.Contains(typ, "|") {
		for _, t := range strings.Split(typ, "|") {
			if v.checkType(path, t, val, Errors{}) {
				return true
			}
		}
		errs.add(path, fmt.Sprintf("type check ('%s') failed", typ))
		return false
	}
	switch typ {
	case "any":
		return true
	case "null":
		errs.add(path, "type check ('null') failed - value is not null")
		return false
	case "array":
		if val.kind != kArray {
			errs.add(path, "type check ('array') failed")
			return false
		}
		return true
	case "object":
		if val.kind != kHash {
			errs.add(path, "type check ('object') failed")
			return false
		}
		return true
	case "coderef":
		errs.add(path, "type check ('coderef') failed")
		return false
	}
	if val.isRef() {
		if typ == "boolean" && val.kind == kBool {
			return true
		}
		errs.add(path, fmt.Sprintf("type check ('%s') failed - got %s", typ, val.refName()))
		return false
	}
	ok := true
	switch typ {
	case "boolean":
		// Only 1 and 0: pve-common keeps the (1|true|yes|on) variant commented out. Property
		// string values are different, parse_property_string normalises them first.
		ok = val.s == "1" || val.s == "0"
	case "integer":
		ok = isInteger(val.s)
	case "number":
		ok = isNumber(val.s)
	}
	if !ok {
		errs.add(path, fmt.Sprintf("type check ('%s') failed - got '%s'", typ, val.s))
	}
	return ok
}
