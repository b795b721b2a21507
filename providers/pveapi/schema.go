// Package pveapi knows the Proxmox VE REST API schema and judges requests against it
// exactly as a real Proxmox VE server does: which path and HTTP method exist, and
// whether the parameters pass PVE::JSONSchema's verification, with the same
// per-parameter error messages.
//
// The schema is the one Proxmox publishes (pve-docs api-viewer/apidata.js), embedded
// for PVE 8.3 and 9.1. Verification follows pve-common's PVE::JSONSchema (validate,
// check_prop, check_type, check_format, parse_property_string) and the format
// validators that pve-common, pve-container, pve-storage, pve-access-control,
// pve-guest-common, pve-cluster, pve-manager, pve-ha-manager, pve-network and
// pve-firewall register.
package pveapi

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Version names a Proxmox VE release whose API schema this package embeds.
type Version string

// The releases whose schema is embedded.
const (
	V91 Version = "9.1"
	V83 Version = "8.3"
)

// Versions lists the embedded releases, newest first.
func Versions() []Version { return []Version{V91, V83} }

//go:embed apidata-9.1.json.gz
var apidata91 []byte

//go:embed apidata-8.3.json.gz
var apidata83 []byte

var embedded = map[Version][]byte{V91: apidata91, V83: apidata83}

type loaded struct {
	once   sync.Once
	schema *Schema
	err    error
}

var cache = map[Version]*loaded{V91: {}, V83: {}}

// Load returns the embedded schema of release v. It is parsed once per release and
// the result is safe for concurrent use.
func Load(v Version) (*Schema, error) {
	l, ok := cache[v]
	if !ok {
		return nil, fmt.Errorf("pveapi: no embedded schema for Proxmox VE %q", v)
	}
	l.once.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(embedded[v]))
		if err != nil {
			l.err = fmt.Errorf("pveapi: embedded schema %s: %w", v, err)
			return
		}
		l.schema, l.err = Parse(v, zr)
	})
	return l.schema, l.err
}

// Schema is one release's API: its path tree and methods. It is immutable once parsed.
type Schema struct {
	version Version
	root    *pathNode
	methods []*Method
	formats *formatRegistry
}

// Version reports the release the schema describes.
func (s *Schema) Version() Version { return s.version }

// Methods lists every method of the schema, sorted by path then HTTP method.
func (s *Schema) Methods() []*Method { return append([]*Method(nil), s.methods...) }

// Method is one API endpoint: an HTTP method on a path template.
type Method struct {
	// Path is the template, e.g. "/nodes/{node}/lxc/{vmid}/config".
	Path string
	// HTTPMethod is GET, POST, PUT or DELETE.
	HTTPMethod string
	// Name is the handler's name in PVE, e.g. "update_vm".
	Name        string
	Description string
	// AllowToken is false where API tokens may not call the method (POST /access/ticket).
	AllowToken bool
	// Protected methods are run by pvedaemon as root, proxied from pveproxy.
	Protected bool
	// ProxyTo names the parameter whose node the call is forwarded to, if any.
	ProxyTo string
	// Permissions and Returns are the schema's JSON, unchanged.
	Permissions json.RawMessage
	Returns     json.RawMessage
	// AdditionalProperties is nil where the schema leaves it unset, which PVE treats as
	// allowing unknown parameters.
	AdditionalProperties *bool

	params  map[string]*Property
	indexed map[string]*indexedParam // by base name, e.g. "net"
	// hasProperties is false when the schema has no "properties" at all; PVE then never
	// calls check_object and takes any parameter.
	hasProperties bool
	schema        *Schema
}

type indexedParam struct {
	limit int // keys base0 .. base(limit-1)
	prop  *Property
}

