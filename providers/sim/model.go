package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The guest model: what the named scripts phoenix runs do to a simulated
// container. A script is recognised by its name (sh -c BODY NAME PHASE), never
// by its body, so the model is a contract on names, phases and the parameters
// passed as environment variables:
//
//	phoenix/initialized            check: running, network up, $PHOENIX_DEVICES visible
//	base/packages                  needs network
//	nvidia-driver/download         $NVIDIA_VERSION $NVIDIA_URLS $NVIDIA_RUNFILE [$NVIDIA_SHA256]: on the
//	                               node (then pct push), or inside a CT with network
//	nvidia-driver/userspace        $NVIDIA_VERSION $NVIDIA_RUNFILE: needs the pushed runfile, network,
//	                               visible devices and --no-kernel-module, and installs the version the
//	                               runfile holds; verify = nvidia-smi
//	cuda-toolkit/repository        needs a verified driver, network and a distribution NVIDIA has a
//	                               repository for (from /etc/os-release)
//	cuda-toolkit/toolkit           $CUDA_VERSION $CUDA_PACKAGE: cuda-toolkit-X-Y only
//	docker/engine                  verify needs features nesting=1 at start
//	nvidia-container-toolkit/install, nvidia-container-toolkit/configure ($NCT_NO_CGROUPS)
//	ollama/install ($OLLAMA_VERSION), vllm/install ($VLLM_VERSION)
//
// Every step of a removable feature has an uninstall phase that undoes what
// its apply did on the disk; base/packages has none and refuses it, as its
// script does.
//
// Any other name succeeds and is recorded on the guest's disk, so its check
// passes once its apply has (and on clones made afterwards). On the node
// itself only nvidia-driver/download and phoenix/host-probe are known; a
// container step sent there is refused, as it is a bug in the caller.

// script is one run of a named script.
type script struct {
	c *cluster
	n *node
	g *guest // nil for host scripts
	// boot is the run of the CT the command started in: a restart while it
	// runs kills it, even though the CT is running again at the end.
	boot  *runState
	name  string
	phase string
	body  string
	env   map[string]string
	out   strings.Builder
	err   strings.Builder
	// wrap is the timeout(1) the script runs under, nil without one.
	wrap *timeoutCmd
	// stdin is the command's standard input, nil for none.
	stdin io.Reader
	// orphan: the script's session ended before it did, and it ran on
	// (orphans.go); the journal says so.
	orphan bool
}

func (x *script) fail(code int, format string, args ...any) int {
	fmt.Fprintf(&x.err, format+"\n", args...)
	return code
}

func (x *script) now() time.Time { return x.c.now() }

func (x *script) netUp() bool {
	return x.g.run != nil && !x.now().Before(x.g.run.netUp)
}

// visibleDevices are the device nodes a running container sees: those it
// was started with, once they have appeared, and those hot-plugged since,
// which appear at once.
func (x *script) visibleDevices() []string {
	if x.g.run == nil {
		return nil
	}
	if x.now().Before(x.g.run.devicesAt) {
		return x.g.run.hotplugged
	}
	return slices.Concat(x.g.run.devices, x.g.run.hotplugged)
}

func (x *script) visible(path string) bool { return slices.Contains(x.visibleDevices(), path) }

// nodeAccess is how a passed device node is made inside a container: Proxmox
// creates it mode 0660, owned by the container's root, unless the devN value
// says mode=, uid=, gid= (pve-container src/PVE/LXC.pm, the device hook's
// mknod and chown from the parsed devN).
type nodeAccess struct {
	mode     uint64
	uid, gid int
}

func accessOf(devValue string) nodeAccess {
	parts := propString(devValue, "path")
	a := nodeAccess{mode: 0o660}
	if m, err := strconv.ParseUint(parts["mode"], 8, 32); err == nil {
		a.mode = m
	}
	a.uid, _ = strconv.Atoi(parts["uid"])
	a.gid, _ = strconv.Atoi(parts["gid"])
	return a
}

