package sim

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The node side over SSH: what a Proxmox host tells about its NVIDIA driver and
// device nodes (/proc/driver/nvidia/version, /proc/devices, /dev/nvidia*), and
// the host scripts phoenix runs there.

func TestHostProbe(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	probe := func(l *lab, node string) sshResult {
		return l.script(node, 0, "phoenix/host-probe", "", "cat /proc/driver/nvidia/version; ls -l /dev/nvidia*; lspci -d 10de:")
	}
	cases := map[string]struct {
		node string
		want string
	}{
		"a working driver lists every device node with its real major and minor": {
			node: "pve1",
			want: "driver 580.76.05\npci-gpus 2\n" +
				"device /dev/nvidia0 195 0 666\ndevice /dev/nvidia1 195 1 666\n" +
				"device /dev/nvidiactl 195 255 666\ndevice /dev/nvidia-modeset 195 254 666\n" +
				"device /dev/nvidia-uvm 511 0 666\ndevice /dev/nvidia-uvm-tools 511 1 666\n" +
				"device /dev/nvidia-caps/nvidia-cap1 510 1 400\ndevice /dev/nvidia-caps/nvidia-cap2 510 2 400\n",
		},
		// A GPU on PCI without device nodes has no working driver: phoenix
		// must report it, not pass through paths that do not exist.
		"a GPU on PCI without a driver has no device nodes": {
			node: "pve2",
			want: "driver none\npci-gpus 1\n",
		},
		// Until something loads nvidia-uvm (nvidia-modprobe -c0 -u, or one
		// nvidia-smi run), /dev/nvidia-uvm* do not exist.
		"nvidia-uvm not loaded since boot": {
			node: "pve3",
			want: "driver 570.172.08\npci-gpus 1\n" +
				"device /dev/nvidia0 195 0 666\ndevice /dev/nvidiactl 195 255 666\ndevice /dev/nvidia-modeset 195 254 666\n" +
				"device /dev/nvidia-caps/nvidia-cap1 509 1 400\ndevice /dev/nvidia-caps/nvidia-cap2 509 2 400\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := l.on(t)
			r := probe(l, tc.node)
			wantExit(t, "host probe", r, 0)
			if diff := cmp.Diff(tc.want, r.stdout); diff != "" {
				t.Errorf("probe on %s (-want +got):\n%s", tc.node, diff)
			}
		})
	}
	if diff := cmp.Diff([]string{"phoenix/host-probe ok"}, l.execs("pve1", 0)); diff != "" {
		t.Errorf("journal of pve1 (-want +got):\n%s", diff)
	}
}

func TestHostReads(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	cases := map[string]struct {
		node           string
		argv           []string
		code           int
		stdout, stderr string
	}{
		"the kernel module's version": {
			node: "pve1", argv: []string{"cat", "/proc/driver/nvidia/version"},
			stdout: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.76.05  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jul 17 20:30:36 UTC 2025\n" +
				"GCC version:  gcc version 14.2.0 (Debian 14.2.0-19)\n",
		},
		"no driver, no version file": {
			node: "pve2", argv: []string{"cat", "/proc/driver/nvidia/version"},
			code: 1, stderr: "cat: /proc/driver/nvidia/version: No such file or directory\n",
		},
		// nvidia-uvm's major is dynamic: /proc/devices is where to read it.
		"/proc/devices holds the dynamic uvm and caps majors": {
			node: "pve1", argv: []string{"cat", "/proc/devices"},
			stdout: "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  5 /dev/tty\n 10 misc\n" +
				"195 nvidia-frontend\n511 nvidia-uvm\n510 nvidia-caps\n" +
				"\nBlock devices:\n  7 loop\n  8 sd\n253 device-mapper\n",
		},
		"/proc/devices without nvidia-uvm loaded": {
			node: "pve3", argv: []string{"cat", "/proc/devices"},
			stdout: "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  5 /dev/tty\n 10 misc\n" +
				"195 nvidia-frontend\n509 nvidia-caps\n" +
				"\nBlock devices:\n  7 loop\n  8 sd\n253 device-mapper\n",
		},
		"/proc/devices without a driver": {
			node: "pve2", argv: []string{"cat", "/proc/devices"},
			stdout: "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  5 /dev/tty\n 10 misc\n" +
				"\nBlock devices:\n  7 loop\n  8 sd\n253 device-mapper\n",
		},
		// stat prints majors and minors in hex: 195 is c3, 511 is 1ff.
		"stat gives hex majors": {
			node: "pve1", argv: []string{"stat", "-c", "%n %t %T", "/dev/nvidia0", "/dev/nvidia-uvm", "/dev/nvidiactl"},
			stdout: "/dev/nvidia0 c3 0\n/dev/nvidia-uvm 1ff 0\n/dev/nvidiactl c3 ff\n",
		},
		"stat of device nodes a driverless host lacks": {
			node: "pve2", argv: []string{"stat", "-c", "%n %t %T", "/dev/nvidia0"},
			code: 1, stderr: "stat: cannot statx '/dev/nvidia0': No such file or directory\n",
		},
		"stat of /dev/nvidia-uvm before it is loaded": {
			node: "pve3", argv: []string{"stat", "-c", "%n %t %T", "/dev/nvidia0", "/dev/nvidia-uvm"},
			code: 1, stdout: "/dev/nvidia0 c3 0\n", stderr: "stat: cannot statx '/dev/nvidia-uvm': No such file or directory\n",
		},
		"the module's version in sysfs": {
			node: "pve1", argv: []string{"cat", "/sys/module/nvidia/version"}, stdout: "580.76.05\n",
		},
		"nvidia-smi on the host, one line per GPU": {
			node: "pve1", argv: []string{"nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"},
			stdout: "580.76.05\n580.76.05\n",
		},
		"no driver, no nvidia-smi": {
			node: "pve2", argv: []string{"nvidia-smi"},
			code: 127, stderr: "bash: line 1: nvidia-smi: command not found\n",
		},
		"a command the simulated node does not have": {
			node: "pve1", argv: []string{"lspci", "-d", "10de:"},
			code: 127, stderr: "bash: line 1: lspci: command not found\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := l.on(t)
			r := l.run(tc.node, tc.argv...)
			if diff := cmp.Diff(sshResult{tc.code, tc.stdout, tc.stderr}, r, cmp.AllowUnexported(sshResult{})); diff != "" {
				t.Errorf("%s on %s (-want +got):\n%s", strings.Join(tc.argv, " "), tc.node, diff)
			}
		})
	}
}

