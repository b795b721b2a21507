package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The schema tests judge phoenix's JSON Schema with a draft 2020-12 validator
// that passes the JSON Schema test suite, so that the schema is judged by
// something other than the code that generates it. It runs in the test
// binary: nothing is installed or fetched at test time. The module is
// pb33f/jsonschema, santhosh-tekuri/jsonschema v6.0.3 with the fix upstream
// has left unmerged (santhosh-tekuri/jsonschema#258, #269): a propertyNames
// error there can report another property's location, which
// TestSchemaRejectsBadDocuments checks.

// compileSchema compiles a JSON Schema document the way the tests judge
// phoenix's: refused in strict mode (strictSchemaErrors) or when not valid
// against the draft 2020-12 metaschema, with format assertions on, and with
// patterns matched by schemaRegexp.
func compileSchema(doc []byte) (*jsonschema.Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if errs := strictSchemaErrors(v); len(errs) > 0 {
		return nil, fmt.Errorf("schema: %w", errors.Join(errs...))
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseRegexpEngine(schemaRegexp)
	const loc = "phoenix.schema.json"
	if err := c.AddResource(loc, v); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if sch.DraftVersion != 2020 {
		return nil, fmt.Errorf("schema: compiled as draft %d, want 2020-12", sch.DraftVersion)
	}
	return sch, nil
}

// schemaRegexp is the regexp engine the validator compiles the schema's
// patterns with. The patterns are ECMA-262, as JSON Schema says, and Go's
// regexp package reads some ECMA-262 differently or not at all (\u escapes,
// the lookarounds the translator writes for (?m)^), so the validator must not
// compile them as Go regexps. Each pattern in the schema is instead the
// translation of a Go regexp in regexpsInSchema, which
// TestSchemaPatternsAreECMA262 proves (with a real ECMA-262 engine) to match
// exactly what the translation matches; so a pattern is matched with the Go
// regexp it came from, and a pattern from anywhere else is refused.
func schemaRegexp(p string) (jsonschema.Regexp, error) {
	for _, re := range regexpsInSchema {
		ecma, err := ecmaPattern(re)
		if err != nil {
			return nil, err
		}
		switch p {
		case ecma:
			return re, nil
		case "^$|" + ecma: // optPattern's: empty, or the regexp's match
			return regexp.Compile(`^$|(?:` + re.String() + `)`)
		}
	}
	return nil, fmt.Errorf("pattern %q comes from no regexp in regexpsInSchema", p)
}

// schemaError is one keyword a document fails, as validators report it: where
// in the document (a JSON pointer) and which keyword.
type schemaError struct{ InstancePath, Keyword, Message string }

// verdict is the validator's answer for one document.
type verdict struct {
	Valid  bool
	Errors []schemaError
}

// validateDocs validates documents against the generated schema, by name.
func validateDocs(t *testing.T, docs []namedDoc) map[string]verdict {
	t.Helper()
	doc, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	sch, err := compileSchema(doc)
	if err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]verdict{}
	for _, d := range docs {
		if _, dup := verdicts[d.Name]; dup {
			t.Fatalf("two documents are named %s", d.Name)
		}
		v, err := validateDoc(sch, d.Document)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		verdicts[d.Name] = v
	}
	return verdicts
}

// validateDoc validates a document as JSON carries it: the round trip makes
// the validator see what any other tool reading the document as JSON sees.
func validateDoc(sch *jsonschema.Schema, doc any) (verdict, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return verdict{}, fmt.Errorf("as JSON: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return verdict{}, fmt.Errorf("read back from JSON: %w", err)
	}
	err = sch.Validate(v)
	var verr *jsonschema.ValidationError
	switch {
	case err == nil:
		return verdict{Valid: true}, nil
	case errors.As(err, &verr):
		var out verdict
		flattenErrors(verr, &out.Errors)
		return out, nil
	}
	return verdict{}, fmt.Errorf("validate: %w", err)
}

var englishErrors = message.NewPrinter(language.English)

// flattenErrors lists every failed keyword of a validation error tree, the
// causes of a failed oneOf among them, as ajv's allErrors did.
func flattenErrors(e *jsonschema.ValidationError, into *[]schemaError) {
	flatten(e, nil, into)
}

// flatten is flattenErrors below a propertyNames error when object is set:
// its causes judged a property name as a document of its own, so their
// locations are relative to the name, and ajv reports them at the object.
func flatten(e *jsonschema.ValidationError, object *string, into *[]schemaError) {
	at := instancePath(e.InstanceLocation)
	if object != nil {
		at = *object
	}
	if kw := failedKeyword(e.ErrorKind); kw != "" {
		*into = append(*into, schemaError{InstancePath: at, Keyword: kw, Message: e.ErrorKind.LocalizedString(englishErrors)})
	}
	if _, names := e.ErrorKind.(*kind.PropertyNames); names {
		object = &at
	}
	for _, c := range e.Causes {
		flatten(c, object, into)
	}
}

