package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// header is a valid root template every case may clone from (lines 1-9).
const header = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 9000
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  features: [base]
`

const gpuTemplate = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu}
spec:
  vmid: 9000
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
  gpus: all
`

// problem is what a test expects of one diagnostic: its line, its field, and a
// piece of its message.
type problem struct {
	line  int
	field string
	text  string
}

func (p problem) String() string { return fmt.Sprintf("%d %s: ...%s...", p.line, p.field, p.text) }

// problems loads src and pairs each diagnostic with the wanted one that it
// matches, so that cmp.Diff shows only what is missing or unexpected.
func problems(t *testing.T, src string, want []problem) (got []problem) {
	t.Helper()
	_, err := Parse("test.yaml", []byte(src))
	if err == nil {
		return nil
	}
	var diags Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("Parse returned %T %v, want Diagnostics", err, err)
	}
	for _, d := range diags {
		if d.File != "test.yaml" {
			t.Errorf("diagnostic %q names file %q", d, d.File)
		}
		p := problem{line: d.Line, field: d.Field, text: d.Message}
		for _, w := range want {
			if w.line == d.Line && w.field == d.Field && strings.Contains(d.Message, w.text) {
				p.text = w.text
				break
			}
		}
		got = append(got, p)
	}
	return got
}

func TestValidationRules(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"a valid lineage has no problems": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec: {vmid: 101, from: {template: base}}
`,
		},
		"wrong apiVersion": {
			src:  "apiVersion: phoenix/v1\nkind: Template\n",
			want: []problem{{1, "", `unsupported apiVersion "phoenix/v1"`}},
		},
		"missing apiVersion": {
			src:  "kind: Template\nmetadata: {name: x}\n",
			want: []problem{{1, "", "apiVersion is missing"}},
		},
		"unknown kind": {
			src:  "apiVersion: phoenix/v1alpha1\nkind: VirtualMachine\n",
			want: []problem{{2, "", `unknown kind "VirtualMachine"`}},
		},
		"missing kind": {
			src:  "apiVersion: phoenix/v1alpha1\nmetadata: {name: x}\n",
			want: []problem{{1, "", "kind is missing"}},
		},
		"a document that is not a mapping": {
			src:  "- just\n- a list\n",
			want: []problem{{1, "", "a document must be a mapping"}},
		},
		"invalid YAML names its line": {
			src:  header + "---\napiVersion: phoenix/v1alpha1\nkind: [Template\n",
			want: []problem{{12, "", "invalid YAML: did not find expected ',' or ']'"}},
		},
		"unknown fields, with a suggestion": {
			src: header + `  memmory: 5
  resources: {cpus: 2, memroy: 1}
`,
			want: []problem{
				{10, "spec.memmory", "unknown field"},
				{11, "spec.resources.cpus", "unknown field (known fields: cores, disk, memory, swap)"},
				{11, "spec.resources.memroy", `did you mean "memory"`},
			},
		},
		"credentials are steered to the environment": {
			src: `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  endpoint: https://root:hunter2@pve1:8006/
  apiToken: root@pam!x=secret
  ssh: {password: x}
`,
			want: []problem{
				{5, "spec.endpoint", "credentials never go in spec files"},
				{6, "spec.apiToken", "set them in the environment"},
				{7, "spec.ssh.password", "set them in the environment"},
			},
		},
		"wrong types": {
			src: header + `  resources: {cores: four, memory: "2048", disk: 1.5}
  onboot: yes please
  unprivileged: 1
  tags: web
  network: {name: eth0}
  gpus: 0
`,
			want: []problem{
				{10, "spec.resources.cores", `expected an integer, got the string "four"`},
				{10, "spec.resources.memory", `expected an integer, got the string "2048"`},
				{10, "spec.resources.disk", "expected an integer, got the number 1.5"},
				{11, "spec.onboot", "expected true or false"},
				{12, "spec.unprivileged", "expected true or false, got the integer 1"},
				{13, "spec.tags", "expected a list"},
				{14, "spec.network", "expected a list, got a mapping"},
				{15, "spec.gpus", "expected all or a list of GPU indices"},
			},
		},
		"duplicate field in one mapping": {
			src:  header + "  vmid: 9001\n",
			want: []problem{{10, "spec.vmid", "duplicate field"}},
		},
		"VMID outside Proxmox's range": {
			src: `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: a}
