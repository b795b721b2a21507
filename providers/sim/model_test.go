package sim

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	proxmox "github.com/luthermonson/go-proxmox"
	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
)

// The guest model: what phoenix's named scripts do to a simulated CT, and the
// ways hand-written NVIDIA install scripts failed on real clusters, each
// reproduced over SSH.

const dkmsFailure = "Building module(s)....(bad exit status: 2)\n" +
	"Error! Bad return status for module build on kernel: 6.14.8-2-pve (x86_64)\n" +
	"dpkg: error processing package nvidia-dkms (--configure):\n" +
	" installed nvidia-dkms package post-installation script subprocess returned error exit status 10\n"

func TestStartRace(t *testing.T) {
	t.Parallel()
	// The network comes up 100 s after start and the devices 250 s after:
	// one and two and a half seconds at the lab's scale, far longer than a
	// command's round trip even under -race on a busy machine, so every
	// state is seen.
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.NetworkUp = [2]Duration{worldTime(100 * time.Second), worldTime(100 * time.Second)}
		w.Spec.Durations.DevicesVisible = [2]Duration{worldTime(250 * time.Second), worldTime(250 * time.Second)}
	})
	l.create("pve1", 300, map[string]any{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl"})
	initialized := func(devices ...string) sshResult {
		return l.script("pve1", 300, "phoenix/initialized", "check", initializedBody, "PHOENIX_DEVICES="+strings.Join(devices, " "))
	}
	wantExit(t, "initialized before start", initialized("/dev/nvidia0"), 255, "container '300' not running!\n")

	// Checking right after the start task is the race the original scripts
	// lost: running is not initialised.
	l.start("pve1", 300)
	var seen []string
	l.poll("CT 300 initialized", func() bool {
		r := initialized("/dev/nvidia0", "/dev/nvidiactl")
		state := fmt.Sprintf("%d %s", r.code, strings.TrimSpace(r.stderr))
		if len(seen) == 0 || seen[len(seen)-1] != state {
			seen = append(seen, state)
		}
		return r.code == 0
	})
	if diff := cmp.Diff([]string{
		"1 network is not up yet (no default route)",
		"1 /dev/nvidia0 is not visible in the container yet",
		"0 ",
	}, seen); diff != "" {
		t.Errorf("initialized after start, states in order (-want +got):\n%s", diff)
	}

	// Devices are bound at start: one not configured then never appears.
	wantExit(t, "a GPU not passed through", initialized("/dev/nvidia0", "/dev/nvidia1"), 1, "/dev/nvidia1 is not visible in the container yet\n")
	wantExit(t, "test -c of it", l.exec("pve1", 300, "test", "-c", "/dev/nvidia1"), 1)

	// Added to the running CT, a new device is hot-plugged: in the config
	// and visible inside at once (pve-container's
	// device_passthrough_hotplug). After a restart it is one of the devices
	// the CT starts with, visible only after the delay.
	wantExit(t, "pct set dev2", l.run("pve1", "pct", "set", "300", "--dev2", "/dev/nvidia1"), 0)
	if got := l.config("pve1", 300)["dev2"]; got != "/dev/nvidia1" {
		t.Errorf("dev2 in the config: %v", got)
	}
	wantExit(t, "the new GPU before the reboot", initialized("/dev/nvidia1"), 0)
	l.reboot("pve1", 300)
	wantExit(t, "the new GPU right after the reboot", initialized("/dev/nvidia1"), 1, "network is not up yet (no default route)\n")
	wantExit(t, "test -c right after the reboot", l.exec("pve1", 300, "test", "-c", "/dev/nvidia1"), 1)
	l.waitInitialized("pve1", 300, "/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia1")

	// A check's failure is a failed exec in the journal, with the reason.
	log := l.execs("pve1", 300)
	for _, line := range []string{
		"pct exec failed: container '300' not running!",
		"phoenix/initialized check failed: network is not up yet (no default route)",
		"phoenix/initialized check failed: /dev/nvidia0 is not visible in the container yet",
		"phoenix/initialized check failed: /dev/nvidia1 is not visible in the container yet",
		"phoenix/initialized check ok",
		"pct set ok",
	} {
		if !slices.Contains(log, line) {
			t.Errorf("journal of CT 300 lacks %q", line)
		}
	}
}

func TestNvidiaChain(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	v := labDriver
	step := func(name, phase, body string, env ...string) sshResult {
		return l.script("pve1", 100, name, phase, body, env...)
	}
	cudaEnv := []string{"CUDA_VERSION=12.8", "CUDA_PACKAGE=cuda-toolkit-12-8"}

	wantExit(t, "download check", l.script("pve1", 0, "nvidia-driver/download", "check", "test -f \"$NVIDIA_RUNFILE\"", downloadEnv(v)...), 1)
	wantExit(t, "download", l.script("pve1", 0, "nvidia-driver/download", "apply", downloadBody, downloadEnv(v)...), 0)
	wantExit(t, "push", l.run("pve1", "pct", "push", "100", nodeRunfile(v), guestRunfile(v), "--perms", "0755"), 0)
	wantExit(t, "userspace check", step("nvidia-driver/userspace", "check", verifyBody, userspaceEnv(v)...), 1)
	wantExit(t, "userspace apply", step("nvidia-driver/userspace", "apply", userspaceBody, userspaceEnv(v)...), 0)
	wantExit(t, "userspace check after", step("nvidia-driver/userspace", "check", verifyBody, userspaceEnv(v)...), 0)
	wantExit(t, "userspace verify", step("nvidia-driver/userspace", "verify", verifyBody, userspaceEnv(v)...), 0)
	// Inside the CT, the version file is the host module's.
	if r := l.exec("pve1", 100, "cat", "/proc/driver/nvidia/version"); r.code != 0 || !strings.Contains(r.stdout, "Kernel Module  "+v+"  ") {
		t.Errorf("version file in the CT: %v", r)
	}
	// One line per GPU the CT sees: 100 has nvidia0 only.
	if r := l.exec("pve1", 100, "nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"); r.code != 0 || r.stdout != v+"\n" {
		t.Errorf("nvidia-smi in the CT: %v", r)
	}

	wantExit(t, "repository check", step("cuda-toolkit/repository", "check", "test -f /usr/share/keyrings/cuda-archive-keyring.gpg"), 1)
	wantExit(t, "repository", step("cuda-toolkit/repository", "apply", repoBody), 0)
	wantExit(t, "repository check after", step("cuda-toolkit/repository", "check", "test -f /usr/share/keyrings/cuda-archive-keyring.gpg"), 0)
	wantExit(t, "toolkit", step("cuda-toolkit/toolkit", "apply", toolkitBody, cudaEnv...), 0)
	r := step("cuda-toolkit/toolkit", "verify", nvccBody, cudaEnv...)
	wantExit(t, "toolkit verify", r, 0)
	if r.stdout != "Cuda compilation tools, release 12.8, V12.8.61\n" {
		t.Errorf("nvcc through verify: %q", r.stdout)
	}
	if r := l.exec("pve1", 100, "/usr/local/cuda/bin/nvcc", "--version"); r.code != 0 || !strings.Contains(r.stdout, "release 12.8") {
		t.Errorf("nvcc in the CT: %v", r)
	}

	if diff := cmp.Diff([]string{
		"nvidia-driver/download check failed: ",
		"nvidia-driver/download apply ok",
	}, l.execs("pve1", 0)); diff != "" {
		t.Errorf("journal of the node (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{
		"pct push ok",
		"nvidia-driver/userspace check failed: ",
		"nvidia-driver/userspace apply ok",
		"nvidia-driver/userspace check ok",
		"nvidia-driver/userspace verify ok",
		"cat /proc/driver/nvidia/version ok",
		"nvidia-smi --query-gpu=driver_version --format=csv,noheader ok",
		"cuda-toolkit/repository check failed: ",
		"cuda-toolkit/repository apply ok",
		"cuda-toolkit/repository check ok",
		"cuda-toolkit/toolkit apply ok",
		"cuda-toolkit/toolkit verify ok",
		"/usr/local/cuda/bin/nvcc --version ok",
	}, l.execs("pve1", 100)); diff != "" {
		t.Errorf("journal of CT 100 (-want +got):\n%s", diff)
	}
}

// stepCall is one named script run.
type stepCall struct {
	name, phase, body string
	env               []string
}

func TestNvidiaFailureModes(t *testing.T) {
	t.Parallel()
	v := labDriver
	userspace := stepCall{"nvidia-driver/userspace", "apply", userspaceBody, userspaceEnv(v)}
	toolkit := func(pkg string) stepCall {
		return stepCall{"cuda-toolkit/toolkit", "apply", toolkitBody, []string{"CUDA_VERSION=12.8", "CUDA_PACKAGE=" + pkg}}
	}
	driverAndRepo := func(l *lab) int {
		l.installDriver("pve1", 100, v)
		wantExit(l.t, "repository", l.script("pve1", 100, "cuda-toolkit/repository", "apply", repoBody), 0)
		return 100
	}
	cases := map[string]struct {
		change func(w *World)
		setup  func(l *lab) int // brings a CT to the state; returns its vmid
		call   stepCall
		code   int
		stderr string
	}{
		"userspace in a CT that sees no GPU": {
			setup: func(l *lab) int { l.fetchRunfile("pve1", 102, v); return 102 },
			call:  userspace,
			code:  1, stderr: "ERROR: Unable to find the NVIDIA device nodes (/dev/nvidiactl, /dev/nvidia0): the container does not see the GPU\n",
		},
		"userspace before the network is up": {
			// Devices at once, the network after 1000 s (10 s here).
			change: func(w *World) {
				w.Spec.Durations.NetworkUp = [2]Duration{worldTime(1000 * time.Second), worldTime(1000 * time.Second)}
				w.Spec.Durations.DevicesVisible = [2]Duration{worldTime(time.Millisecond), worldTime(time.Millisecond)}
			},
			setup: func(l *lab) int {
				l.create("pve1", 300, map[string]any{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl"})
				l.start("pve1", 300)
				l.poll("the GPU visible in CT 300", func() bool { return l.exec("pve1", 300, "test", "-c", "/dev/nvidia0").code == 0 })
				l.fetchRunfile("pve1", 300, v)
				return 300
			},
			call: userspace,
			code: 100, stderr: "E: Failed to fetch http://archive.ubuntu.com/ubuntu/dists/noble/InRelease  Temporary failure resolving 'archive.ubuntu.com'\n",
		},
		"userspace without the pushed runfile": {
			setup: func(l *lab) int {
				wantExit(l.t, "download", l.script("pve1", 0, "nvidia-driver/download", "apply", downloadBody, downloadEnv(v)...), 0)
				return 100
			},
			call: userspace,
			code: 127, stderr: "sh: 1: " + guestRunfile(v) + ": not found\n",
		},
		// pct push exits 0 when it cannot read its source: the install is
		// where that surfaces.
		"userspace after a push of a runfile never downloaded": {
			setup: func(l *lab) int {
				wantExit(l.t, "push", l.run("pve1", "pct", "push", "100", nodeRunfile(v), guestRunfile(v)), 0,
					"failed to open "+nodeRunfile(v)+" for reading")
				return 100
			},
			call: userspace,
			code: 127, stderr: "sh: 1: " + guestRunfile(v) + ": not found\n",
		},
		// The kernel module belongs to the host: an installer that builds
		// one inside a CT fails.
		"userspace without --no-kernel-module": {
			setup: func(l *lab) int { l.fetchRunfile("pve1", 100, v); return 100 },
			call:  stepCall{"nvidia-driver/userspace", "apply", `sh "$NVIDIA_RUNFILE" --silent --no-questions --ui=none`, userspaceEnv(v)},
			code:  1, stderr: "ERROR: Unable to load the kernel module 'nvidia.ko'. This happens most frequently when this kernel module was built against the wrong or improperly configured kernel sources\n",
		},
		"userspace verify before the install": {
			setup: func(l *lab) int { return 100 },
			call:  stepCall{"nvidia-driver/userspace", "verify", verifyBody, userspaceEnv(v)},
			code:  127, stderr: "sh: 1: nvidia-smi: not found\n",
		},
		"the CUDA repository before the driver is verified": {
			setup: func(l *lab) int { return 100 },
			call:  stepCall{"cuda-toolkit/repository", "apply", repoBody, nil},
			code:  1, stderr: "the NVIDIA driver is not working in this container (sh: 1: nvidia-smi: not found): install and verify it before CUDA\n",
		},
		"the toolkit before the repository": {
			setup: func(l *lab) int { l.installDriver("pve1", 100, v); return 100 },
			call:  toolkit("cuda-toolkit-12-8"),
			code:  100, stderr: "E: Unable to locate package cuda-toolkit-12-8\n",
		},
		// These packages pull the driver and build its kernel module with
		// DKMS: never right inside a container.
		"CUDA_PACKAGE=cuda": {
			setup: driverAndRepo, call: toolkit("cuda"), code: 100, stderr: dkmsFailure,
		},
		"CUDA_PACKAGE=cuda-drivers": {
			setup: driverAndRepo, call: toolkit("cuda-drivers"), code: 100, stderr: dkmsFailure,
		},
		"CUDA_PACKAGE=cuda-12-8": {
			setup: driverAndRepo, call: toolkit("cuda-12-8"), code: 100, stderr: dkmsFailure,
		},
		"CUDA_PACKAGE=cuda-runtime-12-8": {
			setup: driverAndRepo, call: toolkit("cuda-runtime-12-8"), code: 100, stderr: dkmsFailure,
		},
		"toolkit verify before the install": {
			setup: driverAndRepo,
			call:  stepCall{"cuda-toolkit/toolkit", "verify", nvccBody, []string{"CUDA_VERSION=12.8"}},
			code:  127, stderr: "sh: 1: /usr/local/cuda/bin/nvcc: not found\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := startLab(t, "ssh-cluster.yaml", tc.change)
			vmid := tc.setup(l)
			r := l.script("pve1", vmid, tc.call.name, tc.call.phase, tc.call.body, tc.call.env...)
			if diff := cmp.Diff(sshResult{code: tc.code, stderr: tc.stderr}, r, cmp.AllowUnexported(sshResult{})); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tc.call.name, tc.call.phase, diff)
			}
			log := l.execs("pve1", vmid)
			want := fmt.Sprintf("%s %s failed: %s", tc.call.name, tc.call.phase, firstLine(tc.stderr))
			if len(log) == 0 || log[len(log)-1] != want {
				t.Errorf("last journal entry of CT %d: %q, want %q", vmid, log, want)
			}
			// A failed step changes nothing: its check still fails.
			if tc.call.phase == "apply" {
				wantExit(t, "check after the failure", l.script("pve1", vmid, tc.call.name, "check", tc.call.body, tc.call.env...), 1)
			}
		})
	}
}