// failedKeyword names the keyword an error is for; "" for the errors that
// only group others.
func failedKeyword(k jsonschema.ErrorKind) string {
	if _, ok := k.(*kind.Not); ok {
		return "not" // its KeywordPath is empty in v6.0.3
	}
	if path := k.KeywordPath(); len(path) > 0 {
		return path[0]
	}
	return ""
}

// instancePath writes a location in a document as a JSON pointer, as ajv's
// instancePath: "" for the whole document.
func instancePath(tokens []string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteString(pointer("", tok))
	}
	return b.String()
}

// TestSchemaCompilerIsStrict feeds compileSchema schemas with one fault each,
// which a lax validator would take, and faultless ones beside them, so that
// the strictness the other schema tests rely on is itself tested.
func TestSchemaCompilerIsStrict(t *testing.T) {
	const draft = `"$schema": "https://json-schema.org/draft/2020-12/schema", `
	hostnamePattern, err := ecmaPattern(hostnameLabel)
	if err != nil {
		t.Fatal(err)
	}
	pattern, err := json.Marshal(hostnamePattern)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, schema, wantErr string // wantErr "": compiles
	}{
		{"accepts a typed schema", `{"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}, "required": ["a"]}`, ""},
		{"accepts union types", `{"type": ["string", "number", "boolean"], "maxLength": 3}`, ""},
		{"accepts a type declared by the schema applied around it", `{"type": "object", "oneOf": [{"properties": {"a": true}, "required": ["a"]}, {"type": "object", "not": {"minProperties": 1}}]}`, ""},
		{"accepts property names as strings", `{"type": "object", "propertyNames": {"maxLength": 3}}`, ""},
		{"accepts an integer where a number is declared", `{"type": ["number", "null"], "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}`, ""},
		{"accepts a closed tuple", `{"type": "array", "prefixItems": [true], "minItems": 1, "items": false}`, ""},
		{"accepts a format the validator asserts", `{"type": "string", "format": "ipv4"}`, ""},
		{"accepts a pattern translated from a regexp in regexpsInSchema", `{"type": "string", "pattern": ` + string(pattern) + `}`, ""},
		{"refuses an unknown keyword", `{"type": "string", "minlength": 1}`, `unknown keyword "minlength"`},
		{"refuses an unknown keyword deep inside", `{"type": "object", "properties": {"a/b": {"type": "array", "items": {"typ": "string"}}}}`, `at #/properties/a~1b/items: strict mode: unknown keyword "typ"`},
		{"refuses a keyword of an older draft", `{"type": "object", "definitions": {}}`, `unknown keyword "definitions"`},
		{"refuses an unknown format", `{"type": "string", "format": "hostnam"}`, `unknown format hostnam`},
		{"refuses a keyword without its type", `{"properties": {}}`, `missing type "object" for keyword "properties"`},
		{"refuses a keyword for another type", `{"type": "string", "minimum": 1}`, `missing type "number" for keyword "minimum"`},
		{"refuses a keyword in a subschema of another instance without its type", `{"type": "object", "additionalProperties": {"maxLength": 1}}`, `at #/additionalProperties: strict mode: missing type "string"`},
		{"refuses a type the enclosing schema excludes", `{"type": "string", "oneOf": [{"type": "number"}]}`, `type "number" not allowed by context "string"`},
		{"refuses a required property the schema does not define", `{"type": "object", "required": ["a"]}`, `required property "a" is not defined`},
		{"refuses then without if", `{"type": "string", "then": true}`, `"then" without "if" is ignored`},
		{"refuses if without then or else", `{"type": "string", "if": true}`, `"if" without "then" and "else" is ignored`},
		{"refuses minContains without contains", `{"type": "array", "minContains": 1}`, `"minContains" without "contains" is ignored`},
		{"refuses an open tuple", `{"type": "array", "prefixItems": [true]}`, `"prefixItems" is a 1-tuple`},
		{"refuses what the metaschema does", `{"type": "string", "minLength": -1}`, `not valid against metaschema`},
		{"refuses a misspelt type", `{"type": "strin"}`, `not valid against metaschema`},
		{"refuses a pattern from no regexp in regexpsInSchema", `{"type": "string", "pattern": "^x$"}`, `comes from no regexp in regexpsInSchema`},
		{"refuses another draft", `{"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"}`, `compiled as draft 7`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			schema := c.schema
			if !strings.Contains(schema, `"$schema"`) {
				schema = "{" + draft + schema[1:]
			}
			_, err := compileSchema([]byte(schema))
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("%s\ndoes not compile: %v", schema, err)
			case c.wantErr != "" && err == nil:
				t.Errorf("%s\ncompiles; want an error with %q", schema, c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Errorf("%s\nfails with %v\nwant an error with %q", schema, err, c.wantErr)
			}
		})
	}
}
