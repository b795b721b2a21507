// Package scripts runs phoenix's built-in feature scripts in real Debian 12
// LXC containers (providers/sim/lxc), against stand-in sources
// (hack/standin) for what they would download from vendors' servers: every
// step's check, apply and verify, in dash and bash, privileged and
// unprivileged, and the failures the scripts must report.
package scripts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/standin"
	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/providers/sim/lxc"
	"github.com/phoenixhv/phoenix/reconciler/features"
	"github.com/phoenixhv/phoenix/spec"
)

// driver is the simulated host's NVIDIA driver.
const driver = "580.76.05"

// rig is a prepared machine with the stand-in sources forwarded to it.
type rig struct {
	h   *lxc.Host
	src *standin.Sources
	res *spec.Resolution
	dir string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if err := lxc.Available(); err != nil {
		testtool.Unable(t, "%v: this machine must run the scripts in real containers", err)
	}
	for _, tool := range []string{"gpg", "dpkg-deb", "curl", "go"} {
		testtool.Require(t, tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cache := os.Getenv("PHOENIX_SIM_CACHE")
	h, err := lxc.Prepare(ctx, lxc.HostOptions{CacheDir: cache, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	if cache == "" {
		cache = lxc.DefaultCacheDir
	}
	src, err := standin.Start(ctx, standin.Options{DriverVersion: driver, PublicHost: h.Gateway(), Dir: filepath.Join(cache, "standin")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := src.Close(); err != nil {
			t.Error(err)
		}
	})
	if _, err := h.Forward(src.Port()); err != nil {
		t.Fatal(err)
	}
	if err := h.TrustCA(src.CA()); err != nil {
		t.Fatal(err)
	}
	res, err := spec.LoadResolved("../../examples/homelab")
	if err != nil {
		t.Fatal(err)
	}
	return &rig{h: h, src: src, res: res, dir: t.TempDir()}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gpuDevices are the nodes a GPU guest gets: NVIDIA's majors, no driver
// behind them on this machine.
var gpuDevices = []lxc.Device{
	{Path: "/dev/nvidia0", Major: 195, Minor: 0, Mode: 0o666},
	{Path: "/dev/nvidiactl", Major: 195, Minor: 255, Mode: 0o666},
}

// container creates and starts a container from the pristine Debian 12 root
// file system; it is destroyed with the Host.
func (r *rig) container(t *testing.T, name string, o lxc.ContainerOptions) *lxc.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := r.h.Create(ctx, name, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if state, err := c.WaitBooted(ctx); err != nil || state != "running" {
		t.Fatalf("%s: systemd %q, %v", name, state, err)
	}
	// The stand-in sources are reached directly, never through an apt proxy.
	r.push(t, c, "/etc/apt/apt.conf.d/99phoenix-standin-direct",
		fmt.Sprintf("Acquire::https::Proxy::%s \"DIRECT\";\nAcquire::http::Proxy::%s \"DIRECT\";\n", r.h.Gateway(), r.h.Gateway()), 0o644)
	return c
}

func (r *rig) push(t *testing.T, c *lxc.Container, dst, content string, mode os.FileMode) {
	t.Helper()
	if err := c.Push(strings.NewReader(content), dst, mode); err != nil {
		t.Fatal(err)
	}
}

// step is a built-in step as phoenix computes it for the guest, with its
// sources pointed at the stand-ins.
func (r *rig) step(t *testing.T, name string, unprivileged bool) features.Step {
	t.Helper()
	feature, _, _ := strings.Cut(name, "/")
	g, _ := r.res.Guest("vllm-qwen")
	params := spec.Params{}
	for k, v := range g.Params[feature] {
		params[k] = v
	}
	for k, v := range r.src.Params()[feature] {
		params[k] = v
	}
	steps, err := features.Steps(r.res.Catalog, feature, features.Context{Guest: g, Params: params, DriverVersion: driver,
		Devices: []string{"/dev/nvidia0", "/dev/nvidiactl"}, NVIDIA: spec.NVIDIASettings{RunfileURLs: []string{r.src.RunfileURL()}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Name == name {
			if s.Env["NCT_NO_CGROUPS"] != "" {
				s.Env["NCT_NO_CGROUPS"] = fmt.Sprint(unprivileged)
			}
			return s
		}
	}
	t.Fatalf("no step %s", name)
	return features.Step{}
}

// run runs a step's phase in the container as phoenix's pct exec does:
// env K=V... SHELL -c BODY NAME PHASE.
func run(t *testing.T, c *lxc.Container, shell string, s features.Step, phase string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.TimeoutFor(phase))
	defer cancel()
	argv := []string{"env"}
	for k, v := range s.Env {
		argv = append(argv, k+"="+v)
	}
	argv = append(argv, shell, "-c", s.BodyFor(phase), s.Name, phase)
	var out bytes.Buffer
	code, err := c.Attach(ctx, argv, nil, nil, &out, &out)
	if err != nil {
		t.Fatalf("%s %s: %v", s.Name, phase, err)
	}
	return code, out.String()
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// converge proves a step on a container: its check fails before, apply
// (under dash) passes, verify and check pass after under dash and bash, and
// apply again under bash changes nothing that check or verify can see.
func converge(t *testing.T, c *lxc.Container, s features.Step, beforeApply func()) {
	t.Helper()
	start := time.Now()
	if code, out := run(t, c, "/bin/dash", s, "check"); code == 0 {
		t.Fatalf("%s check passed before apply:\n%s", s.Name, tail(out))
	}
	if beforeApply != nil {
		beforeApply()
	}
	if code, out := run(t, c, "/bin/dash", s, "apply"); code != 0 {
		t.Fatalf("%s apply (dash) exited %d:\n%s", s.Name, code, tail(out))
	}
	for _, shell := range []string{"/bin/dash", "/bin/bash"} {
		if s.HasVerify() {
			if code, out := run(t, c, shell, s, "verify"); code != 0 {
				t.Fatalf("%s verify (%s) exited %d:\n%s", s.Name, shell, code, tail(out))
			}
		}
		if code, out := run(t, c, shell, s, "check"); code != 0 {
			t.Fatalf("%s check (%s) after apply exited %d: the next pass would apply it again:\n%s", s.Name, shell, code, tail(out))
		}
	}
	if beforeApply != nil {
		beforeApply()
	}
	if code, out := run(t, c, "/bin/bash", s, "apply"); code != 0 {
		t.Fatalf("%s apply again (bash) exited %d:\n%s", s.Name, code, tail(out))
	}
	if code, out := run(t, c, "/bin/dash", s, "check"); code != 0 {
		t.Fatalf("%s check after a second apply exited %d:\n%s", s.Name, code, tail(out))
	}
	t.Logf("%s converged in %v", s.Name, time.Since(start).Round(time.Second))
}

// pushRunfile runs nvidia-driver/download on this machine, as on a node,
// against the runfile stand-in, and pushes the runfile into the container,
// as phoenix does before each apply of nvidia-driver/userspace.
func (r *rig) pushRunfile(t *testing.T, c *lxc.Container) {
	t.Helper()
	dl := r.step(t, "nvidia-driver/download", false)
	dl.Env["NVIDIA_RUNFILE"] = filepath.Join(r.dir, filepath.Base(dl.Env["NVIDIA_RUNFILE"]))
	ca := filepath.Join(r.dir, "standin-ca.pem")
	if err := os.WriteFile(ca, r.src.CA(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", dl.BodyFor("apply"), dl.Name, "apply")
	// The node reaches the sources at their 127.0.0.1 port.
	urls := strings.ReplaceAll(dl.Env["NVIDIA_URLS"], r.h.Gateway()+":", "127.0.0.1:")
	cmd.Env = append(os.Environ(), "CURL_CA_BUNDLE="+ca, "NVIDIA_VERSION="+driver, "NVIDIA_URLS="+urls, "NVIDIA_RUNFILE="+dl.Env["NVIDIA_RUNFILE"])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nvidia-driver/download: %v\n%s", err, out)
	}
	us := r.step(t, "nvidia-driver/userspace", false)
	f, err := os.Open(dl.Env["NVIDIA_RUNFILE"])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.Push(f, us.Push.Dst, os.FileMode(us.Push.Mode)); err != nil {
		t.Fatal(err)
	}
}

// TestFeaturesConvergeInRealContainers installs every built-in feature, in
// the order phoenix does, in a privileged and an unprivileged Debian 12
// container with docker's nesting and the GPU's device nodes.
func TestFeaturesConvergeInRealContainers(t *testing.T) {
	r := newRig(t)
	t.Log("Ubuntu 24.04's archive is not reachable from the test machines: the scripts run in Debian 12 containers here; Ubuntu's sources lists are proven by reconciler/features' TestSourcesLists")
	for _, unprivileged := range []bool{false, true} {
		t.Run(fmt.Sprintf("unprivileged=%t", unprivileged), func(t *testing.T) {
			c := r.container(t, fmt.Sprintf("features-%t", unprivileged), lxc.ContainerOptions{
				Unprivileged: unprivileged, Nesting: true, Keyctl: true, Devices: gpuDevices})
			converge(t, c, r.step(t, "base/packages", unprivileged), nil)
			converge(t, c, r.step(t, "nvidia-driver/userspace", unprivileged), func() { r.pushRunfile(t, c) })
			for _, name := range []string{"cuda-toolkit/repository", "cuda-toolkit/toolkit", "docker/engine",
				"nvidia-container-toolkit/install", "nvidia-container-toolkit/configure", "ollama/install", "vllm/install"} {
				converge(t, c, r.step(t, name, unprivileged), nil)
			}
		})
	}
}

// TestFailuresInRealContainers: in a container without the GPU's device
// nodes the driver's verify fails with NVML's own line (printed on stdout),
// and on a GPU host's PCI bus ollama's installer (whose stand-in installs
// NVIDIA's driver packages as the real one would) is kept from doing so.
func TestFailuresInRealContainers(t *testing.T) {
	r := newRig(t)
	c := r.container(t, "failures", lxc.ContainerOptions{})
	converge(t, c, r.step(t, "base/packages", false), nil)

	// The container sees the host's PCI bus: here, one with an NVIDIA GPU.
	r.push(t, c, "/usr/local/sbin/lspci", "#!/bin/sh\necho '01:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H200 SXM 141GB] [10de:2335] (rev a1)'\n", 0o755)
	converge(t, c, r.step(t, "ollama/install", false), nil)
	const marker = "/var/lib/phoenix-standin/ollama-installed-cuda-drivers"
	if code, out := shell(t, c, "test ! -e "+marker); code != 0 {
		t.Fatalf("ollama's installer went on to install NVIDIA's driver packages:\n%s", out)
	}
	// Run as its documentation says, the installer stand-in does what the
	// real one does on this bus: the check above can fail.
	installer := r.src.Params()["ollama"]["installer"]
	if code, out := shell(t, c, "curl -fsSL "+installer+" | sh"); code == 0 || !strings.Contains(out, "cuda-drivers") {
		t.Fatalf("the installer stand-in, run by hand, did not go for the driver: exit %d\n%s", code, out)
	}
	if code, _ := shell(t, c, "test -e "+marker); code != 0 {
		t.Fatal("the installer stand-in left no record of its driver installation")
	}

	us := r.step(t, "nvidia-driver/userspace", false)
	r.pushRunfile(t, c)
	if code, out := run(t, c, "/bin/dash", us, "apply"); code != 0 {
		t.Fatalf("%s apply exited %d:\n%s", us.Name, code, tail(out))
	}
	for _, sh := range []string{"/bin/dash", "/bin/bash"} {
		code, out := run(t, c, sh, us, "verify")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code == 0 || !strings.Contains(lines[len(lines)-1], "Failed to initialize NVML: Unknown Error") {
			t.Errorf("verify (%s) without device nodes: exit %d, want NVML's line last:\n%s", sh, code, tail(out))
		}
	}
}

// TestAGPUNodeForRootOnly: with nvidiactl open to all but the GPU's node
// root's only, nvidia-smi -L tells another user "No devices found." and
// exits 0, as a real H200 does (hack/gpuprobe/testdata/h200); the driver's
// verify, which checks as nobody, fails and says so.
func TestAGPUNodeForRootOnly(t *testing.T) {
	r := newRig(t)
	c := r.container(t, "gpu-root-only", lxc.ContainerOptions{Devices: []lxc.Device{
		{Path: "/dev/nvidia0", Major: 195, Minor: 0, Mode: 0o600},
		{Path: "/dev/nvidiactl", Major: 195, Minor: 255, Mode: 0o666},
	}})
	converge(t, c, r.step(t, "base/packages", false), nil)
	us := r.step(t, "nvidia-driver/userspace", false)
	if us.Env["NVIDIA_CHECK_USER"] != "nobody" {
		t.Fatalf("the driver's verify checks as %q, want nobody", us.Env["NVIDIA_CHECK_USER"])
	}
	r.pushRunfile(t, c)
	if code, out := run(t, c, "/bin/dash", us, "apply"); code != 0 {
		t.Fatalf("%s apply exited %d:\n%s", us.Name, code, tail(out))
	}
	if code, out := shell(t, c, "runuser -u nobody -- nvidia-smi -L"); code != 0 || strings.TrimSpace(out) != "No devices found." {
		t.Errorf("nvidia-smi -L as nobody: exit %d, %q; want 0 and No devices found., as on a real GPU", code, out)
	}
	for _, sh := range []string{"/bin/dash", "/bin/bash"} {
		code, out := run(t, c, sh, us, "verify")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if last := lines[len(lines)-1]; code == 0 || !strings.Contains(last, "as nobody") || !strings.Contains(last, "No devices found.") {
			t.Errorf("verify (%s) with the GPU's node root's only: exit %d, want a failure naming nobody:\n%s", sh, code, tail(out))
		}
	}
}

func shell(t *testing.T, c *lxc.Container, script string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	code, err := c.Attach(ctx, []string{"/bin/sh", "-c", script}, nil, nil, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}