func TestDriverUpgradeBreaksNvidiaSMI(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	l.installDriver("pve1", 100, labDriver)

	// The host's kernel module is upgraded (and the node rebooted); the
	// CT's userspace library is still the old version.
	l.changeWorld(`{"nodes":{"pve1":{"driverVersion":"` + labNewDriver + `"}}}`)
	mismatch := "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: " + labDriver + "\n"
	if diff := cmp.Diff(sshResult{code: 18, stderr: mismatch}, l.exec("pve1", 100, "nvidia-smi"), cmp.AllowUnexported(sshResult{})); diff != "" {
		t.Errorf("nvidia-smi after the host upgrade (-want +got):\n%s", diff)
	}
	wantExit(t, "the old verify", l.script("pve1", 100, "nvidia-driver/userspace", "verify", verifyBody, userspaceEnv(labDriver)...), 18, mismatch)
	wantExit(t, "the check at the new version", l.script("pve1", 100, "nvidia-driver/userspace", "check", verifyBody, userspaceEnv(labNewDriver)...), 1)
	if r := l.run("pve1", "cat", "/proc/driver/nvidia/version"); !strings.Contains(r.stdout, "Kernel Module  "+labNewDriver+"  ") {
		t.Errorf("host version file: %v", r)
	}
	// CUDA steps gate on a working driver.
	wantExit(t, "CUDA repository while broken", l.script("pve1", 100, "cuda-toolkit/repository", "apply", repoBody), 1,
		"the NVIDIA driver is not working in this container (Failed to initialize NVML: Driver/library version mismatch): install and verify it before CUDA\n")

	// A runfile left at a fixed path from the last install is the old
	// version: the installer succeeds, installs what it holds, and only the
	// check and verify show the CT is still behind.
	stale := "/root/NVIDIA-Linux-x86_64.run"
	wantExit(t, "push to a fixed path", l.run("pve1", "pct", "push", "100", nodeRunfile(labDriver), stale), 0)
	staleEnv := []string{"NVIDIA_VERSION=" + labNewDriver, "NVIDIA_RUNFILE=" + stale}
	wantExit(t, "install from the stale runfile", l.script("pve1", 100, "nvidia-driver/userspace", "apply", userspaceBody, staleEnv...), 0)
	wantExit(t, "check after the stale install", l.script("pve1", 100, "nvidia-driver/userspace", "check", verifyBody, staleEnv...), 1)
	wantExit(t, "verify after the stale install", l.script("pve1", 100, "nvidia-driver/userspace", "verify", verifyBody, staleEnv...), 18, mismatch)

	// Reinstalling the userspace at the host's new version is the fix.
	l.installDriver("pve1", 100, labNewDriver)
	if r := l.exec("pve1", 100, "nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"); r.code != 0 || r.stdout != labNewDriver+"\n" {
		t.Errorf("nvidia-smi after the reinstall: %v", r)
	}
	log := l.execs("pve1", 100)
	if !slices.Contains(log, "nvidia-smi failed: Failed to initialize NVML: Driver/library version mismatch") {
		t.Errorf("journal of CT 100 lacks the mismatch: %q", log)
	}
}

