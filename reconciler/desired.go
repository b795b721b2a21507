package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// desired is what a guest's Proxmox config should hold for the options phoenix
// manages. Options not named here are left as they are.
type desired struct {
	options map[string]string // hostname, cores, memory, swap, onboot, protection, tags
	// features are container feature flags that must be set (docker needs
	// nesting and keyctl); other flags are the user's.
	features map[string]string
	// nics are the netN values when the spec manages the network (nil: it does not).
	nics []spec.NIC
	// devices are the NVIDIA device paths to pass through, in order, and
	// deviceValues the devN value of each: the path with the node's mode
	// inside the container (and its group).
	devices      []string
	deviceValues map[string]string
	diskGiB      int
	unprivileged bool
}

// nvidiaDevice matches the device entries phoenix owns. Other dev entries
// (a /dev/dri the user added) are left alone.
var nvidiaDevice = regexp.MustCompile(`^/dev/nvidia`)

// desiredConfig computes what a resolved guest needs, given its node's probe.
// Problems (a GPU the node does not have, a broken host driver) are returned
// as errors for this guest.
func desiredConfig(r *spec.Resolved, host *HostObservation) (desired, []Problem) {
	s := r.Settings
	d := desired{
		options: map[string]string{
			"hostname": r.Name, "cores": strconv.Itoa(s.Cores), "memory": strconv.Itoa(s.MemoryMiB),
			"swap": strconv.Itoa(s.SwapMiB), "onboot": boolString(s.OnBoot), "protection": boolString(s.Protection),
			"tags": strings.Join(spec.NormalizeTags(append(slices.Clone(s.Tags), ManagedTag)), ";"),
		},
		features: map[string]string{}, nics: s.Network, diskGiB: s.DiskGiB, unprivileged: s.Unprivileged,
	}
	if slices.Contains(r.Effective, spec.FeatureDocker) {
		// Docker in an LXC container needs nesting, and keyctl for its key
		// handling in unprivileged containers.
		d.features["nesting"], d.features["keyctl"] = "1", "1"
	}
	if s.GPUs.Empty() {
		return d, nil
	}
	var problems []Problem
	switch {
	case host == nil:
		problems = append(problems, problem(ProblemObserve, "node %s was not probed for GPUs", s.Node))
	case host.Err != nil:
		problems = append(problems, problem(ProblemObserve, "GPU probe of node %s failed: %v", s.Node, host.Err))
	case host.Info.BrokenDriver():
		problems = append(problems, problem(ProblemNode, "node %s has %d NVIDIA GPU(s) on PCI but no /dev/nvidia* device nodes: its driver is not working; fix the host driver first",
			s.Node, host.Info.PCIGPUs))
	case host.Info.DriverVersion == "" || len(host.Info.Devices) == 0:
		problems = append(problems, problem(ProblemNode, "node %s has no NVIDIA driver: install it on the host first", s.Node))
	default:
		d.devices, problems = gpuDevices(s.Node, s.GPUs, host.Info)
		d.deviceValues = deviceValues(d.devices, host.Info, s.GPUGroup)
	}
	return d, problems
}

// manages reports whether phoenix owns a config option of the guest.
func (d desired) manages(key string) bool {
	if _, ok := d.options[key]; ok {
		return true
	}
	switch {
	case key == "features":
		return len(d.features) > 0
	case strings.HasPrefix(key, "dev"):
		return true
	case strings.HasPrefix(key, "net"):
		return d.nics != nil
	}
	return false
}

// createOptionsOf are the options a create request sets besides the disk:
// the spec's options, its NICs and its feature flags when any session may set
// them (nesting alone). What only root@pam may set follows in an update, so
// that the plan says the same whatever the session.
func createOptionsOf(d desired) map[string]string {
	opts := map[string]string{"unprivileged": boolString(d.unprivileged)}
	maps.Copy(opts, d.options)
	for i, n := range d.nics {
		opts["net"+strconv.Itoa(i)] = nicValue(n, "")
	}
	if flags := printPropString(d.features); len(d.features) > 0 && !featuresBeyondNesting("", flags) {
		opts["features"] = flags
	}
	return opts
}

