package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/pveapi"
)

// checkReturns validates an answer's data against what the schemas of
// Proxmox VE 9.1 and 8.3 say the method returns, by the rules of
// PVE::JSONSchema's check_prop and check_type (pve-common
// src/PVE/JSONSchema.pm): Perl's scalars, so a string field takes any scalar
// and a boolean 0, 1, "0" or "1"; a property that is null counts as absent;
// properties the schema does not name are allowed (real answers carry
// them: a vnet's ipam, a bridge's bridge_stp). Formats are checked where the
// checker knows them; PVE's own answers break some (a netmask of "24" for
// the ipv4mask format), so only those the simulator's answers must meet.
func checkReturns(t *testing.T, method, path string, data any) {
	t.Helper()
	for _, v := range pveapi.Versions() {
		schema, err := pveapi.Load(v)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := schema.Lookup(method, path)
		if err != nil {
			t.Fatalf("PVE %s: %s %s: %v", v, method, path, err)
		}
		var returns map[string]any
		if err := json.Unmarshal(m.Returns, &returns); err != nil {
			t.Fatalf("PVE %s: %s %s: returns: %v", v, method, path, err)
		}
		var errs []string
		validateReturn(returns, data, "data", &errs)
		sort.Strings(errs)
		for _, e := range errs {
			t.Errorf("PVE %s %s %s: %s", v, method, path, e)
		}
	}
}

var returnFormats = map[string]func(string) bool{
	"pve-storage-id": storageIDRE.MatchString,
	"pve-iface":      ifaceRE.MatchString,
	"pve-storage-content-list": func(s string) bool {
		for _, c := range splitList(s) {
			if !slices.Contains(contentTypes, c) {
				return false
			}
		}
		return true
	},
	"ipv4": func(s string) bool { a, err := netip.ParseAddr(s); return err == nil && a.Is4() },
	"CIDRv4": func(s string) bool {
		p, err := netip.ParsePrefix(s)
		return err == nil && p.Addr().Is4()
	},
}

var integerRE = regexp.MustCompile(`^\s*[+-]?\d+\s*$`)

func validateReturn(schema map[string]any, v any, path string, errs *[]string) {
	bad := func(format string, args ...any) { *errs = append(*errs, path+": "+fmt.Sprintf(format, args...)) }
	if v == nil {
		if schema["type"] != "null" && !truthy(schema["optional"]) {
			bad("null where the schema wants %v", schema["type"])
		}
		return
	}
	scalar := ""
	switch x := v.(type) {
	case string:
		scalar = x
	case float64:
		scalar = strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		scalar = map[bool]string{true: "1", false: "0"}[x]
	}
	_, isArray := v.([]any)
	_, isObject := v.(map[string]any)
	switch typ, _ := schema["type"].(string); typ {
	case "array":
		if !isArray {
			bad("type check ('array') failed")
			return
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range v.([]any) {
				validateReturn(items, e, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
		return
	case "object":
		if !isObject {
			bad("type check ('object') failed")
			return
		}
		obj := v.(map[string]any)
		props, _ := schema["properties"].(map[string]any)
		for _, name := range slicesSorted(props) {
			sub := props[name].(map[string]any)
			val, present := obj[name]
			switch {
			case !present && !truthy(sub["optional"]):
				*errs = append(*errs, path+"."+name+": property is missing and it is not optional")
			case present:
				validateReturn(sub, val, path+"."+name, errs)
			}
		}
		if ap, set := schema["additionalProperties"]; set && !truthy(ap) {
			for name := range obj {
				if _, ok := props[name]; !ok {
					*errs = append(*errs, path+"."+name+": property is not defined in schema and the schema does not allow additional properties")
				}
			}
		}
		return
	}
	if isArray || isObject {
		bad("type check ('%v') failed - got a reference", schema["type"])
		return
	}
	switch schema["type"] {
	case "boolean":
		if scalar != "0" && scalar != "1" {
			bad("type check ('boolean') failed - got '%s'", scalar)
		}
	case "integer":
		if !integerRE.MatchString(scalar) {
			bad("type check ('integer') failed - got '%s'", scalar)
		}
	case "number":
		if _, err := strconv.ParseFloat(strings.TrimSpace(scalar), 64); err != nil {
			bad("type check ('number') failed - got '%s'", scalar)
		}
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, any(scalar)) {
		bad("value '%s' does not have a value in the enumeration", scalar)
	}
	if n, err := strconv.ParseFloat(scalar, 64); err == nil {
		if lo, ok := schema["minimum"].(float64); ok && n < lo {
			bad("value must have a minimum value of %v", lo)
		}
		if hi, ok := schema["maximum"].(float64); ok && n > hi {
			bad("value may be at most %v", hi)
		}
	}
	if l, ok := schema["maxLength"].(float64); ok && float64(len(scalar)) > l {
		bad("value may only be %v characters long", l)
	}
	if l, ok := schema["minLength"].(float64); ok && float64(len(scalar)) < l {
		bad("value must be at least %v characters long", l)
	}
	if f, ok := schema["format"].(string); ok && returnFormats[f] != nil && !returnFormats[f](scalar) {
		bad("value %q does not match format %s", scalar, f)
	}
}

func truthy(v any) bool {
	switch x := v.(type) {
	case float64:
		return x != 0 && !math.IsNaN(x)
	case bool:
		return x
	case string:
		return x != "" && x != "0"
	}
	return false
}

func slicesSorted(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestCheckReturnsCatchesWhatPVEWould(t *testing.T) {
	schema := map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
		"storage": map[string]any{"type": "string", "format": "pve-storage-id"},
		"active":  map[string]any{"type": "boolean", "optional": 1.0},
		"total":   map[string]any{"type": "integer", "optional": 1.0},
		"kind":    map[string]any{"type": "string", "enum": []any{"a", "b"}, "optional": 1.0},
	}}}
	var errs []string
	validateReturn(schema, []any{
		map[string]any{"storage": "local", "active": "1", "total": 5.0, "kind": "a", "extra": 1.0},
		map[string]any{"active": 2.0, "total": 1.5, "kind": "c"},
		map[string]any{"storage": "9bad"},
	}, "data", &errs)
	want := []string{
		"data[1].storage: property is missing and it is not optional",
		"data[1].active: type check ('boolean') failed - got '2'",
		"data[1].total: type check ('integer') failed - got '1.5'",
		"data[1].kind: value 'c' does not have a value in the enumeration",
		`data[2].storage: value "9bad" does not match format pve-storage-id`,
	}
	slices.Sort(want)
	slices.Sort(errs)
	if !slices.Equal(want, errs) {
		t.Errorf("errors\n%q\nwant\n%q", errs, want)
	}
}