// Groups of the users the model knows, inside an Ubuntu or Debian container:
// nobody is in none; ollama's install script adds its user to video and
// render when they exist.
var userGroups = map[string][]int{"nobody": {65534}, "ollama": {44, 993}}

// gpuUnusableBy is what nvidia-smi -L tells a user other than root who
// cannot reach a GPU, with the node in the way, or "" when the user is
// listed one. NVML opens nvidiactl first, then each GPU's node: a real H200
// (driver 580.159.04) answered a user who may not open nvidiactl "Failed to
// initialize NVML: Insufficient Permissions", and one who may open
// nvidiactl but no GPU's node "No devices found." with exit status 0
// (hack/gpuprobe/testdata/h200). The other nodes (nvidia-uvm, the caps)
// play no part in nvidia-smi -L.
func (x *script) gpuUnusableBy(user string) string {
	usable := func(d string) bool {
		a, ok := x.g.run.access[d]
		if !ok {
			a = nodeAccess{mode: 0o660}
		}
		return a.mode&0o006 == 0o006 || a.mode&0o060 == 0o060 && slices.Contains(userGroups[user], a.gid)
	}
	describe := func(d string) string {
		a, ok := x.g.run.access[d]
		if !ok {
			a = nodeAccess{mode: 0o660}
		}
		return fmt.Sprintf("%s mode %04o, owner %d:%d", d, a.mode, a.uid, a.gid)
	}
	if !usable("/dev/nvidiactl") {
		return "Failed to initialize NVML: Insufficient Permissions; " + describe("/dev/nvidiactl")
	}
	first := ""
	for _, d := range x.visibleDevices() {
		if !gpuNode.MatchString(d) {
			continue
		}
		if usable(d) {
			return ""
		}
		if first == "" {
			first = d
		}
	}
	if first == "" {
		return ""
	}
	return "No devices found.; " + describe(first)
}

// gpusVisible counts /dev/nvidiaN nodes inside the container.
func (x *script) gpusVisible() int {
	n := 0
	for _, d := range x.visibleDevices() {
		if gpuNode.MatchString(d) {
			n++
		}
	}
	return n
}

var gpuNode = regexp.MustCompile(`^/dev/nvidia[0-9]+$`)

// nvidiaSMI is what nvidia-smi answers inside the container.
func (x *script) nvidiaSMI() (string, int) {
	switch {
	case x.g.disk.nvidia == "":
		return "sh: 1: nvidia-smi: not found", 127
	case x.n.DriverVersion == "" || !x.visible("/dev/nvidiactl") || x.gpusVisible() == 0:
		return "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. " +
			"Make sure that the latest NVIDIA driver is installed and running.", 9
	case x.g.disk.nvidia != x.n.DriverVersion:
		return "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: " + x.g.disk.nvidia, 18
	}
	return "", 0
}

// driverVerified is what later steps need: nvidia-smi works at the host's version.
func (x *script) driverVerified() bool {
	_, code := x.nvidiaSMI()
	return code == 0
}

func (x *script) needNetwork() int {
	if !x.netUp() {
		return x.fail(100, "E: Failed to fetch http://archive.ubuntu.com/ubuntu/dists/noble/InRelease  Temporary failure resolving 'archive.ubuntu.com'")
	}
	return 0
}

// stepModel is what one built-in step does in each phase: check (exit 0 means
// done), apply, verify.
type stepModel struct {
	check  func(x *script) bool
	apply  func(x *script) int
	verify func(x *script) int
	// uninstall undoes the step; a step without one refuses the phase as
	// its script does.
	uninstall func(x *script) int
	// onNode: the step may run on the node itself, not only in a container.
	onNode bool
}

// files is where a script's downloads land: the container's root
// filesystem, or the node's for a host script.
func (x *script) files() map[string]string {
	if x.g != nil {
		return x.g.disk.files
	}
	return x.n.files
}

