package nodecmd

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/reconciler"
)

// dev is an NVIDIA device node as a host has it: 0666, or 0400 for the
// capability nodes.
func dev(path string, major, minor int) reconciler.Device {
	mode := os.FileMode(0o666)
	if strings.HasPrefix(path, "/dev/nvidia-caps/") {
		mode = 0o400
	}
	return reconciler.Device{Path: path, Major: major, Minor: minor, Mode: mode}
}

// formatHostProbe writes a HostInfo the way the probe prints it.
func formatHostProbe(h reconciler.HostInfo) string {
	var b strings.Builder
	driver := h.DriverVersion
	if driver == "" {
		driver = "none"
	}
	fmt.Fprintf(&b, "driver %s\npci-gpus %d\n", driver, h.PCIGPUs)
	for _, d := range h.Devices {
		fmt.Fprintf(&b, "device %s %d %d %o\n", d.Path, d.Major, d.Minor, d.Mode)
	}
	return b.String()
}

func TestParseHostProbe(t *testing.T) {
	cases := map[string]struct {
		out  string
		want reconciler.HostInfo
	}{
		"two GPUs, uvm loaded": {
			out: "driver 580.76.05\npci-gpus 2\n" +
				"device /dev/nvidia0 195 0 666\ndevice /dev/nvidia1 195 1 666\ndevice /dev/nvidiactl 195 255 666\n" +
				"device /dev/nvidia-modeset 195 254 666\ndevice /dev/nvidia-uvm 511 0 666\ndevice /dev/nvidia-uvm-tools 511 1 666\n" +
				"device /dev/nvidia-caps/nvidia-cap1 509 1 400\ndevice /dev/nvidia-caps/nvidia-cap2 509 2 400\n",
			want: reconciler.HostInfo{DriverVersion: "580.76.05", PCIGPUs: 2, Devices: []reconciler.Device{
				dev("/dev/nvidia0", 195, 0), dev("/dev/nvidia1", 195, 1), dev("/dev/nvidiactl", 195, 255),
				dev("/dev/nvidia-modeset", 195, 254), dev("/dev/nvidia-uvm", 511, 0), dev("/dev/nvidia-uvm-tools", 511, 1),
				dev("/dev/nvidia-caps/nvidia-cap1", 509, 1), dev("/dev/nvidia-caps/nvidia-cap2", 509, 2),
			}},
		},
		"GPU without driver": {out: "driver none\npci-gpus 1\n", want: reconciler.HostInfo{PCIGPUs: 1}},
		"no GPU at all":      {out: "driver none\npci-gpus 0\n", want: reconciler.HostInfo{}},
		"two-part version":   {out: "driver 550.54\npci-gpus 1\n", want: reconciler.HostInfo{DriverVersion: "550.54", PCIGPUs: 1}},
	}
	for name, tc := range cases {
		got, err := ParseHostProbe(tc.out)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
		if f := formatHostProbe(got); f != tc.out {
			t.Errorf("%s: formats back as %q", name, f)
		}
	}
	if h, _ := ParseHostProbe("driver none\npci-gpus 1\n"); !h.BrokenDriver() {
		t.Error("a GPU without device nodes is not reported as a broken driver")
	}
}

func TestParseHostProbeRefuses(t *testing.T) {
	cases := map[string]struct {
		out  string
		line int
	}{
		"empty":                  {"", 0},
		"cut short":              {"driver 580.76.05\npci-gpus 2", 0},
		"only the driver":        {"driver 580.76.05\n", 0},
		"driver line missing":    {"pci-gpus 2\n", 1},
		"lines swapped":          {"pci-gpus 2\ndriver none\n", 1},
		"driver word":            {"driver latest\npci-gpus 1\n", 1},
		"driver empty":           {"driver \npci-gpus 1\n", 1},
		"driver twice":           {"driver none\ndriver none\n", 2},
		"negative count":         {"driver none\npci-gpus -1\n", 2},
		"count with plus":        {"driver none\npci-gpus +1\n", 2},
		"count with zero":        {"driver none\npci-gpus 01\n", 2},
		"count not a number":     {"driver none\npci-gpus two\n", 2},
		"hex major":              {"driver none\npci-gpus 0\ndevice /dev/nvidia-uvm 1fc 0 666\n", 3},
		"major out of range":     {"driver none\npci-gpus 0\ndevice /dev/nvidia0 4096 0 666\n", 3},
		"minor out of range":     {"driver none\npci-gpus 0\ndevice /dev/nvidia0 195 1048576 666\n", 3},
		"missing minor":          {"driver 580.76.05\npci-gpus 1\ndevice /dev/nvidia0 195 666\n", 3},
		"missing mode":           {"driver 580.76.05\npci-gpus 1\ndevice /dev/nvidia0 195 0\n", 3},
		"decimal mode":           {"driver 580.76.05\npci-gpus 1\ndevice /dev/nvidia0 195 0 438\n", 3},
		"mode out of range":      {"driver 580.76.05\npci-gpus 1\ndevice /dev/nvidia0 195 0 17777\n", 3},
		"path outside /dev":      {"driver none\npci-gpus 0\ndevice /etc/shadow 1 1 666\n", 3},
		"path escapes /dev":      {"driver none\npci-gpus 0\ndevice /dev/../etc/shadow 1 1 666\n", 3},
		"path with a space":      {"driver none\npci-gpus 0\ndevice /dev/nvidia 0 195 0 666\n", 3},
		"duplicate device":       {"driver none\npci-gpus 0\ndevice /dev/nvidia0 195 0 666\ndevice /dev/nvidia0 195 0 666\n", 4},
		"blank line":             {"driver none\npci-gpus 0\n\n", 3},
		"CRLF":                   {"driver none\r\npci-gpus 0\r\n", 1},
		"two spaces":             {"driver  none\npci-gpus 0\n", 1},
		"trailing space":         {"driver none\npci-gpus 0 \n", 2},
		"stray line":             {"driver none\npci-gpus 0\nWARNING: something\n", 3},
		"unknown device keyword": {"driver none\npci-gpus 0\ndev /dev/nvidia0 195 0 666\n", 3},
	}
	for name, tc := range cases {
		_, err := ParseHostProbe(tc.out)
		var perr *ProbeError
		if !errors.As(err, &perr) {
			t.Errorf("%s: got %v, want a *ProbeError", name, err)
			continue
		}
		if perr.Line != tc.line {
			t.Errorf("%s: error names line %d, want %d (%v)", name, perr.Line, tc.line, err)
		}
		if tc.line > 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d", tc.line)) {
			t.Errorf("%s: %q does not name the line", name, err)
		}
	}
}
