package pveapi

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// dieError is a Perl die() message, trailing newline included, exactly as PVE appends
// it to "invalid format - ".
type dieError string

func (e dieError) Error() string { return string(e) }

func die(format string, args ...any) error { return dieError(fmt.Sprintf(format, args...)) }

// PropertyStringError is the exception parse_property_string raises when keys parse but
// their values fail the format's schema: "format error" plus one message per key.
type PropertyStringError struct {
	// Errors maps "key" (or "param.key" inside Verify) to PVE's message.
	Errors map[string]string
}

// Error is PVE::Exception's stringification, keys sorted (Perl prints them in hash
// order): "format error\nnet0.name: property is missing and it is not optional\n".
func (e *PropertyStringError) Error() string {
	keys := make([]string, 0, len(e.Errors))
	for k := range e.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("format error\n")
	for _, k := range keys {
		b.WriteString(k + ": " + e.Errors[k] + "\n")
	}
	return b.String()
}

// ErrNotPropertyString is returned by ParsePropertyString for a property that has no
// sub-keys or was not read from a Schema.
var ErrNotPropertyString = errors.New("pveapi: property does not take a property string")

// ParsePropertyString parses value as PVE::JSONSchema::parse_property_string does for
// the property's format (the sub-keys of net[n], dev[n], rootfs, features, ... or a
// named format such as prune-backups), with the rules of the release p comes from. It
// returns the keys with booleans normalised to "1"/"0" and the bare value stored under
// the default key. Errors are PVE's own die texts, such as "duplicate key in
// comma-separated list property: name\n", or a *PropertyStringError listing each
// failing key without a parameter prefix.
func ParsePropertyString(p *Property, value string) (map[string]string, error) {
	reg := p.reg
	if reg == nil {
		return nil, ErrNotPropertyString
	}
	if p.PropertyString != nil {
		return parsePropertyString(reg, p.PropertyString, value, "", nil)
	}
	if p.Format != "" {
		if f, ok := reg.get(p.Format); ok && f.hash != nil {
			return parsePropertyString(reg, f.hash, value, "", f.hashCheck)
		}
	}
	return nil, ErrNotPropertyString
}

var (
	reBlankPart = mustPerl(`^\s*$`, "")
	reKeyValue  = mustPerl(`^([^=]+)=(.+)$`, "")
)

// parseBoolean is JSONSchema::parse_boolean.
func parseBoolean(v string) (string, bool) {
	switch {
	case reTrue.match(v):
		return "1", true
	case reFalse.match(v):
		return "0", true
	}
	return "", false
}

var (
	reTrue  = mustPerl(`^(1|on|yes|true)$`, "i")
	reFalse = mustPerl(`^(0|off|no|false)$`, "i")
)

// parsePropertyString is JSONSchema::parse_property_string with additional properties
// off, as every caller in PVE uses it. check runs after the keys passed, like a named
// format's validator.
func parsePropertyString(reg *formatRegistry, format map[string]*Property, data, path string, check func(map[string]string) error) (map[string]string, error) {
	res := map[string]string{}
	defaultKey := ""
	for _, part := range perlSplit(strings.Split(data, ",")) {
		if reBlankPart.match(part) {
			continue
		}
		if m := reKeyValue.find(part); m != nil {
			k, v := m[1], m[2]
			if _, dup := res[k]; dup {
				return nil, die("duplicate key in comma-separated list property: %s\n", k)
			}
			schema := format[k]
			if schema != nil && schema.Alias != "" {
				if ka := schema.KeyAlias; ka != "" {
					if _, dup := res[ka]; dup {
						return nil, die("key alias '%s' is already defined\n", ka)
					}
					res[ka] = k
				}
				k = schema.Alias
				schema = format[k]
			}
			if schema == nil {
				return nil, die("invalid key in comma-separated list property: %s\n", k)
			}
			if schema.Type == "boolean" {
				if b, ok := parseBoolean(v); ok {
					v = b
				}
			}
			res[k] = v
			continue
		}
		if strings.Contains(part, "=") {
			return nil, die("missing key in comma-separated list property\n")
		}
		if defaultKey != "" {
			return nil, die("duplicate key in comma-separated list property: %s\n", defaultKey)
		}
		for _, key := range propStringObject(format).keys() {
			if !format[key].DefaultKey {
				continue
			}
			defaultKey = key
			if !perlTrue(res[key]) {
				res[key] = part
				break
			}
			return nil, die("duplicate key in comma-separated list property: %s\n", defaultKey)
		}
		if defaultKey == "" {
			return nil, die("value without key, but schema does not define a default key\n")
		}
	}

	vals := make(map[string]pval, len(res))
	for k, v := range res {
		vals[k] = scalar(v)
	}
	errs := Errors{}
	noAdditional := false
	(&verifier{reg: reg}).checkObject(path, propStringObject(format), vals, &noAdditional, errs)
	if len(errs) > 0 {
		return nil, &PropertyStringError{Errors: errs}
	}
	if check != nil {
		if err := check(res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// checkFormat is JSONSchema::check_format for a property's format.
func (v *verifier) checkFormat(p *Property, value, path string) error {
	if p.PropertyString != nil {
		_, err := parsePropertyString(v.reg, p.PropertyString, value, path, nil)
		return err
	}
	return v.reg.check(p.Format, value, path)
}