func TestInheritanceOnDisk(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	gpu := []string{"/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}
	devs := map[string]any{}
	for i, d := range gpu {
		devs[fmt.Sprintf("dev%d", i)] = d
	}
	cudaEnv := []string{"CUDA_VERSION=12.8", "CUDA_PACKAGE=cuda-toolkit-12-8"}

	// The template: features installed while it is still a CT.
	l.create("pve1", 900, devs)
	l.start("pve1", 900)
	l.waitInitialized("pve1", 900, gpu...)
	l.installDriver("pve1", 900, labDriver)
	wantExit(t, "repository", l.script("pve1", 900, "cuda-toolkit/repository", "apply", repoBody), 0)
	wantExit(t, "toolkit", l.script("pve1", 900, "cuda-toolkit/toolkit", "apply", toolkitBody, cudaEnv...), 0)
	// A step the model does not know is recorded on the disk all the same.
	wantExit(t, "site/motd check before", l.script("pve1", 900, "site/motd", "check", "grep -q phoenix /etc/motd"), 1)
	wantExit(t, "site/motd", l.script("pve1", 900, "site/motd", "apply", "echo phoenix > /etc/motd"), 0)
	l.stop("pve1", 900)
	l.convert("pve1", 900)

	// A linked clone shares the template's disk: what was installed is
	// there, with no apply on the clone.
	l.task("pve1", ctPath("pve1", 900, "/clone"), map[string]any{"newid": 901, "hostname": "clone"})
	if cfg := l.config("pve1", 901); !strings.HasPrefix(fmt.Sprint(cfg["rootfs"]), "local-lvm:base-900-disk-0/vm-901-disk-0") || cfg["dev0"] != "/dev/nvidia0" {
		t.Errorf("the clone's config: %v", cfg)
	}
	l.start("pve1", 901)
	l.waitInitialized("pve1", 901, gpu...)
	for _, c := range []stepCall{
		{"nvidia-driver/userspace", "check", verifyBody, userspaceEnv(labDriver)},
		{"nvidia-driver/userspace", "verify", verifyBody, userspaceEnv(labDriver)},
		{"cuda-toolkit/repository", "check", "", nil},
		{"cuda-toolkit/toolkit", "check", nvccBody, cudaEnv},
		{"cuda-toolkit/toolkit", "verify", nvccBody, cudaEnv},
		{"site/motd", "check", "grep -q phoenix /etc/motd", nil},
		{"site/motd", "verify", "grep -q phoenix /etc/motd", nil},
	} {
		wantExit(t, "on the clone: "+c.name+" "+c.phase, l.script("pve1", 901, c.name, c.phase, c.body, c.env...), 0)
	}
	// A step never applied on the template is not on the clone either.
	wantExit(t, "on the clone: docker/engine check", l.script("pve1", 901, "docker/engine", "check", "command -v docker"), 1)
	wantExit(t, "on the clone: site/other check", l.script("pve1", 901, "site/other", "check", "true"), 1)

	for _, line := range l.execs("pve1", 901) {
		if strings.Contains(line, " apply ") || strings.HasPrefix(line, "pct push") {
			t.Errorf("the clone had %q: inherited steps need no apply", line)
		}
	}
}

func TestDockerNeedsNesting(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	docker := func(phase string) sshResult {
		return l.script("pve1", 102, "docker/engine", phase, "docker info >/dev/null")
	}
	wantExit(t, "docker apply", docker("apply"), 0)
	noNesting := "failed to start daemon: Devices cgroup isn't mounted (the container needs features: nesting=1, and a restart)\n"
	wantExit(t, "docker verify without nesting", docker("verify"), 1, noNesting)

	// keyctl is a feature flag only root@pam may change: the token gets a 403.
	err := l.token.Put(t.Context(), ctPath("pve1", 102, "/config"), map[string]any{"features": "nesting=1,keyctl=1"}, nil)
	if !errors.Is(err, proxmox.ErrNotAuthorized) {
		t.Fatalf("features keyctl=1 with the API token: %v, want go-proxmox's ErrNotAuthorized (a 403)", err)
	}
	wantExit(t, "pct set features", l.run("pve1", "pct", "set", "102", "--features", "nesting=1,keyctl=1"), 0)

	// On a running CT, features wait in pending until the next start.
	if got := l.config("pve1", 102)["features"]; got != "nesting=1,keyctl=1" {
		t.Errorf("features in the config: %v", got)
	}
	features := func() map[string]any {
		var pending []map[string]any
		l.get(ctPath("pve1", 102, "/pending"), &pending)
		i := slices.IndexFunc(pending, func(e map[string]any) bool { return e["key"] == "features" })
		if i < 0 {
			t.Fatalf("no features in pending: %v", pending)
		}
		return pending[i]
	}
	if diff := cmp.Diff(map[string]any{"key": "features", "pending": "nesting=1,keyctl=1"}, features()); diff != "" {
		t.Errorf("features in pending before the restart (-want +got):\n%s", diff)
	}
	wantExit(t, "docker verify before the restart", docker("verify"), 1, noNesting)

	l.reboot("pve1", 102)
	wantExit(t, "docker verify after the restart", docker("verify"), 0)
	if diff := cmp.Diff(map[string]any{"key": "features", "value": "nesting=1,keyctl=1"}, features()); diff != "" {
		t.Errorf("features in pending after the restart (-want +got):\n%s", diff)
	}

	if diff := cmp.Diff([]string{
		"docker/engine apply ok",
		"docker/engine verify failed: " + firstLine(noNesting),
		"pct set ok",
		"docker/engine verify failed: " + firstLine(noNesting),
		"docker/engine verify ok",
	}, l.execs("pve1", 102)); diff != "" {
		t.Errorf("journal of CT 102 (-want +got):\n%s", diff)
	}
}

func TestNvidiaContainerToolkitNoCgroups(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	l.installDriver("pve1", 100, labDriver)
	wantExit(t, "docker", l.script("pve1", 100, "docker/engine", "apply", "apt-get install -y docker.io"), 0)
	wantExit(t, "toolkit install", l.script("pve1", 100, "nvidia-container-toolkit/install", "apply", "apt-get install -y nvidia-container-toolkit"), 0)

	configure := func(phase string, env ...string) sshResult {
		return l.script("pve1", 100, "nvidia-container-toolkit/configure", phase,
			`nvidia-ctk runtime configure --runtime=docker && if [ "$NCT_NO_CGROUPS" = true ]; then nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place; fi`, env...)
	}
	// An unprivileged CT cannot attach device cgroup programs: without
	// no-cgroups the runtime fails at the first container.
	wantExit(t, "configure", configure("apply"), 0)
	wantExit(t, "verify without no-cgroups", configure("verify"), 1,
		"nvidia-container-cli: mount error: failed to add device rules: unable to find any existing device filters attached to the cgroup: "+
			"bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted\n")
	wantExit(t, "check with no-cgroups wanted", configure("check", "NCT_NO_CGROUPS=true"), 1)
	wantExit(t, "configure with no-cgroups", configure("apply", "NCT_NO_CGROUPS=true"), 0)
	wantExit(t, "check with no-cgroups", configure("check", "NCT_NO_CGROUPS=true"), 0)
	wantExit(t, "verify with no-cgroups", configure("verify", "NCT_NO_CGROUPS=true"), 0)
}

func TestExecFaults(t *testing.T) {
	t.Parallel()
	const dpkgLock = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2107 (apt-get)\n"

	t.Run("every apply fails, never a check or verify", func(t *testing.T) {
		t.Parallel()
		l := startLab(t, "ssh-cluster.yaml", func(w *World) { w.Spec.Faults.Exec.Failure = 1 })
		for _, c := range []stepCall{
			{"base/packages", "apply", aptBody, nil},
			{"site/motd", "apply", "true", nil},
			{"nvidia-driver/userspace", "", userspaceBody, userspaceEnv(labDriver)}, // no phase is an apply
		} {
			wantExit(t, c.name, l.script("pve1", 100, c.name, c.phase, c.body, c.env...), 100, dpkgLock)
		}
		wantExit(t, "host download", l.script("pve1", 0, "nvidia-driver/download", "apply", downloadBody, downloadEnv(labDriver)...), 100, dpkgLock)
		wantExit(t, "check", l.script("pve1", 100, "base/packages", "check", "dpkg -s curl"), 1)
		wantExit(t, "verify", l.script("pve1", 100, "base/packages", "verify", "dpkg -s curl"), 1, "dpkg-query: no packages found matching curl\n")
		wantExit(t, "initialized", l.script("pve1", 100, "phoenix/initialized", "check", initializedBody, "PHOENIX_DEVICES=/dev/nvidia0"), 0)
		wantExit(t, "a plain command", l.exec("pve1", 100, "true"), 0)
		if n := l.countExecs("pve1", 100, "base/packages apply failed: E: Could not get lock"); n != 1 {
			t.Errorf("journal: %q", l.execs("pve1", 100))
		}
	})

	t.Run("a seeded rate is repeatable", func(t *testing.T) {
		t.Parallel()
		outcomes := func() []int {
			l := startLab(t, "ssh-cluster.yaml", func(w *World) { w.Spec.Faults.Exec.Failure = 0.5 })
			var codes []int
			for range 24 {
				// Checks between the applies draw nothing from the seed.
				l.script("pve1", 100, "site/motd", "check", "true")
				codes = append(codes, l.script("pve1", 100, "site/motd", "apply", "true").code)
			}
			return codes
		}
		first, second := outcomes(), outcomes()
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("same seed, different faults (-first +second):\n%s", diff)
		}
		if !slices.Contains(first, 0) || !slices.Contains(first, 100) || slices.ContainsFunc(first, func(c int) bool { return c != 0 && c != 100 }) {
			t.Errorf("a rate of 0.5 gave %v", first)
		}
	})
}

