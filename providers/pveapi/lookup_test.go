package pveapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLookupMatchesPathsLikeFindHandler(t *testing.T) {
	type result struct {
		Template string
		Params   map[string]string
	}
	for _, tc := range []struct {
		name, method, path string
		want               result
	}{
		{"fixed path", "GET", "/cluster/resources", result{"/cluster/resources", map[string]string{}}},
		{"templated node and vmid", "GET", "/nodes/pve1/lxc/101/config",
			result{"/nodes/{node}/lxc/{vmid}/config", map[string]string{"node": "pve1", "vmid": "101"}}},
		{"create container", "POST", "/nodes/pve1/lxc", result{"/nodes/{node}/lxc", map[string]string{"node": "pve1"}}},
		{"template takes any fragment, verification judges it later", "GET", "/nodes/pve1/lxc/abc/config",
			result{"/nodes/{node}/lxc/{vmid}/config", map[string]string{"node": "pve1", "vmid": "abc"}}},
		{"empty fragments and trailing slash are dropped", "GET", "//nodes//pve1/lxc/101/status/current/",
			result{"/nodes/{node}/lxc/{vmid}/status/current", map[string]string{"node": "pve1", "vmid": "101"}}},
		{"task status with a UPID", "GET", "/nodes/pve1/tasks/UPID:pve1:0000C3A7:0001F43E:65DFB1C5:vzcreate:101:root@pam:/status",
			result{"/nodes/{node}/tasks/{upid}/status", map[string]string{"node": "pve1", "upid": "UPID:pve1:0000C3A7:0001F43E:65DFB1C5:vzcreate:101:root@pam:"}}},
		{"storage content index", "GET", "/nodes/pve1/storage/local/content",
			result{"/nodes/{node}/storage/{storage}/content", map[string]string{"node": "pve1", "storage": "local"}}},
		{"volume IDs keep their slashes (empty fragmentDelimiter)", "GET", "/nodes/pve1/storage/local/content/local:vztmpl/debian-12.tar.zst",
			result{"/nodes/{node}/storage/{storage}/content/{volume}", map[string]string{"node": "pve1", "storage": "local", "volume": "local:vztmpl/debian-12.tar.zst"}}},
		{"login", "POST", "/access/ticket", result{"/access/ticket", map[string]string{}}},
		{"root index, which the dump leaves out", "GET", "/", result{"/", map[string]string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range Versions() {
				m, params, err := mustLoad(t, v).Lookup(tc.method, tc.path)
				if err != nil {
					t.Fatalf("%s: Lookup(%s %s): %v", v, tc.method, tc.path, err)
				}
				if d := cmp.Diff(tc.want, result{m.Path, params}); d != "" {
					t.Errorf("%s: Lookup(%s %s) (-want +got):\n%s", v, tc.method, tc.path, d)
				}
				if m.HTTPMethod != tc.method {
					t.Errorf("%s: HTTPMethod = %q, want %q", v, m.HTTPMethod, tc.method)
				}
			}
		})
	}
}

func TestLookupFailsLikePVE(t *testing.T) {
	for _, tc := range []struct {
		name, version, method, path string
		wantErr                     error
		wantMessage                 string
	}{
		{"unknown path", "9.1", "GET", "/foo", ErrNoPath, "Method 'GET /foo' not implemented"},
		{"unknown child of a container", "9.1", "GET", "/nodes/pve1/lxc/101/bogus", ErrNoPath, "Method 'GET /nodes/pve1/lxc/101/bogus' not implemented"},
		{"template fragment with whitespace does not match \\S+", "9.1", "GET", "/nodes/pve 1/lxc", ErrNoPath, "Method 'GET /nodes/pve 1/lxc' not implemented"},
		{"known path, wrong method, same answer as unknown path", "9.1", "PUT", "/nodes", ErrNoMethod, "Method 'PUT /nodes' not implemented"},
		{"delete of a status endpoint", "9.1", "DELETE", "/nodes/pve1/lxc/101/status/current", ErrNoMethod, "Method 'DELETE /nodes/pve1/lxc/101/status/current' not implemented"},
		{"migrate preconditions GET exists only since 9", "8.3", "GET", "/nodes/pve1/lxc/101/migrate", ErrNoMethod, "Method 'GET /nodes/pve1/lxc/101/migrate' not implemented"},
		{"root takes only GET", "9.1", "POST", "/", ErrNoMethod, "Method 'POST /' not implemented"},
		{"method outside GET POST PUT DELETE", "9.1", "PATCH", "/nodes", ErrUnknownHTTPMethod, "method 'PATCH' not available"},
		{"method names are case sensitive", "9.1", "get", "/nodes", ErrUnknownHTTPMethod, "method 'get' not available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := mustLoad(t, Version(tc.version)).Lookup(tc.method, tc.path)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Lookup(%s %s) error = %v, want %v", tc.method, tc.path, err, tc.wantErr)
			}
			var le *LookupError
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not a *LookupError", err)
			}
			if le.Error() != tc.wantMessage || le.StatusCode() != 501 {
				t.Errorf("got %d %q, want 501 %q", le.StatusCode(), le.Error(), tc.wantMessage)
			}
		})
	}
}