var builtinSteps = map[string]stepModel{
	"phoenix/identity": {
		apply: func(x *script) int {
			x.g.disk.hostKeys = x.c.randomID()
			if x.g.disk.machineID == "" {
				x.g.disk.machineID = x.c.randomID()
			}
			return 0
		},
	},
	"phoenix/initialized": {
		check: func(x *script) bool { return initialized(x) == 0 },
		apply: initialized, verify: initialized,
	},
	"base/packages": {
		check: func(x *script) bool { return x.g.disk.base },
		apply: func(x *script) int {
			if code := x.needNetwork(); code != 0 {
				return code
			}
			x.g.disk.base = true
			return 0
		},
		verify: func(x *script) int {
			if !x.g.disk.base {
				return x.fail(1, "dpkg-query: no packages found matching curl")
			}
			return 0
		},
	},
	"nvidia-driver/download": {
		onNode: true,
		check: func(x *script) bool {
			if x.c.real != nil {
				return x.realRunfileOK()
			}
			return x.files()[x.env["NVIDIA_RUNFILE"]] == runfileID(x.env["NVIDIA_VERSION"])
		},
		apply: func(x *script) int {
			if x.g != nil && !x.netUp() {
				return x.fail(6, "curl: (6) Could not resolve host: download.nvidia.com")
			}
			v := x.env["NVIDIA_VERSION"]
			if v == "" || x.env["NVIDIA_RUNFILE"] == "" {
				return x.fail(2, "NVIDIA_VERSION and NVIDIA_RUNFILE must be set")
			}
			var tried []string
			for _, u := range runfileURLs(x.env) {
				if !x.n.publishes(u, v) {
					tried = append(tried, u+" (curl: (22) The requested URL returned error: 404)")
					continue
				}
				if x.c.real != nil {
					// A real guest runs the node's copy: it is downloaded.
					content, err := x.c.realRunfile(u, x.env["NVIDIA_SHA256"])
					if err != nil {
						tried = append(tried, u+" ("+err.Error()+")")
						continue
					}
					x.files()[x.env["NVIDIA_RUNFILE"]] = content
					return 0
				}
				if want := x.env["NVIDIA_SHA256"]; want != "" && want != RunfileSHA256(v) {
					return x.fail(1, "sha256 of %s does not match %s: not installing it", u, want)
				}
				x.files()[x.env["NVIDIA_RUNFILE"]] = runfileID(v)
				return 0
			}
			return x.fail(1, "no source has the runfile of NVIDIA driver %s: tried %s", v, strings.Join(tried, ", "))
		},
	},
	"nvidia-driver/userspace": {
		uninstall: func(x *script) int { x.g.disk.nvidia = ""; return 0 },
		check: func(x *script) bool {
			return x.g.disk.nvidia != "" && x.g.disk.nvidia == x.env["NVIDIA_VERSION"]
		},
		apply: func(x *script) int {
			// The installer installs what the runfile holds, whatever
			// NVIDIA_VERSION says: a stale runfile left at the same path
			// installs the old version, and only verify tells.
			content, pushed := x.g.disk.files[x.env["NVIDIA_RUNFILE"]]
			v, isRunfile := strings.CutPrefix(content, runfileID(""))
			switch {
			case !pushed || !isRunfile:
				return x.fail(127, "sh: 1: %s: not found", x.env["NVIDIA_RUNFILE"])
			case !strings.Contains(x.body, "--no-kernel-module"):
				return x.fail(1, "ERROR: Unable to load the kernel module 'nvidia.ko'. This happens most frequently when this kernel "+
					"module was built against the wrong or improperly configured kernel sources")
			case !x.visible("/dev/nvidiactl") || x.gpusVisible() == 0:
				return x.fail(1, "ERROR: Unable to find the NVIDIA device nodes (/dev/nvidiactl, /dev/nvidia0): the container does not see the GPU")
			}
			if code := x.needNetwork(); code != 0 {
				return code
			}
			x.g.disk.nvidia = v
			return 0
		},
		verify: func(x *script) int {
			msg, code := x.nvidiaSMI()
			if code != 0 {
				return x.fail(code, "%s", msg)
			}
			if want := x.env["NVIDIA_VERSION"]; want != "" && want != x.n.DriverVersion {
				return x.fail(1, "nvidia-smi reports driver %s, want %s", x.n.DriverVersion, want)
			}
			if user := x.env["NVIDIA_CHECK_USER"]; user != "" {
				if why := x.gpuUnusableBy(user); why != "" {
					return x.fail(1, "as %s, nvidia-smi lists no GPU (%s): the GPU's device nodes are usable by root only; pass them with a mode or gpuGroup", user, why)
				}
			}
			return 0
		},
	},
	"cuda-toolkit/repository": {
		uninstall: func(x *script) int { x.g.disk.cudaRepo = ""; return 0 },
		check:     func(x *script) bool { return x.g.disk.cudaRepo != "" && x.g.disk.cudaRepo == x.g.disk.cudaDistro() },
		apply: func(x *script) int {
			if msg, code := x.nvidiaSMI(); code != 0 {
				return x.fail(1, "the NVIDIA driver is not working in this container (%s): install and verify it before CUDA", firstLine(msg))
			}
			if code := x.needNetwork(); code != 0 {
				return code
			}
			// The keyring's URL is built from /etc/os-release; NVIDIA has
			// no repository for some distributions.
			if x.g.disk.cudaDistro() == "" {
				return x.fail(22, "curl: (22) The requested URL returned error: 404")
			}
			x.g.disk.cudaRepo = x.g.disk.cudaDistro()
			return 0
		},
	},
	"cuda-toolkit/toolkit": {
		uninstall: func(x *script) int { x.g.disk.cuda = ""; return 0 },
		check:     func(x *script) bool { return x.g.disk.cuda != "" && x.g.disk.cuda == x.env["CUDA_VERSION"] },
		apply: func(x *script) int {
			v, pkg := x.env["CUDA_VERSION"], x.env["CUDA_PACKAGE"]
			switch {
			case forbiddenCUDAPackage.MatchString(pkg):
				return x.fail(100, "Building module(s)....(bad exit status: 2)\n"+
					"Error! Bad return status for module build on kernel: 6.14.8-2-pve (x86_64)\n"+
					"dpkg: error processing package nvidia-dkms (--configure):\n installed nvidia-dkms package post-installation script subprocess returned error exit status 10")
			case pkg != "cuda-toolkit-"+strings.ReplaceAll(v, ".", "-"):
				return x.fail(100, "E: Unable to locate package %s", pkg)
			case x.g.disk.cudaRepo == "":
				return x.fail(100, "E: Unable to locate package %s", pkg)
			}
			if msg, code := x.nvidiaSMI(); code != 0 {
				return x.fail(1, "the NVIDIA driver is not working in this container (%s): install and verify it before CUDA", firstLine(msg))
			}
			if code := x.needNetwork(); code != 0 {
				return code
			}
			x.g.disk.cuda = v
			return 0
		},
		verify: func(x *script) int {
			if x.g.disk.cuda == "" {
				return x.fail(127, "sh: 1: /usr/local/cuda/bin/nvcc: not found")
			}
			if want := x.env["CUDA_VERSION"]; want != "" && want != x.g.disk.cuda {
				return x.fail(1, "nvcc reports release %s, want %s", x.g.disk.cuda, want)
			}
			fmt.Fprintf(&x.out, "Cuda compilation tools, release %s, V%s.61\n", x.g.disk.cuda, x.g.disk.cuda)
			return 0
		},
	},
	"docker/engine": {
		uninstall: func(x *script) int { x.g.disk.docker = false; return 0 },
		check:     func(x *script) bool { return x.g.disk.docker },
		apply: func(x *script) int {
			if code := x.needNetwork(); code != 0 {
				return code
			}
			x.g.disk.docker = true
			x.installService("docker")
			return 0
		},
		verify: func(x *script) int {
			if !x.g.disk.docker {
				return x.fail(127, "sh: 1: docker: not found")
			}
			if propString(x.g.run.features, "")["nesting"] != "1" {
				return x.fail(1, "failed to start daemon: Devices cgroup isn't mounted (the container needs features: nesting=1, and a restart)")
			}
			return 0
		},
	},
	"nvidia-container-toolkit/install": {
		uninstall: func(x *script) int { x.g.disk.nct = false; return 0 },
		check:     func(x *script) bool { return x.g.disk.nct },
		apply: func(x *script) int {
			if !x.g.disk.docker {
				return x.fail(1, "docker is not installed")
			}
			if code := x.needNetwork(); code != 0 {
				return code
			}
			x.g.disk.nct = true
			return 0
		},
	},
	"nvidia-container-toolkit/configure": {
		uninstall: func(x *script) int { x.g.disk.nctDock, x.g.disk.noCgroup = false, false; return 0 },
		check: func(x *script) bool {
			return x.g.disk.nctDock && x.g.disk.noCgroup == (x.env["NCT_NO_CGROUPS"] == "true") &&
				x.g.disk.nctDefault == (x.env["NCT_DEFAULT_RUNTIME"] == "true")
		},
		apply: func(x *script) int {
			if !x.g.disk.nct {
				return x.fail(127, "sh: 1: nvidia-ctk: not found")
			}
			x.g.disk.nctDock = true
			x.g.disk.noCgroup = x.env["NCT_NO_CGROUPS"] == "true"
			// nvidia-ctk runtime configure --set-as-default adds the
			// default; without it, one made before stays, which the
			// script reports.
			if x.env["NCT_DEFAULT_RUNTIME"] == "true" {
				x.g.disk.nctDefault = true
			} else if x.g.disk.nctDefault {
				return x.fail(1, "phoenix: /etc/docker/daemon.json makes nvidia docker's default runtime and default-runtime is false: remove \"default-runtime\" from it, or set default-runtime: true")
			}
			return 0
		},
		verify: func(x *script) int {
			if msg, code := x.nvidiaSMI(); code != 0 {
				return x.fail(1, "nvidia-container-cli: initialization error: %s", firstLine(msg))
			}
			if x.g.run.unpriv && !x.g.disk.noCgroup {
				return x.fail(1, "nvidia-container-cli: mount error: failed to add device rules: "+
					"unable to find any existing device filters attached to the cgroup: bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted")
			}
			return 0
		},
	},
	"ollama/install": {
		uninstall: func(x *script) int { x.g.disk.ollama = ""; return 0 },
		check: func(x *script) bool {
			return x.g.disk.ollama != "" && (x.env["OLLAMA_VERSION"] == "" || x.env["OLLAMA_VERSION"] == x.g.disk.ollama)
		},
		apply: func(x *script) int {
			if code := x.needNetwork(); code != 0 {
				return code
			}
			x.g.disk.ollama = cmpOr(x.env["OLLAMA_VERSION"], "0.12.6")
			x.installService("ollama")
			return 0
		},
		verify: func(x *script) int {
			if x.g.disk.ollama == "" {
				return x.fail(127, "sh: 1: ollama: not found")
			}
			// ollama's service user must reach a passed GPU, or ollama runs
			// on the CPU without a word.
			if x.visible("/dev/nvidiactl") && x.g.disk.nvidia != "" {
				if why := x.gpuUnusableBy("ollama"); why != "" {
					return x.fail(1, "ollama's service user cannot use the GPU (%s): pass the device nodes with a mode or a group ollama is in", why)
				}
			}
			return 0
		},
	},
	"vllm/install": {
		uninstall: func(x *script) int { x.g.disk.vllm = ""; return 0 },
		check:     func(x *script) bool { return x.g.disk.vllm != "" && x.g.disk.vllm == x.env["VLLM_VERSION"] },
		apply: func(x *script) int {
			if x.g.disk.cuda == "" {
				return x.fail(1, "RuntimeError: vllm needs the CUDA toolkit (nvcc not found)")
			}
			if code := x.needNetwork(); code != 0 {
				return code
			}
			x.g.disk.vllm = x.env["VLLM_VERSION"]
			return 0
		},
		verify: func(x *script) int {
			if x.g.disk.vllm == "" {
				return x.fail(1, "ModuleNotFoundError: No module named 'vllm'")
			}
			if !x.driverVerified() {
				return x.fail(1, "RuntimeError: No CUDA GPUs are available")
			}
			return 0
		},
	},
}

