package features

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/phoenixhv/phoenix/spec"
)

// ctkConfig is a fake nvidia-ctk that writes its config as the real one
// does: every key at its default as a comment ("#no-cgroups = false"), a key
// set to another value uncommented.
const ctkConfig = `
config="$PHOENIX_TEST_ROOT/etc/nvidia-container-runtime/config.toml"
case "$1 $2" in
"runtime configure")
	mkdir -p "$PHOENIX_TEST_ROOT/etc/docker"
	daemon="$PHOENIX_TEST_ROOT/etc/docker/daemon.json"
	# --set-as-default adds the default; without it, one set before stays.
	default=""
	case " $* " in
	*" --set-as-default=true "* | *" --set-as-default "*) default=yes ;;
	*) grep -q '"default-runtime"' "$daemon" 2>/dev/null && default=yes ;;
	esac
	if [ -n "$default" ]; then
		printf '{\n    "default-runtime": "nvidia",\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n            "path": "nvidia-container-runtime"\n        }\n    }\n}\n' >"$daemon"
	else
		printf '{\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n            "path": "nvidia-container-runtime"\n        }\n    }\n}\n' >"$daemon"
	fi
	;;
"config --set")
	mkdir -p "$(dirname "$config")"
	case "$3" in
	*no-cgroups=true) line="no-cgroups = true" ;;
	*) line="#no-cgroups = false" ;;
	esac
	printf '#accept-nvidia-visible-devices-as-volume-mounts = false\n\n[nvidia-container-cli]\n#debug = "/var/log/nvidia-container-toolkit.log"\nenvironment = []\n#ldcache = "/etc/ld.so.cache"\nldconfig = "@/sbin/ldconfig.real"\nload-kmods = true\n%s\n\n[nvidia-container-runtime]\n#debug = "/var/log/nvidia-container-runtime.log"\n' "$line" >"$config"
	;;
"--version "*) echo "NVIDIA Container Toolkit CLI version 1.17.8" ;;
esac`

// TestContainerToolkitDefaultRuntime: default-runtime true makes nvidia
// docker's default and converges; turned off again, a default nvidia-ctk
// leaves in daemon.json is reported with what to do, not edited by hand.
func TestContainerToolkitDefaultRuntime(t *testing.T) {
	eachShell(t, func(t *testing.T, sh string) {
		s := newSandbox(t)
		s.model()
		s.fake("nvidia-ctk", ctkConfig)
		st := builtinStep(t, "nvidia-container-toolkit/configure", nil)
		st.Env["NCT_NO_CGROUPS"], st.Env["NCT_DEFAULT_RUNTIME"] = "true", "true"
		if r := s.run(sh, st, "apply"); r.code != 0 {
			t.Fatalf("apply: %v", r)
		}
		if daemon, _ := s.read("etc/docker/daemon.json"); !strings.Contains(daemon, `"default-runtime": "nvidia"`) {
			t.Fatalf("daemon.json:\n%s", daemon)
		}
		if r := s.run(sh, st, "check"); r.code != 0 {
			t.Fatalf("check after apply: %v", r)
		}
		st.Env["NCT_DEFAULT_RUNTIME"] = "false"
		if r := s.run(sh, st, "check"); r.code == 0 {
			t.Fatal("the check passes with nvidia the default and default-runtime false")
		}
		r := s.run(sh, st, "apply")
		if r.code == 0 || !strings.Contains(r.lastLine(), `remove "default-runtime" from it, or set default-runtime: true`) {
			t.Fatalf("apply with a default left behind: %v", r)
		}
	})
}