func TestLookupFindsMigratePreconditionsOnlyIn91(t *testing.T) {
	if _, _, err := mustLoad(t, V91).Lookup("GET", "/nodes/pve1/lxc/101/migrate"); err != nil {
		t.Fatalf("9.1: %v", err)
	}
}

func TestMethodExposesSchemaAttributes(t *testing.T) {
	s := mustLoad(t, V91)
	ticket, _, err := s.Lookup("POST", "/access/ticket")
	if err != nil {
		t.Fatal(err)
	}
	create, _, err := s.Lookup("POST", "/nodes/pve1/lxc")
	if err != nil {
		t.Fatal(err)
	}
	type attrs struct {
		Name                  string
		AllowToken, Protected bool
		ProxyTo               string
		Additional            bool
		Returns               any
	}
	get := func(m *Method) attrs {
		var ret any
		if err := json.Unmarshal(m.Returns, &ret); err != nil {
			t.Fatal(err)
		}
		return attrs{m.Name, m.AllowToken, m.Protected, m.ProxyTo, m.AdditionalProperties == nil || *m.AdditionalProperties, ret}
	}
	if d := cmp.Diff(attrs{"create_ticket", false, true, "", false, map[string]any{
		"type": "object",
		"properties": map[string]any{
			"CSRFPreventionToken": map[string]any{"optional": float64(1), "type": "string"},
			"clustername":         map[string]any{"optional": float64(1), "type": "string"},
			"ticket":              map[string]any{"optional": float64(1), "type": "string"},
			"username":            map[string]any{"type": "string"},
		},
	}}, get(ticket)); d != "" {
		t.Errorf("POST /access/ticket (-want +got):\n%s", d)
	}
	if d := cmp.Diff(attrs{"create_vm", true, true, "node", false, map[string]any{"type": "string"}}, get(create)); d != "" {
		t.Errorf("POST /nodes/{node}/lxc (-want +got):\n%s", d)
	}
	if !strings.Contains(string(create.Permissions), "VM.Allocate") {
		t.Errorf("Permissions = %s, want the raw description naming VM.Allocate", create.Permissions)
	}
}

func TestMethodParametersListRequiredPathParameters(t *testing.T) {
	m, _, err := mustLoad(t, V91).Lookup("PUT", "/nodes/pve1/lxc/101/config")
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{}
	names := map[string]bool{}
	for _, p := range m.Parameters() {
		names[p.Name] = true
		if !p.Optional {
			required[p.Name] = true
		}
	}
	if d := cmp.Diff(map[string]bool{"node": true, "vmid": true}, required); d != "" {
		t.Errorf("required parameters (-want +got):\n%s", d)
	}
	for _, n := range []string{"net[n]", "mp[n]", "dev[n]", "unused[n]", "delete", "digest", "tags"} {
		if !names[n] {
			t.Errorf("Parameters() lacks %q", n)
		}
	}
}

func TestPropertyResolvesIndexedNamesWithinReleaseLimits(t *testing.T) {
	for _, tc := range []struct {
		version Version
		name    string
		want    string // schema key, "" when not a parameter
	}{
		{V91, "net0", "net[n]"},
		{V91, "net31", "net[n]"},
		{V91, "net32", ""},
		{V83, "net9", "net[n]"},
		{V83, "net10", ""},
		{V91, "mp255", "mp[n]"},
		{V91, "mp256", ""},
		{V91, "unused255", "unused[n]"},
		{V91, "dev0", "dev[n]"},
		{V91, "dev255", "dev[n]"},
		{V91, "dev256", ""},
		{V91, "net01", ""},
		{V91, "net", ""},
		{V91, "net[n]", ""},
		{V91, "vmid", "vmid"},
		{V91, "bogus0", ""},
	} {
		t.Run(string(tc.version)+"/"+tc.name, func(t *testing.T) {
			m, _, err := mustLoad(t, tc.version).Lookup("PUT", "/nodes/pve1/lxc/101/config")
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if p, ok := m.Property(tc.name); ok {
				got = p.Name
			}
			if got != tc.want {
				t.Errorf("Property(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestIndexLimitReportsExpansion(t *testing.T) {
	m, _, err := mustLoad(t, V91).Lookup("POST", "/nodes/pve1/lxc")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, n := range []string{"net[n]", "mp[n]", "unused[n]", "dev[n]", "vmid", "net"} {
		got[n] = m.IndexLimit(n)
	}
	want := map[string]int{"net[n]": 32, "mp[n]": 256, "unused[n]": 256, "dev[n]": 256, "vmid": 0, "net": 0}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("IndexLimit (-want +got):\n%s", d)
	}
}
