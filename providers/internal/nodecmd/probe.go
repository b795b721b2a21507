package nodecmd

import (
	_ "embed"
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/reconciler"
)

// HostProbeName is the host probe's script name. The simulator answers the
// probe by this name, so it is part of the contract with providers/sim.
const HostProbeName = "phoenix/host-probe"

//go:embed host-probe.sh
var hostProbeBody string

// HostProbeScript is the host probe as a named host script.
func HostProbeScript() reconciler.Script {
	return reconciler.Script{Name: HostProbeName, Body: hostProbeBody}
}

// ProbeError is host probe output that does not have the expected shape.
type ProbeError struct {
	Line   int    // 1-based; 0 when the output as a whole is wrong
	Text   string // the offending line
	Reason string
}

func (e *ProbeError) Error() string {
	if e.Line == 0 {
		return "host probe output: " + e.Reason
	}
	return fmt.Sprintf("host probe output line %d %q: %s", e.Line, e.Text, e.Reason)
}

var (
	driverVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+$`)
	// decimal is a canonical non-negative decimal: no sign, no leading zero.
	decimal = regexp.MustCompile(`^(0|[1-9][0-9]{0,9})$`)
	octal   = regexp.MustCompile(`^[0-7]{1,4}$`)
	// devicePath is a node under /dev without spaces or traversal; the
	// probe only lists /dev/nvidia* and /dev/nvidia-caps/*.
	devicePath = regexp.MustCompile(`^/dev/[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$`)
)

// Linux device numbers: 12-bit majors, 20-bit minors.
const (
	maxMajor = 1<<12 - 1
	maxMinor = 1<<20 - 1
)

// ParseHostProbe reads the host probe's output strictly: a driver line, a
// pci-gpus line, then device lines, each field separated by one space, every
// line ending in a newline. Anything else is an error naming the line: a
// probe that half-worked must not be read as a host without GPUs.
func ParseHostProbe(out string) (reconciler.HostInfo, error) {
	var info reconciler.HostInfo
	if out == "" {
		return info, &ProbeError{Reason: "empty"}
	}
	if !strings.HasSuffix(out, "\n") {
		return info, &ProbeError{Reason: "does not end with a newline (cut short?)"}
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	seen := map[string]bool{}
	for i, line := range lines {
		n := i + 1
		bad := func(format string, args ...any) (reconciler.HostInfo, error) {
			return reconciler.HostInfo{}, &ProbeError{Line: n, Text: line, Reason: fmt.Sprintf(format, args...)}
		}
		f := strings.Split(line, " ")
		switch {
		case i == 0:
			if len(f) != 2 || f[0] != "driver" {
				return bad(`want "driver VERSION" or "driver none"`)
			}
			if f[1] != "none" {
				if !driverVersion.MatchString(f[1]) {
					return bad("malformed driver version")
				}
				info.DriverVersion = f[1]
			}
		case i == 1:
			if len(f) != 2 || f[0] != "pci-gpus" {
				return bad(`want "pci-gpus COUNT"`)
			}
			c, ok := number(f[1], 1<<16)
			if !ok {
				return bad("malformed GPU count")
			}
			info.PCIGPUs = c
		default:
			if len(f) != 5 || f[0] != "device" {
				return bad(`want "device PATH MAJOR MINOR MODE"`)
			}
			if !devicePath.MatchString(f[1]) || path.Clean(f[1]) != f[1] {
				return bad("malformed device path")
			}
			if seen[f[1]] {
				return bad("device listed twice")
			}
			seen[f[1]] = true
			major, ok1 := number(f[2], maxMajor)
			minor, ok2 := number(f[3], maxMinor)
			if !ok1 || !ok2 {
				return bad("malformed device number (want decimal major 0..%d and minor 0..%d)", maxMajor, maxMinor)
			}
			mode, err := strconv.ParseUint(f[4], 8, 12)
			if err != nil || !octal.MatchString(f[4]) {
				return bad("malformed mode (want octal permission bits, e.g. 666)")
			}
			info.Devices = append(info.Devices, reconciler.Device{Path: f[1], Major: major, Minor: minor, Mode: os.FileMode(mode)})
		}
	}
	if len(lines) < 2 {
		return reconciler.HostInfo{}, &ProbeError{Reason: "no pci-gpus line"}
	}
	return info, nil
}

func number(s string, limit int) (int, bool) {
	if !decimal.MatchString(s) {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	return v, err == nil && v <= limit
}
