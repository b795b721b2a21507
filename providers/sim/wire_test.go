package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	proxmox "github.com/luthermonson/go-proxmox"
)

// The request as pveproxy reads it (pve-http-server
// src/PVE/APIServer/AnyEvent.pm decode_urlencoded, extract_params,
// authenticate_and_handle_request; pve-common src/PVE/RESTHandler.pm
// $normalize_legacy_param_formats), and the schema of the world's release.

// wireSend sends a request exactly as written: the path with its raw query,
// and a body with its Content-Type when body is not empty.
func (c *apiClient) wireSend(method, pathQuery, ctype, body string) apiResponse {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+pathQuery, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+c.token)
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, pathQuery, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apiResponse{code: res.StatusCode, reason: strings.TrimPrefix(res.Status, fmt.Sprintf("%d ", res.StatusCode)), proto: res.Proto}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		c.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, pathQuery, raw, err)
	}
	out.data = out.body["data"]
	return out
}

const form = "application/x-www-form-urlencoded"

func TestWireFormDecoding(t *testing.T) {
	cases := map[string]struct {
		in   string
		want map[string]any
	}{
		"a key sent twice is a list":            {"a=1&a=2", map[string]any{"a": []any{"1", "2"}}},
		"three times":                           {"a=1&a=2&a=3", map[string]any{"a": []any{"1", "2", "3"}}},
		"a key without a value is undef":        {"a", map[string]any{"a": nil}},
		"so is a key with an empty value":       {"a=", map[string]any{"a": nil}},
		"undef drops the values before it":      {"a=1&a&a=2", map[string]any{"a": "2"}},
		"and after the last value leaves undef": {"a=1&a=2&a", map[string]any{"a": nil}},
		"a value ends at the next =":            {"a=b=c", map[string]any{"a": "b"}},
		"; separates as & does":                 {"a=1;b=2", map[string]any{"a": "1", "b": "2"}},
		"a leading & is an empty key":           {"&a=1", map[string]any{"": nil, "a": "1"}},
		"a trailing & is nothing":               {"a=1&", map[string]any{"a": "1"}},
		"+ is a space, %2B a plus":              {"a+b=c%2Bd+e", map[string]any{"a b": "c+d e"}},
		"a broken escape stays as it is":        {"a=%zz%4", map[string]any{"a": "%zz%4"}},
		"no data":                               {"", map[string]any{}},
		"0 is no data to Perl":                  {"0", map[string]any{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, decodeURLEncoded(tc.in)); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// TestRepeatedListKeyIsJoined: a key of a -list format sent several times is
// one comma-separated value (delete=net1&delete=net2 deletes both).
func TestRepeatedListKeyIsJoined(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	nets := url.Values{"net0": {"name=eth0,bridge=vmbr0"}, "net1": {"name=eth1,bridge=vmbr0"}, "net2": {"name=eth2,bridge=vmbr0"}}
	cases := map[string]struct {
		ctype, body string
		check       func(cfg map[string]any) bool
	}{
		"delete twice in a form": {form, "delete=net1&delete=net2",
			func(cfg map[string]any) bool { return cfg["net0"] != nil && cfg["net1"] == nil && cfg["net2"] == nil }},
		"delete as a JSON list": {"application/json", `{"delete":["net0","net2"]}`,
			func(cfg map[string]any) bool { return cfg["net0"] == nil && cfg["net1"] != nil && cfg["net2"] == nil }},
		"tags twice": {form, "tags=blue&tags=green",
			func(cfg map[string]any) bool { return cfg["tags"] == "blue;green" }},
	}
	vmid := 900
	for name, tc := range cases {
		vmid++
		t.Run(name, func(t *testing.T) {
			c := *c
			c.t = t
			c.create("pve1", vmid, nets)
			r := c.wireSend("PUT", fmt.Sprintf("/nodes/pve1/lxc/%d/config", vmid), tc.ctype, tc.body)
			if r.code != 200 {
				t.Fatalf("%s: %d %q %v", tc.body, r.code, r.reason, r.body["errors"])
			}
			if cfg := c.config("pve1", vmid); !tc.check(cfg) {
				t.Errorf("%s: config %v", tc.body, cfg)
			}
		})
	}
}

// TestRepeatedOtherKeyIsRefused: any other string parameter sent twice is a
// list PVE::JSONSchema refuses, in the body or in the query.
func TestRepeatedOtherKeyIsRefused(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	cases := map[string]struct {
		method, path, body string
		want               map[string]any
	}{
		"in the body": {"PUT", "/nodes/pve1/lxc/100/config", "hostname=a&hostname=b",
			map[string]any{"hostname": "type check ('string') failed - got ARRAY"}},
		"in the query": {"GET", "/cluster/resources?type=vm&type=vm", "",
			map[string]any{"type": "type check ('string') failed - got ARRAY"}},
		"an integer": {"PUT", "/nodes/pve1/lxc/100/config", "cores=1&cores=2",
			map[string]any{"cores": "type check ('integer') failed - got ARRAY"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := *c
			c.t = t
			r := c.wireSend(tc.method, tc.path, form, tc.body)
			if r.code != 400 || !cmp.Equal(r.body["errors"], tc.want) {
				t.Errorf("%d %q %v, want 400 %v", r.code, r.reason, r.body["errors"], tc.want)
			}
		})
	}
	if cfg := c.config("pve1", 100); cfg["hostname"] != "running" || cfg["cores"] != 2.0 {
		t.Errorf("a refused request changed the config: %v", cfg)
	}
}

// TestRepeatedKeyWithoutValue: "k" and "k=" leave k undef, which a required
// parameter is not allowed to be, where Go's url.ParseQuery would read "".
func TestRepeatedKeyWithoutValue(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	for _, body := range []string{"newid", "newid=", "newid=900&newid"} {
		r := c.wireSend("POST", "/nodes/pve1/lxc/101/clone", form, body)
		want := map[string]any{"newid": "property is missing and it is not optional"}
		if r.code != 400 || !cmp.Equal(r.body["errors"], want) {
			t.Errorf("%s: %d %q %v, want 400 %v", body, r.code, r.reason, r.body["errors"], want)
		}
	}
}

func TestWireQueryAndBody(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	t.Run("the query replaces the body's value", func(t *testing.T) {
		c := *c
		c.t = t
		if r := c.wireSend("PUT", "/nodes/pve1/lxc/100/config?description=query", form, "description=body&onboot=1"); r.code != 200 {
			t.Fatalf("%d %q %v", r.code, r.reason, r.body["errors"])
		}
		if cfg := c.config("pve1", 100); strings.TrimSpace(fmt.Sprint(cfg["description"])) != "query" || cfg["onboot"] != 1.0 {
			t.Errorf("config %v", cfg)
		}
	})
	t.Run("the query of a JSON write replaces the body's value", func(t *testing.T) {
		c := *c
		c.t = t
		if r := c.wireSend("PUT", "/nodes/pve1/lxc/100/config?description=query2", "application/json", `{"description":"body"}`); r.code != 200 {
			t.Fatalf("%d %q %v", r.code, r.reason, r.body["errors"])
		}
		if cfg := c.config("pve1", 100); strings.TrimSpace(fmt.Sprint(cfg["description"])) != "query2" {
			t.Errorf("config %v", cfg)
		}
	})
	t.Run("; separates pairs and _dc is dropped", func(t *testing.T) {
		c := *c
		c.t = t
		if r := c.wireSend("GET", "/cluster/resources?type=vm;_dc=1700000000000", "", ""); r.code != 200 || len(r.data.([]any)) != 2 {
			t.Errorf("%d %q %v", r.code, r.reason, r.body)
		}
		if r := c.wireSend("PUT", "/nodes/pve1/lxc/100/config", form, "onboot=0;_dc=1"); r.code != 200 {
			t.Errorf("%d %q %v", r.code, r.reason, r.body["errors"])
		}
	})
}

func TestWireBodyRules(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	cases := map[string]struct {
		method, path, ctype, body string
		code                      int
		reason                    string
	}{
		"a GET with a body":          {"GET", "/version", form, "a=1", 501, "Unexpected content for method 'GET'"},
		"a DELETE with a body":       {"DELETE", "/nodes/pve1/lxc/101", form, "purge=1", 501, "Unexpected content for method 'DELETE'"},
		"a body of another type":     {"PUT", "/nodes/pve1/lxc/100/config", "text/plain", "onboot=1", 506, "upload 'Content-Type 'text/plain' not implemented"},
		"a type in capitals":         {"PUT", "/nodes/pve1/lxc/100/config", "Application/JSON", `{"onboot":1}`, 506, "upload 'Content-Type 'Application/JSON' not implemented"},
		"a body over 64 KiB":         {"PUT", "/nodes/pve1/lxc/100/config", form, "description=" + strings.Repeat("x", 64*1024), 501, "for data too large"},
		"JSON that does not parse":   {"PUT", "/nodes/pve1/lxc/100/config", "application/json", `{"onboot":`, 500, "malformed JSON string: unexpected EOF"},
		"JSON that is not an object": {"PUT", "/nodes/pve1/lxc/100/config", "application/json", `["onboot"]`, 500, "Not a HASH reference"},
		"a form with a charset":      {"PUT", "/nodes/pve1/lxc/100/config", form + "; charset=UTF-8", "onboot=1", 200, "OK"},
		"no Content-Type is a form":  {"PUT", "/nodes/pve1/lxc/100/config", "", "onboot=1", 200, "OK"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := *c
			c.t = t
			if r := c.wireSend(tc.method, tc.path, tc.ctype, tc.body); r.code != tc.code || r.reason != tc.reason {
				t.Errorf("%d %q, want %d %q", r.code, r.reason, tc.code, tc.reason)
			}
		})
	}
}

// TestVersionSchemaFollowsTheWorld: an 8.x world checks requests against the
// 8.3 schema and refuses what 9 added (entrypoint and env for containers).
func TestVersionSchemaFollowsTheWorld(t *testing.T) {
	notDefined := "property is not defined in schema and the schema does not allow additional properties"
	cases := map[string]struct {
		version, release string
		refused          bool
	}{
		"8.3.5": {"8.3.5", "8.3", true},
		"8.1.4": {"8.1.4", "8.1", true},
		"9.1.2": {"9.1.2", "9.1", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, c := startAPISim(t, worldWith("  version: \""+tc.version+"\"\n"))
			if r := c.call("GET", "/version", nil); r.code != 200 || r.data.(map[string]any)["release"] != tc.release {
				t.Errorf("GET /version: %d %v", r.code, r.data)
			}
			put := c.call("PUT", "/nodes/pve1/lxc/101/config", url.Values{"entrypoint": {"/sbin/init"}})
			create := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"950"}, "ostemplate": {ubuntu}, "env": {"A=1"}})
			for what, r := range map[string]apiResponse{"PUT config entrypoint": put, "POST lxc env": create} {
				errs, _ := r.body["errors"].(map[string]any)
				got := r.code == 400 && len(errs) == 1 && (errs["entrypoint"] == notDefined || errs["env"] == notDefined)
				if got != tc.refused {
					t.Errorf("%s: %d %q %v, refused by the schema %t, want %t", what, r.code, r.reason, errs, got, tc.refused)
				}
			}
		})
	}
}

