package nodecmd

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/reconciler"
)

// h200 holds what a real NVIDIA H200 host (driver 580.159.04, open kernel
// module) showed, captured by hack/gpuprobe/collect.sh.
const h200 = "../../../hack/gpuprobe/testdata/h200/"

func capturedFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(h200 + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHostProbeOfARealH200: the probe's output on the real host parses, and
// what the local provider parsed there is what it says.
func TestHostProbeOfARealH200(t *testing.T) {
	got, err := ParseHostProbe(capturedFile(t, "probe.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	var there struct{ Info reconciler.HostInfo }
	if err := json.Unmarshal([]byte(capturedFile(t, "probe.json")), &there); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(there.Info, got); diff != "" {
		t.Errorf("the local provider's probe on the H200 differs from its raw output (-local +raw):\n%s", diff)
	}
	if got.DriverVersion != "580.159.04" || got.PCIGPUs != 1 {
		t.Errorf("driver %q, %d GPUs", got.DriverVersion, got.PCIGPUs)
	}
}

// TestHostProbeScriptAgainstARealH200: the probe run against a fake root
// made from the H200's /proc, /sys and /dev nodes finds what the probe found
// on the real host, so the fake-root tests stand for a real node.
func TestHostProbeScriptAgainstARealH200(t *testing.T) {
	want, err := ParseHostProbe(capturedFile(t, "probe.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	h := newFakeHost(t)
	h.write("proc/driver/nvidia/version", capturedFile(t, "proc-driver-nvidia-version.stdout"))
	h.write("sys/module/nvidia/version", capturedFile(t, "sys-module-nvidia-version.stdout"))
	// pci.stdout: ADDRESS VENDOR DEVICE CLASS of each NVIDIA function.
	for _, line := range strings.Split(strings.TrimSpace(capturedFile(t, "pci.stdout")), "\n") {
		f := strings.Fields(line)
		h.pci(f[0], f[1], f[3])
	}
	// dev-nodes.stdout: stat's %n %F %t %T %a %U %G, numbers in hex.
	for _, line := range strings.Split(strings.TrimSpace(capturedFile(t, "dev-nodes.stdout")), "\n") {
		name, rest, _ := strings.Cut(line, " ")
		if strings.HasPrefix(rest, "directory") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(rest, "character special file "))
		major, err1 := strconv.ParseUint(f[0], 16, 32)
		minor, err2 := strconv.ParseUint(f[1], 16, 32)
		mode, err3 := strconv.ParseUint(f[2], 8, 32)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("dev-nodes.stdout %q: %v", line, err)
		}
		if err := h.mknod(name, uint32(major), uint32(minor), os.FileMode(mode)); err != nil {
			if errors.Is(err, unix.EPERM) {
				testtool.Unable(t, "mknod %s: %v: creating device nodes needs CAP_MKNOD (root outside a restricted container)", name, err)
			}
			t.Fatal(err)
		}
	}
	for _, shell := range testtool.Shells(t) {
		if diff := cmp.Diff(want, h.probe(shell)); diff != "" {
			t.Errorf("%s (-real host +fake root):\n%s", filepath.Base(shell), diff)
		}
	}
}
