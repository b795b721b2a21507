package spec

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The Go validator has no strict mode, and ajv's (strict: true with
// allowUnionTypes), which judged the schema before, refuses a schema whose
// keywords would be silently ignored or could never apply. strictSchemaErrors
// redoes those checks over the schema document, so that a typo in the
// generator fails the tests instead of loosening the schema.

// subschemas says where a keyword keeps its subschemas, and so what instance
// they apply to: that decides which instance types they start out knowing.
type subschemas int

const (
	noSubschema  subschemas = iota
	sameOne                 // one, applied to the same instance: not, if, then, else
	sameList                // a list, applied to the same instance: allOf, anyOf, oneOf
	sameMap                 // a map, applied to the same instance: dependentSchemas
	childOne                // one, applied to other instances: items, additionalProperties
	childList               // a list, applied to other instances: prefixItems
	childMap                // a map, applied to other instances: properties
	nameOne                 // one, applied to property names: propertyNames
	unreachedMap            // a map checked only where referenced: $defs
)

// keyword is what strict mode knows of a draft 2020-12 keyword: the instance
// types it applies to (none: all) and where its subschemas are.
type keyword struct {
	types []string
	sub   subschemas
}

var (
	objectOnly = []string{"object"}
	arrayOnly  = []string{"array"}
	stringOnly = []string{"string"}
	numberOnly = []string{"number"}
)

// keywords2020 are the keywords of draft 2020-12's vocabularies and no others:
// definitions, dependencies and $recursiveRef, which 2020-12 replaced, are
// unknown here, as they would be ignored by a 2020-12 validator that does not
// keep them for old schemas' sake.
var keywords2020 = map[string]keyword{
	// core
	"$schema": {}, "$id": {}, "$ref": {}, "$anchor": {}, "$dynamicRef": {}, "$dynamicAnchor": {},
	"$vocabulary": {}, "$comment": {}, "$defs": {sub: unreachedMap},
	// applicator
	"allOf": {sub: sameList}, "anyOf": {sub: sameList}, "oneOf": {sub: sameList},
	"not": {sub: sameOne}, "if": {sub: sameOne}, "then": {sub: sameOne}, "else": {sub: sameOne},
	"dependentSchemas": {objectOnly, sameMap},
	"prefixItems":      {arrayOnly, childList}, "items": {arrayOnly, childOne}, "contains": {arrayOnly, childOne},
	"properties": {objectOnly, childMap}, "patternProperties": {objectOnly, childMap},
	"additionalProperties": {objectOnly, childOne}, "propertyNames": {objectOnly, nameOne},
	// unevaluated
	"unevaluatedItems": {arrayOnly, childOne}, "unevaluatedProperties": {objectOnly, childOne},
	// validation
	"type": {}, "enum": {}, "const": {},
	"multipleOf": {types: numberOnly}, "maximum": {types: numberOnly}, "exclusiveMaximum": {types: numberOnly},
	"minimum": {types: numberOnly}, "exclusiveMinimum": {types: numberOnly},
	"maxLength": {types: stringOnly}, "minLength": {types: stringOnly}, "pattern": {types: stringOnly},
	"maxItems": {types: arrayOnly}, "minItems": {types: arrayOnly}, "uniqueItems": {types: arrayOnly},
	"maxContains": {types: arrayOnly}, "minContains": {types: arrayOnly},
	"maxProperties": {types: objectOnly}, "minProperties": {types: objectOnly},
	"required": {types: objectOnly}, "dependentRequired": {types: objectOnly},
	// meta-data
	"title": {}, "description": {}, "default": {}, "deprecated": {}, "readOnly": {}, "writeOnly": {}, "examples/homelab": {},
	// format-annotation: ajv applies format to numbers too, so its type check does
	"format": {types: []string{"number", "string"}},
	// content
	"contentEncoding": {}, "contentMediaType": {}, "contentSchema": {sub: childOne},
}

// formats2020 are the formats draft 2020-12 defines, all of which the Go
// validator asserts (compileSchema turns assertion on). A format outside them
// would be an annotation nobody checks. (ajv, without ajv-formats, knew none
// and refused every format; the schema has none today.)
var formats2020 = []string{
	"date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
	"ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
	"json-pointer", "relative-json-pointer", "regex",
}

// strictSchemaErrors reports what ajv's strict mode would refuse in a draft
// 2020-12 schema document (decoded JSON): unknown keywords and formats,
// keywords that would be ignored (then without if, minContains without
// contains), keywords for an instance type the schema does not declare (ajv's
// strictTypes, union types allowed), required properties the schema does not
// define (strictRequired) and open tuples (strictTuples).
func strictSchemaErrors(schema any) []error {
	var s strictChecker
	s.check(schema, "", nil)
	return s.errs
}

type strictChecker struct{ errs []error }

func (s *strictChecker) fail(at, format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf("at #%s: strict mode: %s", at, fmt.Sprintf(format, args...)))
}