func TestVersionWithoutSchemaIsRefused(t *testing.T) {
	w, err := ParseWorld([]byte(worldWith("  version: \"7.4.1\"\n")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(w, Options{})
	if err == nil {
		_ = s.Close()
		t.Fatal("a 7.4 world started: the simulator has no 7.x schema to check requests against")
	}
	if want := `version "7.4.1": the simulator has the API schemas of Proxmox VE 8 (8.3) and 9 (9.1) only`; err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestGoProxmoxWorksOnPVE8: go-proxmox creates and reads a container on an
// 8.3 world, whose schema it passes.
func TestGoProxmoxWorksOnPVE8(t *testing.T) {
	s, c := startAPISim(t, worldWith("  version: \"8.3.5\"\n"))
	client, node := goProxmox(t, s, c)
	ctx := context.Background()
	if v, err := client.Version(ctx); err != nil || v.Release != "8.3" {
		t.Fatalf("Version: %+v %v", v, err)
	}
	task, err := node.NewContainer(ctx, 800,
		proxmox.ContainerOption{Name: "ostemplate", Value: ubuntu},
		proxmox.ContainerOption{Name: "rootfs", Value: "local-lvm:8"},
		proxmox.ContainerOption{Name: "hostname", Value: "gp8"},
		proxmox.ContainerOption{Name: "unprivileged", Value: 1})
	if err != nil {
		t.Fatalf("NewContainer: %v", err)
	}
	if err := task.Wait(ctx, 5*time.Millisecond, 10*time.Second); err != nil || !task.IsSuccessful {
		t.Fatalf("create task: %v %+v", err, task)
	}
	ct, err := node.Container(ctx, 800)
	if err != nil || ct.ContainerConfig.Hostname != "gp8" {
		t.Fatalf("Container: %+v %v", ct, err)
	}
}
