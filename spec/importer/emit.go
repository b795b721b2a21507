package importer

import (
	"bytes"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/phoenixhv/phoenix/spec"
)

// emit writes documents as YAML, their fields in the order the spec's types
// declare them (which is the README's order), comment first.
func emit(comment string, docs ...any) []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for i, d := range docs {
		n := document(d)
		if i == 0 && comment != "" {
			n.HeadComment = comment
		}
		if err := enc.Encode(n); err != nil {
			// The nodes are built here from plain values: a failure is a bug.
			panic(err)
		}
	}
	_ = enc.Close()
	return buf.Bytes()
}

func document(d any) *yaml.Node {
	m := mapping()
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, scalar(k, "!!str"), v) }
	add("apiVersion", scalar(spec.APIVersion, "!!str"))
	switch d := d.(type) {
	case *spec.Cluster:
		add("kind", scalar(string(spec.KindCluster), "!!str"))
		add("metadata", node(reflect.ValueOf(d.Metadata), ""))
		add("spec", node(reflect.ValueOf(d.Spec), ""))
	case *spec.Guest:
		add("kind", scalar(string(d.Kind), "!!str"))
		add("metadata", node(reflect.ValueOf(d.Metadata), ""))
		add("spec", node(reflect.ValueOf(d.Spec), ""))
	case *spec.Feature:
		add("kind", scalar(string(spec.KindFeature), "!!str"))
		add("metadata", node(reflect.ValueOf(d.Metadata), ""))
		add("spec", node(reflect.ValueOf(d.Spec), ""))
	}
	return m
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func scalar(v, tag string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v}
	if strings.Contains(v, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

// flowItems are lists whose items are written one per line in flow style, as
// the examples write rules, mounts and id maps.
var flowItems = map[string]bool{"rules": true, "mounts": true, "idMap": true, "aliases": true, "entries": true}

// node is the YAML of one value; empty fields (omitempty) are left out by
// the caller through isEmpty.
func node(v reflect.Value, field string) *yaml.Node {
	if v.Kind() == reflect.Pointer {
		return node(v.Elem(), field)
	}
	if s, ok := v.Interface().(spec.GPUSet); ok {
		if s.All {
			return scalar("all", "!!str")
		}
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, i := range s.Indices {
			n.Content = append(n.Content, scalar(strconv.Itoa(i), "!!int"))
		}
		return n
	}
	switch v.Kind() {
	case reflect.String:
		return scalar(v.String(), "!!str")
	case reflect.Int:
		return scalar(strconv.FormatInt(v.Int(), 10), "!!int")
	case reflect.Bool:
		return scalar(strconv.FormatBool(v.Bool()), "!!bool")
	case reflect.Float64:
		return scalar(strconv.FormatFloat(v.Float(), 'g', -1, 64), "!!float")
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		scalars := v.Type().Elem().Kind() != reflect.Struct
		if scalars {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			e := node(v.Index(i), "")
			if flowItems[field] && e.Kind == yaml.MappingNode {
				e.Style = yaml.FlowStyle
			}
			n.Content = append(n.Content, e)
		}
		return n
	case reflect.Map:
		n := mapping()
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			e := node(v.MapIndex(k), "")
			if e.Kind == yaml.MappingNode && field == "featureConfig" {
				e.Style = yaml.FlowStyle
			}
			n.Content = append(n.Content, scalar(k.String(), "!!str"), e)
		}
		return n
	case reflect.Struct:
		n := mapping()
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omitempty") && isEmpty(fv) {
				continue
			}
			if name == "from" || name == "startup" || name == "features" && t == reflect.TypeOf(spec.Security{}) {
				e := node(fv, name)
				e.Style = yaml.FlowStyle
				n.Content = append(n.Content, scalar(name, "!!str"), e)
				continue
			}
			e := node(fv, name)
			if name == "hwaddr" {
				// A MAC of digits only would read as a YAML 1.1 sexagesimal number.
				e.Style = yaml.DoubleQuotedStyle
			}
			n.Content = append(n.Content, scalar(name, "!!str"), e)
		}
		return n
	}
	return scalar(v.String(), "!!str")
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.Slice, reflect.Map, reflect.String:
		return v.Len() == 0
	case reflect.Struct:
		return v.IsZero()
	}
	return v.IsZero()
}
