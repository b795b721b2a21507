package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

var gpuNode = regexp.MustCompile(`^/dev/nvidia[0-9]+$`)

// originalConfig is the original bash system's container config at its
// release v01.06.01, beside the project checkout.
const originalConfig = "../../shared/original/phoenix_lxc_configs.json"

// originalCT is what one container of the original's config declares, in
// its own field names.
type originalCT struct {
	Name          string `json:"name"`
	MemoryMB      int    `json:"memory_mb"`
	SwapMB        *int   `json:"swap_mb"`
	Cores         int    `json:"cores"`
	StorageSizeGB int    `json:"storage_size_gb"`
	Network       struct {
		Name        string `json:"name"`
		Bridge      string `json:"bridge"`
		IP          string `json:"ip"`
		GW          string `json:"gw"`
		Nameservers string `json:"nameservers"`
	} `json:"network_config"`
	MAC          string   `json:"mac_address"`
	GPUs         string   `json:"gpu_assignment"`
	Unprivileged *bool    `json:"unprivileged"`
	StartAtBoot  *bool    `json:"start_at_boot"`
	BootOrder    int      `json:"boot_order"`
	BootDelay    int      `json:"boot_delay"`
	CloneFrom    string   `json:"clone_from_ctid"`
	Dependencies []string `json:"dependencies"`
	LXCOptions   []string `json:"lxc_options"`
	PctOptions   []string `json:"pct_options"`
	AppArmor     string   `json:"apparmor_profile"`
	MountPoints  []struct {
		HostPath      string `json:"host_path"`
		ContainerPath string `json:"container_path"`
	} `json:"mount_points"`
	ZFSVolumes []struct {
		Pool       string `json:"pool"`
		SizeGB     int    `json:"size_gb"`
		MountPoint string `json:"mount_point"`
	} `json:"zfs_volumes"`
	IDMaps []struct {
		Type        string `json:"type"`
		HostID      int    `json:"host_id"`
		ContainerID int    `json:"container_id"`
		Size        int    `json:"size"`
	} `json:"id_maps"`
	Firewall *struct {
		Enabled bool `json:"enabled"`
		Rules   []struct {
			Type    string `json:"type"`
			Action  string `json:"action"`
			Proto   string `json:"proto"`
			Port    string `json:"port"`
			Source  string `json:"source"`
			Dest    string `json:"dest"`
			Comment string `json:"comment"`
		} `json:"rules"`
	} `json:"firewall"`
}

