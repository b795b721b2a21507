package reconciler

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/spec"
)

func resolve(t *testing.T, src string) *spec.Resolution {
	t.Helper()
	set, err := spec.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("specs: %v", err)
	}
	res, err := spec.Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func examples(t *testing.T) *spec.Resolution {
	t.Helper()
	res, err := spec.LoadResolved("../examples/homelab")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// gpuHost is a node with two GPUs; nvidia-uvm has a dynamic major, here 511.
func gpuHost(driver string) *HostObservation {
	return &HostObservation{Info: HostInfo{DriverVersion: driver, PCIGPUs: 2, Devices: []Device{
		{"/dev/nvidia0", 195, 0, 0o666}, {"/dev/nvidia1", 195, 1, 0o666}, {"/dev/nvidiactl", 195, 255, 0o666},
		{"/dev/nvidia-modeset", 195, 254, 0o666}, {"/dev/nvidia-uvm", 511, 0, 0o666}, {"/dev/nvidia-uvm-tools", 511, 1, 0o666},
	}}}
}

var installedAt = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// converged builds the observed state of a cluster where every guest of res
// exists exactly as specified, with the records a real apply leaves: each
// feature recorded with the VMID of the guest that installed it.
func converged(res *spec.Resolution, driver string) *Observed {
	obs := &Observed{Guests: map[int]*ObservedGuest{}, Hosts: map[string]*HostObservation{}}
	for _, r := range res.Guests {
		if !r.Settings.GPUs.Empty() {
			obs.Hosts[r.Settings.Node] = gpuHost(driver)
		}
	}
	records := map[string]map[string]FeatureRecord{}
	for _, r := range res.Guests {
		recs := map[string]FeatureRecord{}
		for f, rec := range records[r.Parent] {
			if contains(r.Inherited, f) {
				recs[f] = rec
			}
		}
		for _, f := range r.Install {
			rec := recordFor(res, r, f, obs.Hosts[r.Settings.Node])
			rec.At = installedAt
			recs[f] = rec
		}
		records[r.Name] = recs
		d, _ := desiredConfig(r, obs.Hosts[r.Settings.Node])
		cfg := convergedConfig(d, r.Name)
		convergedDirs(obs, r, cfg.LXC)
		cfg.Values["unprivileged"] = boolString(r.Settings.Unprivileged)
		cfg.Values["rootfs"] = fmt.Sprintf("local-lvm:vm-%d-disk-0,size=%dG", r.VMID, r.Settings.DiskGiB)
		if parent, ok := res.Guest(r.Parent); ok {
			// A linked clone's disk names its template's base volume.
			cfg.Values["rootfs"] = fmt.Sprintf("local-lvm:base-%d-disk-0/vm-%d-disk-0,size=%dG", parent.VMID, r.VMID, r.Settings.DiskGiB)
		}
		state := &State{V: 1, Name: r.Name, Kind: string(r.Kind), Parent: r.Parent, Features: recs}
		inside := convergedInside(res, r, state)
		cfg.Values["description"] = RenderDescription("", state)
		status := "running"
		if r.IsTemplate() {
			status = "stopped"
			cfg.Values["template"] = "1"
		}
		obs.Guests[r.VMID] = &ObservedGuest{
			GuestSummary: GuestSummary{VMID: r.VMID, Type: "lxc", Node: r.Settings.Node, Name: r.Name, Status: status,
				Template: r.IsTemplate(), Tags: strings.Split(cfg.Values["tags"], ";")},
			Config: cfg, Managed: true, State: state, Inside: inside,
		}
		obs.Guests[r.VMID].Firewall = firewallAfter(r, &ObservedGuest{})
	}
	return obs
}

// convergedInside records a converged guest's files in its state and
// returns what phoenix/inspect finds in it: every file as written, every
// service enabled and running.
func convergedInside(res *spec.Resolution, r *spec.Resolved, state *State) *Inside {
	files, problems := guestFiles(res, r, func(spec.Secret) (string, error) { return "s3cret", nil })
	if len(problems) > 0 {
		panic(fmt.Sprint(problems))
	}
	paths, services := insideWanted(res, r.VMID)
	if len(paths) == 0 && len(services) == 0 {
		return nil
	}
	in := &Inside{Files: map[string]ObservedFile{}, Services: map[string]ObservedService{}}
	for _, f := range files {
		if state.Files == nil {
			state.Files = map[string]string{}
		}
		state.Files[f.Path] = recordDigest(f.Digest)
		in.Files[f.Path] = ObservedFile{Digest: f.Digest, Mode: f.Mode, IDs: "0:0", Names: f.User + ":" + f.Group}
	}
	for _, s := range services {
		in.Services[s] = ObservedService{Enabled: "enabled", Active: "active"}
	}
	return in
}

// convergedConfig is the config a guest has once converged, as far as phoenix
// manages it.
func convergedConfig(d desired, name string) Config {
	v := map[string]string{}
	maps.Copy(v, d.options)
	v["hostname"] = name
	if flags := setFlags(d.features); len(flags) > 0 {
		v["features"] = printPropString(flags)
	}
	for i, n := range d.nics {
		v[fmt.Sprintf("net%d", i)] = nicValue(n, "", d.firewallOn)
	}
	for i, dev := range d.devices {
		v[fmt.Sprintf("dev%d", i)] = d.deviceValues[dev]
	}
	for i, m := range d.mounts {
		v[mpKeys[i]] = mountValue(m, "")
	}
	return Config{Values: v, LXC: convergedLXC(d)}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// brief is a plan reduced to what the table tests compare: per guest its
// action, changes (action and feature or keys) and errors.
func brief(p *Plan) map[string][]string {
	out := map[string][]string{}
	for _, g := range p.Guests {
		lines := []string{g.Action.String()}
		for _, c := range g.Changes {
			l := c.Action.String()
			if c.Feature != "" {
				l += " " + c.Feature
			}
			for _, f := range c.Fields {
				l += " " + f.Key
			}
			if c.SizeGiB > 0 {
				l += fmt.Sprintf(" %dG", c.SizeGiB)
			}
			lines = append(lines, l)
		}
		for _, e := range g.Errors {
			lines = append(lines, fmt.Sprintf("error [%s]: %s", e.Kind, e.Message))
		}
		for _, n := range g.Notes {
			lines = append(lines, "note: "+n)
		}
		out[g.Name] = lines
	}
	return out
}

func TestConvergedIsNoChanges(t *testing.T) {
	res := examples(t)
	p := MakePlan(res, converged(res, "580.76.05"), PlanOptions{})
	if p.HasChanges() || p.HasErrors() {
		t.Fatalf("plan on a converged cluster:\n%v", brief(p))
	}
	var b bytes.Buffer
	if err := p.WriteText(&b, TextOptions{}); err != nil || b.String() != "No changes. The cluster matches the specs.\n" {
		t.Errorf("text: %q %v", b.String(), err)
	}
}

const lineage = `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec: {defaults: {node: pve1, storage: local-lvm}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 900
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  features: [base]
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu}
spec:
  vmid: 901
  from: {template: base}
  gpus: [0, 1]
  features: [cuda-toolkit]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 950
  from: {template: gpu}
  gpus: [1]
  features: [vllm]
`

func TestPlanCases(t *testing.T) {
	res := resolve(t, lineage)
	cases := map[string]struct {
		mutate func(o *Observed)
		opts   PlanOptions
		res    *spec.Resolution
		want   map[string][]string
	}{
		"a stopped Container is started; templates are never run": {
			mutate: func(o *Observed) { o.Guests[950].Status = "stopped" },
			want:   map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "start"}},
		},
		"state: stopped stops a running Container": {
			res:  resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n  state: stopped\n", 1)),
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "stop"}},
		},
		"state: stopped starts a Container to install, then stops it": {
			mutate: func(o *Observed) {
				o.Guests[950].Status = "stopped"
				delete(o.Guests[950].State.Features, "vllm")
			},
			res:  resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n  state: stopped\n", 1)),
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "start", "install vllm", "stop"}},
		},
		"missing guests: create the root, clone the rest, install what is not inherited": {
			mutate: func(o *Observed) { o.Guests = map[int]*ObservedGuest{} },
			want: map[string][]string{
				"base": {"create", "create", "start", "install base", "convert"},
				"gpu":  {"clone", "clone", "update dev0 dev1 dev2 dev3 dev4 dev5", "start", "install nvidia-driver", "install cuda-toolkit", "convert"},
				"app":  {"clone", "clone", "update dev0", "start", "identity", "install vllm"},
			},
		},
		"config drift is an update, with a restart when a running container gets other devices": {
			mutate: func(o *Observed) {
				v := o.Guests[950].Config.Values
				v["cores"], v["memory"], v["tags"], v["onboot"] = "4", "1024", "phoenix-managed;extra", "1"
				v["net0"] = "name=eth0,bridge=vmbr1,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"
				v["dev7"] = "/dev/nvidia0"
				v["dev8"] = "/dev/dri/renderD128"
			},
			res: resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n  network: [{name: eth0, ip: dhcp}]\n", 1)),
			want: map[string][]string{
				"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"update", "update cores memory onboot tags net0 dev7", "restart"},
			},
		},
		"a hostname, the network identity, DNS and the start order are updates; a running container restarts for DNS": {
			mutate: func(o *Observed) {
				o.Guests[950].Config.Values["net0"] = "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"
			},
			res: resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n  hostname: app.lab.example\n"+
				"  network: [{name: eth0, ip: dhcp, ip6: auto, hwaddr: \"52:54:00:00:00:02\", mtu: 1400, rate: 10}]\n"+
				"  nameservers: [10.0.0.13]\n  searchDomains: [lab.example]\n  startup: {order: 3, down: 60}\n", 1)),
			want: map[string][]string{
				"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"update", "update hostname nameserver searchdomain startup net0", "restart"},
			},
		},
		"an interface that pins no MAC keeps Proxmox's; the same DNS written otherwise is no change": {
			mutate: func(o *Observed) {
				v := o.Guests[950].Config.Values
				v["net0"] = "name=eth0,bridge=vmbr0,firewall=0,hwaddr=bc:24:11:00:00:01,ip=dhcp,mtu=1400,rate=10.0,type=veth"
				v["nameserver"], v["startup"] = "10.0.0.13,10.0.0.14", "down=60,order=3"
			},
			res: resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n"+
				"  network: [{name: eth0, ip: dhcp, mtu: 1400, rate: 10}]\n"+
				"  nameservers: [10.0.0.13, 10.0.0.14]\n  startup: {order: 3, down: 60}\n", 1)),
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"no-op"}},
		},
		"an empty DNS list removes the option": {
			mutate: func(o *Observed) { o.Guests[950].Config.Values["searchdomain"] = "old.example" },
			res:    resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n  searchDomains: []\n", 1)),
			want:   map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "update searchdomain", "restart"}},
		},
		"a disk that should grow is resized; one that should shrink is an error": {
			mutate: func(o *Observed) {
				o.Guests[950].Config.Values["rootfs"] = "local-lvm:vm-950-disk-0,size=4G"
				o.Guests[901].Config.Values["rootfs"] = "local-lvm:base-901-disk-0,size=100G"
			},
			want: map[string][]string{
				"base": {"no-op"},
				"gpu":  {"no-op", "error [spec]: the disk is 100 GiB and the spec asks for 8 GiB: disks cannot shrink"},
				"app":  {"no-op", "error [blocked]: its template gpu cannot be converged"},
			},
		},
		"a clone assigned GPU 1 of a template with GPUs 0,1 keeps only GPU 1": {
			mutate: func(o *Observed) {
				// As cloned: the template's entries, before phoenix trimmed them.
				v := o.Guests[950].Config.Values
				v["dev0"], v["dev1"], v["dev2"], v["dev3"], v["dev4"], v["dev5"] =
					"/dev/nvidia0,mode=0666", "/dev/nvidia1,mode=0666", "/dev/nvidiactl,mode=0666", "/dev/nvidia-uvm,mode=0666",
					"/dev/nvidia-uvm-tools,mode=0666", "/dev/nvidia-modeset,mode=666"
				o.Guests[950].Status = "stopped"
			},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "update dev0", "start"}},
		},
		"devices passed as Proxmox's default (0660, root's) get the host node's mode; a running container restarts for it": {
			mutate: func(o *Observed) {
				v := o.Guests[950].Config.Values
				for k, val := range v {
					if strings.HasPrefix(k, "dev") {
						v[k] = strings.TrimSuffix(val, ",mode=0666")
					}
				}
			},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "update dev0 dev1 dev2 dev3 dev4", "restart"}},
		},
		"gpuGroup gives the devices to a group inside the container": {
			res:  resolve(t, strings.Replace(lineage, "  gpus: [1]\n", "  gpus: [1]\n  gpuGroup: 44\n", 1)),
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "update dev0 dev1 dev2 dev3 dev4", "restart"}},
		},
		"records copied by a clone count only where the lineage says the feature is inherited": {
			mutate: func(o *Observed) {
				st := o.Guests[950].State
				// A record of docker, made on the template, that the spec lineage does not
				// know: it is ignored; vllm recorded elsewhere is not trusted either.
				st.Features["vllm"] = FeatureRecord{VMID: 901, Params: map[string]string{"version": "0.11.0"}}
			},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "install vllm"}},
		},
		"changed parameters reinstall the feature and what requires it": {
			mutate: func(o *Observed) {
				o.Guests[950].State.Features["cuda-toolkit"] = FeatureRecord{VMID: 950, Params: map[string]string{"version": "12.6"}}
			},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"update", "reinstall cuda-toolkit", "reinstall vllm"}},
		},
		"a host driver upgrade reinstalls the driver and everything that requires it": {
			mutate: func(o *Observed) { o.Hosts["pve1"] = gpuHost("580.95.05") },
			want: map[string][]string{
				"base": {"no-op"},
				"gpu":  {"no-op", "note: gpu is stale: it needs reinstall nvidia-driver, reinstall cuda-toolkit and a template cannot run installs; linked clones (app) use its disk. Its clones converge on their own (each installs what it lacks), and so do new clones made from it; give it spec.renewal.vmids to have a new generation made."},
				"app":  {"update", "reinstall nvidia-driver", "reinstall cuda-toolkit", "reinstall vllm"},
			},
		},
		"a template whose spec changed while clones exist says they are independent": {
			mutate: func(o *Observed) { o.Guests[901].Config.Values["cores"] = "3" },
			want: map[string][]string{"base": {"no-op"},
				"gpu": {"update", "update cores", "note: existing clones (app) are independent of this template: each is converged on its own, as its own plan shows"},
				"app": {"no-op"}},
		},
		"a template not yet converted installs, then converts": {
			mutate: func(o *Observed) {
				g := o.Guests[901]
				g.Template, g.Status = false, "running"
				delete(g.Config.Values, "template")
				delete(g.State.Features, "cuda-toolkit")
				o.Guests = map[int]*ObservedGuest{900: o.Guests[900], 901: g}
			},
			want: map[string][]string{
				"base": {"no-op"},
				"gpu":  {"update", "install cuda-toolkit", "convert"},
				"app":  {"clone", "clone", "update dev0", "start", "identity", "install vllm"},
			},
		},
		"unprivileged flipped needs --allow-replace": {
			mutate: func(o *Observed) { o.Guests[950].Config.Values["unprivileged"] = "0" },
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"no-op", "error [flag]: needs to be replaced (unprivileged changes false -> true, which Proxmox cannot change in place): run with --allow-replace to destroy and recreate it"}},
		},
		"a changed parent is replaced with --allow-replace": {
			mutate: func(o *Observed) { o.Guests[950].State.Parent = "base" },
			opts:   PlanOptions{AllowReplace: true},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"replace", "replace", "clone", "update dev0", "start", "identity", "install vllm"}},
		},
		"never a protected guest": {
			mutate: func(o *Observed) {
				o.Guests[950].State.Parent = "base"
				o.Guests[950].Config.Values["protection"] = "1"
			},
			opts: PlanOptions{AllowReplace: true},
			res:  resolve(t, strings.Replace(lineage, "  features: [vllm]\n", "  features: [vllm]\n  protection: true\n", 1)),
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"no-op", "error [flag]: needs to be replaced (its template changes base -> gpu) but has protection: 1; phoenix never replaces a protected guest"}},
		},
		"a managed guest no longer in the specs is deleted only with --prune": {
			mutate: func(o *Observed) {
				o.Guests[960] = &ObservedGuest{GuestSummary: GuestSummary{VMID: 960, Type: "lxc", Node: "pve1", Name: "old", Status: "running"},
					Managed: true, Config: Config{Values: map[string]string{}}, State: ownRecord("old", 960)}
			},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"no-op"},
				"old": {"no-op", "note: managed by phoenix but in no spec: run with --prune to delete it"}},
		},
		"pruned": {
			mutate: func(o *Observed) {
				o.Guests[960] = &ObservedGuest{GuestSummary: GuestSummary{VMID: 960, Type: "lxc", Node: "pve1", Name: "old", Status: "running"},
					Managed: true, Config: Config{Values: map[string]string{}}, State: ownRecord("old", 960)}
				o.Guests[961] = &ObservedGuest{GuestSummary: GuestSummary{VMID: 961, Type: "lxc", Node: "pve1", Name: "kept", Status: "stopped"},
					Managed: true, Config: Config{Values: map[string]string{"protection": "1"}}, State: ownRecord("kept", 961)}
			},
			opts: PlanOptions{Prune: true},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"}, "app": {"no-op"},
				"old":  {"delete", "delete"},
				"kept": {"no-op", "error [flag]: in no spec, but has protection: 1; phoenix never deletes a protected guest"}},
		},
		"a VMID or name held by an unmanaged guest is a conflict, never touched": {
			mutate: func(o *Observed) {
				o.Guests[950].Managed = false
				o.Guests[950].Name = "someone-elses"
				o.Guests[123] = &ObservedGuest{GuestSummary: GuestSummary{VMID: 123, Type: "lxc", Node: "pve1", Name: "gpu"}}
			},
			want: map[string][]string{
				"base": {"no-op"},
				"gpu":  {"no-op", "error [conflict]: name gpu is used by guest 123 on pve1, which is not managed by phoenix: rename one of them"},
				"app":  {"no-op", "error [conflict]: VMID 950 is held by container \"someone-elses\" on pve1, which is not managed by phoenix (no phoenix-managed tag); phoenix never touches it: pick another vmid, or set adopt: true in its spec to have phoenix take it over"},
			},
		},
		"names are hostnames: a name in other letter case is the same name": {
			mutate: func(o *Observed) {
				o.Guests[123] = &ObservedGuest{GuestSummary: GuestSummary{VMID: 123, Type: "lxc", Node: "pve1", Name: "GPU"}}
			},
			want: map[string][]string{
				"base": {"no-op"},
				"gpu":  {"no-op", "error [conflict]: name gpu is used by guest 123 (\"GPU\") on pve1, which is not managed by phoenix: rename one of them"},
				"app":  {"no-op", "error [blocked]: its template gpu cannot be converged"},
			},
		},
		"an unmanaged guest on a wanted VMID": {
			mutate: func(o *Observed) { o.Guests[950].Managed = false },
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"no-op", "error [conflict]: VMID 950 is held by container \"app\" on pve1, which is not managed by phoenix (no phoenix-managed tag); phoenix never touches it: pick another vmid, or set adopt: true in its spec to have phoenix take it over"}},
		},
		"a GPU the node does not have": {
			res: resolve(t, strings.Replace(lineage, "  gpus: [1]\n", "  gpus: [3]\n", 1)),
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"no-op", "error [spec]: GPU 3 is not on node pve1 (it has GPUs 0,1)"}},
		},
		"a node with GPUs on PCI and no device nodes has a broken driver": {
			mutate: func(o *Observed) { o.Hosts["pve1"] = &HostObservation{Info: HostInfo{PCIGPUs: 2}} },
			want: map[string][]string{"base": {"no-op"},
				"gpu": {"no-op", "error [node]: node pve1 has 2 NVIDIA GPU(s) on PCI but no /dev/nvidia* device nodes: its driver is not working; fix the host driver first"},
				// Its own problem says more than its template's.
				"app": {"no-op", "error [node]: node pve1 has 2 NVIDIA GPU(s) on PCI but no /dev/nvidia* device nodes: its driver is not working; fix the host driver first"}},
		},
		"a damaged state block is reported and its records not trusted": {
			mutate: func(o *Observed) {
				o.Guests[950].State = nil
				o.Guests[950].StateErr = fmt.Errorf("phoenix state block is damaged: unexpected EOF")
			},
			want: map[string][]string{"base": {"no-op"}, "gpu": {"no-op"},
				"app": {"update", "install base", "install nvidia-driver", "install cuda-toolkit", "install vllm",
					"note: phoenix state block is damaged: unexpected EOF; its records are not trusted and its features are checked again"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := res
			if tc.res != nil {
				r = tc.res
			}
			obs := converged(res, "580.76.05")
			if tc.mutate != nil {
				tc.mutate(obs)
			}
			got := brief(MakePlan(r, obs, tc.opts))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanGolden(t *testing.T) {
	res := examples(t)
	empty := &Observed{Guests: map[int]*ObservedGuest{}, Hosts: map[string]*HostObservation{"pve1": gpuHost("580.76.05")}}
	drift := converged(res, "580.95.05")
	drift.Guests[950].Config.Values["cores"] = "2"
	drift.Guests[955].Config.Values["dev0"] = "/dev/nvidia0"
	for name, obs := range map[string]*Observed{"empty": empty, "drift": drift} {
		p := MakePlan(res, obs, PlanOptions{})
		var text, js bytes.Buffer
		if err := p.WriteText(&text, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := p.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		testtool.Golden(t, "plan-"+name+".txt", text.Bytes())
		testtool.Golden(t, "plan-"+name+".json", js.Bytes())
	}
}

func TestPlanTextColor(t *testing.T) {
	res := examples(t)
	p := MakePlan(res, &Observed{Guests: map[int]*ObservedGuest{}, Hosts: map[string]*HostObservation{"pve1": gpuHost("580.76.05")}}, PlanOptions{})
	var b bytes.Buffer
	_ = p.WriteText(&b, TextOptions{Color: true})
	if !strings.Contains(b.String(), "\x1b[32m+\x1b[0m") {
		t.Error("no green + in coloured output")
	}
	b.Reset()
	_ = p.WriteText(&b, TextOptions{})
	if strings.Contains(b.String(), "\x1b[") {
		t.Error("escape codes without colour")
	}
}