// Parameters lists the method's parameters in name order; indexed ones appear once,
// named as in the schema ("net[n]"). The properties are shared; treat them as read-only.
func (m *Method) Parameters() []*Property {
	out := make([]*Property, 0, len(m.params))
	for _, p := range m.params {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Property finds the schema of parameter name, resolving indexed names: "net0" is
// "net[n]" when 0 is below the release's limit for that key.
func (m *Method) Property(name string) (*Property, bool) {
	if p, ok := m.params[name]; ok && !strings.HasSuffix(name, "[n]") {
		return p, true
	}
	base, idx, ok := splitIndexed(name)
	if !ok {
		return nil, false
	}
	ip, ok := m.indexed[base]
	if !ok || idx >= ip.limit {
		return nil, false
	}
	return ip.prop, true
}

// splitIndexed splits "net12" into ("net", 12). PVE registers such keys one by one
// (net0, net1, ...), so "net01" or "net-1" are not keys at all.
func splitIndexed(name string) (string, int, bool) {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == 0 || i == len(name) {
		return "", 0, false
	}
	for _, c := range name[:i] {
		if c < 'a' || c > 'z' {
			return "", 0, false
		}
	}
	digits := name[i:]
	if len(digits) > 1 && digits[0] == '0' {
		return "", 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return "", 0, false
	}
	return name[:i], n, true
}

// IndexLimit reports how many keys an indexed parameter such as "net[n]" expands to
// (net0 .. net31 gives 32), or 0 if name is not an indexed parameter of the method.
func (m *Method) IndexLimit(name string) int {
	ip, ok := m.indexed[strings.TrimSuffix(name, "[n]")]
	if !ok || !strings.HasSuffix(name, "[n]") {
		return 0
	}
	return ip.limit
}

// Property is the schema of one parameter, or of one key inside a property string.
type Property struct {
	// Name is the key as the schema spells it ("vmid", "net[n]", or a sub-key "bridge").
	Name string
	// Type is "string", "integer", "number", "boolean", "array", "object", another name
	// PVE does not check, or "" when unset (any value).
	Type     string
	Optional bool
	// Format names a registered format ("pve-node", "pve-tag-list"); empty when the
	// property carries a property string, whose keys are in PropertyString.
	Format         string
	PropertyString map[string]*Property
	Pattern        string
	Enum           []string
	// Minimum and Maximum are the schema's values as PVE prints them ("100", "0").
	Minimum, Maximum string
	// MinLength and MaxLength are -1 when unset.
	MinLength, MaxLength int
	// Requires names another parameter that must be present when this one is.
	Requires      string
	DefaultKey    bool
	Alias         string
	KeyAlias      string
	Default       json.RawMessage
	Description   string
	TypeText      string
	Items         *Property
	OneOf         []*Property
	TypeProperty  string
	InstanceTypes []string

	minimum, maximum numeric
	pattern          *perlRegexp
	patternErr       error
	// reg is the release's format registry, for named formats inside property strings.
	reg *formatRegistry
}

// bind attaches the release's format registry to p and everything nested in it.
func (p *Property) bind(reg *formatRegistry) {
	p.reg = reg
	for _, sub := range p.PropertyString {
		sub.bind(reg)
	}
	if p.Items != nil {
		p.Items.bind(reg)
	}
	for _, alt := range p.OneOf {
		alt.bind(reg)
	}
}

type numeric struct {
	set bool
	f   float64
}

// rawProperty mirrors the JSON of a schema property.
type rawProperty struct {
	Type          json.RawMessage            `json:"type"`
	Optional      perlBool                   `json:"optional"`
	Format        json.RawMessage            `json:"format"`
	Pattern       *string                    `json:"pattern"`
	Enum          []json.RawMessage          `json:"enum"`
	Minimum       json.RawMessage            `json:"minimum"`
	Maximum       json.RawMessage            `json:"maximum"`
	MinLength     json.RawMessage            `json:"minLength"`
	MaxLength     json.RawMessage            `json:"maxLength"`
	Requires      json.RawMessage            `json:"requires"`
	DefaultKey    perlBool                   `json:"default_key"`
	Alias         string                     `json:"alias"`
	KeyAlias      string                     `json:"keyAlias"`
	Default       json.RawMessage            `json:"default"`
	Description   string                     `json:"description"`
	TypeText      string                     `json:"typetext"`
	Items         json.RawMessage            `json:"items"`
	OneOf         []json.RawMessage          `json:"oneOf"`
	TypeProperty  string                     `json:"type-property"`
	InstanceTypes []string                   `json:"instance-types"`
	Properties    map[string]json.RawMessage `json:"properties"`
}

// perlBool reads the many spellings of Perl truth the dump uses (1, "1", 0, "", true).
type perlBool bool

func (b *perlBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case nil:
		*b = false
	case bool:
		*b = perlBool(t)
	case float64:
		*b = t != 0
	case string:
		*b = t != "" && t != "0"
	default:
		*b = true
	}
	return nil
}

// scalarText renders a JSON scalar as Perl would print the value it was dumped from.
func scalarText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	}
	switch string(raw) {
	case "true":
		return "1", true
	case "false":
		return "", true
	}
	return string(raw), true
}