func initialized(x *script) int {
	switch {
	case x.g.run == nil:
		return x.fail(1, "container is not running")
	case !x.netUp():
		return x.fail(1, "network is not up yet (no default route)")
	}
	for _, d := range strings.Fields(x.env["PHOENIX_DEVICES"]) {
		if !x.visible(d) {
			return x.fail(1, "%s is not visible in the container yet", d)
		}
	}
	return 0
}

// forbiddenCUDAPackage matches the CUDA packages that pull the driver and a
// kernel module build: never right inside a container.
var forbiddenCUDAPackage = regexp.MustCompile(`^(cuda|cuda-[0-9]+-[0-9]+|cuda-drivers.*|cuda-runtime-.*|nvidia-driver-.*)$`)

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// runfileURLs are the sources a download or a source check tries, in order.
func runfileURLs(env map[string]string) []string {
	if urls := strings.Fields(env["NVIDIA_URLS"]); len(urls) > 0 {
		return urls
	}
	return strings.Fields(env["NVIDIA_URL"])
}

// publishes reports whether url serves the runfile of driver version v, as
// NVIDIA publishes them: consumer drivers under XFree86/Linux-x86_64/<v>/,
// datacenter drivers under tesla/<v>/, and none for drivers from NVIDIA's
// apt repository. Another host is a site mirror, which has what it has: every
// version in this world.
func (n *node) publishes(url, v string) bool {
	nvidia := strings.HasPrefix(url, "https://download.nvidia.com/") || strings.HasPrefix(url, "https://us.download.nvidia.com/") ||
		strings.HasPrefix(url, "http://download.nvidia.com/") || strings.HasPrefix(url, "http://us.download.nvidia.com/")
	file := "/NVIDIA-Linux-x86_64-" + v + ".run"
	switch {
	case !strings.HasSuffix(url, file):
		return false
	case !nvidia:
		return true
	case n.DriverSource == "datacenter":
		return strings.Contains(url, "/tesla/"+v+"/")
	case n.DriverSource == "apt":
		return false
	}
	return strings.Contains(url, "/XFree86/Linux-x86_64/"+v+"/")
}

