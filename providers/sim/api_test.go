package sim

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// How Proxmox VE answers on the wire (each fact names the source it follows), each checked over the real wire with a plain
// HTTP client, so that what a test sees is what any Proxmox client sees.

const apiWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: api}
spec:
  seed: 1
  timeScale: 0.002
  nodes:
    - name: pve1
      gpus: 2
      driverVersion: "580.76.05"
      storages:
        - {name: local, type: dir, content: [vztmpl, rootdir]}
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
      osTemplates: ["local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"]
    - name: pve2
      storages:
        - {name: local-lvm, type: lvmthin, content: [rootdir, images]}
  guests:
    - {vmid: 100, name: running, node: pve1, running: true, config: {unprivileged: "1", cpulimit: "1.5", cores: "2", memory: "1024"}}
    - {vmid: 101, name: stopped, node: pve1, config: {unprivileged: "1", protection: "1"}}
`

const ubuntu = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"

// apiClient talks to a simulator with a token or a ticket.
type apiClient struct {
	t      *testing.T
	base   string
	hc     *http.Client
	token  string
	ticket string
	csrf   string
}

func startAPISim(t *testing.T, world string) (*Sim, *apiClient) {
	t.Helper()
	w, err := ParseWorld([]byte(world))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	env := s.Env()
	pem, err := os.ReadFile(env["PROXMOX_VE_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true, // pveproxy must refuse it all the same
	}}
	return s, &apiClient{t: t, base: strings.TrimSuffix(env["PROXMOX_VE_ENDPOINT"], "/") + "/api2/json", hc: hc,
		token: env["PROXMOX_VE_API_TOKEN"]}
}

// asRoot returns a client logged in as root@pam with a password ticket.
func (c *apiClient) asRoot(s *Sim) *apiClient {
	c.t.Helper()
	root := *c
	root.token = ""
	env := s.Env()
	resp := c.call("POST", "/access/ticket", url.Values{"username": {env["PROXMOX_VE_USERNAME"]}, "password": {env["PROXMOX_VE_PASSWORD"]}})
	if resp.code != 200 {
		c.t.Fatalf("login: %d %s", resp.code, resp.reason)
	}
	data := resp.data.(map[string]any)
	root.ticket, root.csrf = data["ticket"].(string), data["CSRFPreventionToken"].(string)
	return &root
}

type apiResponse struct {
	code   int
	reason string
	proto  string
	body   map[string]any
	data   any
}

// call sends form parameters (query for GET and DELETE) and decodes the answer.
func (c *apiClient) call(method, path string, params url.Values) apiResponse {
	c.t.Helper()
	u := c.base + path
	var body io.Reader
	if method == "GET" || method == "DELETE" {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "PVEAPIToken="+c.token)
	case c.ticket != "":
		req.AddCookie(&http.Cookie{Name: "PVEAuthCookie", Value: url.QueryEscape(c.ticket)})
		if c.csrf != "" {
			req.Header.Set("CSRFPreventionToken", c.csrf)
		}
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := apiResponse{code: res.StatusCode, reason: strings.TrimPrefix(res.Status, fmt.Sprintf("%d ", res.StatusCode)), proto: res.Proto}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		c.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
	}
	out.data = out.body["data"]
	return out
}

// waitTask polls a task until it stops and returns its status object.
func (c *apiClient) waitTask(node string, upid any) map[string]any {
	c.t.Helper()
	id, ok := upid.(string)
	if !ok || !strings.HasPrefix(id, "UPID:"+node+":") {
		c.t.Fatalf("not a UPID of %s: %#v", node, upid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := c.call("GET", "/nodes/"+node+"/tasks/"+url.PathEscape(id)+"/status", nil)
		if r.code != 200 {
			c.t.Fatalf("task status: %d %s", r.code, r.reason)
		}
		st := r.data.(map[string]any)
		if st["status"] == "stopped" {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("task %s did not stop", id)
	return nil
}

// config reads a container's config.
func (c *apiClient) config(node string, vmid int) map[string]any {
	c.t.Helper()
	r := c.call("GET", fmt.Sprintf("/nodes/%s/lxc/%d/config", node, vmid), nil)
	if r.code != 200 {
		c.t.Fatalf("config %d: %d %s", vmid, r.code, r.reason)
	}
	return r.data.(map[string]any)
}

// create makes a stopped container from the ubuntu template and waits for it.
func (c *apiClient) create(node string, vmid int, extra url.Values) {
	c.t.Helper()
	p := url.Values{"vmid": {fmt.Sprint(vmid)}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"}, "hostname": {fmt.Sprintf("ct%d", vmid)}}
	for k, v := range extra {
		p[k] = v
	}
	r := c.call("POST", "/nodes/"+node+"/lxc", p)
	if r.code != 200 {
		c.t.Fatalf("create %d: %d %s %v", vmid, r.code, r.reason, r.body["errors"])
	}
	if st := c.waitTask(node, r.data); st["exitstatus"] != "OK" {
		c.t.Fatalf("create %d: task %v", vmid, st["exitstatus"])
	}
}

// makeTemplate creates a container and converts it, waiting for template: 1.
func (c *apiClient) makeTemplate(node string, vmid int, extra url.Values) {
	c.t.Helper()
	c.create(node, vmid, extra)
	c.convert(node, vmid)
}

// convert turns a container into a template, waiting for template: 1.
func (c *apiClient) convert(node string, vmid int) {
	c.t.Helper()
	r := c.call("POST", fmt.Sprintf("/nodes/%s/lxc/%d/template", node, vmid), nil)
	if r.code != 200 || r.data != nil {
		c.t.Fatalf("template: %d %s data %#v, want 200 and null", r.code, r.reason, r.data)
	}
	c.waitConfig(node, vmid, func(cfg map[string]any) bool { return cfg["template"] == 1.0 })
}

func (c *apiClient) waitConfig(node string, vmid int, done func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cfg := c.config(node, vmid); done(cfg) {
			return cfg
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("config of %d never reached the wanted state", vmid)
	return nil
}

func TestWireFormat(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	r := c.call("GET", "/version", nil)
	if r.code != 200 || r.proto != "HTTP/1.1" {
		t.Errorf("GET /version: %d over %s, want 200 over HTTP/1.1 (pveproxy has no HTTP/2)", r.code, r.proto)
	}
	if _, ok := r.data.(map[string]any)["version"]; !ok {
		t.Errorf("answer not in a data envelope: %v", r.body)
	}

	t.Run("unknown parameter is a 400 with the per-parameter map", func(t *testing.T) {
		r := c.call("GET", "/nodes/pve1/lxc/100/config", url.Values{"vmstate": {"1"}})
		want := map[string]any{"vmstate": "property is not defined in schema and the schema does not allow additional properties"}
		if r.code != 400 || r.reason != "Parameter verification failed." || !cmp.Equal(r.body["errors"], want) || r.data != nil {
			t.Errorf("got %d %q %v", r.code, r.reason, r.body)
		}
		if r.body["message"] != "Parameter verification failed.\n" {
			t.Errorf("PVE 9 body message = %q", r.body["message"])
		}
	})
	t.Run("a handler's error is the reason phrase of a 500", func(t *testing.T) {
		r := c.call("GET", "/nodes/pve1/lxc/999/config", nil)
		want := "Configuration file 'nodes/pve1/lxc/999.conf' does not exist"
		if r.code != 500 || r.reason != want || r.data != nil || r.body["message"] != want+"\n" {
			t.Errorf("got %d %q %v", r.code, r.reason, r.body)
		}
	})
	t.Run("a CT on another node is as missing as one that never was", func(t *testing.T) {
		if r := c.call("GET", "/nodes/pve2/lxc/100/config", nil); r.code != 500 || !strings.Contains(r.reason, "nodes/pve2/lxc/100.conf") {
			t.Errorf("got %d %q", r.code, r.reason)
		}
	})
	t.Run("unknown path or method is 501", func(t *testing.T) {
		if r := c.call("GET", "/nodes/pve1/lxc/100/clone", nil); r.code != 501 || r.reason != "Method 'GET /nodes/pve1/lxc/100/clone' not implemented" {
			t.Errorf("got %d %q", r.code, r.reason)
		}
	})
	t.Run("cpulimit reads back as a string, cores as a number", func(t *testing.T) {
		cfg := c.config("pve1", 100)
		if cfg["cpulimit"] != "1.5" || cfg["cores"] != 2.0 {
			t.Errorf("cpulimit %#v cores %#v", cfg["cpulimit"], cfg["cores"])
		}
		if d, _ := cfg["digest"].(string); len(d) != 40 {
			t.Errorf("digest %q is not a SHA-1", d)
		}
	})
	t.Run("vmid is a string in the node's list and a number in resources", func(t *testing.T) {
		list := c.call("GET", "/nodes/pve1/lxc", nil).data.([]any)
		res := c.call("GET", "/cluster/resources", url.Values{"type": {"vm"}}).data.([]any)
		if list[0].(map[string]any)["vmid"] != "100" || res[0].(map[string]any)["vmid"] != 100.0 {
			t.Errorf("list %v, resources %v", list[0], res[0])
		}
		if _, ok := list[0].(map[string]any)["template"]; ok {
			t.Errorf("template key on a non-template in /nodes/{node}/lxc: %v", list[0])
		}
		if res[0].(map[string]any)["template"] != 0.0 {
			t.Errorf("template missing in /cluster/resources: %v", res[0])
		}
	})
	t.Run("nodes report their own loopback address", func(t *testing.T) {
		var ips []string
		for _, e := range c.call("GET", "/cluster/status", nil).data.([]any) {
			if m := e.(map[string]any); m["type"] == "node" {
				ips = append(ips, m["name"].(string)+"="+m["ip"].(string))
			}
		}
		if diff := cmp.Diff([]string{"pve1=127.0.0.2", "pve2=127.0.0.3"}, ips); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("nextid", func(t *testing.T) {
		if r := c.call("GET", "/cluster/nextid", nil); r.data != "102" {
			t.Errorf("nextid = %#v", r.data)
		}
		r := c.call("GET", "/cluster/nextid", url.Values{"vmid": {"100"}})
		if r.code != 400 || !cmp.Equal(r.body["errors"], map[string]any{"vmid": "VM 100 already exists"}) {
			t.Errorf("got %d %v", r.code, r.body)
		}
	})
}

func TestAuthentication(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	anon := *c
	anon.token = ""
	if r := anon.call("GET", "/version", nil); r.code != 401 || r.reason != "No ticket" {
		t.Errorf("no credentials: %d %q", r.code, r.reason)
	}
	bad := *c
	bad.token = "root@pam!phoenix=wrong"
	if r := bad.call("GET", "/version", nil); r.code != 401 || r.reason != "invalid token value!" {
		t.Errorf("wrong secret: %d %q", r.code, r.reason)
	}
	bad.token = "root@pam!nosuch=x"
	if r := bad.call("GET", "/version", nil); r.code != 401 || r.reason != "no such token 'nosuch' for user 'root@pam'" {
		t.Errorf("unknown token: %d %q", r.code, r.reason)
	}
	if r := anon.call("POST", "/access/ticket", url.Values{"username": {"root@pam"}, "password": {"wrong"}}); r.code != 401 || r.reason != "authentication failure" {
		t.Errorf("wrong password: %d %q", r.code, r.reason)
	}
	root := c.asRoot(s)
	if r := root.call("GET", "/version", nil); r.code != 200 {
		t.Errorf("ticket: %d %q", r.code, r.reason)
	}
	noCSRF := *root
	noCSRF.csrf = ""
	if r := noCSRF.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"onboot": {"1"}}); r.code != 401 || r.reason != "Permission denied - invalid csrf token" {
		t.Errorf("write without CSRF token: %d %q", r.code, r.reason)
	}
	if r := root.call("PUT", "/nodes/pve1/lxc/100/config", url.Values{"onboot": {"1"}}); r.code != 200 {
		t.Errorf("write with CSRF token: %d %q", r.code, r.reason)
	}
	forged := *root
	forged.ticket = "PVE:root@pam:00000000::forged"
	if r := forged.call("GET", "/version", nil); r.code != 401 || r.reason != "permission denied - invalid PVE ticket" {
		t.Errorf("forged ticket: %d %q", r.code, r.reason)
	}
	if r := c.call("PUT", "/access/password", url.Values{"userid": {"root@pam"}, "password": {"new-password"}}); r.code != 403 ||
		!strings.HasPrefix(r.reason, "Permission check failed (URI '/access/password' not available with API token") {
		t.Errorf("token on a ticket-only endpoint: %d %q", r.code, r.reason)
	}
}

func TestTasks(t *testing.T) {
	_, c := startAPISim(t, apiWorld+"  faults: {taskWarnings: 1}\n")
	r := c.call("POST", "/nodes/pve1/lxc/101/status/start", nil)
	upid := r.data.(string)
	// UPID:<node>:<pid 8 hex>:<pstart 8 hex>:<starttime 8 hex>:<type>:<id>:<user>:
	parts := strings.Split(upid, ":")
	if len(parts) != 9 || parts[0] != "UPID" || parts[1] != "pve1" || len(parts[2]) != 8 || len(parts[3]) != 8 ||
		len(parts[4]) != 8 || parts[5] != "vzstart" || parts[6] != "101" || parts[7] != "root@pam!phoenix" || parts[8] != "" {
		t.Fatalf("UPID %q", upid)
	}
	st := c.waitTask("pve1", upid)
	if st["exitstatus"] != "WARNINGS: 1" || st["user"] != "root@pam" || st["tokenid"] != "phoenix" || st["type"] != "vzstart" || st["id"] != "101" {
		t.Errorf("status %v", st)
	}
	log := c.call("GET", "/nodes/pve1/tasks/"+url.PathEscape(upid)+"/log", url.Values{"start": {"0"}, "limit": {"50"}}).data.([]any)
	last := log[len(log)-1].(map[string]any)
	if last["t"] != "TASK WARNINGS: 1" || last["n"] != float64(len(log)) {
		t.Errorf("log %v", log)
	}
	// The task list's default source is the index, which holds a task
	// once pvestatd has archived it, up to 10 s (20 ms here) after it ended.
	var list []any
	eventually(t, "the task is archived", func() bool {
		list = c.call("GET", "/nodes/pve1/tasks", nil).data.([]any)
		return len(list) > 0
	})
	if e := list[0].(map[string]any); e["upid"] != upid || e["status"] != "WARNINGS: 1" {
		t.Errorf("task list %v", e)
	}
}

func TestFailedTaskIsStoppedWithTheErrorAsExitStatus(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	r := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"200"}, "ostemplate": {"local:vztmpl/nosuch.tar.zst"}, "rootfs": {"local-lvm:8"}})
	if r.code != 200 {
		t.Fatalf("create: %d %s", r.code, r.reason)
	}
	st := c.waitTask("pve1", r.data)
	want := "unable to create CT 200 - can't find file 'local:vztmpl/nosuch.tar.zst'"
	if st["status"] != "stopped" || st["exitstatus"] != want {
		t.Errorf("status %v", st)
	}
	log := c.call("GET", "/nodes/pve1/tasks/"+url.PathEscape(r.data.(string))+"/log", nil).data.([]any)
	if got := log[len(log)-1].(map[string]any)["t"]; got != "TASK ERROR: "+want {
		t.Errorf("last log line %q", got)
	}
	if r := c.call("GET", "/nodes/pve1/lxc/200/config", nil); r.code != 500 {
		t.Errorf("a failed create leaves no container: %d", r.code)
	}
}

func TestCreate(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	r := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"200"}, "ostemplate": {ubuntu}, "rootfs": {"local-lvm:8"},
		"net0": {"name=eth0,bridge=vmbr0,ip=dhcp"}, "tags": {"Web;gpu,web"}, "description": {"hello"}})
	if r.code != 200 {
		t.Fatalf("create: %d %s %v", r.code, r.reason, r.body)
	}
	// The new CT holds the create lock until its task ends.
	if cfg := c.config("pve1", 200); cfg["lock"] != "create" {
		t.Errorf("lock during create = %v", cfg["lock"])
	}
	c.waitTask("pve1", r.data)
	cfg := c.config("pve1", 200)
	for k, want := range map[string]any{
		"unprivileged": 1.0, "tags": "gpu;web", "description": "hello\n", "rootfs": "local-lvm:vm-200-disk-0,size=8G",
		"hostname": "CT200", "memory": 512.0, "swap": 512.0, "ostype": "ubuntu",
	} {
		if cfg[k] != want {
			t.Errorf("%s = %#v, want %#v", k, cfg[k], want)
		}
	}
	if _, locked := cfg["lock"]; locked {
		t.Errorf("lock left after create: %v", cfg["lock"])
	}
	if net, _ := cfg["net0"].(string); !strings.Contains(net, "hwaddr=BC:24:11:") {
		t.Errorf("net0 %q has no generated MAC", net)
	}
	if r := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"100"}, "ostemplate": {ubuntu}}); r.code != 500 ||
		r.reason != "CT 100 already exists on node 'pve1'" {
		t.Errorf("existing vmid: %d %q", r.code, r.reason)
	}
	if r := c.call("POST", "/nodes/pve1/lxc", url.Values{"vmid": {"201"}, "ostemplate": {ubuntu}, "rootfs": {"nosuch:8"}}); r.code != 500 ||
		r.reason != "storage 'nosuch' does not exist" {
		t.Errorf("missing storage: %d %q", r.code, r.reason)
	}
}

func TestClone(t *testing.T) {
	// Clones take long enough here to see the locks they hold.
	s, c := startAPISim(t, apiWorld+"  durations: {clone: 500s}\n")
	root := c.asRoot(s)
	root.create("pve1", 300, url.Values{"tags": {"gpu"}, "description": {"the template"}, "features": {"nesting=1,keyctl=1"},
		"dev0": {"/dev/nvidia0"}, "net0": {"name=eth0,bridge=vmbr0,ip=dhcp"}})
	c.convert("pve1", 300)
	tmpl := c.config("pve1", 300)

	t.Run("storage is refused for a linked clone", func(t *testing.T) {
		r := c.call("POST", "/nodes/pve1/lxc/300/clone", url.Values{"newid": {"301"}, "storage": {"local-lvm"}})
		if r.code != 500 || r.reason != "parameter 'storage' not allowed for linked clones" {
			t.Errorf("got %d %q", r.code, r.reason)
		}
	})
	t.Run("a template is linked-cloned by default and the clone copies the config", func(t *testing.T) {
		r := c.call("POST", "/nodes/pve1/lxc/300/clone", url.Values{"newid": {"301"}, "hostname": {"clone"}})
		if r.code != 200 {
			t.Fatalf("clone: %d %q", r.code, r.reason)
		}
		// The source is locked for the whole clone, the new CT created locked.
		if cfg := c.config("pve1", 300); cfg["lock"] != "disk" {
			t.Errorf("source lock %v", cfg["lock"])
		}
		if cfg := c.config("pve1", 301); cfg["lock"] != "create" {
			t.Errorf("target lock %v", cfg["lock"])
		}
		again := c.call("POST", "/nodes/pve1/lxc/300/clone", url.Values{"newid": {"302"}})
		if again.code != 500 || again.reason != "CT is locked (disk)" {
			t.Errorf("concurrent clone: %d %q", again.code, again.reason)
		}
		if st := c.waitTask("pve1", r.data); st["exitstatus"] != "OK" || st["type"] != "vzclone" || st["id"] != "300" {
			t.Errorf("clone task %v", st)
		}
		cfg := c.config("pve1", 301)
		for _, k := range []string{"dev0", "features", "tags", "description", "unprivileged"} {
			if cfg[k] != tmpl[k] {
				t.Errorf("%s = %#v, want the template's %#v", k, cfg[k], tmpl[k])
			}
		}
		if _, ok := cfg["template"]; ok {
			t.Error("the clone kept template: 1")
		}
		if cfg["hostname"] != "clone" || cfg["rootfs"] != "local-lvm:base-300-disk-0/vm-301-disk-0,size=8G" {
			t.Errorf("hostname %v rootfs %v", cfg["hostname"], cfg["rootfs"])
		}
		if cfg["net0"] == tmpl["net0"] {
			t.Errorf("MAC address not regenerated: %v", cfg["net0"])
		}
		if c.config("pve1", 300)["lock"] != nil {
			t.Error("source still locked after the clone")
		}
	})
	t.Run("a linked clone of a container that is not a template is refused", func(t *testing.T) {
		r := c.call("POST", "/nodes/pve1/lxc/301/clone", url.Values{"newid": {"303"}, "full": {"0"}})
		if r.code != 500 || r.reason != "Linked clone feature for 'local-lvm:base-300-disk-0/vm-301-disk-0' is not available" {
			t.Errorf("got %d %q", r.code, r.reason)
		}
	})
	t.Run("a storage without the clone feature cannot hold linked clones", func(t *testing.T) {
		c.makeTemplate("pve1", 310, url.Values{"rootfs": {"local:8"}})
		r := c.call("POST", "/nodes/pve1/lxc/310/clone", url.Values{"newid": {"311"}})
		if r.code != 500 || !strings.HasPrefix(r.reason, "Linked clone feature for 'local:310/") {
			t.Errorf("got %d %q", r.code, r.reason)
		}
		full := c.call("POST", "/nodes/pve1/lxc/310/clone", url.Values{"newid": {"311"}, "full": {"1"}, "storage": {"local-lvm"}})
		if full.code != 200 {
			t.Fatalf("full clone: %d %q", full.code, full.reason)
		}
		c.waitTask("pve1", full.data)
		if cfg := c.config("pve1", 311); cfg["rootfs"] != "local-lvm:vm-311-disk-0,size=8G" {
			t.Errorf("full clone rootfs %v", cfg["rootfs"])
		}
	})
	t.Run("cloning to a node needs shared storage", func(t *testing.T) {
		r := c.call("POST", "/nodes/pve1/lxc/300/clone", url.Values{"newid": {"320"}, "target": {"pve2"}})
		if r.code != 500 || r.reason != "can't clone CT to node 'pve2' (CT uses local storage)" {
			t.Errorf("got %d %q", r.code, r.reason)
		}
	})
	t.Run("the target must be free", func(t *testing.T) {
		r := c.call("POST", "/nodes/pve1/lxc/300/clone", url.Values{"newid": {"100"}})
		if r.code != 500 || r.reason != "CT 100 already exists on node 'pve1'" {
			t.Errorf("got %d %q", r.code, r.reason)
		}
		if c.config("pve1", 300)["lock"] != nil {
			t.Error("a refused clone left the source locked")
		}
	})
}

func TestTemplateConversion(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	if r := c.call("POST", "/nodes/pve1/lxc/100/template", nil); r.code != 500 || r.reason != "you can't convert a CT to template if the CT is running" {
		t.Errorf("running: %d %q", r.code, r.reason)
	}
	c.create("pve1", 400, nil)
	r := c.call("POST", "/nodes/pve1/lxc/400/template", nil)
	if r.code != 200 || r.data != nil {
		t.Fatalf("template answers %d %#v, want 200 and null (no task to wait on)", r.code, r.data)
	}
	cfg := c.waitConfig("pve1", 400, func(cfg map[string]any) bool { return cfg["template"] == 1.0 })
	if cfg["rootfs"] != "local-lvm:base-400-disk-0,size=8G" {
		t.Errorf("rootfs %v", cfg["rootfs"])
	}
	if r := c.call("POST", "/nodes/pve1/lxc/400/template", nil); r.code != 500 || r.reason != "you can't convert a template to a template" {
		t.Errorf("twice: %d %q", r.code, r.reason)
	}
	if r := c.call("POST", "/nodes/pve1/lxc/400/status/start", nil); r.code != 200 {
		t.Errorf("start of a template: %d", r.code)
	} else if st := c.waitTask("pve1", r.data); st["exitstatus"] != "you can't start a CT if it's a template" {
		t.Errorf("start of a template ends %v", st["exitstatus"])
	}
}

func TestConfigUpdates(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	put := func(vmid int, p url.Values) apiResponse {
		return c.call("PUT", fmt.Sprintf("/nodes/pve1/lxc/%d/config", vmid), p)
	}
	t.Run("synchronous, null, with digest", func(t *testing.T) {
		digest := c.config("pve1", 101)["digest"].(string)
		if r := put(101, url.Values{"cores": {"4"}, "digest": {digest}}); r.code != 200 || r.data != nil {
			t.Fatalf("put: %d %q %#v", r.code, r.reason, r.data)
		}
		if c.config("pve1", 101)["cores"] != 4.0 {
			t.Error("cores not applied at once")
		}
		r := put(101, url.Values{"cores": {"8"}, "digest": {digest}})
		if r.code != 500 || r.reason != "detected modified configuration - file changed by other user? Try again." {
			t.Errorf("stale digest: %d %q", r.code, r.reason)
		}
	})
	t.Run("delete", func(t *testing.T) {
		put(101, url.Values{"onboot": {"1"}})
		if r := put(101, url.Values{"delete": {"onboot"}}); r.code != 200 {
			t.Fatalf("delete: %d %q", r.code, r.reason)
		}
		if _, ok := c.config("pve1", 101)["onboot"]; ok {
			t.Error("onboot still set")
		}
		if r := put(101, url.Values{"delete": {"nosuch"}}); r.code != 400 || !cmp.Equal(r.body["errors"], map[string]any{"delete": "unknown option 'nosuch'"}) {
			t.Errorf("unknown key: %d %v", r.code, r.body)
		}
		if r := put(101, url.Values{"delete": {"rootfs"}}); r.code != 500 || r.reason != "unable to delete required option 'rootfs'" {
			t.Errorf("required key: %d %q", r.code, r.reason)
		}
	})
	t.Run("tags and description as Proxmox stores them", func(t *testing.T) {
		put(101, url.Values{"tags": {"B,a;A b"}, "description": {"line one\nline two"}})
		cfg := c.config("pve1", 101)
		if cfg["tags"] != "a;b" || cfg["description"] != "line one\nline two\n" {
			t.Errorf("tags %q description %q", cfg["tags"], cfg["description"])
		}
		if r := put(101, url.Values{"tags": {"bad tag!"}}); r.code != 400 {
			t.Errorf("bad tag: %d", r.code)
		}
	})
	t.Run("raw lxc keys cannot be set through the API", func(t *testing.T) {
		r := put(101, url.Values{"lxc.cgroup2.devices.allow": {"c 195:* rwm"}})
		want := map[string]any{"lxc.cgroup2.devices.allow": "property is not defined in schema and the schema does not allow additional properties"}
		if r.code != 400 || !cmp.Equal(r.body["errors"], want) {
			t.Errorf("got %d %v", r.code, r.body)
		}
	})
	t.Run("on a running CT non-hot-plug changes wait in pending until restart", func(t *testing.T) {
		if r := put(100, url.Values{"memory": {"2048"}, "features": {"nesting=1"}}); r.code != 200 {
			t.Fatalf("put: %d %q", r.code, r.reason)
		}
		cfg := c.config("pve1", 100)
		// GET config answers with pending values applied; pending says which.
		if cfg["memory"] != 2048.0 || cfg["features"] != "nesting=1" {
			t.Errorf("config %v", cfg)
		}
		pending := map[string]map[string]any{}
		for _, e := range c.call("GET", "/nodes/pve1/lxc/100/pending", nil).data.([]any) {
			m := e.(map[string]any)
			pending[m["key"].(string)] = m
		}
		if _, waiting := pending["memory"]["pending"]; waiting {
			t.Errorf("memory is hot-plugged, yet pending: %v", pending["memory"])
		}
		if pending["features"]["pending"] != "nesting=1" {
			t.Errorf("features not pending: %v", pending["features"])
		}
		current := c.call("GET", "/nodes/pve1/lxc/100/config", url.Values{"current": {"1"}}).data.(map[string]any)
		if _, ok := current["features"]; ok {
			t.Errorf("current config already has features: %v", current)
		}
		c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/100/status/reboot", nil).data)
		for _, e := range c.call("GET", "/nodes/pve1/lxc/100/pending", nil).data.([]any) {
			if _, ok := e.(map[string]any)["pending"]; ok {
				t.Errorf("still pending after reboot: %v", e)
			}
		}
	})
	t.Run("device passthrough is for root@pam with a password ticket", func(t *testing.T) {
		r := put(101, url.Values{"dev0": {"/dev/nvidia0"}})
		if r.code != 403 || r.reason != "Permission check failed (configuring device passthrough is only allowed for root@pam)" {
			t.Errorf("token: %d %q", r.code, r.reason)
		}
		if r := put(101, url.Values{"features": {"nesting=1,keyctl=1"}}); r.code != 403 ||
			r.reason != "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)" {
			t.Errorf("token, keyctl: %d %q", r.code, r.reason)
		}
		if r := put(101, url.Values{"features": {"nesting=1"}}); r.code != 200 {
			t.Errorf("token, nesting only: %d %q", r.code, r.reason)
		}
		root := c.asRoot(s)
		if r := root.call("PUT", "/nodes/pve1/lxc/101/config", url.Values{"dev0": {"/dev/nvidia0,gid=44"}}); r.code != 200 {
			t.Errorf("root ticket: %d %q", r.code, r.reason)
		}
		// update_pct_config stats the device before anything is saved
		// (pve-container 556ddd3): a 500, not a parameter error.
		r = root.call("PUT", "/nodes/pve1/lxc/101/config", url.Values{"dev1": {"/dev/nvidia7"}})
		if r.code != 500 || r.reason != "Device /dev/nvidia7 does not exist" || r.body["errors"] != nil {
			t.Errorf("missing device: %d %v", r.code, r.body)
		}
	})
	t.Run("a locked CT refuses changes", func(t *testing.T) {
		c.create("pve1", 500, nil)
		c.makeTemplate("pve1", 501, nil)
		r := c.call("POST", "/nodes/pve1/lxc/501/clone", url.Values{"newid": {"502"}})
		if p := put(502, url.Values{"cores": {"2"}}); p.code != 500 || p.reason != "CT is locked (create)" {
			t.Errorf("locked: %d %q", p.code, p.reason)
		}
		c.waitTask("pve1", r.data)
	})
}

func TestStatusAndDelete(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	if r := c.call("POST", "/nodes/pve1/lxc/100/status/start", nil); r.code != 500 || r.reason != "CT 100 already running" {
		t.Errorf("start running: %d %q", r.code, r.reason)
	}
	if r := c.call("POST", "/nodes/pve1/lxc/101/status/stop", nil); r.code != 500 || r.reason != "CT 101 not running" {
		t.Errorf("stop stopped: %d %q", r.code, r.reason)
	}
	if r := c.call("POST", "/nodes/pve1/lxc/101/status/reboot", nil); r.code != 500 || r.reason != "VM 101 not running" {
		t.Errorf("reboot stopped: %d %q", r.code, r.reason)
	}
	if r := c.call("DELETE", "/nodes/pve1/lxc/100", nil); r.code != 500 || r.reason != "unable to destroy CT 100 - container is running" {
		t.Errorf("delete running: %d %q", r.code, r.reason)
	}
	if r := c.call("DELETE", "/nodes/pve1/lxc/101", url.Values{"purge": {"1"}}); r.code != 500 || r.reason != "can't remove CT 101 - protection mode enabled" {
		t.Errorf("delete protected: %d %q", r.code, r.reason)
	}
	c.waitTask("pve1", c.call("POST", "/nodes/pve1/lxc/100/status/shutdown", nil).data)
	r := c.call("DELETE", "/nodes/pve1/lxc/100", url.Values{"purge": {"1"}, "destroy-unreferenced-disks": {"1"}})
	if st := c.waitTask("pve1", r.data); st["type"] != "vzdestroy" || st["exitstatus"] != "OK" {
		t.Errorf("destroy %v", st)
	}
	if r := c.call("GET", "/nodes/pve1/lxc/100/status/current", nil); r.code != 500 {
		t.Errorf("destroyed CT still answers: %d", r.code)
	}
}

func TestResize(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	c.create("pve1", 600, nil)
	r := c.call("PUT", "/nodes/pve1/lxc/600/resize", url.Values{"disk": {"rootfs"}, "size": {"+4G"}})
	if st := c.waitTask("pve1", r.data); st["type"] != "resize" || st["exitstatus"] != "OK" {
		t.Fatalf("resize %v", st)
	}
	if cfg := c.config("pve1", 600); cfg["rootfs"] != "local-lvm:vm-600-disk-0,size=12G" {
		t.Errorf("rootfs %v", cfg["rootfs"])
	}
	if r := c.call("PUT", "/nodes/pve1/lxc/600/resize", url.Values{"disk": {"rootfs"}, "size": {"8G"}}); r.code != 500 || r.reason != "unable to shrink disk size" {
		t.Errorf("shrink: %d %q", r.code, r.reason)
	}
}

func TestAPIFaults(t *testing.T) {
	_, c := startAPISim(t, apiWorld+"  faults: {api: {lockTimeout: 1}}\n")
	r := c.call("PUT", "/nodes/pve1/lxc/101/config", url.Values{"cores": {"2"}})
	if r.code != 500 || r.reason != "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout" {
		t.Errorf("lock timeout: %d %q", r.code, r.reason)
	}
	if r := c.call("GET", "/nodes/pve1/lxc/101/config", nil); r.code != 200 {
		t.Errorf("reads take no config lock: %d", r.code)
	}
}

func TestDroppedConnection(t *testing.T) {
	_, c := startAPISim(t, apiWorld+"  faults: {api: {dropConnection: 1}}\n")
	req, _ := http.NewRequest("GET", c.base+"/version", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+c.token)
	if res, err := c.hc.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("got %s, want the connection dropped", res.Status)
	}
}

// TestReasonPhraseOnTheWire reads the raw status line: Go's server alone would
// always write "Internal Server Error".
func TestReasonPhraseOnTheWire(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.Env()["PROXMOX_VE_ENDPOINT"], "/"), "https://"),
		c.hc.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api2/json/nodes/pve1/lxc/555/config HTTP/1.1\r\nHost: x\r\nAuthorization: PVEAPIToken=%s\r\n\r\n", c.token)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if want := "HTTP/1.1 500 Configuration file 'nodes/pve1/lxc/555.conf' does not exist\r\n"; line != want {
		t.Errorf("status line %q, want %q", line, want)
	}
}

func TestRequestsAreCheckedAgainstTheSchema(t *testing.T) {
	_, c := startAPISim(t, apiWorld)
	cases := map[string]struct {
		method, path string
		params       url.Values
		want         map[string]any
	}{
		"missing required parameter": {"POST", "/nodes/pve1/lxc", url.Values{"vmid": {"700"}},
			map[string]any{"ostemplate": "property is missing and it is not optional"}},
		"wrong type": {"PUT", "/nodes/pve1/lxc/101/config", url.Values{"cores": {"many"}},
			map[string]any{"cores": "type check ('integer') failed - got 'many'"}},
		"booleans are 0 or 1 at the top level": {"POST", "/nodes/pve1/lxc/101/clone", url.Values{"newid": {"701"}, "full": {"yes"}},
			map[string]any{"full": "type check ('boolean') failed - got 'yes'"}},
		"enumeration": {"PUT", "/nodes/pve1/lxc/101/config", url.Values{"cmode": {"bogus"}},
			map[string]any{"cmode": "value 'bogus' does not have a value in the enumeration 'shell, console, tty'"}},
		"VMID format in the path": {"GET", "/nodes/pve1/lxc/99/config", nil,
			map[string]any{"vmid": "invalid format - value does not look like a valid VM ID\n"}},
		"unknown property-string sub-key": {"PUT", "/nodes/pve1/lxc/101/config", url.Values{"net0": {"name=eth0,bridgee=vmbr0"}},
			map[string]any{"net0": "invalid format - invalid key in comma-separated list property: bridgee\n"}},
		"bad property-string value": {"PUT", "/nodes/pve1/lxc/101/config", url.Values{"net0": {"name=eth0,ip=300.1.1.1/24"}},
			map[string]any{"net0": "invalid format - format error\nnet0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n"}},
		"pattern": {"PUT", "/nodes/pve1/lxc/101/resize", url.Values{"disk": {"rootfs"}, "size": {"huge"}},
			map[string]any{"size": "value does not match the regex pattern"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := c.call(tc.method, tc.path, tc.params)
			if r.code != 400 || r.reason != "Parameter verification failed." {
				t.Errorf("got %d %q", r.code, r.reason)
			}
			if diff := cmp.Diff(tc.want, r.body["errors"]); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}