func parseProperty(name string, data json.RawMessage) (*Property, error) {
	var r rawProperty
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("property %q: %w", name, err)
	}
	p := &Property{
		Name:          name,
		Optional:      bool(r.Optional),
		DefaultKey:    bool(r.DefaultKey),
		Alias:         r.Alias,
		KeyAlias:      r.KeyAlias,
		Default:       r.Default,
		Description:   r.Description,
		TypeText:      r.TypeText,
		TypeProperty:  r.TypeProperty,
		InstanceTypes: r.InstanceTypes,
		MinLength:     -1,
		MaxLength:     -1,
	}
	if t, ok := scalarText(r.Type); ok {
		p.Type = t
	} else if len(bytes.TrimSpace(r.Type)) > 0 && bytes.TrimSpace(r.Type)[0] == '[' {
		// A union type; PVE accepts any member. The dump has none, keep the first.
		var ts []string
		if err := json.Unmarshal(r.Type, &ts); err == nil && len(ts) > 0 {
			p.Type = strings.Join(ts, "|")
		}
	}
	if f := bytes.TrimSpace(r.Format); len(f) > 0 && string(f) != "null" {
		if f[0] == '{' {
			var subs map[string]json.RawMessage
			if err := json.Unmarshal(f, &subs); err != nil {
				return nil, fmt.Errorf("property %q format: %w", name, err)
			}
			p.PropertyString = make(map[string]*Property, len(subs))
			for k, v := range subs {
				sp, err := parseProperty(k, v)
				if err != nil {
					return nil, fmt.Errorf("property %q: %w", name, err)
				}
				p.PropertyString[k] = sp
			}
		} else if s, ok := scalarText(f); ok {
			p.Format = s
		}
	}
	if r.Pattern != nil {
		p.Pattern = *r.Pattern
		p.pattern, p.patternErr = compilePerlPattern(p.Pattern)
	}
	for _, e := range r.Enum {
		s, _ := scalarText(e)
		p.Enum = append(p.Enum, s)
	}
	if p.Enum == nil && r.Enum != nil {
		p.Enum = []string{}
	}
	if s, ok := scalarText(r.Minimum); ok {
		p.Minimum = s
		p.minimum = numeric{true, perlNumify(s)}
	}
	if s, ok := scalarText(r.Maximum); ok {
		p.Maximum = s
		p.maximum = numeric{true, perlNumify(s)}
	}
	if s, ok := scalarText(r.MinLength); ok {
		p.MinLength = int(perlNumify(s))
	}
	if s, ok := scalarText(r.MaxLength); ok {
		p.MaxLength = int(perlNumify(s))
	}
	if s, ok := scalarText(r.Requires); ok {
		p.Requires = s
	}
	if it := bytes.TrimSpace(r.Items); len(it) > 0 && it[0] == '{' {
		ip, err := parseProperty(name+"[]", it)
		if err != nil {
			return nil, err
		}
		p.Items = ip
	}
	for i, alt := range r.OneOf {
		ap, err := parseProperty(fmt.Sprintf("%s.oneOf[%d]", name, i), alt)
		if err != nil {
			return nil, err
		}
		p.OneOf = append(p.OneOf, ap)
	}
	return p, nil
}

type rawNode struct {
	Path     string                     `json:"path"`
	Children []rawNode                  `json:"children"`
	Info     map[string]json.RawMessage `json:"info"`
}