func TestHostDownload(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	v := labDriver
	check := func() sshResult {
		return l.script("pve1", 0, "nvidia-driver/download", "check", "test -f \"$NVIDIA_RUNFILE\"", downloadEnv(v)...)
	}
	wantExit(t, "check before the download", check(), 1)

	cases := []struct {
		name   string
		env    []string
		code   int
		stderr string
	}{
		{
			name: "a URL for another version is not the runfile",
			env:  []string{"NVIDIA_VERSION=" + v, "NVIDIA_URL=" + nvidiaURL("570.172.08"), "NVIDIA_RUNFILE=" + nodeRunfile(v)},
			code: 1, stderr: "no source has the runfile of NVIDIA driver " + v + ": tried " + nvidiaURL("570.172.08") + " (curl: (22) The requested URL returned error: 404)\n",
		},
		{
			name: "the sources are tried in order: a datacenter path has no consumer driver",
			env: []string{"NVIDIA_VERSION=" + v, "NVIDIA_URLS=https://us.download.nvidia.com/tesla/" + v + "/NVIDIA-Linux-x86_64-" + v + ".run\n" + nvidiaURL(v),
				"NVIDIA_RUNFILE=" + nodeRunfile(v) + ".other"},
		},
		{
			name: "a wrong sha256 is refused",
			env:  []string{"NVIDIA_VERSION=" + v, "NVIDIA_URL=" + nvidiaURL(v), "NVIDIA_RUNFILE=" + nodeRunfile(v), "NVIDIA_SHA256=" + RunfileSHA256("570.172.08")},
			code: 1, stderr: "sha256 of " + nvidiaURL(v) + " does not match " + RunfileSHA256("570.172.08") + ": not installing it\n",
		},
		{name: "the right sha256", env: downloadEnv(v)},
		{
			name: "without a sha256 nothing is checked",
			env:  []string{"NVIDIA_VERSION=" + v, "NVIDIA_URL=" + nvidiaURL(v), "NVIDIA_RUNFILE=" + nodeRunfile(v)},
		},
	}
	for _, tc := range cases {
		r := l.script("pve1", 0, "nvidia-driver/download", "apply", downloadBody, tc.env...)
		if diff := cmp.Diff(sshResult{code: tc.code, stderr: tc.stderr}, r, cmp.AllowUnexported(sshResult{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	wantExit(t, "check after the download", check(), 0)
	// The runfile is on pve1, not on the other nodes.
	wantExit(t, "check on another node", l.script("pve3", 0, "nvidia-driver/download", "check", "", downloadEnv(v)...), 1)

	want := []string{
		"nvidia-driver/download check failed: ",
		"nvidia-driver/download apply failed: no source has the runfile of NVIDIA driver " + v + ": tried " + nvidiaURL("570.172.08") + " (curl: (22) The requested URL returned error: 404)",
		"nvidia-driver/download apply ok",
		"nvidia-driver/download apply failed: sha256 of " + nvidiaURL(v) + " does not match " + RunfileSHA256("570.172.08") + ": not installing it",
		"nvidia-driver/download apply ok",
		"nvidia-driver/download apply ok",
		"nvidia-driver/download check ok",
	}
	if diff := cmp.Diff(want, l.execs("pve1", 0)); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}
}

// TestHostRunfileSource: the node's answer to where a runfile comes from
// follows where NVIDIA publishes its driver: consumer drivers under
// XFree86/, datacenter ones under tesla/, apt-installed ones nowhere; a site
// mirror has every version; a runfile the node keeps wins.
func TestHostRunfileSource(t *testing.T) {
	t.Parallel()
	const v = labDriver
	tesla := "https://us.download.nvidia.com/tesla/" + v + "/NVIDIA-Linux-x86_64-" + v + ".run"
	mirror := "https://mirror.lab.example/NVIDIA-Linux-x86_64-" + v + ".run"
	env := func(urls ...string) []string {
		return []string{"NVIDIA_VERSION=" + v, "NVIDIA_RUNFILE=" + nodeRunfile(v), "NVIDIA_URLS=" + strings.Join(urls, "\n")}
	}
	cases := map[string]struct {
		source string
		urls   []string
		want   string
	}{
		"consumer": {"consumer", []string{nvidiaURL(v), tesla},
			"tried " + nvidiaURL(v) + " 200\nfound " + nvidiaURL(v) + "\n"},
		"datacenter": {"datacenter", []string{nvidiaURL(v), tesla},
			"tried " + nvidiaURL(v) + " 404\ntried " + tesla + " 200\nfound " + tesla + "\n"},
		"apt": {"apt", []string{nvidiaURL(v), tesla},
			"tried " + nvidiaURL(v) + " 404\ntried " + tesla + " 404\nnone\n"},
		"a site mirror":   {"apt", []string{mirror}, "tried " + mirror + " 200\nfound " + mirror + "\n"},
		"another version": {"consumer", []string{nvidiaURL("570.172.08")}, "tried " + nvidiaURL("570.172.08") + " 404\nnone\n"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := startLab(t, "ssh-cluster.yaml", func(w *World) { w.Spec.Nodes[0].DriverSource = tc.source })
			if r := l.script("pve1", 0, "phoenix/runfile-source", "", "true", env(tc.urls...)...); r.code != 0 || r.stdout != tc.want {
				t.Errorf("got %+v, want %q", r, tc.want)
			}
		})
	}

	// Once downloaded, the node's copy is the answer.
	l := startLab(t, "ssh-cluster.yaml", func(w *World) { w.Spec.Nodes[0].DriverSource = "datacenter" })
	wantExit(t, "download", l.script("pve1", 0, "nvidia-driver/download", "apply", downloadBody, env(nvidiaURL(v), tesla)...), 0)
	if r := l.script("pve1", 0, "phoenix/runfile-source", "", "true", env(nvidiaURL(v), tesla)...); r.stdout != "cached\n" {
		t.Errorf("after the download: %+v", r)
	}
}

func TestHostRefusesWhatIsNotAHostCommand(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	// A container step sent to the node instead of through pct exec is a
	// bug in the caller; the node has no container to change.
	wantExit(t, "container step on the node", l.script("pve1", 0, "base/packages", "apply", aptBody), 2,
		"base/packages runs inside a container (pct exec VMID -- ...), not on the node")
	wantExit(t, "initialized on the node", l.script("pve1", 0, "phoenix/initialized", "check", initializedBody), 2)
	// The simulator still answers afterwards.
	wantExit(t, "probe after the refusal", l.script("pve1", 0, "phoenix/host-probe", "", "true"), 0)
}

func TestLoadingUVM(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	// nvidia-uvm's nodes appear once something loads the module; its major
	// is the node's own (236 on pve3), read from /proc/devices, never assumed.
	wantExit(t, "stat before", l.run("pve3", "stat", "-c", "%n %t %T", "/dev/nvidia-uvm"), 1)
	wantExit(t, "nvidia-modprobe", l.run("pve3", "nvidia-modprobe", "-c0", "-u"), 0)
	if r := l.run("pve3", "stat", "-c", "%n %t %T", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"); r.code != 0 || r.stdout != "/dev/nvidia-uvm ec 0\n/dev/nvidia-uvm-tools ec 1\n" {
		t.Errorf("stat after: %v", r)
	}
	if r := l.run("pve3", "cat", "/proc/devices"); !strings.Contains(r.stdout, "\n236 nvidia-uvm\n") {
		t.Errorf("/proc/devices after: %v", r)
	}
	if r := l.script("pve3", 0, "phoenix/host-probe", "", "true"); !strings.Contains(r.stdout, "device /dev/nvidia-uvm 236 0 666\n") {
		t.Errorf("probe after: %v", r)
	}
	// Only with the driver: a node without it has no nvidia-modprobe.
	wantExit(t, "nvidia-modprobe without a driver", l.run("pve2", "nvidia-modprobe", "-c0", "-u"), 127, "bash: line 1: nvidia-modprobe: command not found\n")
	if diff := cmp.Diff([]string{
		"stat -c %n %t %T /dev/nvidia-uvm failed: stat: cannot statx '/dev/nvidia-uvm': No such file or directory",
		"nvidia-modprobe -c0 -u ok",
		"stat -c %n %t %T /dev/nvidia-uvm /dev/nvidia-uvm-tools ok",
		"cat /proc/devices ok",
		"phoenix/host-probe ok",
	}, l.execs("pve3", 0)); diff != "" {
		t.Errorf("journal of pve3 (-want +got):\n%s", diff)
	}
}
