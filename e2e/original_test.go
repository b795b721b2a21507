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