type rawMethod struct {
	Method      string          `json:"method"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	AllowToken  json.RawMessage `json:"allowtoken"`
	Protected   perlBool        `json:"protected"`
	ProxyTo     string          `json:"proxyto"`
	Permissions json.RawMessage `json:"permissions"`
	Returns     json.RawMessage `json:"returns"`
	Parameters  struct {
		AdditionalProperties json.RawMessage            `json:"additionalProperties"`
		Properties           map[string]json.RawMessage `json:"properties"`
	} `json:"parameters"`
}

// Parse reads an API schema in Proxmox's apidata JSON form (the api-viewer's apiSchema
// array) for release v; v selects the release's rules the dump does not carry, such as
// how many "net[n]" keys exist.
func Parse(v Version, r io.Reader) (*Schema, error) {
	var tree []rawNode
	dec := json.NewDecoder(r)
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("pveapi: parse schema: %w", err)
	}
	s := &Schema{
		version: v,
		root:    &pathNode{path: "/"},
		formats: newFormatRegistry(v),
	}
	var walk func(parent *pathNode, n rawNode) error
	walk = func(parent *pathNode, n rawNode) error {
		seg := n.Path[strings.LastIndex(n.Path, "/")+1:]
		node := parent.child(seg, n.Path)
		methods := make([]string, 0, len(n.Info))
		for hm := range n.Info {
			methods = append(methods, hm)
		}
		sort.Strings(methods)
		for _, hm := range methods {
			m, err := s.parseMethod(n.Path, hm, n.Info[hm])
			if err != nil {
				return err
			}
			if node.methods == nil {
				node.methods = map[string]*Method{}
			}
			node.methods[hm] = m
			s.methods = append(s.methods, m)
		}
		for _, c := range n.Children {
			if err := walk(node, c); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range tree {
		if err := walk(s.root, n); err != nil {
			return nil, fmt.Errorf("pveapi: parse schema: %w", err)
		}
	}
	// api_dump skips the root ("next if !$path"), but PVE::API2 does serve an index there.
	root, err := s.parseMethod("/", "GET", json.RawMessage(rootIndexMethod))
	if err != nil {
		return nil, fmt.Errorf("pveapi: root index: %w", err)
	}
	s.root.methods = map[string]*Method{"GET": root}
	s.methods = append(s.methods, root)
	for prefix := range greedyPaths {
		if n := s.root.find(prefix); n != nil {
			n.greedy = true
		}
	}
	sort.Slice(s.methods, func(i, j int) bool {
		if s.methods[i].Path != s.methods[j].Path {
			return s.methods[i].Path < s.methods[j].Path
		}
		return s.methods[i].HTTPMethod < s.methods[j].HTTPMethod
	})
	return s, nil
}

func (s *Schema) parseMethod(path, httpMethod string, data json.RawMessage) (*Method, error) {
	var rm rawMethod
	if err := json.Unmarshal(data, &rm); err != nil {
		return nil, fmt.Errorf("%s %s: %w", httpMethod, path, err)
	}
	m := &Method{
		Path:        path,
		HTTPMethod:  httpMethod,
		Name:        rm.Name,
		Description: rm.Description,
		// PVE's method schema defaults allowtoken to 1.
		AllowToken:  true,
		Protected:   bool(rm.Protected),
		ProxyTo:     rm.ProxyTo,
		Permissions: rm.Permissions,
		Returns:     rm.Returns,
		params:      map[string]*Property{},
		indexed:     map[string]*indexedParam{},
		schema:      s,
	}
	if t, ok := scalarText(rm.AllowToken); ok {
		m.AllowToken = t != "" && t != "0"
	}
	m.hasProperties = rm.Parameters.Properties != nil
	if t, ok := scalarText(rm.Parameters.AdditionalProperties); ok {
		b := t != "" && t != "0"
		m.AdditionalProperties = &b
	}
	for name, raw := range rm.Parameters.Properties {
		p, err := parseProperty(name, raw)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", httpMethod, path, err)
		}
		p.bind(s.formats)
		m.params[name] = p
		if base, ok := strings.CutSuffix(name, "[n]"); ok {
			m.indexed[base] = &indexedParam{limit: indexLimit(s.version, path, base), prop: p}
		}
	}
	return m, nil
}

// rootIndexMethod is PVE::API2's index at "/", which the dump leaves out.
const rootIndexMethod = `{"method":"GET","name":"index","description":"Directory index.",
	"allowtoken":1,"permissions":{"user":"all"},"parameters":{"additionalProperties":0},
	"returns":{"type":"array","items":{"type":"object","properties":{"subdir":{"type":"string"}}},
	"links":[{"rel":"child","href":"{subdir}"}]}}`

// greedyPaths are subtrees PVE mounts with an empty fragmentDelimiter: it joins the rest
// of the URI into one fragment there, because volume IDs contain '/'.
// The ipsets' methods are mounted so too (an entry's path is its CIDR).
var greedyPaths = map[string]bool{"/nodes/{node}/storage/{storage}/content": true,
	"/nodes/{node}/lxc/{vmid}/firewall/ipset/{name}": true, "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}": true,
	"/cluster/firewall/ipset/{name}": true}

type pathNode struct {
	path       string
	fixed      map[string]*pathNode
	param      string
	paramChild *pathNode
	greedy     bool
	methods    map[string]*Method
}

func (n *pathNode) child(seg, full string) *pathNode {
	if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
		if n.paramChild == nil {
			n.param = strings.TrimSuffix(strings.TrimPrefix(seg, "{"), "}")
			n.paramChild = &pathNode{path: full}
		}
		return n.paramChild
	}
	if n.fixed == nil {
		n.fixed = map[string]*pathNode{}
	}
	c, ok := n.fixed[seg]
	if !ok {
		c = &pathNode{path: full}
		n.fixed[seg] = c
	}
	return c
}

func (n *pathNode) find(template string) *pathNode {
	cur := n
	for _, seg := range strings.Split(strings.Trim(template, "/"), "/") {
		if strings.HasPrefix(seg, "{") {
			cur = cur.paramChild
		} else {
			cur = cur.fixed[seg]
		}
		if cur == nil {
			return nil
		}
	}
	return cur
}

// The errors Lookup wraps in a *LookupError.
var (
	// ErrNoPath: no API path matches. PVE answers
	// 501 "Method 'GET /the/path' not implemented" (PVE::HTTPServer::rest_handler).
	ErrNoPath = errors.New("pveapi: no such API path")
	// ErrNoMethod: the path exists but has no handler for the HTTP method. PVE cannot tell
	// this from an unknown path and answers the same 501 "Method 'PUT /the/path' not
	// implemented".
	ErrNoMethod = errors.New("pveapi: HTTP method not implemented for this path")
	// ErrUnknownHTTPMethod: not GET, POST, PUT or DELETE. PVE's HTTP server refuses it
	// before routing with 501 "method 'PATCH' not available".
	ErrUnknownHTTPMethod = errors.New("pveapi: HTTP method not available")
)

// LookupError is Lookup's failure. Error returns the reason phrase PVE puts in its
// status line (and, since PVE 9, in the body's "message").
type LookupError struct {
	Err        error // ErrNoPath, ErrNoMethod or ErrUnknownHTTPMethod
	HTTPMethod string
	Path       string
}

func (e *LookupError) Error() string {
	if errors.Is(e.Err, ErrUnknownHTTPMethod) {
		return fmt.Sprintf("method '%s' not available", e.HTTPMethod)
	}
	return fmt.Sprintf("Method '%s %s' not implemented", e.HTTPMethod, e.Path)
}

func (e *LookupError) Unwrap() error { return e.Err }

// StatusCode is the HTTP status PVE answers with: 501 in every case.
func (e *LookupError) StatusCode() int { return 501 }

// Lookup finds the method for an HTTP method and a path relative to /api2/json, as
// PVE's RESTHandler::find_handler does. Pass the path URI-decoded, as PVE's server
// uri_unescape()s it before routing. The path is split on '/', empty fragments are
// dropped, and a template segment such as {vmid} matches any fragment without
// whitespace. It returns the method and the template parameters taken from the path;
// their values still have to pass Verify (a vmid "abc" routes, then fails).
func (s *Schema) Lookup(httpMethod, path string) (*Method, map[string]string, error) {
	switch httpMethod {
	case "GET", "POST", "PUT", "DELETE":
	default:
		return nil, nil, &LookupError{ErrUnknownHTTPMethod, httpMethod, path}
	}
	var segs []string
	for _, seg := range strings.Split(path, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	params := map[string]string{}
	n := s.root
	for i := 0; i < len(segs); i++ {
		comp := segs[i]
		switch {
		case n.paramChild != nil:
			// m/^(\S+)$/: '$' also matches before a final newline, which $1 then lacks.
			val := strings.TrimSuffix(comp, "\n")
			if strings.ContainsFunc(val, isPerlSpace) || val == "" {
				return nil, nil, &LookupError{ErrNoPath, httpMethod, path}
			}
			params[n.param] = val
			n = n.paramChild
		case n.fixed != nil:
			n = n.fixed[comp]
		default:
			n = nil
		}
		if n == nil {
			return nil, nil, &LookupError{ErrNoPath, httpMethod, path}
		}
		if n.greedy && len(segs)-i-1 > 1 {
			rest := strings.Join(segs[i+1:], "/")
			segs = append(segs[:i+1], rest)
		}
	}
	if len(n.methods) == 0 {
		return nil, nil, &LookupError{ErrNoPath, httpMethod, path}
	}
	m, ok := n.methods[httpMethod]
	if !ok {
		return nil, nil, &LookupError{ErrNoMethod, httpMethod, path}
	}
	return m, params, nil
}

func isPerlSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}