// TestTheOriginalLabConverges: the original system's v01.06.01 lab, written
// as phoenix specs in examples/original, converges on a simulated host, and
// every container setting the original's own config file declares is in
// the simulator's stored configs: resources, hostnames, MACs, addresses,
// nameservers, GPUs, mount points, firewall rules, AppArmor, id maps, start
// order and dependencies. The config file is read here, not the specs, so
// a setting the specs leave out fails the test. A second apply is a no-op.
func TestTheOriginalLabConverges(t *testing.T) {
	raw, err := os.ReadFile(originalConfig)
	if err != nil {
		t.Fatalf("the original's config is read from ../shared beside the checkout: %v", err)
	}
	var orig struct {
		CTs map[string]originalCT `json:"lxc_configs"`
	}
	if err := json.Unmarshal(raw, &orig); err != nil {
		t.Fatal(err)
	}
	r := newRigAt(t, "../examples/original", nil, false)

	opts := r.options()
	spans := recordSpans(&opts)
	r.mustConverge(opts)

	for _, id := range slices.Sorted(maps.Keys(orig.CTs)) {
		ct := orig.CTs[id]
		vmid, _ := strconv.Atoi(id)
		t.Run(fmt.Sprintf("%d %s", vmid, ct.Name), func(t *testing.T) {
			cfg, err := r.cluster.GuestConfig(t.Context(), "phoenix", vmid)
			if err != nil {
				t.Fatal(err)
			}
			v := cfg.Values
			want := map[string]string{
				"hostname": ct.Name, "cores": strconv.Itoa(ct.Cores), "memory": strconv.Itoa(ct.MemoryMB),
			}
			if ct.SwapMB != nil {
				want["swap"] = strconv.Itoa(*ct.SwapMB)
			}
			if ct.Network.Nameservers != "" {
				want["nameserver"] = ct.Network.Nameservers
			}
			if ct.Unprivileged != nil && *ct.Unprivileged {
				want["unprivileged"] = "1"
			}
			if ct.StartAtBoot != nil && *ct.StartAtBoot {
				want["onboot"] = "1"
				want["startup"] = fmt.Sprintf("order=%d,up=%d", ct.BootOrder, ct.BootDelay)
			}
			for k, w := range want {
				if v[k] != w {
					t.Errorf("%s = %q, want %q", k, v[k], w)
				}
			}
			if got := propString(v["rootfs"])["size"]; got != strconv.Itoa(ct.StorageSizeGB)+"G" {
				t.Errorf("rootfs size %q, want %dG", got, ct.StorageSizeGB)
			}
			net0 := propString(v["net0"])
			for k, w := range map[string]string{"name": ct.Network.Name, "bridge": ct.Network.Bridge, "ip": ct.Network.IP, "gw": ct.Network.GW} {
				if net0[k] != w {
					t.Errorf("net0 %s = %q, want %q (%s)", k, net0[k], w, v["net0"])
				}
			}
			if !strings.EqualFold(net0["hwaddr"], ct.MAC) {
				t.Errorf("net0 hwaddr %q, want %s", net0["hwaddr"], ct.MAC)
			}
			checkGPUs(t, v, ct.GPUs)
			checkMounts(t, v, ct)
			checkRaw(t, cfg.LXC, v, ct)
			checkFirewall(t, r, vmid, ct)
		})
	}
	// Dependencies: a container's work begins once what it depends on has
	// converged (dependencies outside this config, such as a VM, have no
	// guest here).
	for id, ct := range orig.CTs {
		vmid, _ := strconv.Atoi(id)
		for _, d := range ct.Dependencies {
			dep, _ := strconv.Atoi(d)
			if _, ok := orig.CTs[d]; !ok {
				continue
			}
			if !spans.first[vmid].After(spans.last[dep]) {
				t.Errorf("%d began at %v, before %d, which it depends on, ended at %v", vmid, spans.first[vmid], dep, spans.last[dep])
			}
		}
	}
	checkServing(t, r)
	if p := r.mustPlan(reconciler.PlanOptions{}); p.HasChanges() {
		t.Fatalf("second plan is not empty:\n%s", planText(p))
	}
	before := r.lastSeq()
	if res := r.apply(t.Context(), r.options()); len(res.Guests) != 0 {
		t.Errorf("the second apply worked on %d guests", len(res.Guests))
	}
	for _, e := range r.events(before) {
		if e.Kind == "api" && !strings.HasPrefix(e.Name, "GET ") || e.Kind == "exec" && e.Phase == "apply" || e.Kind == "task" {
			t.Errorf("the second apply: %s %s %s", e.Kind, e.Name, e.Phase)
		}
	}
}

