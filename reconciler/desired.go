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
	// mounts are the mpN mount points when the spec manages them (nil: it
	// does not).
	mounts []spec.Mount
	// firewallOn is the guest's firewall enabled in the spec: an interface
	// that does not say otherwise then has firewall=1.
	firewallOn bool
	// raw are the raw lxc.* keys phoenix owns (security.go), each with the
	// values the config file must hold; keys not here are left alone.
	raw map[string][]string
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
			"hostname": r.Hostname, "cores": strconv.Itoa(s.Cores), "memory": strconv.Itoa(s.MemoryMiB),
			"swap": strconv.Itoa(s.SwapMiB), "onboot": boolString(s.OnBoot), "protection": boolString(s.Protection),
			"tags": strings.Join(spec.NormalizeTags(append(slices.Clone(s.Tags), ManagedTag)), ";"),
		},
		features: map[string]string{}, nics: s.Network, diskGiB: s.DiskGiB, unprivileged: s.Unprivileged,
	}
	d.mounts = s.Mounts
	if st := s.Startup; st != nil {
		parts := map[string]string{}
		for k, v := range map[string]*int{"order": st.Order, "up": st.Up, "down": st.Down} {
			if v != nil {
				parts[k] = strconv.Itoa(*v)
			}
		}
		d.options["startup"] = printPropString(parts, "order", "up", "down")
	}
	if s.Nameservers != nil {
		d.options["nameserver"] = strings.Join(s.Nameservers, " ")
	}
	if s.SearchDomains != nil {
		d.options["searchdomain"] = strings.Join(s.SearchDomains, " ")
	}
	if fw := s.Firewall; fw != nil && fw.Enabled != nil && *fw.Enabled {
		d.firewallOn = true
	}
	applySecurity(&d, s.Security)
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
	case strings.HasPrefix(key, "mp"):
		return d.mounts != nil
	}
	return false
}

// createOptionsOf are the options a create request sets besides the disk:
// the spec's options, its NICs and its feature flags when any session may set
// them (nesting alone). What only root@pam may set follows in an update, so
// that the plan says the same whatever the session.
func createOptionsOf(d desired) map[string]string {
	opts := map[string]string{"unprivileged": boolString(d.unprivileged)}
	for k, v := range d.options {
		if v != "" { // an empty list to clear: nothing to clear yet
			opts[k] = v
		}
	}
	for i, n := range d.nics {
		opts["net"+strconv.Itoa(i)] = nicValue(n, "", d.firewallOn)
	}
	if flags := createFeatures(d); flags != "" {
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
// observed one (hwaddr, type) and any option phoenix does not manage. The
// keys the spec describes are phoenix's: one the spec leaves unset is
// removed, except hwaddr and type (Proxmox's choice stands unless the spec
// pins one) and firewall, which follows the guest's firewall when the NIC
// does not say (fwOn) and is otherwise left as it is.
func nicValue(n spec.NIC, observed string, fwOn bool) string {
	parts := propString(observed)
	for _, k := range []string{"name", "bridge", "ip", "gw", "tag", "ip6", "gw6", "mtu", "rate"} {
		delete(parts, k)
	}
	parts["name"], parts["bridge"] = n.Name, n.Bridge
	set := func(k, v string) {
		if v != "" {
			parts[k] = v
		}
	}
	set("ip", n.IP)
	set("gw", n.Gateway)
	set("ip6", n.IP6)
	set("gw6", n.Gateway6)
	set("hwaddr", n.HWAddr)
	set("type", n.Type)
	if n.VLAN != nil {
		parts["tag"] = strconv.Itoa(*n.VLAN)
	}
	if n.MTU != nil {
		parts["mtu"] = strconv.Itoa(*n.MTU)
	}
	if n.Rate != nil {
		parts["rate"] = strconv.FormatFloat(*n.Rate, 'f', -1, 64)
	}
	switch {
	case n.Firewall != nil && *n.Firewall, n.Firewall == nil && fwOn:
		parts["firewall"] = "1"
	case n.Firewall != nil:
		delete(parts, "firewall")
	}
	return printPropString(parts, "name", "bridge", "firewall", "gw", "gw6", "hwaddr", "ip", "ip6", "mtu", "rate", "tag", "type")
}

// sameNIC compares two netN values as Proxmox reads them: every option, the
// MAC address whatever its case, the rate as a number, and a flag that is 0
// the same as one that is absent.
func sameNIC(a, b string) bool {
	pa, pb := propString(a), propString(b)
	for _, p := range []map[string]string{pa, pb} {
		for _, flag := range []string{"firewall", "link_down", "host-managed"} {
			if p[flag] == "0" {
				delete(p, flag)
			}
		}
	}
	if len(pa) != len(pb) {
		return false
	}
	for k, va := range pa {
		vb, ok := pb[k]
		switch {
		case !ok:
			return false
		case k == "hwaddr":
			if !strings.EqualFold(va, vb) {
				return false
			}
		case k == "rate":
			fa, errA := strconv.ParseFloat(va, 64)
			fb, errB := strconv.ParseFloat(vb, 64)
			if errA != nil || errB != nil || fa != fb {
				return false
			}
		case va != vb:
			return false
		}
	}
	return true
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
		case "startup":
			// pve-startup-order: order, up and down in any order.
			have = printPropString(propString(have), "order", "up", "down")
		case "nameserver", "searchdomain":
			// Proxmox's address-list and dns-name-list: separated by
			// spaces, commas or semicolons.
			have = strings.Join(strings.FieldsFunc(have, func(r rune) bool { return r == ' ' || r == ',' || r == ';' }), " ")
		}
		if want != have {
			fields = append(fields, FieldChange{Key: k, Before: v[k], After: want})
		}
	}
	if after, changed := featuresChange(d.features, v["features"]); changed {
		fields = append(fields, FieldChange{Key: "features", Before: v["features"], After: after})
	}
	if d.nics != nil {
		for i, n := range d.nics {
			k := fmt.Sprintf("net%d", i)
			if want := nicValue(n, v[k], d.firewallOn); !sameNIC(want, v[k]) {
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
	fields = append(fields, rawDiff(d.raw, cfg.LXC)...)
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
