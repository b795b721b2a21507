package sim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseWorldDefaults(t *testing.T) {
	w, err := ParseWorld([]byte("apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec:\n  nodes: [{name: pve1}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := w.Spec.Nodes[0]
	if w.Spec.TimeScale != 1 || w.Spec.Version != "9.1.2" || n.UVMMajor != 508 || !*n.UVMLoaded || len(n.Storages) != 2 {
		t.Errorf("defaults: %+v %+v", w.Spec, n)
	}
	if w.Spec.Durations.Create.D() != 20*time.Second || w.Spec.Durations.NetworkUp[1].D() != 8*time.Second {
		t.Errorf("durations %+v", w.Spec.Durations)
	}
}

func TestWorldStoragesAndBridges(t *testing.T) {
	w, err := ParseWorld([]byte(`apiVersion: sim.phoenix/v1alpha1
kind: World
spec:
  nodes:
    - {name: a, storages: [{name: st, type: nfs, content: [rootdir], enabled: false, active: false}]}
    - {name: b, bridges: [], ovsBridges: [vmbr1], vnets: [blue]}
  guests:
    - {vmid: 100, node: a, config: {net0: "name=eth0,bridge=vmbr9"}}
    - {vmid: 101, node: b, running: true, config: {net0: "name=eth0,bridge=blue"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := w.Spec.Nodes[0], w.Spec.Nodes[1]
	if st := a.Storages[0]; st.IsEnabled() || st.IsActive() || !st.IsShared() {
		t.Errorf("storage %+v", st)
	}
	if !slices.Equal(a.Bridges, []string{"vmbr0"}) || len(b.Bridges) != 0 || !b.hasBridge("vmbr1") || !b.hasBridge("blue") || b.hasBridge("vmbr0") {
		t.Errorf("bridges: a %v, b %v %v %v", a.Bridges, b.Bridges, b.OVSBridges, b.VNets)
	}
	if def := (WorldStorage{Name: "x", Type: "dir"}); !def.IsEnabled() || !def.IsActive() {
		t.Error("enabled and active default to true")
	}
	// A world built in Go is checked the same way.
	go1 := &World{Spec: WorldSpec{Nodes: []WorldNode{{Name: "a", Bridges: []string{"vmbr0", "vmbr0"}}}}}
	if err := CheckWorld(go1); err == nil || !strings.Contains(err.Error(), "interface vmbr0 is listed twice") {
		t.Errorf("CheckWorld: %v", err)
	}
	go2 := &World{Spec: WorldSpec{Nodes: []WorldNode{{Name: "a"}}}}
	if err := CheckWorld(go2); err != nil || !slices.Equal(go2.Spec.Nodes[0].Bridges, []string{"vmbr0"}) {
		t.Errorf("CheckWorld: %v %v", err, go2.Spec.Nodes[0].Bridges)
	}
}

func TestParseWorldSkipsSpecDocuments(t *testing.T) {
	src := "apiVersion: phoenix/v1alpha1\nkind: Template\n---\napiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}]}\n"
	if w, err := ParseWorld([]byte(src)); err != nil || w.Spec.Nodes[0].Name != "a" {
		t.Errorf("ParseWorld: %v", err)
	}
}

func TestParseWorldErrors(t *testing.T) {
	const w = "apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: "
	cases := map[string]struct{ src, want string }{
		"no world":          {"apiVersion: phoenix/v1alpha1\nkind: Template\n", "no document with apiVersion sim.phoenix/v1alpha1"},
		"unknown field":     {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodez: []}\n", "field nodez not found"},
		"wrong kind":        {"apiVersion: sim.phoenix/v1alpha1\nkind: Wrld\nspec: {nodes: [{name: a}]}\n", `kind "Wrld": want World`},
		"no nodes":          {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {}\n", "at least one node"},
		"bad duration":      {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}], durations: {create: soon}}\n", `want a duration such as 250ms or 2s, got "soon"`},
		"guest on no node":  {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}], guests: [{vmid: 100, node: b}]}\n", `guest 100: no node "b"`},
		"running template":  {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}], guests: [{vmid: 100, node: a, running: true, template: true}]}\n", "a template cannot be running"},
		"bad probability":   {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}], faults: {exec: {failure: 2}}}\n", "fault probability 2 is outside 0..1"},
		"bad driver":        {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a, driverVersion: latest}]}\n", `malformed driverVersion "latest"`},
		"duplicate node":    {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}, {name: a}]}\n", "node a is listed twice"},
		"duplicate guest":   {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: a}], guests: [{vmid: 100, node: a}, {vmid: 100, node: a}]}\n", "guest 100 is listed twice"},
		"invalid node name": {"apiVersion: sim.phoenix/v1alpha1\nkind: World\nspec: {nodes: [{name: 'a b'}]}\n", `node "a b": not a valid node name`},
		"storage ID":        {w + "[{name: a, storages: [{name: 9x, type: dir}]}]}\n", `node a: "9x" is not a valid storage ID`},
		"storage type":      {w + "[{name: a, storages: [{name: st, type: ntfs}]}]}\n", `node a: storage st: unknown type "ntfs"`},
		"content type":      {w + "[{name: a, storages: [{name: st, type: dir, content: [movies]}]}]}\n", `node a: storage st: unknown content type "movies"`},
		"storage twice":     {w + "[{name: a, storages: [{name: st, type: dir}, {name: st, type: dir}]}]}\n", "node a: storage st is listed twice"},
		"storage.cfg disagrees": {w + "[{name: a, storages: [{name: st, type: nfs}]}, {name: b, storages: [{name: st, type: nfs, enabled: false}]}]}\n",
			"storage st: nodes disagree on its type, content, shared or enabled"},
		"inactive storage not modelled": {w + "[{name: a, storages: [{name: ceph, type: rbd, active: false}]}]}\n",
			"node a: storage ceph: the simulator does not model an inactive rbd storage"},
		"bridge name":  {w + "[{name: a, bridges: [9br]}]}\n", `node a: "9br" is not a valid bridge name`},
		"bridge twice": {w + "[{name: a, bridges: [vmbr0], ovsBridges: [vmbr0]}]}\n", "node a: interface vmbr0 is listed twice"},
		"the NIC":      {w + "[{name: a, bridges: [eno1]}]}\n", "node a: eno1 is the node's own interface, not a bridge"},
		"vnet name":    {w + "[{name: a, vnets: [toolongname]}]}\n", `node a: "toolongname" is not a valid SDN vnet name`},
		"hang task":    {w + "[{name: a}], faults: {hang: {tasks: [vzstart, 'vzstart:x']}}}\n", `faults.hang.tasks: "vzstart:x": want a task type`},
		"hang script":  {w + "[{name: a}], faults: {hang: {scripts: ['']}}}\n", "faults.hang.scripts: an empty script name"},
		"running guest on a missing bridge": {w + "[{name: a}], guests: [{vmid: 100, node: a, running: true, config: {net0: 'name=eth0,bridge=vmbr1'}}]}\n",
			`guest 100: running, yet net0 names bridge "vmbr1", which node a does not have`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseWorld([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseWorld = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestExampleWorldMatchesTheExamples(t *testing.T) {
	w, err := LoadWorld("../../examples/homelab/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example specs put their GPU guests on pve1 with GPUs 0 and 1, from
	// the Ubuntu 24.04 template on local-lvm (linked clones need LVM-thin).
	n := w.Spec.Nodes[0]
	if n.Name != "pve1" || n.GPUs < 2 || n.DriverVersion == "" {
		t.Errorf("pve1: %+v", n)
	}
	var lvm WorldStorage
	for _, st := range n.Storages {
		if st.Name == "local-lvm" {
			lvm = st
		}
	}
	if !lvm.LinkedClones() || !strings.Contains(strings.Join(n.OSTemplates, " "), "ubuntu-24.04-standard") {
		t.Errorf("storages %+v, templates %v", n.Storages, n.OSTemplates)
	}
}

func TestStartsFastAndCleansUp(t *testing.T) {
	w, err := LoadWorld("../../examples/homelab/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := s.Env()
	for _, k := range []string{"PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_USERNAME", "PROXMOX_VE_PASSWORD",
		"PROXMOX_VE_CA_FILE", "PROXMOX_VE_SSH_USERNAME", "PROXMOX_VE_SSH_PRIVATE_KEY", "PROXMOX_VE_SSH_KNOWN_HOSTS",
		"PROXMOX_VE_SSH_PORT", "PHOENIX_SIM_URL"} {
		if env[k] == "" {
			t.Errorf("%s not set", k)
		}
	}
	if !strings.Contains(s.ExportLines(), "export PROXMOX_VE_API_TOKEN='root@pam!phoenix=") {
		t.Errorf("export lines:\n%s", s.ExportLines())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(env["PHOENIX_SIM_URL"] + "/stats"); err == nil {
		t.Error("control API still answering after Close")
	}
}

func TestControlAPI(t *testing.T) {
	s, c := startAPISim(t, apiWorld)
	base := s.Env()["PHOENIX_SIM_URL"]
	c.call("GET", "/nodes/pve1/lxc/100/config", nil)
	c.call("GET", "/nodes/pve1/lxc/101/config", nil)

	var stats map[string]int
	getJSON(t, base+"/stats", &stats)
	if stats["GET /nodes/{node}/lxc/{vmid}/config"] != 2 {
		t.Errorf("stats %v", stats)
	}
	var journal []Event
	getJSON(t, base+"/journal", &journal)
	var names []string
	for _, e := range journal {
		names = append(names, e.Kind+" "+e.Name)
	}
	if diff := cmp.Diff([]string{"api GET /nodes/pve1/lxc/100/config", "api GET /nodes/pve1/lxc/101/config"}, names); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}
	if journal[0].Seq != 1 || journal[1].Seq != 2 || journal[0].VMID != 100 || journal[0].Node != "pve1" || !journal[0].OK {
		t.Errorf("journal entry %+v", journal[0])
	}

	res, err := http.Post(base+"/world", "application/json", strings.NewReader(`{"nodes":{"pve1":{"driverVersion":"580.95.05"}}}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("POST /world: %v %v", err, res)
	}
	res.Body.Close()
	s.c.mu.Lock()
	got := s.c.node("pve1").DriverVersion
	s.c.mu.Unlock()
	if got != "580.95.05" {
		t.Errorf("driver version %q after the change", got)
	}
	for body, want := range map[string]int{`{"nodes":{"pve9":{}}}`: 404, `{"nodez":{}}`: 400} {
		res, err := http.Post(base+"/world", "application/json", strings.NewReader(body))
		if err != nil || res.StatusCode != want {
			t.Errorf("POST /world %s: %v %v, want %d", body, err, res.StatusCode, want)
		}
		res.Body.Close()
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