spec: {vmid: 99, node: n, storage: s1, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: b}
spec: {vmid: 1000000000, node: n, storage: s1, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: c}
spec: {node: n, storage: s1, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
`,
			want: []problem{
				{4, "spec.vmid", "VMID 99 is outside 100..999999999"},
				{9, "spec.vmid", "VMID 1000000000 is outside"},
				{14, "spec.vmid", "a Container needs a vmid"},
			},
		},
		"duplicate VMIDs and names": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: base}
spec: {vmid: 9000, from: {template: base}}
`,
			want: []problem{
				{13, "metadata.name", "name base is also used by the Template at test.yaml:1"},
				{14, "spec.vmid", "VMID 9000 is also used by Template base at test.yaml:1"},
			},
		},
		"invalid hostnames": {
			src: `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: web_1}
spec: {vmid: 100, node: n, storage: s1, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: -web}
spec: {vmid: 101, node: n, storage: s1, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: ` + strings.Repeat("a", 64) + `}
spec: {vmid: 102, node: n, storage: s1, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
spec: {vmid: 103, node: n, storage: s1, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
`,
			want: []problem{
				{3, "metadata.name", `"web_1" is not a valid hostname`},
				{8, "metadata.name", `"-web" is not a valid hostname`},
				{13, "metadata.name", "is not a valid hostname"},
				{16, "metadata.name", "needs a name"},
			},
		},
		"parent missing, or a Container": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec: {vmid: 101, from: {template: nosuch}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app2}
spec: {vmid: 102, from: {template: app3}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app3}
spec: {vmid: 103, from: {template: base}}
`,
			want: []problem{
				{14, "spec.from.template", "no Template named nosuch"},
				{19, "spec.from.template", "app3 is a Container; only a Template can be cloned"},
			},
		},
		"a cycle in the lineage is named": {
			src: `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: a}
spec: {vmid: 100, from: {template: c}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: b}
spec: {vmid: 101, from: {template: a}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: c}
spec: {vmid: 102, from: {template: b}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: self}
spec: {vmid: 103, from: {template: self}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: below}
spec: {vmid: 104, from: {template: b}}
`,
			want: []problem{
				{4, "spec.from.template", "cycle in the clone lineage: a -> b -> c -> a"},
				{19, "spec.from.template", "cycle in the clone lineage: self -> self"},
			},
		},
		"a root template needs an ostemplate; from needs exactly one": {
			src: `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: t}
spec: {vmid: 100, node: n, storage: s1, from: {}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: c}
spec: {vmid: 101, node: n, storage: s1}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: d}
spec: {vmid: 102, node: n, from: {template: t, ostemplate: "local:vztmpl/x.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: e}
spec: {vmid: 103, node: n, storage: s1, from: {ostemplate: "ubuntu.tar.zst"}}
`,
			want: []problem{
				{4, "spec.from", "a root Template needs from.ostemplate"},
				{9, "spec.from", "set from.ostemplate"},
				{14, "spec.from", "not both"},
				{19, "spec.from.ostemplate", "is not a container template volume"},
			},
		},
		"unknown features, duplicates, and a suggestion": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  features:
    - nvidia-drivers
    - tensorflow
    - docker
    - docker
`,
			want: []problem{
				{18, "spec.features[0]", `unknown feature "nvidia-drivers" (did you mean nvidia-driver?)`},
				{19, "spec.features[1]", `unknown feature "tensorflow" (known: base,`},
				{21, "spec.features[3]", "feature docker is listed twice"},
			},
		},
		"a GPU feature on a guest without GPUs": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu}
spec:
  vmid: 101
  from: {template: base}
  features: [cuda-toolkit]
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu2}
spec:
  vmid: 102
  from: {template: base}
  gpus: [0]
  features: [nvidia-driver]
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: cleared}
spec:
  vmid: 103
  from: {template: gpu2}
  gpus: []