// TestContainerToolkitConfigureConverges: on a privileged container
// (no-cgroups false) the real nvidia-ctk writes "#no-cgroups = false", a
// comment: the check must read the TOML, where a missing key is false, or
// every pass re-applies and restarts docker until systemd refuses to.
func TestContainerToolkitConfigureConverges(t *testing.T) {
	for _, noCgroups := range []string{"false", "true"} {
		t.Run("no-cgroups="+noCgroups, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				s.fake("nvidia-ctk", ctkConfig)
				st := builtinStep(t, "nvidia-container-toolkit/configure", nil)
				st.Env["NCT_NO_CGROUPS"] = noCgroups
				if r := s.run(sh, st, "check"); r.code == 0 {
					t.Fatalf("check passed before apply: %v", r)
				}
				if r := s.run(sh, st, "apply"); r.code != 0 {
					t.Fatalf("apply: %v", r)
				}
				// The engine checks again on the next pass: it must pass,
				// so that docker is not restarted again.
				if r := s.run(sh, st, "check"); r.code != 0 {
					cfg, _ := s.read("etc/nvidia-container-runtime/config.toml")
					t.Fatalf("check after apply fails, every pass would restart docker: %v\nconfig:\n%s", r, cfg)
				}
			})
		})
	}
}

// TestContainerToolkitConfigIsReadAsTOML: the value of no-cgroups is the
// one in the [nvidia-container-cli] table; commented or absent, false.
func TestContainerToolkitConfigIsReadAsTOML(t *testing.T) {
	cases := map[string]struct {
		config string
		want   string // the NCT_NO_CGROUPS that check accepts
	}{
		"commented default":        {"[nvidia-container-cli]\n#no-cgroups = false\n", "false"},
		"commented, not default":   {"[nvidia-container-cli]\n# no-cgroups = true\n", "false"},
		"absent":                   {"[nvidia-container-cli]\nload-kmods = true\n", "false"},
		"set true":                 {"[nvidia-container-cli]\nno-cgroups = true\n", "true"},
		"set false explicitly":     {"[nvidia-container-cli]\nno-cgroups = false\n", "false"},
		"spaces and a comment":     {"[nvidia-container-cli]\n  no-cgroups=true   # for LXC\n", "true"},
		"in another table":         {"[nvidia-container-runtime]\nno-cgroups = true\n[nvidia-container-cli]\n", "false"},
		"table header with spaces": {"  [nvidia-container-cli]  \nno-cgroups = true\n", "true"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				s.file("etc/docker/daemon.json", `{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}`)
				s.file("etc/nvidia-container-runtime/config.toml", tc.config)
				st := builtinStep(t, "nvidia-container-toolkit/configure", nil)
				for _, v := range []string{"true", "false"} {
					st.Env["NCT_NO_CGROUPS"] = v
					r := s.run(sh, st, "check")
					if (r.code == 0) != (v == tc.want) {
						t.Errorf("NCT_NO_CGROUPS=%s: check %v", v, r)
					}
				}
			})
		})
	}
}

// TestNVMLErrorIsKept: nvidia-smi prints its failure on stdout and exits
// 255; a step that needs a working driver fails with that line, not with
// "exited 255:" and nothing.
func TestNVMLErrorIsKept(t *testing.T) {
	for _, tc := range []struct{ step, phase string }{
		{"nvidia-driver/userspace", "verify"},
		{"cuda-toolkit/repository", "apply"},
		{"cuda-toolkit/toolkit", "apply"},
		{"cuda-toolkit/toolkit", "verify"},
	} {
		t.Run(tc.step+" "+tc.phase, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				s.fake("nvidia-smi", `echo "Failed to initialize NVML: Unknown Error"; exit 255`)
				s.file("usr/local/cuda/bin/nvcc", "")
				st := builtinStep(t, tc.step, nil)
				r := s.run(sh, st, tc.phase)
				if r.code == 0 || !strings.Contains(r.lastLine(), "Failed to initialize NVML: Unknown Error") {
					t.Fatalf("want a failure that quotes NVML's line last: %v", r)
				}
			})
		})
	}
}