func TestRestartKillsARunningApply(t *testing.T) {
	t.Parallel()
	// The apply takes 100 s of world time (1 s here), the reboot 20 s
	// (200 ms): the restart lands while the apply runs.
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.Scripts = map[string]Duration{"base/packages": worldTime(100 * time.Second)}
		w.Spec.Durations.Reboot = worldTime(20 * time.Second)
	})
	sess, err := l.conn("pve1").NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var stderr strings.Builder
	sess.Stderr = &stderr
	if err := sess.Start(shellwords.Join(append([]string{"pct", "exec", "102", "--"}, scriptArgv("base/packages", "apply", aptBody)...))); err != nil {
		t.Fatal(err)
	}
	l.reboot("pve1", 102)
	// The CT runs again when the apply would end; the apply itself was
	// killed with the old boot's processes and installed nothing.
	var exit *ssh.ExitError
	if err := sess.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 255 || stderr.String() != "container '102' not running!\n" {
		t.Fatalf("apply across a reboot: %v, stderr %q; want exit 255", err, stderr.String())
	}
	wantExit(t, "check after the reboot", l.script("pve1", 102, "base/packages", "check", "dpkg -s curl"), 1)
	if n := l.countExecs("pve1", 102, "base/packages apply ok"); n != 0 {
		t.Errorf("journal of CT 102: %q", l.execs("pve1", 102))
	}
}