`,
			want: []problem{
				{17, "spec.gpus", "feature cuda-toolkit (listed here) needs GPUs (it requires nvidia-driver), but this guest has none"},
				{34, "spec.gpus", "feature nvidia-driver (inherited or required) needs GPUs"},
			},
		},
		"tags Proxmox would reject": {
			src: header + `  tags: [ok, "two words", "semi;colon", "-dash", Upper.Case+1]
`,
			want: []problem{
				{10, "spec.tags[1]", `Proxmox would reject tag "two words"`},
				{10, "spec.tags[2]", `Proxmox would reject tag "semi;colon"`},
				{10, "spec.tags[3]", `Proxmox would reject tag "-dash"`},
			},
		},
		"malformed versions": {
			src: `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nvidia:
    runfileURL: https://example.com/NVIDIA.run
    sha256:
      latest: abc
---
` + gpuTemplate + `  features: [cuda-toolkit, vllm, ollama]
  featureConfig:
    cuda-toolkit: {version: "12"}
    vllm: {version: 0.11}
    ollama: {version: "", flavour: rocm}
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: tool}
spec:
  version: one
  steps: [{name: s, check: "true", apply: "true"}]
`,
			want: []problem{
				{6, "spec.nvidia.runfileURL", "must contain {version}"},
				{8, "spec.nvidia.sha256.latest", `malformed driver version "latest"`},
				{8, "spec.nvidia.sha256.latest", "want 64 lower-case hex digits"},
				{21, "spec.featureConfig.cuda-toolkit.version", `malformed value "12": want MAJOR.MINOR`},
				{22, "spec.featureConfig.vllm.version", `malformed value "0.11"`},
				{23, "spec.featureConfig.ollama.flavour", `feature ollama has no parameter "flavour" (known: host, installer, version)`},
				{29, "spec.version", `malformed version "one"`},
			},
		},
		"runfile sources": {
			src: `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  nvidia:
    runfileURLs:
      - https://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run
      - ftp://mirror.lab.example/{version}.run
      - https://mirror.lab.example/latest.run
      - https://lab:hunter2-mirror@mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run
`,
			want: []problem{
				{8, "spec.nvidia.runfileURLs[1]", `want an http(s) URL, got "ftp://mirror.lab.example/{version}.run"`},
				{9, "spec.nvidia.runfileURLs[2]", "must contain {version}"},
				{10, "spec.nvidia.runfileURLs[3]", "holds a user name or password"},
			},
		},
		"featureConfig for a feature the guest does not have": {
			src: header + `  featureConfig:
    docker: {}
    nosuch: {}
    base: {x: "1"}
`,
			want: []problem{
				{11, "spec.featureConfig.docker", "docker is not among this guest's features (base)"},
				{12, "spec.featureConfig.nosuch", `unknown feature "nosuch"`},
				{13, "spec.featureConfig.base.x", "feature base takes no parameters"},
			},
		},
		"feature dependency cycles and bad Feature documents": {
			src: `apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: a}
spec:
  requires: [b]
  steps: [{name: s, check: "true", apply: "true"}]
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: b}
spec:
  requires: [a, nosuch]
  steps: [{name: s, check: "true", apply: "true"}]
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: docker}
spec:
  requires: [docker]
  config: {"bad-name": x}
  steps:
    - {name: s, check: "", apply: "true"}
    - {name: s, check: "true", apply: " "}
    - {name: Bad, check: "true", apply: "true"}
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: empty}
spec: {}
`,
			want: []problem{
				{5, "spec.requires", "dependency cycle: a -> b -> a"},
				{12, "spec.requires[1]", `unknown feature "nosuch"`},
				{17, "metadata.name", "docker is a built-in feature"},
				{19, "spec.requires[0]", "a feature cannot require itself"},
				{20, "spec.config.bad-name", "parameter names reach the scripts as environment variables"},
				{22, "spec.steps[0].check", "a step needs a check"},
				{23, "spec.steps[1].name", "step s is listed twice"},
				{23, "spec.steps[1].apply", "a step needs an apply body"},
				{24, "spec.steps[2].name", `"Bad" is not a valid step name`},
				{29, "spec.steps", "a Feature needs at least one step"},
			},
		},
		"step timeouts": {
			src: `apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: slow}