// TestEveryFailureEndsWithALine: whatever fails in a step's apply, verify or
// uninstall, its last line on stderr says what (phoenix shows the end of
// stderr). Here every program the scripts call fails without a word.
func TestEveryFailureEndsWithALine(t *testing.T) {
	for _, st := range featureSteps(t) {
		for _, phase := range []string{"apply", "verify", "uninstall"} {
			t.Run(st.Name+" "+phase, func(t *testing.T) {
				eachShell(t, func(t *testing.T, sh string) {
					s := newSandbox(t)
					for _, name := range guarded {
						s.fake(name, "exit 1")
					}
					s.file("root/runfile", "#!/bin/sh\nexit 1\n")
					st := st
					if st.Env["NVIDIA_RUNFILE"] != "" {
						st.Env = map[string]string{"NVIDIA_VERSION": "580.76.05", "NVIDIA_RUNFILE": filepath.Join(s.root, "root/runfile")}
					}
					r := s.run(sh, st, phase)
					if r.code == 0 {
						return // nothing failed (an uninstall with nothing to undo)
					}
					if strings.TrimSpace(r.stderr) == "" || len(r.lastLine()) < 20 {
						t.Fatalf("failed without a line that says what failed: %v", r)
					}
				})
			})
		}
	}
}

// TestSilentFailuresAreNamed: failures that printed nothing before.
func TestSilentFailuresAreNamed(t *testing.T) {
	cases := map[string]struct {
		step, phase string
		setup       func(s *sandbox)
		want        string
	}{
		"container toolkit without docker": {
			step: "nvidia-container-toolkit/install", phase: "apply",
			setup: func(s *sandbox) { _ = os.Remove(filepath.Join(s.bin, "docker")) },
			want:  "docker is not installed: the docker feature installs it",
		},
		"docker daemon down": {
			step: "docker/engine", phase: "verify",
			setup: func(s *sandbox) { s.fake("docker", "exit 1") },
			want:  "docker info failed (exit 1)",
		},
		"nvidia-ctk fails": {
			step: "nvidia-container-toolkit/configure", phase: "apply",
			setup: func(s *sandbox) { s.fake("nvidia-ctk", "exit 1") },
			want:  "nvidia-ctk runtime configure --runtime=docker --set-as-default=false failed (exit 1)",
		},
		"locale-gen fails": {
			step: "base/packages", phase: "apply",
			setup: func(s *sandbox) { s.fake("locale-gen", "exit 1"); s.file("etc/locale.gen", "# en_US.UTF-8 UTF-8\n") },
			want:  "generating the en_US.UTF-8 locale failed (exit 1)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				tc.setup(s)
				r := s.run(sh, builtinStep(t, tc.step, nil), tc.phase)
				if r.code == 0 || !strings.Contains(r.lastLine(), tc.want) {
					t.Fatalf("want the last line to say %q: %v", tc.want, r)
				}
			})
		})
	}
}

// TestFailedDownloadsLeaveNothingInPlace: a download that fails or comes
// back empty leaves no keyring and no sources list behind (curl | gpg and
// curl | sed > file did, and apt then failed with "Unable to locate package").
func TestFailedDownloadsLeaveNothingInPlace(t *testing.T) {
	const nct = "https://nvidia.github.io/libnvidia-container"
	cases := map[string]struct {
		step  string
		serve map[string]string
		files []string
	}{
		"container toolkit, key missing": {
			step:  "nvidia-container-toolkit/install",
			serve: map[string]string{nct + "/stable/deb/nvidia-container-toolkit.list": "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"},
			files: []string{"usr/share/keyrings/nvidia-container-toolkit-keyring.gpg", "etc/apt/sources.list.d/nvidia-container-toolkit.list"},
		},
		"container toolkit, key empty": {
			step: "nvidia-container-toolkit/install",
			serve: map[string]string{nct + "/gpgkey": "",
				nct + "/stable/deb/nvidia-container-toolkit.list": "deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n"},
			files: []string{"usr/share/keyrings/nvidia-container-toolkit-keyring.gpg", "etc/apt/sources.list.d/nvidia-container-toolkit.list"},
		},
		"docker, key missing": {
			step:  "docker/engine",
			files: []string{"etc/apt/keyrings/docker.asc", "etc/apt/sources.list.d/docker.list"},
		},
		"docker, not a key": {
			step:  "docker/engine",
			serve: map[string]string{"https://download.docker.com/linux/debian/gpg": "<html>captive portal</html>\n"},
			files: []string{"etc/apt/keyrings/docker.asc", "etc/apt/sources.list.d/docker.list"},
		},
		"cuda, keyring missing": {
			step:  "cuda-toolkit/repository",
			files: []string{"etc/apt/sources.list.d/cuda-debian12-x86_64.list", "usr/share/keyrings/cuda-archive-keyring.gpg"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				for u, c := range tc.serve {
					s.serve(u, c)
				}
				r := s.run(sh, builtinStep(t, tc.step, nil), "apply")
				if r.code == 0 {
					t.Fatalf("apply passed: %v", r)
				}
				for _, f := range tc.files {
					if c, ok := s.read(f); ok {
						t.Errorf("%s left in place (%d bytes) by a failed download", f, len(c))
					}
				}
				if !strings.Contains(r.lastLine(), "check the") {
					t.Errorf("the last line does not say what to do: %v", r)
				}
			})
		})
	}
}