// gpuDevices lists the device nodes for the selected GPUs from what the host
// really has: never a hard-coded major, and nvidia-uvm only if it is loaded.
func gpuDevices(node string, gpus spec.GPUSet, info HostInfo) ([]string, []Problem) {
	have := map[string]bool{}
	var present []int
	for _, dev := range info.Devices {
		have[dev.Path] = true
		if n, ok := strings.CutPrefix(dev.Path, "/dev/nvidia"); ok {
			if i, err := strconv.Atoi(n); err == nil {
				present = append(present, i)
			}
		}
	}
	slices.Sort(present)
	want := gpus.Indices
	if gpus.All {
		want = present
	}
	var devs []string
	var errs []Problem
	for _, i := range want {
		p := fmt.Sprintf("/dev/nvidia%d", i)
		if !have[p] {
			errs = append(errs, problem(ProblemSpec, "GPU %d is not on node %s (it has %s)", i, node, gpuList(present)))
			continue
		}
		devs = append(devs, p)
	}
	for _, p := range []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"} {
		if !have[p] {
			hint := ""
			if strings.HasPrefix(p, "/dev/nvidia-uvm") {
				hint = " (nvidia-uvm is not loaded: run nvidia-modprobe -c0 -u on the host, e.g. from a unit before pve-guests.service)"
			}
			errs = append(errs, problem(ProblemNode, "node %s has no %s%s", node, p, hint))
			continue
		}
		devs = append(devs, p)
	}
	if have["/dev/nvidia-modeset"] {
		devs = append(devs, "/dev/nvidia-modeset")
	}
	return devs, errs
}

// deviceValues are the devN values for the passed devices. Proxmox makes a
// passed node 0660 and root's inside the container unless told otherwise,
// which leaves every other user (ollama's service user) off the GPU: the node
// gets the host node's mode, or belongs to the group the spec names.
func deviceValues(paths []string, info HostInfo, gid *int) map[string]string {
	modes := map[string]os.FileMode{}
	for _, d := range info.Devices {
		modes[d.Path] = d.Mode
	}
	out := map[string]string{}
	for _, p := range paths {
		switch mode := modes[p]; {
		case gid != nil:
			out[p] = fmt.Sprintf("%s,gid=%d,mode=0660", p, *gid)
		case mode != 0:
			out[p] = fmt.Sprintf("%s,mode=%04o", p, mode.Perm())
		default:
			out[p] = p
		}
	}
	return out
}