spec:
  steps:
    - {name: a, check: "true", apply: "true", timeout: 1h30m}
    - {name: b, check: "true", apply: "true", timeout: 20}
    - {name: c, check: "true", apply: "true", timeout: 500ms}
    - {name: d, check: "true", apply: "true", timeout: 25h}
    - {name: e, check: "true", apply: "true", timeout: 0s}
`,
			want: []problem{
				{7, "spec.steps[1].timeout", `timeout "20": want hours, minutes and seconds such as 20m, 90s or 1h30m`},
				{8, "spec.steps[2].timeout", `timeout "500ms": want hours, minutes and seconds`},
				{9, "spec.steps[3].timeout", "timeout 25h is outside 1s..24h0m0s"},
				{10, "spec.steps[4].timeout", "timeout 0s is outside 1s..24h0m0s"},
			},
		},
		"a feature cannot require itself": {
			src: `apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: loop}
spec:
  requires: [loop]
  steps: [{name: s, check: "true", apply: "true"}]
`,
			want: []problem{
				{5, "spec.requires[0]", "a feature cannot require itself"},
				{5, "spec.requires", "dependency cycle: loop -> loop"},
			},
		},
		"what a clone cannot change": {
			src: header + `  resources: {disk: 16}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  unprivileged: false
  storage: other
  resources: {disk: 8}
`,
			want: []problem{
				{18, "spec.unprivileged", "a clone keeps its template's privilege mode"},
				{19, "spec.storage", "a linked clone stays on its template's storage"},
				{20, "spec.resources.disk", "disks cannot shrink"},
			},
		},
		"cloneMode only on clones, and only linked or full": {
			src: header + `  cloneMode: full
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec: {vmid: 101, from: {template: base}, cloneMode: copy}
`,
			want: []problem{
				{10, "spec.cloneMode", "cloneMode applies to clones only"},
				{15, "spec.cloneMode", `want linked or full, got "copy"`},
			},
		},
		"renewal: templates only, VMIDs in range and used by nothing else": {
			src: header + `  renewal: {vmids: [9001, 101, 50]}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec: {vmid: 101, from: {template: base}, renewal: {vmids: [9002]}}
`,
			want: []problem{
				{10, "spec.renewal.vmids[2]", "VMID 50 is outside 100..999999999"},
				{15, "spec.renewal", "only a Template is renewed"},
				{15, "spec.vmid", "VMID 101 is also used by Template base"},
			},
		},
		"no node, no storage": {
			src: `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: t}
spec: {vmid: 100, from: {ostemplate: "local:vztmpl/x.tar.zst"}}
`,
			want: []problem{
				{4, "spec.node", "no node"},
				{4, "spec.storage", "no storage for the root disk"},
			},
		},
		"resources out of range": {
			src: header + `  resources: {cores: 0, memory: 8, swap: -1, disk: 0}
`,
			want: []problem{
				{10, "spec.resources.cores", "cores 0 is outside 1..8192"},
				{10, "spec.resources.memory", "at least 16"},
				{10, "spec.resources.swap", "cannot be negative"},
				{10, "spec.resources.disk", "at least 1"},
			},
		},
		"network interfaces": {
			src: header + `  network:
    - {name: eth0, ip: 10.0.0.5/24, gw: 10.0.0.1}
    - {name: eth0, ip: dhcp, gw: 10.0.0.1}
    - {name: "", ip: 10.0.0.5}
    - {name: eth2, ip: "fe80::1/64", bridge: "vmbr 0", vlan: 5000}
    - {name: eth3, ip: 10.0.0.9/24, gw: gateway}
