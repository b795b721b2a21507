package nodecmd

import (
	"errors"
	"testing"
)

// FuzzParseHostProbe: the parser never panics, refuses with a *ProbeError,
// and what it accepts is exactly what the probe's format writes (so nothing
// is read loosely).
func FuzzParseHostProbe(f *testing.F) {
	f.Add("driver 580.76.05\npci-gpus 2\ndevice /dev/nvidia0 195 0\ndevice /dev/nvidia-uvm 511 0\n")
	f.Add("driver none\npci-gpus 1\n")
	f.Fuzz(func(t *testing.T, out string) {
		info, err := ParseHostProbe(out)
		if err != nil {
			var perr *ProbeError
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is not a *ProbeError", err)
			}
			return
		}
		if back := formatHostProbe(info); back != out {
			t.Fatalf("accepted %q, which formats back as %q", out, back)
		}
		if info.PCIGPUs < 0 {
			t.Fatalf("negative GPU count from %q", out)
		}
		for _, d := range info.Devices {
			if d.Major < 0 || d.Major > maxMajor || d.Minor < 0 || d.Minor > maxMinor {
				t.Fatalf("device number out of range from %q: %+v", out, d)
			}
		}
	})
}