func TestDownloadInsideTheCT(t *testing.T) {
	t.Parallel()
	// The network comes up 1000 s (10 s here) after a start: CT 300 has
	// none for the whole test, CT 100 has had it long before.
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		w.Spec.Durations.NetworkUp = [2]Duration{worldTime(1000 * time.Second), worldTime(1000 * time.Second)}
	})
	v := labDriver
	env := []string{"NVIDIA_VERSION=" + v, "NVIDIA_URL=" + nvidiaURL(v), "NVIDIA_RUNFILE=" + guestRunfile(v)}

	// A CT with internet access may fetch the runfile itself; it lands in
	// the CT, not on the node.
	wantExit(t, "download in CT 100", l.script("pve1", 100, "nvidia-driver/download", "apply", downloadBody, env...), 0)
	wantExit(t, "check in CT 100", l.script("pve1", 100, "nvidia-driver/download", "check", "", env...), 0)
	wantExit(t, "the node has no runfile", l.script("pve1", 0, "nvidia-driver/download", "check", "", env...), 1)
	wantExit(t, "nor has CT 102", l.exec("pve1", 102, "test", "-f", guestRunfile(v)), 1)
	wantExit(t, "userspace from it", l.script("pve1", 100, "nvidia-driver/userspace", "apply", userspaceBody, userspaceEnv(v)...), 0)

	l.create("pve1", 300, nil)
	l.start("pve1", 300)
	wantExit(t, "download before the network", l.script("pve1", 300, "nvidia-driver/download", "apply", downloadBody, env...), 6,
		"curl: (6) Could not resolve host: download.nvidia.com\n")
	wantExit(t, "nothing landed", l.exec("pve1", 300, "test", "-f", guestRunfile(v)), 1)
}