// check checks one schema at the JSON pointer at. context holds the instance
// types that the schemas applied to the same instance have declared (ajv's
// dataTypes).
func (s *strictChecker) check(schema any, at string, context []string) {
	obj, ok := schema.(map[string]any)
	if !ok {
		if _, isBool := schema.(bool); !isBool {
			s.fail(at, "a schema is an object or a boolean, not %T", schema)
		}
		return
	}
	types := s.types(obj, at, context)
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		kw, known := keywords2020[name]
		if !known {
			s.fail(at, "unknown keyword %q", name)
			continue
		}
		if len(kw.types) > 0 && !slices.ContainsFunc(kw.types, func(t string) bool { return appliesTo(types, t) }) {
			s.fail(at, "missing type %q for keyword %q", strings.Join(kw.types, ","), name)
		}
		s.descend(obj[name], pointer(at, name), kw.sub, types)
	}
	s.ignored(obj, at)
	s.format(obj, at)
	s.required(obj, at)
	s.tuple(obj, at)
}

// types checks the schema's own type against its context and returns the
// types known inside it: the context's narrowed to the schema's own.
func (s *strictChecker) types(obj map[string]any, at string, context []string) []string {
	var own []string
	switch t := obj["type"].(type) {
	case string:
		own = []string{t}
	case []any:
		for _, x := range t {
			if name, ok := x.(string); ok {
				own = append(own, name)
			}
		}
	}
	if len(own) == 0 {
		return context
	}
	if len(context) == 0 {
		return own
	}
	var narrowed []string
	for _, t := range own {
		if !includesType(context, t) {
			s.fail(at, "type %q not allowed by context %q", t, strings.Join(context, ","))
		}
	}
	for _, t := range context {
		switch {
		case includesType(own, t):
			narrowed = append(narrowed, t)
		case t == "number" && slices.Contains(own, "integer"):
			narrowed = append(narrowed, "integer")
		}
	}
	return narrowed
}

// includesType reports whether an instance of type t may be one of types: an
// integer is a number.
func includesType(types []string, t string) bool {
	return slices.Contains(types, t) || (t == "integer" && slices.Contains(types, "number"))
}

// appliesTo reports whether a keyword for instances of type t applies to an
// instance of one of types: number keywords apply to integers.
func appliesTo(types []string, t string) bool {
	return slices.Contains(types, t) || (t == "number" && slices.Contains(types, "integer"))
}

// descend checks a keyword's subschemas. Those applied to the same instance
// keep the context; the others start from none, as ajv's do.
func (s *strictChecker) descend(v any, at string, sub subschemas, types []string) {
	switch sub {
	case sameOne:
		s.check(v, at, types)
	case childOne:
		s.check(v, at, nil)
	case nameOne:
		s.check(v, at, stringOnly)
	case sameList, childList:
		list, ok := v.([]any)
		if !ok {
			s.fail(at, "want a list of schemas, not %T", v)
			return
		}
		if sub == childList {
			types = nil
		}
		for i, x := range list {
			s.check(x, pointer(at, fmt.Sprint(i)), types)
		}
	case sameMap, childMap, unreachedMap:
		m, ok := v.(map[string]any)
		if !ok {
			s.fail(at, "want a map of schemas, not %T", v)
			return
		}
		if sub != sameMap {
			types = nil
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			s.check(m[k], pointer(at, k), types)
		}
	}
}

// ignored reports keywords that mean nothing without their partner.
func (s *strictChecker) ignored(obj map[string]any, at string) {
	_, hasIf := obj["if"]
	_, hasContains := obj["contains"]
	for _, name := range []string{"then", "else"} {
		if _, ok := obj[name]; ok && !hasIf {
			s.fail(at, "%q without \"if\" is ignored", name)
		}
	}
	if _, hasThen := obj["then"]; hasIf && !hasThen {
		if _, hasElse := obj["else"]; !hasElse {
			s.fail(at, `"if" without "then" and "else" is ignored`)
		}
	}
	for _, name := range []string{"minContains", "maxContains"} {
		if _, ok := obj[name]; ok && !hasContains {
			s.fail(at, "%q without \"contains\" is ignored", name)
		}
	}
}

func (s *strictChecker) format(obj map[string]any, at string) {
	if f, ok := obj["format"]; ok {
		if name, ok := f.(string); !ok || !slices.Contains(formats2020, name) {
			s.fail(at, "unknown format %v", f)
		}
	}
}

// required wants each required property defined by the same schema's
// properties. ajv also counts properties that schemas it compiled earlier on
// the same instance define; its order (in-place applicators before properties)
// makes that rare, and leaving it out only makes this check stricter.
func (s *strictChecker) required(obj map[string]any, at string) {
	names, _ := obj["required"].([]any)
	props, _ := obj["properties"].(map[string]any)
	for _, n := range names {
		if name, ok := n.(string); ok {
			if _, defined := props[name]; !defined {
				s.fail(at, "required property %q is not defined in properties", name)
			}
		}
	}
}

// tuple wants prefixItems to say how long the array is: minItems as long as
// the tuple and no items beyond it.
func (s *strictChecker) tuple(obj map[string]any, at string) {
	prefix, ok := obj["prefixItems"].([]any)
	if !ok {
		return
	}
	n := len(prefix)
	closed := obj["items"] == false || count(obj["maxItems"]) == n
	if count(obj["minItems"]) != n || !closed {
		s.fail(at, `"prefixItems" is a %d-tuple, but minItems or maxItems/items are not specified or different`, len(prefix))
	}
}

// count reads a non-negative integer keyword, decoded as float64 or as
// json.Number; -1 where there is none.
func count(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return int(i)
		}
	}
	return -1
}

// pointer appends one reference token to a JSON pointer.
func pointer(at, token string) string {
	return at + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}
