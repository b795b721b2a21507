package spec

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// doc writes one Template or Container document; extra is YAML for spec, indented.
func doc(kind, name string, vmid int, from, extra string) string {
	return fmt.Sprintf("---\napiVersion: phoenix/v1alpha1\nkind: %s\nmetadata: {name: %s}\nspec:\n  vmid: %d\n  from: %s\n%s",
		kind, name, vmid, from, extra)
}

const root = `{ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}`

func resolveDocs(t *testing.T, docs ...string) *Resolution {
	t.Helper()
	cluster := "apiVersion: phoenix/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {defaults: {node: pve1, storage: local-zfs}}\n"
	set, err := Parse("test.yaml", []byte(cluster+strings.Join(docs, "")))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	res, err := Resolve(set)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return res
}

// featureSets is the part of a Resolved that inheritance tests compare.
type featureSets struct {
	Lineage, Own, Inherited, Effective, Install []string
}

func setsOf(res *Resolution) map[string]featureSets {
	out := map[string]featureSets{}
	for _, g := range res.Guests {
		out[g.Name] = featureSets{g.Lineage, g.Own, g.Inherited, g.Effective, g.Install}
	}
	return out
}

func TestInheritance(t *testing.T) {
	none := []string{}
	cases := map[string]struct {
		docs []string
		want map[string]featureSets
	}{
		"a root installs its own features and their requirements, in dependency order": {
			docs: []string{doc("Template", "t", 100, root, "  gpus: [0]\n  features: [vllm, base]\n")},
			want: map[string]featureSets{
				"t": {
					Lineage: none, Own: []string{"base", "vllm"}, Inherited: none,
					Effective: []string{"base", "cuda-toolkit", "nvidia-driver", "vllm"},
					Install:   []string{"base", "nvidia-driver", "cuda-toolkit", "vllm"},
				},
			},
		},
		"a deep chain inherits everything above it and installs only its own": {
			docs: []string{
				doc("Template", "a", 100, root, "  features: [base]\n"),
				doc("Template", "b", 101, "{template: a}", "  gpus: all\n  features: [nvidia-driver]\n"),
				doc("Template", "c", 102, "{template: b}", "  features: [cuda-toolkit]\n"),
				doc("Template", "d", 103, "{template: c}", "  features: [docker]\n"),
				doc("Container", "e", 104, "{template: d}", "  features: [nvidia-container-toolkit]\n"),
			},
			want: map[string]featureSets{
				"a": {none, []string{"base"}, none, []string{"base"}, []string{"base"}},
				"b": {[]string{"a"}, []string{"nvidia-driver"}, []string{"base"}, []string{"base", "nvidia-driver"}, []string{"nvidia-driver"}},
				"c": {[]string{"a", "b"}, []string{"cuda-toolkit"}, []string{"base", "nvidia-driver"},
					[]string{"base", "cuda-toolkit", "nvidia-driver"}, []string{"cuda-toolkit"}},
				"d": {[]string{"a", "b", "c"}, []string{"docker"}, []string{"base", "cuda-toolkit", "nvidia-driver"},
					[]string{"base", "cuda-toolkit", "docker", "nvidia-driver"}, []string{"docker"}},
				"e": {[]string{"a", "b", "c", "d"}, []string{"nvidia-container-toolkit"},
					[]string{"base", "cuda-toolkit", "docker", "nvidia-driver"},
					[]string{"base", "cuda-toolkit", "docker", "nvidia-container-toolkit", "nvidia-driver"},
					[]string{"nvidia-container-toolkit"}},
			},
		},
		"a feature re-listed on a child is still inherited, not reinstalled": {
			docs: []string{
				doc("Template", "a", 100, root, "  gpus: [0, 1]\n  features: [base, nvidia-driver]\n"),
				doc("Container", "b", 101, "{template: a}", "  gpus: [1]\n  features: [nvidia-driver, base]\n"),
			},
			want: map[string]featureSets{
				"a": {none, []string{"base", "nvidia-driver"}, none, []string{"base", "nvidia-driver"}, []string{"base", "nvidia-driver"}},
				"b": {[]string{"a"}, []string{"base", "nvidia-driver"}, []string{"base", "nvidia-driver"},
					[]string{"base", "nvidia-driver"}, none},
			},
		},
		"requirements missing from the parent are pulled in on the child": {
			docs: []string{
				doc("Template", "a", 100, root, "  gpus: [0]\n  features: [base]\n"),
				doc("Container", "b", 101, "{template: a}", "  features: [vllm]\n"),
			},
			want: map[string]featureSets{
				"a": {none, []string{"base"}, none, []string{"base"}, []string{"base"}},
				"b": {[]string{"a"}, []string{"vllm"}, []string{"base"},
					[]string{"base", "cuda-toolkit", "nvidia-driver", "vllm"},
					[]string{"nvidia-driver", "cuda-toolkit", "vllm"}},
			},
		},
		"changed parameters on a clone reinstall the feature and what requires it": {
			docs: []string{
				doc("Template", "a", 100, root, "  gpus: [0]\n  features: [vllm]\n"),
				doc("Container", "same", 101, "{template: a}", "  featureConfig: {cuda-toolkit: {version: \"12.8\"}}\n"),
				doc("Container", "newer", 102, "{template: a}", "  featureConfig: {cuda-toolkit: {version: \"12.9\"}}\n"),
			},
			want: map[string]featureSets{
				"a": {none, []string{"vllm"}, none, []string{"base", "cuda-toolkit", "nvidia-driver", "vllm"},
					[]string{"base", "nvidia-driver", "cuda-toolkit", "vllm"}},
				"same": {[]string{"a"}, none, []string{"base", "cuda-toolkit", "nvidia-driver", "vllm"},
					[]string{"base", "cuda-toolkit", "nvidia-driver", "vllm"}, none},
				"newer": {[]string{"a"}, none, []string{"base", "nvidia-driver"},
					[]string{"base", "cuda-toolkit", "nvidia-driver", "vllm"}, []string{"cuda-toolkit", "vllm"}},
			},
		},
		"user features join the catalog with their requirements": {
			docs: []string{
				doc("Template", "a", 100, root, "  gpus: [0]\n  features: [cuda-toolkit]\n"),
				doc("Container", "b", 101, "{template: a}", "  features: [jupyter]\n"),
				"---\napiVersion: phoenix/v1alpha1\nkind: Feature\nmetadata: {name: jupyter}\nspec:\n  requires: [cuda-toolkit, pyenv]\n  steps: [{name: s, check: x, apply: y}]\n",
				"---\napiVersion: phoenix/v1alpha1\nkind: Feature\nmetadata: {name: pyenv}\nspec:\n  steps: [{name: s, check: x, apply: y}]\n",
			},
			want: map[string]featureSets{
				"a": {none, []string{"cuda-toolkit"}, none, []string{"base", "cuda-toolkit", "nvidia-driver"}, []string{"base", "nvidia-driver", "cuda-toolkit"}},
				"b": {[]string{"a"}, []string{"jupyter"}, []string{"base", "cuda-toolkit", "nvidia-driver"},
					[]string{"base", "cuda-toolkit", "jupyter", "nvidia-driver", "pyenv"}, []string{"pyenv", "jupyter"}},
			},
		},
		"siblings are independent": {
			docs: []string{
				doc("Template", "a", 100, root, "  features: [base]\n"),
				doc("Container", "x", 101, "{template: a}", "  features: [docker]\n"),
				doc("Container", "y", 102, "{template: a}", "  features: [ollama]\n"),
			},
			want: map[string]featureSets{
				"a": {none, []string{"base"}, none, []string{"base"}, []string{"base"}},
				"x": {[]string{"a"}, []string{"docker"}, []string{"base"}, []string{"base", "docker"}, []string{"docker"}},
				"y": {[]string{"a"}, []string{"ollama"}, []string{"base"}, []string{"base", "ollama"}, []string{"ollama"}},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := setsOf(resolveDocs(t, tc.docs...))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("feature sets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSettingsInheritance(t *testing.T) {
	res := resolveDocs(t,
		doc("Template", "a", 100, root, `  resources: {cores: 4, memory: 4096, disk: 20}
  network: [{name: eth0, ip: dhcp}]
  gpus: [0, 1]
  features: [nvidia-driver]
  tags: [GPU, base]
  protection: true
  onboot: true
`),
		doc("Template", "b", 101, "{template: a}", "  resources: {memory: 8192}\n  tags: []\n"),
		doc("Container", "c", 102, "{template: b}", `  node: pve2
  cloneMode: full
  storage: fast
  resources: {disk: 40}
  network: []
  gpus: [1]
  protection: false
  tags: ["Y", "x", "y"]
`),
	)
	want := map[string]Settings{
		"a": {
			Node: "pve1", OSTemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", Storage: "local-zfs",
			Cores: 4, MemoryMiB: 4096, SwapMiB: DefaultSwapMiB, DiskGiB: 20,
			Network:      []NIC{{Name: "eth0", Bridge: DefaultBridge, IP: "dhcp"}},
			Unprivileged: true, GPUs: GPUSet{Indices: []int{0, 1}}, Tags: []string{"base", "gpu"},
			OnBoot: true, Protection: true,
		},
		"b": {
			Node: "pve1", OSTemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", CloneMode: CloneLinked,
			Storage: "local-zfs", Cores: 4, MemoryMiB: 8192, SwapMiB: DefaultSwapMiB, DiskGiB: 20,
			Network:      []NIC{{Name: "eth0", Bridge: DefaultBridge, IP: "dhcp"}},
			Unprivileged: true, GPUs: GPUSet{Indices: []int{0, 1}}, Tags: []string{},
			OnBoot: true, Protection: true,
		},
		"c": {
			Node: "pve2", OSTemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", CloneMode: CloneFull,
			Storage: "fast", Cores: 4, MemoryMiB: 8192, SwapMiB: DefaultSwapMiB, DiskGiB: 40,
			Network: []NIC{}, Unprivileged: true, GPUs: GPUSet{Indices: []int{1}}, Tags: []string{"x", "y"},
			OnBoot: true, Protection: false,
		},
	}
	got := map[string]Settings{}
	for _, g := range res.Guests {
		got[g.Name] = g.Settings
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestLineageOrder(t *testing.T) {
	res := resolveDocs(t,
		doc("Container", "z", 300, "{template: b}", ""),
		doc("Template", "b", 200, "{template: a}", ""),
		doc("Container", "y", 150, "{template: a}", ""),
		doc("Template", "a", 100, root, ""),
		doc("Container", "lone", 120, root, ""),
	)
	var got []string
	for _, g := range res.Guests {
		got = append(got, g.Name)
	}
	// Depth-first, roots and siblings by VMID: a parent always precedes its clones.
	want := []string{"a", "y", "b", "z", "lone"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	a, _ := res.Guest("a")
	if diff := cmp.Diff([]string{"y", "b"}, a.Children); diff != "" {
		t.Errorf("children of a (-want +got):\n%s", diff)
	}
}

func TestResolveRefusesABrokenLineage(t *testing.T) {
	set := &Set{Guests: []*Guest{
		{Kind: KindContainer, Metadata: Metadata{Name: "orphan"}, Spec: GuestSpec{VMID: 100, From: From{Template: "gone"}}},
	}}
	if _, err := Resolve(set); err == nil || !strings.Contains(err.Error(), "orphan") {
		t.Errorf("Resolve = %v, want an error naming orphan", err)
	}
}

func TestNormalizeTags(t *testing.T) {
	got := NormalizeTags([]string{"B,a", "c;b", "A c", ""})
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Errorf("NormalizeTags (-want +got):\n%s", diff)
	}
}

// TestHostnameIsNotInherited: a clone's host name is its own name unless it
// sets spec.hostname, whatever its template's is.
func TestHostnameIsNotInherited(t *testing.T) {
	res := resolveDocs(t,
		doc("Template", "base", 900, root, "  hostname: copy-base.lab\n"),
		doc("Container", "cuda", 901, "{template: base}", ""),
		doc("Container", "qwen", 902, "{template: base}", "  hostname: vllm-qwen2.5-7b-awq\n"),
	)
	for name, want := range map[string]string{"base": "copy-base.lab", "cuda": "cuda", "qwen": "vllm-qwen2.5-7b-awq"} {
		if g, _ := res.Guest(name); g.Hostname != want {
			t.Errorf("%s: hostname %q, want %q", name, g.Hostname, want)
		}
	}
}

// TestMACsAreNotInherited: a clone that takes its template's interfaces
// takes them without the pinned MAC (Proxmox gives a clone new ones); the
// rest of each interface, and DNS settings, are inherited as usual.
func TestMACsAreNotInherited(t *testing.T) {
	res := resolveDocs(t,
		doc("Template", "base", 900, root, "  nameservers: [10.0.0.13]\n  network:\n    - {name: eth0, ip: dhcp, hwaddr: \"52:54:00:AA:BB:CC\", mtu: 9000}\n"),
		doc("Container", "clone", 901, "{template: base}", "  searchDomains: [lab.example]\n"),
		doc("Container", "pinned", 902, "{template: base}", "  nameservers: []\n  network:\n    - {name: eth0, ip: dhcp, hwaddr: \"52:54:00:AA:BB:CD\"}\n"),
	)
	base, _ := res.Guest("base")
	clone, _ := res.Guest("clone")
	pinned, _ := res.Guest("pinned")
	if got := base.Settings.Network[0].HWAddr; got != "52:54:00:AA:BB:CC" {
		t.Errorf("base hwaddr %q", got)
	}
	if n := clone.Settings.Network[0]; n.HWAddr != "" || n.MTU == nil || *n.MTU != 9000 {
		t.Errorf("clone's interface %+v: want the template's without its MAC", n)
	}
	if got := pinned.Settings.Network[0].HWAddr; got != "52:54:00:AA:BB:CD" {
		t.Errorf("pinned hwaddr %q", got)
	}
	if diff := cmp.Diff([]string{"10.0.0.13"}, clone.Settings.Nameservers); diff != "" {
		t.Errorf("clone nameservers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lab.example"}, clone.Settings.SearchDomains); diff != "" {
		t.Errorf("clone search domains (-want +got):\n%s", diff)
	}
	if pinned.Settings.Nameservers == nil || len(pinned.Settings.Nameservers) != 0 {
		t.Errorf("pinned nameservers %#v: want an explicit empty list", pinned.Settings.Nameservers)
	}
	if base.Settings.SearchDomains != nil {
		t.Errorf("base search domains %#v: want unset", base.Settings.SearchDomains)
	}
}