func TestStartFailsWithoutAPassedDevice(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	l.create("pve1", 300, map[string]any{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl", "dev2": "/dev/nvidia-uvm"})
	// The node rebooted and nothing has loaded nvidia-uvm yet: the CT's
	// dev2 names a path that is gone. This is why guides load it in a
	// oneshot unit before pve-guests.service.
	l.changeWorld(`{"nodes":{"pve1":{"uvmLoaded":false}}}`)
	data, err := l.post(ctPath("pve1", 300, "/status/start"), nil)
	if err != nil {
		t.Fatal(err)
	}
	upid, _ := data.(string)
	var st map[string]any
	l.poll("the start task", func() bool {
		l.get("/nodes/pve1/tasks/"+url.PathEscape(upid)+"/status", &st)
		return st["status"] == "stopped"
	})
	// vm_start's update_lxc_config stats the device before lxc-start runs
	// (pve-container src/PVE/LXC.pm).
	if st["exitstatus"] != "Device /dev/nvidia-uvm does not exist" {
		t.Errorf("start with a missing device: exit status %v, want the start to fail", st["exitstatus"])
	}
	if r := l.run("pve1", "pct", "status", "300"); r.stdout != "status: stopped\n" {
		t.Errorf("after the failed start: %v", r)
	}
}

func TestCUDARepositoryFollowsOSRelease(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	gpu := map[string]any{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl"}
	cases := []struct {
		vmid       int
		template   string
		ostype     string
		osRelease  string
		repository sshResult
	}{
		{
			vmid: 310, template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", ostype: "debian",
			osRelease: "PRETTY_NAME=\"Debian GNU/Linux 12\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		},
		// Proxmox calls Rocky Linux centos; NVIDIA's repository is rhel9.
		{
			vmid: 311, template: "local:vztmpl/rockylinux-9-default_20240912_amd64.tar.xz", ostype: "centos",
			osRelease: "PRETTY_NAME=\"Rocky Linux 9\"\nNAME=\"Rocky Linux\"\nVERSION_ID=\"9\"\nID=rocky\n",
		},
		// NVIDIA publishes no CUDA repository for Alpine: the keyring URL
		// built from /etc/os-release does not exist.
		{
			vmid: 312, template: "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz", ostype: "alpine",
			osRelease:  "PRETTY_NAME=\"Alpine Linux 3.20\"\nNAME=\"Alpine Linux\"\nVERSION_ID=\"3.20\"\nID=alpine\n",
			repository: sshResult{code: 22, stderr: "curl: (22) The requested URL returned error: 404\n"},
		},
	}
	for _, tc := range cases {
		extra := map[string]any{"ostemplate": tc.template}
		for k, v := range gpu {
			extra[k] = v
		}
		l.create("pve1", tc.vmid, extra)
		if got := l.config("pve1", tc.vmid)["ostype"]; got != tc.ostype {
			t.Errorf("CT %d: ostype %v, want %s", tc.vmid, got, tc.ostype)
		}
		l.start("pve1", tc.vmid)
		l.waitInitialized("pve1", tc.vmid, "/dev/nvidia0", "/dev/nvidiactl")
		if diff := cmp.Diff(sshResult{stdout: tc.osRelease}, l.exec("pve1", tc.vmid, "cat", "/etc/os-release"), cmp.AllowUnexported(sshResult{})); diff != "" {
			t.Errorf("CT %d: /etc/os-release (-want +got):\n%s", tc.vmid, diff)
		}
		l.installDriver("pve1", tc.vmid, labDriver)
		r := l.script("pve1", tc.vmid, "cuda-toolkit/repository", "apply", repoBody)
		if diff := cmp.Diff(tc.repository, r, cmp.AllowUnexported(sshResult{})); diff != "" {
			t.Errorf("CT %d: repository (-want +got):\n%s", tc.vmid, diff)
		}
		wantCheck := 0
		if tc.repository.code != 0 {
			wantCheck = 1
		}
		wantExit(t, fmt.Sprintf("CT %d: repository check", tc.vmid), l.script("pve1", tc.vmid, "cuda-toolkit/repository", "check", ""), wantCheck)
	}
}

// TestGPUUsersAsARealGPUAnswers: which users the driver's verify lets
// through follows what nvidia-smi -L told users other than root on a real
// H200 (hack/gpuprobe/testdata/h200): nvidiactl closed to the user fails
// NVML with Insufficient Permissions; nvidiactl open but no GPU node open
// lists no device; the nodes nvidia-smi -L does not open (nvidia-uvm) play
// no part.
func TestGPUUsersAsARealGPUAnswers(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		devs map[string]string
		want string // in the failure; "" for a pass
	}{
		"the nodes as the host has them": {devs: map[string]string{"dev0": "/dev/nvidia0,mode=0666", "dev1": "/dev/nvidiactl,mode=0666", "dev2": "/dev/nvidia-uvm,mode=0600"}},
		"as Proxmox passes them by default": {devs: map[string]string{"dev0": "/dev/nvidia0", "dev1": "/dev/nvidiactl"},
			want: "Failed to initialize NVML: Insufficient Permissions; /dev/nvidiactl mode 0660, owner 0:0"},
		"the GPU's node root's only": {devs: map[string]string{"dev0": "/dev/nvidia0,mode=0600", "dev1": "/dev/nvidiactl,mode=0666"},
			want: "No devices found.; /dev/nvidia0 mode 0600, owner 0:0"},
		"one of two GPUs open": {devs: map[string]string{"dev0": "/dev/nvidia0,mode=0600", "dev1": "/dev/nvidia1,mode=0666", "dev2": "/dev/nvidiactl,mode=0666"}},
	}
	vmid := 300
	l := startLab(t, "ssh-cluster.yaml", func(w *World) {
		for _, name := range slices.Sorted(maps.Keys(cases)) {
			cfg := map[string]string{"unprivileged": "1"}
			maps.Copy(cfg, cases[name].devs)
			w.Spec.Guests = append(w.Spec.Guests, WorldGuest{VMID: vmid, Name: fmt.Sprintf("ct%d", vmid), Node: "pve1", Running: true, Config: cfg})
			vmid++
		}
	})
	v := labDriver
	vmid = 300
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		tc := cases[name]
		l.fetchRunfile("pve1", vmid, v)
		wantExit(t, name+": userspace apply", l.script("pve1", vmid, "nvidia-driver/userspace", "apply", userspaceBody, userspaceEnv(v)...), 0)
		r := l.script("pve1", vmid, "nvidia-driver/userspace", "verify", verifyBody, append(userspaceEnv(v), "NVIDIA_CHECK_USER=nobody")...)
		switch {
		case tc.want == "" && r.code != 0:
			t.Errorf("%s: verify as nobody failed: %v", name, r)
		case tc.want != "" && (r.code == 0 || !strings.Contains(r.stderr, "as nobody, nvidia-smi lists no GPU ("+tc.want+")")):
			t.Errorf("%s: verify as nobody: %v, want a failure with %q", name, r, tc.want)
		}
		vmid++
	}
}
