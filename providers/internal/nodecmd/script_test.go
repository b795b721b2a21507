package nodecmd

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/reconciler"
)

// TestScriptsShellcheck: every script this package sends to a node (its
// body embedded from the file) passes shellcheck.
func TestScriptsShellcheck(t *testing.T) {
	shellcheck := testtool.Require(t, "shellcheck")
	files, err := filepath.Glob("*.sh")
	if err != nil || len(files) < 6 {
		t.Fatalf("scripts %v, %v", files, err)
	}
	if out, err := exec.Command(shellcheck, files...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %v: %v\n%s", files, err, out)
	}
}

// fakeHost is a directory tree standing in for a node's /proc, /sys and /dev.
type fakeHost struct {
	t    *testing.T
	root string
}

func newFakeHost(t *testing.T) *fakeHost {
	return &fakeHost{t: t, root: t.TempDir()}
}

func (h *fakeHost) write(path, content string) {
	h.t.Helper()
	p := filepath.Join(h.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// pci adds a PCI function with a vendor and class, as sysfs shows them.
func (h *fakeHost) pci(addr, vendor, class string) {
	h.write("sys/bus/pci/devices/"+addr+"/vendor", vendor+"\n")
	h.write("sys/bus/pci/devices/"+addr+"/class", class+"\n")
}

// mknod creates a character device. It needs CAP_MKNOD; without it the
// caller skips the device part of its test.
func (h *fakeHost) mknod(path string, major, minor uint32, mode os.FileMode) error {
	p := filepath.Join(h.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := unix.Mknod(p, unix.S_IFCHR|uint32(mode), int(unix.Mkdev(major, minor))); err != nil {
		return err
	}
	return os.Chmod(p, mode) // past the umask
}

// probe runs the real probe script with shell sh against the fake root.
func (h *fakeHost) probe(shell string) reconciler.HostInfo {
	h.t.Helper()
	cmd := exec.Command(shell, "-c", HostProbeScript().Body, HostProbeName)
	cmd.Env = append(os.Environ(), "PHOENIX_PROBE_ROOT="+h.root, "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("%s probe: %v\n%s", shell, err, stderr.String())
	}
	if stderr.Len() > 0 {
		h.t.Errorf("%s probe wrote to stderr: %s", shell, stderr.String())
	}
	info, err := ParseHostProbe(stdout.String())
	if err != nil {
		h.t.Fatalf("%s probe output does not parse: %v\n%s", shell, err, stdout.String())
	}
	return info
}

const procVersion = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.76.05  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jul 17 20:30:36 UTC 2025\n" +
	"GCC version:  gcc version 14.2.0 (Debian 14.2.0-19)\n"

func TestHostProbeScriptDriverAndPCI(t *testing.T) {
	cases := map[string]struct {
		setup func(h *fakeHost)
		want  reconciler.HostInfo
	}{
		"nothing": {setup: func(h *fakeHost) {}, want: reconciler.HostInfo{}},
		"proprietary module, two GPUs among other devices": {
			setup: func(h *fakeHost) {
				h.write("proc/driver/nvidia/version", procVersion)
				h.pci("0000:00:02.0", "0x8086", "0x030000") // Intel iGPU
				h.pci("0000:01:00.0", "0x10de", "0x030000") // GeForce (VGA)
				h.pci("0000:01:00.1", "0x10de", "0x040300") // its HDMI audio
				h.pci("0000:41:00.0", "0x10de", "0x030200") // datacenter GPU (3D controller)
				h.pci("0000:42:00.0", "0x10de", "0x068000") // NVSwitch bridge
			},
			want: reconciler.HostInfo{DriverVersion: "580.76.05", PCIGPUs: 2},
		},
		"open kernel module": {
			setup: func(h *fakeHost) {
				h.write("proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.172.08  Release Build  (dvs-builder@U16-T02-35-3)  Tue Jul  8 17:52:40 UTC 2025\n"+
					"GCC version:  gcc version 12.2.0 (Debian 12.2.0-14+deb12u1)\n")
				h.pci("0000:01:00.0", "0x10de", "0x030200")
			},
			want: reconciler.HostInfo{DriverVersion: "570.172.08", PCIGPUs: 1},
		},
		"GPU on PCI, no module loaded": {
			setup: func(h *fakeHost) { h.pci("0000:01:00.0", "0x10de", "0x030000") },
			want:  reconciler.HostInfo{PCIGPUs: 1},
		},
		"version from sysfs when /proc has none": {
			setup: func(h *fakeHost) { h.write("sys/module/nvidia/version", "550.54.15\n") },
			want:  reconciler.HostInfo{DriverVersion: "550.54.15"},
		},
	}
	for _, shell := range testtool.Shells(t) {
		for name, tc := range cases {
			h := newFakeHost(t)
			tc.setup(h)
			if diff := cmp.Diff(tc.want, h.probe(shell)); diff != "" {
				t.Errorf("%s, %s (-want +got):\n%s", filepath.Base(shell), name, diff)
			}
		}
	}
}

func TestHostProbeScriptDevices(t *testing.T) {
	h := newFakeHost(t)
	h.write("proc/driver/nvidia/version", procVersion)
	h.pci("0000:01:00.0", "0x10de", "0x030200")
	devs := []reconciler.Device{
		// Created out of order: the probe sorts GPUs numerically.
		dev("/dev/nvidia10", 195, 10), dev("/dev/nvidia2", 195, 2), dev("/dev/nvidia0", 195, 0),
		dev("/dev/nvidia-uvm-tools", 508, 1), dev("/dev/nvidia-uvm", 508, 0),
		dev("/dev/nvidiactl", 195, 255), dev("/dev/nvidia-modeset", 195, 254),
		dev("/dev/nvidia-nvswitchctl", 239, 255),
		dev("/dev/nvidia-caps/nvidia-cap1", 511, 1), dev("/dev/nvidia-caps/nvidia-cap2", 511, 2),
	}
	for _, d := range devs {
		if err := h.mknod(d.Path, uint32(d.Major), uint32(d.Minor), d.Mode); err != nil {
			if errors.Is(err, unix.EPERM) {
				t.Skipf("mknod %s: %v: creating device nodes needs CAP_MKNOD (root outside a restricted container)", d.Path, err)
			}
			t.Fatal(err)
		}
	}
	// Not character devices: must not be listed.
	h.write("dev/nvidia-fake", "a regular file\n")
	h.write("dev/nvidia3", "a regular file\n")

	want := reconciler.HostInfo{DriverVersion: "580.76.05", PCIGPUs: 1, Devices: []reconciler.Device{
		dev("/dev/nvidia0", 195, 0), dev("/dev/nvidia2", 195, 2), dev("/dev/nvidia10", 195, 10),
		dev("/dev/nvidiactl", 195, 255), dev("/dev/nvidia-modeset", 195, 254),
		dev("/dev/nvidia-uvm", 508, 0), dev("/dev/nvidia-uvm-tools", 508, 1),
		dev("/dev/nvidia-nvswitchctl", 239, 255),
		dev("/dev/nvidia-caps/nvidia-cap1", 511, 1), dev("/dev/nvidia-caps/nvidia-cap2", 511, 2),
	}}
	for _, shell := range testtool.Shells(t) {
		if diff := cmp.Diff(want, h.probe(shell)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", filepath.Base(shell), diff)
		}
	}
}

func TestHostProbeScriptOnThisMachine(t *testing.T) {
	// Whatever this machine has, the probe's output must parse.
	out, err := exec.Command("sh", "-c", HostProbeScript().Body, HostProbeName).Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseHostProbe(string(out)); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "driver ") {
		t.Errorf("output %q", out)
	}
}
