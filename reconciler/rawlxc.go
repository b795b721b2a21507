package reconciler

import (
	"strconv"
	"strings"
)

// Raw lxc.* lines: hand-written GPU scripts (the bash system phoenix replaces
// among them) passed NVIDIA devices with lxc.cgroup2.devices.allow and
// lxc.mount.entry lines in /etc/pve/lxc/N.conf, and every clone copies them.
// They give a container every GPU of its node, whatever its gpus say, and no
// API can remove them.

// rawGPULines lists the raw lines of a config that pass NVIDIA devices: a
// cgroup rule for an NVIDIA major (195, or one the host probe found for its
// nvidia-uvm and nvidia-caps nodes), or a mount of a /dev/nvidia* node.
func rawGPULines(lxc [][2]string, host *HostObservation) [][2]string {
	majors := map[string]bool{"195": true}
	if host != nil {
		for _, d := range host.Info.Devices {
			if nvidiaDevice.MatchString(d.Path) {
				majors[strconv.Itoa(d.Major)] = true
			}
		}
	}
	var out [][2]string
	for _, l := range lxc {
		switch l[0] {
		case "lxc.cgroup2.devices.allow", "lxc.cgroup.devices.allow":
			// "c 195:* rwm"
			f := strings.Fields(l[1])
			if len(f) >= 2 && f[0] == "c" {
				if major, _, _ := strings.Cut(f[1], ":"); majors[major] {
					out = append(out, l)
				}
			}
		case "lxc.mount.entry":
			if f := strings.Fields(l[1]); len(f) > 0 && nvidiaDevice.MatchString(f[0]) {
				out = append(out, l)
			}
		}
	}
	return out
}

// rawLinesProblem names each raw line and what to do about it.
func rawLinesProblem(vmid int, lines [][2]string) Problem {
	var text []string
	for _, l := range lines {
		text = append(text, l[0]+": "+l[1])
	}
	return problem(ProblemFlag, "raw lxc lines in /etc/pve/lxc/%d.conf pass NVIDIA devices whatever its gpus say, so it is not GPU-isolated (%s): "+
		"remove them from the file by hand, or run with --remove-raw-gpu-lines to have phoenix remove them", vmid, strings.Join(text, "; "))
}

// rawLineFields are the removals of raw lines, as an update's fields.
func rawLineFields(lines [][2]string) []FieldChange {
	out := make([]FieldChange, 0, len(lines))
	for _, l := range lines {
		out = append(out, FieldChange{Key: l[0], Before: l[1]})
	}
	return out
}

// isRawKey reports whether a field is a raw lxc.* line.
func isRawKey(key string) bool { return strings.HasPrefix(key, "lxc.") }