`,
			want: []problem{
				{12, "spec.network[1].name", "interface eth0 is listed twice"},
				{12, "spec.network[1].gw", "a gateway needs a static ip"},
				{13, "spec.network[2].name", "an interface needs a name"},
				{13, "spec.network[2].ip", "want dhcp, manual or an IPv4 address in CIDR form"},
				{14, "spec.network[3].bridge", `"vmbr 0" is not a valid bridge name`},
				{14, "spec.network[3].ip", "want dhcp, manual or an IPv4 address"},
				{14, "spec.network[3].vlan", "VLAN tag 5000 is outside 1..4094"},
				{15, "spec.network[4].gw", `want an IPv4 address, got "gateway"`},
			},
		},
		"GPU indices": {
			src: header + "  gpus: [0, -1, 0]\n",
			want: []problem{
				{10, "spec.gpus[1]", "GPU index -1 is negative"},
				{10, "spec.gpus[2]", "GPU 0 is listed twice"},
			},
		},
		"cluster settings": {
			src: `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  endpoint: http://pve1:8006
  defaults: {node: "pve 1", storage: "9local", bridge: "br 0"}
  ssh:
    port: 70000
    nodes: {pve1: "root@10.0.0.1", "bad node": 10.0.0.2}
---
apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: second}
`,
			want: []problem{
				{5, "spec.endpoint", "want an https:// URL"},
				{6, "spec.defaults.node", `"pve 1" is not a valid node name`},
				{6, "spec.defaults.storage", `"9local" is not a valid storage ID`},
				{6, "spec.defaults.bridge", `"br 0" is not a valid bridge name`},
				{8, "spec.ssh.port", "port 70000 is outside 1..65535"},
				{9, "spec.ssh.nodes.bad node", `"bad node" is not a valid node name`},
				{9, "spec.ssh.nodes.pve1", "want a host, IP address or host:port"},
				{11, "", "a second Cluster document (the first is at test.yaml:1)"},
			},
		},
		"a quoted number where an integer belongs is a type error, a bare one where a string belongs is text": {
			src: gpuTemplate + `  features: [cuda-toolkit]
  featureConfig:
    cuda-toolkit: {version: 12.8}
`,
		},
		"storage IDs may have upper case letters, as in Proxmox": {
			src: `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
  endpoint: https://pve1:8006
  defaults: {storage: quickOS-lxc-disks}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 900
  node: pve1
  storage: quickOS-lxc-disks
  from: {ostemplate: "fastData-ISO:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: full}
spec: {vmid: 901, from: {template: base}, cloneMode: full, storage: Fast_NVMe.1}
`,
		},
		"a host name may have dots; a bad one is named": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: vllm-qwen}
spec: {vmid: 101, hostname: vllm-qwen2.5-7b-awq, from: {template: base}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: b}
spec: {vmid: 102, hostname: "-b.lab", from: {template: base}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: c}
spec: {vmid: 103, hostname: "c..lab", from: {template: base}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: d}
spec: {vmid: 104, hostname: ` + strings.Repeat("d", 64) + `.lab, from: {template: base}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: e}
spec: {vmid: 105, hostname: ` + strings.Repeat("e.", 127) + `ee, from: {template: base}}
`,
			want: []problem{
				{19, "spec.hostname", `"-b.lab" is not a valid host name`},
				{24, "spec.hostname", `"c..lab" is not a valid host name`},
				{29, "spec.hostname", "the part before the first dot (64 characters) is the container's host name, which is at most 63 characters"},
				{34, "spec.hostname", "up to 255 characters in all"},
			},
		},
		"network identity: IPv6, MACs, MTU, rate, type, DNS": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: good}
spec:
  vmid: 101
  from: {template: base}
  nameservers: [10.0.0.13, "2001:db8::53"]
  searchDomains: [lab.example]
  network:
    - {name: eth0, ip: 10.0.0.5/24, gw: 10.0.0.1, ip6: "fd00::5/64", gw6: "fd00::1", hwaddr: "52:54:00:AA:BB:CC", firewall: true, mtu: 9000, rate: 12.5, type: veth}
    - {name: eth1, ip6: auto}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: bad}