// runfileID names the content of a downloaded runfile.
func runfileID(version string) string { return "nvidia-runfile:" + version }

// RunfileSHA256 is the digest of the simulated runfile for a driver version,
// for tests that configure one.
func RunfileSHA256(version string) string {
	sum := sha256.Sum256([]byte("NVIDIA-Linux-x86_64-" + version + ".run"))
	return hex.EncodeToString(sum[:])
}

// run executes a named script in its phase and returns the exit status.
func (x *script) run() int {
	if strings.HasPrefix(x.name, healthScriptPrefix) && x.g != nil {
		return x.health()
	}
	if f := insideScripts[x.name]; f != nil && x.g != nil {
		return f(x)
	}
	m, known := builtinSteps[x.name]
	if !known {
		return x.runRecorded()
	}
	switch x.phase {
	case "check":
		if m.check != nil && m.check(x) {
			return 0
		}
		return 1
	case "verify":
		if m.verify == nil {
			if m.check == nil || m.check(x) {
				return 0
			}
			return x.fail(1, "%s is not in place", x.name)
		}
		return m.verify(x)
	case "uninstall":
		if m.uninstall == nil {
			return x.fail(2, "unknown phase uninstall")
		}
		return m.uninstall(x)
	default:
		if m.apply == nil {
			return 0
		}
		return m.apply(x)
	}
}

// runRecorded models a script the simulator does not know: its apply
// succeeds and is remembered on the disk, so its check passes afterwards.
func (x *script) runRecorded() int {
	if x.g == nil {
		return 0
	}
	switch x.phase {
	case "check", "verify":
		if x.g.disk.records[x.name] {
			return 0
		}
		return 1
	case "uninstall":
		delete(x.g.disk.records, x.name)
		return 0
	}
	x.g.disk.records[x.name] = true
	return 0
}