func gpuList(idx []int) string {
	if len(idx) == 0 {
		return "no GPUs"
	}
	var s []string
	for _, i := range idx {
		s = append(s, strconv.Itoa(i))
	}
	return "GPUs " + strings.Join(s, ",")
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// propString splits a Proxmox property string ("a=1,b=2").
func propString(v string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(v, ",") {
		if k, val, ok := strings.Cut(part, "="); ok {
			out[k] = val
		} else if part != "" {
			out[""] = part
		}
	}
	return out
}

// printPropString writes parts in a stable order, with the keys phoenix
// cares about first the way Proxmox prints them.
func printPropString(parts map[string]string, first ...string) string {
	var out []string
	if v, ok := parts[""]; ok {
		out = append(out, v)
	}
	seen := map[string]bool{"": true}
	for _, k := range first {
		if v, ok := parts[k]; ok {
			out = append(out, k+"="+v)
			seen[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(parts)) {
		if !seen[k] {
			out = append(out, k+"="+parts[k])
		}
	}
	return strings.Join(out, ",")
}

// nicValue is the netN value for a NIC, keeping what Proxmox added to the
// observed one (hwaddr, type) and any option phoenix does not manage.
func nicValue(n spec.NIC, observed string) string {
	parts := propString(observed)
	for _, k := range []string{"name", "bridge", "ip", "gw", "tag"} {
		delete(parts, k)
	}
	parts["name"], parts["bridge"] = n.Name, n.Bridge
	if n.IP != "" {
		parts["ip"] = n.IP
	}
	if n.Gateway != "" {
		parts["gw"] = n.Gateway
	}
	if n.VLAN != nil {
		parts["tag"] = strconv.Itoa(*n.VLAN)
	}
	return printPropString(parts, "name", "bridge", "gw", "hwaddr", "ip", "tag", "type")
}

// nicManaged compares the managed parts of two netN values.
func nicManaged(v string) string {
	p := propString(v)
	return strings.Join([]string{p["name"], p["bridge"], p["ip"], p["gw"], p["tag"]}, "|")
}

// rootfsGiB reads size=NG (or T, M) from a rootfs value, in GiB.
func rootfsGiB(v string) (int, bool) {
	size := propString(v)["size"]
	if size == "" {
		return 0, false
	}
	unit := size[len(size)-1]
	n, err := strconv.ParseFloat(strings.TrimRight(size, "KMGT"), 64)
	if err != nil {
		return 0, false
	}
	switch unit {
	case 'T':
		n *= 1024
	case 'M':
		n /= 1024
	case 'K':
		n /= 1024 * 1024
	}
	return int(n + 0.5), true
}

// configDiff lists the changes that bring an observed config to the desired
// one. Devices and features flags are merged: entries that are not phoenix's
// are kept. The result sets and deletes keys; a disk that should grow is
// returned separately, a disk that should shrink is an error.
func configDiff(d desired, cfg Config) (fields []FieldChange, growTo int, errs []Problem) {
	v := cfg.Values
	for _, k := range slices.Sorted(maps.Keys(d.options)) {
		want, have := d.options[k], v[k]
		switch k {
		case "onboot", "protection":
			if have == "" {
				have = "0"
			}
		case "tags":
			have = strings.Join(spec.NormalizeTags([]string{have}), ";")
		}
		if want != have {
			fields = append(fields, FieldChange{Key: k, Before: v[k], After: want})
		}
	}
	if len(d.features) > 0 {
		parts := propString(v["features"])
		changed := false
		for k, want := range d.features {
			if parts[k] != want {
				parts[k], changed = want, true
			}
		}
		if changed {
			fields = append(fields, FieldChange{Key: "features", Before: v["features"], After: printPropString(parts)})
		}
	}
	if d.nics != nil {
		for i, n := range d.nics {
			k := fmt.Sprintf("net%d", i)
			if want := nicValue(n, v[k]); nicManaged(want) != nicManaged(v[k]) {
				fields = append(fields, FieldChange{Key: k, Before: v[k], After: want})
			}
		}
		for _, i := range indexedKeys(v, "net") {
			if k := fmt.Sprintf("net%d", i); i >= len(d.nics) {
				fields = append(fields, FieldChange{Key: k, Before: v[k]})
			}
		}
	}
	fields = append(fields, deviceDiff(d.devices, d.deviceValues, v)...)
	if have, ok := rootfsGiB(v["rootfs"]); ok {
		switch {
		case d.diskGiB > have:
			growTo = d.diskGiB
		case d.diskGiB < have:
			errs = append(errs, problem(ProblemSpec, "the disk is %d GiB and the spec asks for %d GiB: disks cannot shrink", have, d.diskGiB))
		}
	}
	return fields, growTo, errs
}

// devKeys are dev0..dev255, the keys Proxmox allows for device passthrough.
var devKeys = func() (k [256]string) {
	for i := range k {
		k[i] = "dev" + strconv.Itoa(i)
	}
	return k
}()

// indexedKeys returns the indices of the prefixN keys in a config, ascending.
func indexedKeys(v map[string]string, prefix string) []int {
	var out []int
	for k := range v {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if i, err := strconv.Atoi(rest); err == nil && i >= 0 && i < len(devKeys) && strconv.Itoa(i) == rest {
				out = append(out, i)
			}
		}
	}
	slices.Sort(out)
	return out
}

// deviceDiff keeps the dev entries phoenix wants, at their current index when
// they have one, removes NVIDIA entries it no longer wants (such as those a
// clone inherited for GPUs it is not assigned), and adds the missing ones at
// the lowest free indices.
func deviceDiff(want []string, values map[string]string, v map[string]string) []FieldChange {
	wanted := map[string]bool{}
	for _, p := range want {
		wanted[p] = true
	}
	value := func(p string) string {
		if val, ok := values[p]; ok {
			return val
		}
		return p
	}
	used := map[int]bool{}
	have := map[string]bool{}
	var out []FieldChange
	for _, i := range indexedKeys(v, "dev") {
		k := devKeys[i]
		val := v[k]
		used[i] = true
		path := devicePath(val)
		switch {
		case !nvidiaDevice.MatchString(path):
		case wanted[path] && !have[path]:
			have[path] = true
			if !sameDevice(val, value(path)) {
				// Another mode or group: an existing devN changes, which a
				// running container takes at its next start.
				out = append(out, FieldChange{Key: k, Before: val, After: value(path)})
			}
		default:
			// The freed index is not reused in the same change: Proxmox
			// refuses to set and delete one key at once.
			out = append(out, FieldChange{Key: k, Before: val})
		}
	}
	next := 0
	for _, p := range want {
		if have[p] {
			continue
		}
		for used[next] {
			next++
		}
		used[next] = true
		out = append(out, FieldChange{Key: devKeys[next], After: value(p)})
	}
	return out
}

// devicePath is the path of a devN value ("/dev/nvidia0,mode=0666").
func devicePath(v string) string {
	parts := propString(v)
	if p := parts["path"]; p != "" {
		return p
	}
	return parts[""]
}

// sameDevice compares two devN values as Proxmox reads them: the path, and
// the mode (octal, however written), uid, gid and deny-write, absent equal to
// Proxmox's defaults.
func sameDevice(a, b string) bool {
	pa, pb := propString(a), propString(b)
	norm := func(p map[string]string) string {
		mode := p["mode"]
		if m, err := strconv.ParseUint(mode, 8, 32); err == nil {
			mode = strconv.FormatUint(m, 8)
		}
		return strings.Join([]string{cmp.Or(p["path"], p[""]), mode, cmp.Or(p["uid"], "0"), cmp.Or(p["gid"], "0"), cmp.Or(p["deny-write"], "0")}, "|")
	}
	return norm(pa) == norm(pb)
}