spec:
  vmid: 102
  from: {template: base}
  nameservers: [dns.example]
  searchDomains: [bad_domain]
  network:
    - {name: eth0, ip6: "10.0.0.5/24", gw6: "fd00::1", hwaddr: "53:54:00:00:00:01", mtu: 63, rate: -1, type: macvlan}
    - {name: eth1, ip6: "fd00::9/64", gw6: "10.0.0.1", hwaddr: "52:54:00:aa:bb:cc"}
    - {name: eth2, ip6: auto, gw6: "fd00::1"}
`,
			want: []problem{
				{29, "spec.nameservers[0]", `"dns.example" is not an IPv4 or IPv6 address`},
				{30, "spec.searchDomains[0]", `"bad_domain" is not a DNS name`},
				{32, "spec.network[0].ip6", "want auto, dhcp, manual or an IPv6 address"},
				{32, "spec.network[0].hwaddr", "is not a unicast MAC address"},
				{32, "spec.network[0].mtu", "MTU 63 is outside 64..65535"},
				{32, "spec.network[0].rate", "rate -1 is not a number of MB/s"},
				{32, "spec.network[0].type", "Proxmox knows veth only"},
				{33, "spec.network[1].gw6", `want an IPv6 address, got "10.0.0.1"`},
				{33, "spec.network[1].hwaddr", "MAC address 52:54:00:AA:BB:CC is also the MAC of Container good (spec.network[0], at test.yaml:11)"},
				{34, "spec.network[2].gw6", "an IPv6 gateway needs a static ip6"},
			},
		},
		"start order and dependencies": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: ca}
spec: {vmid: 103, from: {template: base}, startup: {order: 1, up: 5}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: gateway}
spec: {vmid: 101, from: {template: base}, startup: {order: -1, down: -2}, dependsOn: [CA, nope, gateway, ca, base, off]}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: "off"}
spec: {vmid: 104, from: {template: base}, state: stopped}
`,
			want: []problem{
				{19, "spec.startup.order", "-1 is negative"},
				{19, "spec.startup.down", "-2 is negative"},
				{19, "spec.dependsOn[1]", "no guest named nope"},
				{19, "spec.dependsOn[2]", "a guest cannot depend on itself"},
				{19, "spec.dependsOn[3]", "ca is listed twice"},
				{19, "spec.dependsOn[4]", "base is a Template, which never runs"},
				{19, "spec.dependsOn[5]", "off is kept stopped by its spec.state"},
			},
		},
		"a cycle through clones and dependencies is named": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: gpu}
spec: {vmid: 901, from: {template: base}, dependsOn: [vllm]}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: vllm}
spec: {vmid: 910, from: {template: gpu}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: a}
spec: {vmid: 920, from: {template: base}, dependsOn: [b]}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: b}
spec: {vmid: 921, from: {template: base}, dependsOn: [a]}
`,
			want: []problem{
				{14, "spec.dependsOn", "gpu depends on vllm, which is cloned from gpu"},
				{24, "spec.dependsOn", "a depends on b, which depends on a"},
			},
		},
		"an OS template volume says which part is wrong": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: a}
spec: {vmid: 101, node: n, storage: s1, from: {ostemplate: "1local:vztmpl/x.tar.zst"}}
---
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: b}
spec: {vmid: 102, node: n, storage: s1, from: {ostemplate: "local:iso/x.iso"}}
`,
			want: []problem{
				{14, "spec.from.ostemplate", `the storage "1local" is not a valid storage ID`},
				{19, "spec.from.ostemplate", `"local:iso/x.iso" is not a container template volume: want STORAGE:vztmpl/FILE`},
			},
		},
		"the simulator's world documents are skipped": {
			src: header + `---
apiVersion: sim.phoenix/v1alpha1
kind: World
nodes: [{name: pve1}]
`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiagnosticFormat(t *testing.T) {
	_, err := Parse("specs/app.yaml", []byte(header+"  resources: {cores: x}\n"))
	want := `specs/app.yaml:10: Template base: spec.resources.cores: expected an integer, got the string "x"`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}