func checkGPUs(t *testing.T, v map[string]string, assignment string) {
	t.Helper()
	var want []string
	if assignment != "none" {
		for _, g := range strings.Split(assignment, ",") {
			want = append(want, "/dev/nvidia"+strings.TrimSpace(g))
		}
	}
	var got []string
	for k, val := range v {
		if p, _, _ := strings.Cut(val, ","); strings.HasPrefix(k, "dev") && gpuNode.MatchString(p) {
			got = append(got, p)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("GPU nodes passed %v, want %v", got, want)
	}
}

func checkMounts(t *testing.T, v map[string]string, ct originalCT) {
	t.Helper()
	mps := map[string]map[string]string{}
	for k, val := range v {
		if strings.HasPrefix(k, "mp") {
			p := propString(val)
			mps[p["mp"]] = p
		}
	}
	for _, m := range ct.MountPoints {
		if mp, ok := mps[m.ContainerPath]; !ok || !strings.HasPrefix(v[mpKey(v, m.ContainerPath)], m.HostPath+",") {
			t.Errorf("no bind mount of %s at %s: %v", m.HostPath, m.ContainerPath, mp)
		}
	}
	for _, z := range ct.ZFSVolumes {
		mp, ok := mps[z.MountPoint]
		if !ok || !strings.HasPrefix(v[mpKey(v, z.MountPoint)], z.Pool+":") || mp["size"] != strconv.Itoa(z.SizeGB)+"G" {
			t.Errorf("no %d GiB volume on %s at %s: %v", z.SizeGB, z.Pool, z.MountPoint, v[mpKey(v, z.MountPoint)])
		}
	}
	if len(mps) != len(ct.MountPoints)+len(ct.ZFSVolumes) {
		t.Errorf("%d mount points, want %d", len(mps), len(ct.MountPoints)+len(ct.ZFSVolumes))
	}
}

func mpKey(v map[string]string, path string) string {
	for k, val := range v {
		if strings.HasPrefix(k, "mp") && propString(val)["mp"] == path {
			return k
		}
	}
	return ""
}

// checkRaw checks the raw lxc lines and feature flags the original sets:
// lxc_options as KEY=VALUE or KEY:VALUE, apparmor_profile, pct_options
// (features flags) and id_maps.
func checkRaw(t *testing.T, lxc [][2]string, v map[string]string, ct originalCT) {
	t.Helper()
	has := func(key, value string) bool {
		return slices.ContainsFunc(lxc, func(l [2]string) bool { return l[0] == key && l[1] == value })
	}
	for _, o := range ct.LXCOptions {
		k, val, ok := strings.Cut(o, "=")
		if !ok || strings.Contains(k, ":") {
			k, val, _ = strings.Cut(o, ":")
		}
		if !has(k, val) {
			t.Errorf("no raw line %s: %s in %v", k, val, lxc)
		}
	}
	if ct.AppArmor != "" && !has("lxc.apparmor.profile", ct.AppArmor) {
		t.Errorf("no lxc.apparmor.profile: %s in %v", ct.AppArmor, lxc)
	}
	flags := propString(v["features"])
	for _, o := range ct.PctOptions {
		k, val, _ := strings.Cut(o, "=")
		if flags[k] != val {
			t.Errorf("features %q, want %s", v["features"], o)
		}
	}
	for _, m := range ct.IDMaps {
		line := fmt.Sprintf("%s %d %d %d", m.Type[:1], m.ContainerID, m.HostID, m.Size)
		if !has("lxc.idmap", line) {
			t.Errorf("no lxc.idmap: %s in %v", line, lxc)
		}
	}
}

func checkFirewall(t *testing.T, r *rig, vmid int, ct originalCT) {
	t.Helper()
	if ct.Firewall == nil {
		return
	}
	fw, err := r.cluster.Firewall(t.Context(), "phoenix", vmid)
	if err != nil {
		t.Fatal(err)
	}
	if (fw.Options["enable"] == "1") != ct.Firewall.Enabled {
		t.Errorf("firewall enable %q, want %t", fw.Options["enable"], ct.Firewall.Enabled)
	}
	if len(fw.Rules) != len(ct.Firewall.Rules) {
		t.Fatalf("%d firewall rules, want %d: %v", len(fw.Rules), len(ct.Firewall.Rules), fw.Rules)
	}
	for i, w := range ct.Firewall.Rules {
		got := fw.Rules[i]
		for k, want := range map[string]string{"type": w.Type, "action": w.Action, "proto": w.Proto, "dport": w.Port, "source": w.Source, "dest": w.Dest} {
			if got[k] != want {
				t.Errorf("rule %d %s = %q, want %q (%v)", i, k, got[k], want, got)
			}
		}
		if !strings.HasSuffix(got["comment"], w.Comment) {
			t.Errorf("rule %d comment %q, want it to end with %q", i, got["comment"], w.Comment)
		}
	}
}

// checkServing: the converged lab runs what the original's application
// scripts ran, as services phoenix keeps: the vLLM OpenAI servers (their
// unit files rendered from the original's engine config) and ollama on every
// interface; each is healthy by its check; and the containers that asked
// for lifecycle snapshots have phoenix's after snapshot.
func checkServing(t *testing.T, r *rig) {
	t.Helper()
	ctx := t.Context()
	node, err := r.node("phoenix")
	if err != nil {
		t.Fatal(err)
	}
	servers := map[int]struct{ service, file, want string }{
		801: {"vllm", "/etc/systemd/system/vllm.service", "vllm serve ibm-granite/granite-embedding-english-r2 --host 0.0.0.0 --port 8000 --served-model-name"},
		802: {"vllm", "/etc/systemd/system/vllm.service", "vllm serve Qwen/Qwen3-4B-Thinking-2507-FP8 --host 0.0.0.0 --port 8000"},
		914: {"ollama", "/etc/systemd/system/ollama.service.d/phoenix.conf", `OLLAMA_HOST=0.0.0.0:11434`},
	}
	for vmid, s := range servers {
		res, err := node.Exec(ctx, vmid, reconciler.Script{Name: "phoenix/inspect", Phase: "check", Body: reconciler.InspectScript,
			Env: map[string]string{"PHOENIX_FILES": s.file, "PHOENIX_SERVICES": s.service}})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("inspect %d: %v %+v", vmid, err, res)
		}
		in, err := reconciler.ParseInspect(res.Stdout, []string{s.file}, []string{s.service})
		if err != nil {
			t.Fatal(err)
		}
		if st := in.Services[s.service]; st.Enabled != "enabled" || st.Active != "active" {
			t.Errorf("%d: service %s is %+v, want enabled and active", vmid, s.service, st)
		}
		if in.Files[s.file].Missing {
			t.Errorf("%d: %s is missing", vmid, s.file)
		}
		g := specOf(t, r, vmid)
		files, _ := reconciler.GuestFileContents(r.res, g)
		if !strings.Contains(files[s.file], s.want) {
			t.Errorf("%d: %s does not say %q:\n%s", vmid, s.file, s.want, files[s.file])
		}
	}
	obs, plan := r.plan(reconciler.PlanOptions{})
	health := reconciler.CheckHealth(ctx, r.node, r.res, obs, plan)
	for _, name := range []string{"granite-embedding", "granite-3-3-8b-fp8", "ollama-gpu0"} {
		h, ok := health[name]
		if !ok || !h.Healthy() || len(h.Checks) == 0 {
			t.Errorf("%s: health %+v, want its checks passing", name, h)
		}
	}
	// 102 and 103 ask for lifecycle snapshots, but their bind mounts make
	// Proxmox refuse any snapshot: the plan says so, and none is tried.
	for _, name := range []string{"Traefik-Internal", "Step-CA"} {
		g, _ := plan.Guest(name)
		if !slices.ContainsFunc(g.Notes, func(n string) bool {
			return strings.HasPrefix(n, "snapshots skipped: ") && strings.Contains(n, "bind or device mount point")
		}) {
			t.Errorf("%s: notes %q, want the snapshots skipped for its bind mounts", name, g.Notes)
		}
		snaps, err := r.cluster.Snapshots(ctx, "phoenix", g.VMID)
		if err != nil || len(snaps) != 0 {
			t.Errorf("%s: snapshots %+v, %v, want none", name, snaps, err)
		}
	}
}

func specOf(t *testing.T, r *rig, vmid int) *spec.Resolved {
	t.Helper()
	for _, g := range r.res.Guests {
		if g.VMID == vmid {
			return g
		}
	}
	t.Fatalf("no spec at VMID %d", vmid)
	return nil
}