// TestStepsThatDownloadRequireBase: a step that runs curl or gpg belongs to
// a feature that requires base, which installs them.
func TestStepsThatDownloadRequireBase(t *testing.T) {
	res := examples(t)
	uses := regexp.MustCompile(`(?m)^[^#]*\b(curl|gpg|fetch)\b`)
	for _, name := range Scripts() {
		feature, _, _ := strings.Cut(name, "/")
		if feature == "phoenix" || name == "nvidia-driver/download" { // phoenix's own; the download runs on the node
			continue
		}
		if !uses.MatchString(script(name)) {
			continue
		}
		if cl := res.Catalog.Closure([]string{feature}); !slicesContains(cl, spec.FeatureBase) {
			t.Errorf("%s runs curl or gpg, but %s does not require base (requires %v)", name, feature, cl)
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestTemporaryFilesAreRemoved: a step that fails, or is killed (timeout(1)
// sends TERM), leaves nothing in TMPDIR.
func TestTemporaryFilesAreRemoved(t *testing.T) {
	t.Run("failure", func(t *testing.T) {
		for _, name := range []string{"cuda-toolkit/repository", "ollama/install", "docker/engine", "nvidia-container-toolkit/install"} {
			t.Run(name, func(t *testing.T) {
				eachShell(t, func(t *testing.T, sh string) {
					s := newSandbox(t)
					s.model()
					// Every download fails.
					r := s.run(sh, builtinStep(t, name, nil), "apply")
					if r.code == 0 {
						t.Fatalf("apply passed: %v", r)
					}
					if left := s.leftovers(); len(left) > 0 {
						t.Errorf("left in TMPDIR: %v\n%v", left, r)
					}
				})
			})
		}
	})
	t.Run("TERM", func(t *testing.T) {
		eachShell(t, func(t *testing.T, sh string) {
			s := newSandbox(t)
			s.model()
			s.serve("https://ollama.com/install.sh", "#!/bin/sh\necho installing\n")
			s.fake("zstd", "exit 0")
			// The installer stands in the middle of its work: it says so on
			// one fifo and waits on another.
			ready, release := filepath.Join(s.root, "ready"), filepath.Join(s.root, "release")
			for _, f := range []string{ready, release} {
				if err := syscall.Mkfifo(f, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s.fake("env", `echo started >'`+ready+`'; read x <'`+release+`'; exit 0`)
			st := builtinStep(t, "ollama/install", nil)
			cmd := exec.Command(sh, "-c", st.BodyFor("apply"), st.Name, "apply")
			cmd.Env = []string{"PATH=" + s.bin + ":/usr/bin:/bin", "TMPDIR=" + s.tmp, "PHOENIX_TEST_ROOT=" + s.root,
				"OLLAMA_INSTALLER=" + st.Env["OLLAMA_INSTALLER"]}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The step either reaches the installer or ends before it.
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			reached := make(chan error, 1)
			go func() { _, err := os.ReadFile(ready); reached <- err }()
			select {
			case err := <-exited:
				// Open the fifo the reader waits on, so that it returns.
				_ = os.WriteFile(ready, nil, 0o600)
				t.Fatalf("the step ended before it ran the installer: %v", err)
			case err := <-reached:
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(s.leftovers()) == 0 {
				t.Fatal("the step made no temporary files: the test proves nothing")
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(release, []byte("go\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := <-exited
			if e, ok := err.(*exec.ExitError); !ok || e.ExitCode() != 143 {
				t.Errorf("after TERM: %v, want exit 143", err)
			}
			if left := s.leftovers(); len(left) > 0 {
				t.Errorf("left in TMPDIR after TERM: %v", left)
			}
		})
	})
}

// TestInstallsReadPackageListsFirst: every apply that installs packages runs
// apt-get update before (a clone's lists are its template's), and passes a
// dpkg lock timeout to every apt-get.
func TestInstallsReadPackageListsFirst(t *testing.T) {
	for _, st := range featureSteps(t) {
		if st.Name == "nvidia-container-toolkit/configure" || st.Name == "cuda-toolkit/repository" { // no apt-get install
			continue
		}
		t.Run(st.Name, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				s.fake("nvidia-ctk", ctkConfig)
				s.file("root/runfile", "#!/bin/sh\nexit 0\n")
				s.serve("https://ollama.com/install.sh", "#!/bin/sh\nexit 0\n")
				s.serve("https://download.docker.com/linux/debian/gpg", pgpKey)
				s.serve("https://nvidia.github.io/libnvidia-container/gpgkey", pgpKey)
				s.serve("https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb", "deb")
				s.fake("python3", "exit 0")
				_ = os.Remove(filepath.Join(s.bin, "zstd"))
				st := st
				if st.Env["NVIDIA_RUNFILE"] != "" {
					st.Env = map[string]string{"NVIDIA_VERSION": "580.76.05", "NVIDIA_RUNFILE": filepath.Join(s.root, "root/runfile")}
				}
				s.run(sh, st, "apply")
				calls := s.calls()
				aptGet := func(cmd string) func(string) bool {
					return func(c string) bool { return strings.HasPrefix(c, "apt-get ") && slicesContains(strings.Fields(c), cmd) }
				}
				install := containsLine(calls, aptGet("install"))
				if install < 0 {
					t.Fatalf("no apt-get install: %v", calls)
				}
				update := containsLine(calls, aptGet("update"))
				if update < 0 || update > install {
					t.Errorf("apt-get install without an apt-get update before it: %v", calls)
				}
				for _, c := range calls {
					if strings.HasPrefix(c, "apt-get ") && !strings.Contains(c, "-o DPkg::Lock::Timeout=") {
						t.Errorf("apt-get without a lock timeout: %s", c)
					}
				}
			})
		})
	}
}

// TestAptWaitsForTheDpkgLock: apt older than 1.9.11 ignores
// DPkg::Lock::Timeout and fails at once while apt-daily holds the lock: the
// step retries until the lock is free.
func TestAptWaitsForTheDpkgLock(t *testing.T) {
	eachShell(t, func(t *testing.T, sh string) {
		s := newSandbox(t)
		s.model()
		s.file("etc/locale.gen", "# en_US.UTF-8 UTF-8\n")
		model, _ := os.ReadFile(filepath.Join(s.bin, "apt-get"))
		if err := os.Rename(filepath.Join(s.bin, "apt-get"), filepath.Join(s.bin, "apt-get-model")); err != nil {
			t.Fatal(err)
		}
		_ = model
		s.fake("apt-get", `n=$(cat "$PHOENIX_TEST_ROOT/locked" 2>/dev/null || echo 3)
if [ "$n" -gt 0 ]; then
	echo $((n - 1)) >"$PHOENIX_TEST_ROOT/locked"
	echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)" >&2
	exit 100
fi
exec apt-get-model "$@"`)
		r := s.run(sh, builtinStep(t, "base/packages", nil), "apply")
		if r.code != 0 {
			t.Fatalf("apply while another apt held the lock three times: %v", r)
		}
		waits := 0
		for _, c := range s.calls() {
			if strings.HasPrefix(c, "sleep ") {
				waits++
			}
		}
		if waits != 3 {
			t.Errorf("waited %d times for the lock, want 3: %v", waits, s.calls())
		}
	})
}

// TestOllamaInstallerNeverInstallsADriver: ollama's install script needs
// zstd, and installs cuda-drivers (kernel headers, DKMS) when lspci shows an
// NVIDIA GPU and no nvidia-smi is installed: a container sees the host's
// PCI bus, so without a driver of its own it must be kept from that.
func TestOllamaInstallerNeverInstallsADriver(t *testing.T) {
	// The parts of ollama's install script that matter here.
	const installer = `#!/bin/sh
set -eu
available() { command -v "$1" >/dev/null; }
available zstd || { echo "ERROR: This version requires zstd for extraction. Please install zstd and try again"; exit 1; }
echo installed >"$PHOENIX_TEST_ROOT/ollama-installed"
if available lspci && lspci -d '10de:' | grep -q NVIDIA; then
	if available nvidia-smi; then echo "NVIDIA GPU installed."; exit 0; fi
	echo "cuda-drivers" >"$PHOENIX_TEST_ROOT/driver-installed"
	echo "Installing NVIDIA repository... installing cuda-drivers"
fi
`
	for name, gpuDriver := range map[string]bool{"no driver in the container": false, "driver installed": true} {
		t.Run(name, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				s.serve("https://ollama.com/install.sh", installer)
				s.fake("lspci", `echo "01:00.0 3D controller: NVIDIA Corporation GH100 [H200 SXM 141GB] (rev a1)"`)
				if !gpuDriver {
					_ = os.Remove(filepath.Join(s.bin, "nvidia-smi"))
				}
				// zstd comes with the apt install the step does.
				s.fake("zstd", `exit 0`)
				r := s.run(sh, builtinStep(t, "ollama/install", nil), "apply")
				if r.code != 0 {
					t.Fatalf("apply: %v", r)
				}
				calls := s.calls()
				zstd := containsLine(calls, func(c string) bool {
					return strings.HasPrefix(c, "apt-get ") && strings.Contains(c, " install ") && strings.HasSuffix(c, " zstd")
				})
				installer := containsLine(calls, func(c string) bool { return strings.HasPrefix(c, "lspci ") })
				if zstd < 0 || zstd > installer {
					t.Errorf("zstd is not installed before ollama's installer runs: %v", calls)
				}
				if _, ok := s.read("ollama-installed"); !ok {
					t.Fatalf("the installer did not install: %v", r)
				}
				if _, ok := s.read("driver-installed"); ok {
					t.Fatalf("ollama's installer installed cuda-drivers in the container: %v", r)
				}
			})
		})
	}
}

// TestOllamaOnAGPUGuestNeedsTheDriver: on a guest with GPUs, ollama comes
// after nvidia-driver, or the spec is refused.
func TestOllamaOnAGPUGuestNeedsTheDriver(t *testing.T) {
	doc := func(features string) string {
		return `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: llm}
spec:
  vmid: 300
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  gpus: [0]
  features: [` + features + `]
`
	}
	for features, ok := range map[string]bool{"ollama": false, "nvidia-driver, ollama": true} {
		set, err := spec.Parse("llm.yaml", []byte(doc(features)))
		if err == nil {
			_, err = spec.Resolve(set)
		}
		if ok && err != nil {
			t.Errorf("features [%s]: %v", features, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "ollama") || !strings.Contains(err.Error(), "nvidia-driver")) {
			t.Errorf("features [%s] on a guest with GPUs: %v, want an error that asks for nvidia-driver", features, err)
		}
	}
}

// TestCUDAToolkitIsCheckedAgainstTheDriver: CUDA 13 on a 570 driver does not
// run: the verify says so, with the versions.
func TestCUDAToolkitIsCheckedAgainstTheDriver(t *testing.T) {
	for _, tc := range []struct {
		cuda, driver string
		ok           bool
	}{
		{"12.8", "580.76.05", true},
		{"12.8", "525.60.13", true},
		{"12.8", "520.61.05", false},
		{"13.0", "570.172.08", false},
		{"13.0", "580.65.06", true},
	} {
		t.Run(tc.cuda+" on "+tc.driver, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				s.fake("nvidia-smi", `case "$*" in *driver_version*) echo `+tc.driver+` ;; *) echo ok ;; esac`)
				s.file("usr/local/cuda/bin/nvcc", "#!/bin/sh\necho 'Cuda compilation tools, release "+tc.cuda+", V"+tc.cuda+".93'\n")
				if err := os.Chmod(filepath.Join(s.root, "usr/local/cuda/bin/nvcc"), 0o755); err != nil {
					t.Fatal(err)
				}
				r := s.run(sh, builtinStep(t, "cuda-toolkit/toolkit", spec.Params{"version": tc.cuda}), "verify")
				if (r.code == 0) != tc.ok {
					t.Fatalf("verify: %v", r)
				}
				if !tc.ok && !strings.Contains(r.lastLine(), "needs NVIDIA driver "+CUDAMinDriver(tc.cuda)+" or later, the host has "+tc.driver) {
					t.Errorf("last line: %q", r.lastLine())
				}
				if c := s.run(sh, builtinStep(t, "cuda-toolkit/toolkit", spec.Params{"version": tc.cuda}), "check"); (c.code == 0) != tc.ok {
					t.Errorf("check: %v", c)
				}
			})
		})
	}
}

// TestSourcesLists: the apt sources the steps write, for Debian 12 and
// Ubuntu 24.04 (whose archive no test machine reaches: these paths are
// proven here only), from the vendors' repositories or a mirror.
func TestSourcesLists(t *testing.T) {
	const mirror = "https://mirror.lab.example/repos"
	type os struct{ id, version, codename string }
	debian, ubuntu := os{"debian", "12", "bookworm"}, os{"ubuntu", "24.04", "noble"}
	cases := map[string]struct {
		os     os
		step   string
		params spec.Params
		serve  string // the key's URL
		file   string
		want   string
	}{
		"docker on debian": {debian, "docker/engine", nil, "https://download.docker.com/linux/debian/gpg",
			"etc/apt/sources.list.d/docker.list", "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable"},
		"docker on ubuntu": {ubuntu, "docker/engine", nil, "https://download.docker.com/linux/ubuntu/gpg",
			"etc/apt/sources.list.d/docker.list", "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu noble stable"},
		"docker from a mirror": {ubuntu, "docker/engine", spec.Params{"repository": mirror + "/docker/"}, mirror + "/docker/ubuntu/gpg",
			"etc/apt/sources.list.d/docker.list", "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] " + mirror + "/docker/ubuntu noble stable"},
		"cuda on debian": {debian, "cuda-toolkit/repository", nil, "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb",
			"etc/apt/sources.list.d/cuda-debian12-x86_64.list", "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /"},
		"cuda on ubuntu": {ubuntu, "cuda-toolkit/repository", nil, "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb",
			"etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list", "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/ /"},
		"cuda from a mirror": {ubuntu, "cuda-toolkit/repository", spec.Params{"repository": mirror + "/cuda"}, mirror + "/cuda/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb",
			"etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list", "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] " + mirror + "/cuda/ubuntu2404/x86_64/ /"},
		"container toolkit on ubuntu": {ubuntu, "nvidia-container-toolkit/install", nil, "https://nvidia.github.io/libnvidia-container/gpgkey",
			"etc/apt/sources.list.d/nvidia-container-toolkit.list", "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /"},
		"container toolkit from a mirror": {debian, "nvidia-container-toolkit/install", spec.Params{"repository": mirror + "/nct"}, mirror + "/nct/gpgkey",
			"etc/apt/sources.list.d/nvidia-container-toolkit.list", "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] " + mirror + "/nct/stable/deb/$(ARCH) /"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				s.osRelease(tc.os.id, tc.os.version, tc.os.codename)
				s.serve(tc.serve, pgpKey)
				st := builtinStep(t, tc.step, tc.params)
				r := s.run(sh, st, "apply")
				if r.code != 0 {
					t.Fatalf("apply: %v", r)
				}
				got, _ := s.read(tc.file)
				if strings.TrimSpace(got) != tc.want {
					t.Errorf("%s:\n got %q\nwant %q", tc.file, strings.TrimSpace(got), tc.want)
				}
				if r := s.run(sh, st, "check"); r.code != 0 && tc.step != "docker/engine" {
					t.Errorf("check after apply: %v", r)
				}
				if r := s.run(sh, st, "verify"); r.code != 0 {
					t.Errorf("verify after apply: %v", r)
				}
			})
		})
	}
	t.Log("Ubuntu 24.04's archive is not reachable from the test machines: its sources lists are proven here, by the generated files only")
}
