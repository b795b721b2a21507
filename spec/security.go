package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Security is a container's security settings: Proxmox's features flags,
// and what Proxmox takes only in the container's config file
// (/etc/pve/lxc/VMID.conf): the AppArmor profile, custom id maps and other
// raw lxc.* keys. Every field inherits on its own (features flag by flag,
// rawLXC key by key): unset takes the template's; an explicit empty value
// clears it.
//
// phoenix owns exactly the raw keys the resolved spec names (apparmor names
// lxc.apparmor.profile, idMap lxc.idmap, rawLXC its keys): for each, the
// config file ends up with exactly the spec's lines, none for an empty
// value. Every other lxc.* line is left as it is.
type Security struct {
	// Features are Proxmox's features flags. A flag set here is phoenix's
	// (false clears it); a flag left out is left as it is.
	Features *ContainerFeatures `json:"features,omitempty"`
	// AppArmor is the AppArmor profile (lxc.apparmor.profile): unconfined,
	// generated, or the name of a profile loaded on the node. An empty
	// string removes the line (Proxmox's generated profile).
	AppArmor *string `json:"apparmor,omitempty"`
	// IDMap maps container ids to other host ids than the unprivileged
	// container's default (container id N is host id 100000+N). phoenix
	// writes the complete lxc.idmap lines around these ranges. An explicit
	// empty list removes the lines (the default map).
	IDMap []IDMapping `json:"idMap,omitempty"`
	// RawLXC are other raw lxc.* keys, each with its lines' values, in
	// order. Only keys Proxmox accepts in a config file are allowed; an
	// empty list removes the key's lines.
	RawLXC map[string][]string `json:"rawLXC,omitempty"`
}

// ContainerFeatures are Proxmox's features option. Proxmox lets only
// root@pam change flags other than nesting (phoenix then uses pct set on the
// node), and on a privileged container any flag.
type ContainerFeatures struct {
	// Nesting allows nested containers (systemd and docker need it).
	Nesting *bool `json:"nesting,omitempty"`
	// Keyctl allows the keyctl() system call (unprivileged containers; docker needs it).
	Keyctl *bool `json:"keyctl,omitempty"`
	// Fuse allows FUSE file systems.
	Fuse *bool `json:"fuse,omitempty"`
	// Mknod allows unprivileged containers to make some device nodes.
	Mknod *bool `json:"mknod,omitempty"`
	// ForceRwSys mounts /sys read-write in unprivileged containers.
	ForceRwSys *bool `json:"forceRwSys,omitempty"`
	// Mount are the file system types the container may mount (nfs,
	// cifs, ...). An explicit empty list clears them.
	Mount []string `json:"mount,omitempty"`
}

// IDMapping maps size ids from container to host, for uids, gids or both.
type IDMapping struct {
	// Type is uid, gid or both.
	Type string `json:"type"`
	// Container is the first id inside the container, 0..65535.
	Container int `json:"container"`
	// Host is the first id on the node it maps to. root on the node must
	// be allowed it in /etc/subuid or /etc/subgid.
	Host int `json:"host"`
	// Size is how many ids are mapped (default 1).
	Size int `json:"size,omitempty"`
}

// The unprivileged container's default map (pve-container src/PVE/LXC.pm,
// parse_id_maps): container ids 0..65535 are host ids 100000..165535.
const (
	DefaultIDMapHost = 100000
	IDMapIDs         = 65536
)

// The flag names of Proxmox's features option (pve-container
// src/PVE/LXC/Config.pm, $features_desc), as the option spells them.
const (
	FlagNesting    = "nesting"
	FlagKeyctl     = "keyctl"
	FlagFuse       = "fuse"
	FlagMknod      = "mknod"
	FlagForceRwSys = "force_rw_sys"
	FlagMount      = "mount"
)

// Flags are the flags the spec sets, by Proxmox's names: "1" for true, ""
// for false (phoenix removes the flag: Proxmox's default is off); mount is
// its fstype list joined with ";" ("" clears it).
func (f *ContainerFeatures) Flags() map[string]string {
	out := map[string]string{}
	if f == nil {
		return out
	}
	for name, v := range map[string]*bool{FlagNesting: f.Nesting, FlagKeyctl: f.Keyctl, FlagFuse: f.Fuse, FlagMknod: f.Mknod, FlagForceRwSys: f.ForceRwSys} {
		if v != nil {
			out[name] = ""
			if *v {
				out[name] = "1"
			}
		}
	}
	if f.Mount != nil {
		out[FlagMount] = strings.Join(f.Mount, ";")
	}
	return out
}

// RawLines are the raw lxc.* lines the security settings own, by key: the
// values the config file must hold for each key, in order (none: no line).
// unprivileged says whether the container is, which an id map needs.
func (s *Security) RawLines() map[string][]string {
	out := map[string][]string{}
	if s == nil {
		return out
	}
	if s.AppArmor != nil {
		out["lxc.apparmor.profile"] = []string{}
		if *s.AppArmor != "" {
			out["lxc.apparmor.profile"] = []string{*s.AppArmor}
		}
	}
	if s.IDMap != nil {
		out["lxc.idmap"] = IDMapLines(s.IDMap)
	}
	for k, vs := range s.RawLXC {
		out[k] = slices.Clone(vs)
	}
	return out
}

// IDMapLines are the complete lxc.idmap values for custom mappings: every
// container id 0..65535 of each type is mapped, the custom ranges where
// they are and the rest as in the default map (host 100000+id), so that the
// container's files stay its own. No mappings: no lines (the default map).
func IDMapLines(ms []IDMapping) []string {
	if len(ms) == 0 {
		return []string{}
	}
	var out []string
	for _, t := range []string{"u", "g"} {
		var rs []IDMapping
		for _, m := range ms {
			if m.Type == "both" || m.Type[:1] == t {
				rs = append(rs, m)
			}
		}
		slices.SortFunc(rs, func(a, b IDMapping) int { return a.Container - b.Container })
		next := 0
		for _, m := range rs {
			if m.Container > next {
				out = append(out, fmt.Sprintf("%s %d %d %d", t, next, DefaultIDMapHost+next, m.Container-next))
			}
			out = append(out, fmt.Sprintf("%s %d %d %d", t, m.Container, m.Host, m.size()))
			next = m.Container + m.size()
		}
		if next < IDMapIDs {
			out = append(out, fmt.Sprintf("%s %d %d %d", t, next, DefaultIDMapHost+next, IDMapIDs-next))
		}
	}
	return out
}

func (m IDMapping) size() int {
	if m.Size == 0 {
		return 1
	}
	return m.Size
}

// rawLXCKeys are the keys pve-container accepts in a config file
// (src/PVE/LXC/Config.pm, $valid_lxc_conf_keys with the value 1), besides
// the lxc.cgroup2.*, lxc.prlimit.* and lxc.net.* families
// (is_valid_lxc_conf_key). Any other lxc.* line makes the config one
// Proxmox no longer parses ("unable to parse config").
var rawLXCKeys = []string{
	"lxc.apparmor.profile", "lxc.apparmor.allow_incomplete", "lxc.apparmor.allow_nesting", "lxc.apparmor.raw",
	"lxc.selinux.context", "lxc.include", "lxc.arch", "lxc.uts.name",
	"lxc.signal.halt", "lxc.signal.reboot", "lxc.signal.stop",
	"lxc.init.cmd", "lxc.init.cwd", "lxc.init.uid", "lxc.init.gid", "lxc.init.groups",
	"lxc.pty.max", "lxc.console.logfile", "lxc.console.path", "lxc.tty.max", "lxc.devtty.dir",
	"lxc.hook.autodev", "lxc.autodev", "lxc.kmsg",
	"lxc.mount.fstab", "lxc.mount.entry", "lxc.mount.auto", "lxc.rootfs.mount",
	"lxc.cap.drop", "lxc.cap.keep",
	"lxc.seccomp.profile", "lxc.seccomp.notify.proxy", "lxc.seccomp.notify.cookie",
	"lxc.idmap",
	"lxc.hook.pre-start", "lxc.hook.pre-mount", "lxc.hook.mount", "lxc.hook.start", "lxc.hook.stop",
	"lxc.hook.post-stop", "lxc.hook.clone", "lxc.hook.destroy", "lxc.hook.version",
	"lxc.log.level", "lxc.log.file", "lxc.start.auto", "lxc.start.delay", "lxc.start.order",
	"lxc.group", "lxc.environment", "lxc.environment.runtime", "lxc.environment.hooks",
	"lxc.sysctl.fs.mqueue", "lxc.sysctl.kernel.msgmax", "lxc.sysctl.kernel.msgmnb", "lxc.sysctl.kernel.msgmni",
	"lxc.sysctl.kernel.sem", "lxc.sysctl.kernel.shmall", "lxc.sysctl.kernel.shmmax", "lxc.sysctl.kernel.shmmni",
	"lxc.sysctl.kernel.shm_rmid_forced",
}

// rawLXCRefused are keys Proxmox names with a reason of its own, and keys
// phoenix has a field for.
var rawLXCRefused = map[string]string{
	// pve-container's own messages (src/PVE/LXC/Config.pm).
	"lxc.rootfs.path":    "lxc.rootfs.path is auto generated from rootfs",
	"lxc.rootfs.options": `lxc.rootfs.options is not supported, please use mount point options in the "rootfs" key`,
	// parse_pct_config moves these to the env option: they never show as raw lines.
	"lxc.environment.runtime": "Proxmox keeps lxc.environment.runtime in its env option, not as a raw line",
	"lxc.apparmor.profile":    "set the AppArmor profile with security.apparmor",
	"lxc.idmap":               "set id maps with security.idMap, from which phoenix writes the complete lxc.idmap lines",
}

// rawLXCDeprecated are keys pve-container accepts with a warning and LXC
// 3.0 and later refuse (src/PVE/LXC/Config.pm, $deprecated_lxc_conf_keys).
var rawLXCDeprecated = map[string]string{
	"lxc.aa_profile": "lxc.apparmor.profile", "lxc.aa_allow_incomplete": "lxc.apparmor.allow_incomplete",
	"lxc.console": "lxc.console.path", "lxc.devttydir": "lxc.tty.dir", "lxc.haltsignal": "lxc.signal.halt",
	"lxc.rebootsignal": "lxc.signal.reboot", "lxc.stopsignal": "lxc.signal.stop", "lxc.id_map": "lxc.idmap",
	"lxc.init_cmd": "lxc.init.cmd", "lxc.loglevel": "lxc.log.level", "lxc.logfile": "lxc.log.file",
	"lxc.mount": "lxc.mount.fstab", "lxc.pts": "lxc.pty.max", "lxc.se_context": "lxc.selinux.context",
	"lxc.seccomp": "lxc.seccomp.profile", "lxc.tty": "lxc.tty.max", "lxc.utsname": "lxc.uts.name",
}

var (
	// rawLXCKey is the key part of parse_pct_config's raw line pattern.
	rawLXCKey = regexp.MustCompile(`^lxc\.[a-z0-9_\-.]+$`)
	// A profile name: no spaces, nothing a config line cannot hold.
	appArmorProfile = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)
	// A file system type for features' mount list ($features_desc's
	// pattern without its separators).
	fsType = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)
	// Raw lines that pass NVIDIA devices are phoenix's gpus field's job.
	nvidiaCgroupRule = regexp.MustCompile(`^[cab*]\s+195:`)
)

// CheckRawLXCKey reports why Proxmox does not take a raw key in a config
// file, or "" when it does. It follows is_valid_lxc_conf_key.
func CheckRawLXCKey(key string) string {
	switch {
	case !rawLXCKey.MatchString(key):
		return fmt.Sprintf("%q is not a raw lxc key: lxc. followed by lower-case letters, digits and . _ -", key)
	case rawLXCRefused[key] != "":
		return rawLXCRefused[key]
	case rawLXCDeprecated[key] != "":
		return fmt.Sprintf("%s was renamed to %s, and LXC no longer reads the old name", key, rawLXCDeprecated[key])
	case strings.HasPrefix(key, "lxc.limit."):
		return fmt.Sprintf("lxc.limit.* was renamed to lxc.prlimit.*: write %s", "lxc.prlimit."+strings.TrimPrefix(key, "lxc.limit."))
	case strings.HasPrefix(key, "lxc.cgroup."):
		return "lxc.cgroup.* is for cgroup v1, which Proxmox VE 7 and later do not run: write lxc.cgroup2.*"
	case slices.Contains(rawLXCKeys, key),
		strings.HasPrefix(key, "lxc.cgroup2."), strings.HasPrefix(key, "lxc.prlimit."), strings.HasPrefix(key, "lxc.net."):
		return ""
	}
	return fmt.Sprintf("Proxmox does not accept %s in a container's config (it would no longer parse): see the keys pve-container allows", key)
}

// security checks a guest's security block on its own.
func (v *validator) security(g *Guest, bad func(field, format string, args ...any)) {
	sec := g.Spec.Security
	if sec == nil {
		return
	}
	if f := sec.Features; f != nil {
		seen := map[string]bool{}
		for i, t := range f.Mount {
			field := fmt.Sprintf("spec.security.features.mount[%d]", i)
			switch {
			case !fsType.MatchString(t):
				bad(field, "%q is not a file system type: letters, digits and _ (nfs, cifs, ...)", t)
			case seen[t]:
				bad(field, "%s is listed twice", t)
			}
			seen[t] = true
		}
	}
	if a := sec.AppArmor; a != nil && *a != "" && !appArmorProfile.MatchString(*a) {
		bad("spec.security.apparmor", "%q is not an AppArmor profile name: unconfined, generated, or a profile's name without spaces", *a)
	}
	checkIDMap(sec.IDMap, bad)
	for _, k := range sortedKeys(sec.RawLXC) {
		field := "spec.security.rawLXC." + k
		if why := CheckRawLXCKey(k); why != "" {
			bad(field, "%s", why)
			continue
		}
		for i, val := range sec.RawLXC[k] {
			f := fmt.Sprintf("%s[%d]", field, i)
			switch {
			case strings.ContainsAny(val, "\n\r"):
				bad(f, "a raw line's value is one line")
			case strings.TrimSpace(val) != val || val == "":
				// parse_pct_config trims a value: one with spaces around
				// it would never read back as written.
				bad(f, "%q: a value without spaces around it, not empty (an empty list removes the key's lines)", val)
			case k == "lxc.cgroup2.devices.allow" && nvidiaCgroupRule.MatchString(val),
				k == "lxc.mount.entry" && strings.HasPrefix(val, "/dev/nvidia"):
				bad(f, "NVIDIA devices are passed with spec.gpus, which reads the node's real device numbers; raw lines would pass every GPU")
			}
		}
	}
}

// checkIDMap checks custom id mappings: each inside the container's 65536
// ids, none overlapping another of its type on either side, and none
// taking host ids the default part of the map uses.
func checkIDMap(ms []IDMapping, bad func(field, format string, args ...any)) {
	type span struct{ first, end, i int }
	sides := map[string][]span{}
	for i, m := range ms {
		field := fmt.Sprintf("spec.security.idMap[%d]", i)
		ok := true
		switch m.Type {
		case "uid", "gid", "both":
		default:
			bad(field+".type", "want uid, gid or both, got %q", m.Type)
			ok = false
		}
		switch n := m.size(); {
		case m.Size < 0:
			bad(field+".size", "size is at least 1, got %d", m.Size)
			ok = false
		case m.Container < 0 || m.Container+n > IDMapIDs:
			bad(field+".container", "container ids %d..%d are outside 0..%d", m.Container, m.Container+n-1, IDMapIDs-1)
			ok = false
		case m.Host < 0 || m.Host+n > 1<<32-1:
			bad(field+".host", "host ids %d..%d are outside 0..%d", m.Host, m.Host+n-1, uint32(1<<32-2))
			ok = false
		}
		if !ok {
			continue
		}
		for _, t := range []string{"uid", "gid"} {
			if m.Type == t || m.Type == "both" {
				sides["container "+t] = append(sides["container "+t], span{m.Container, m.Container + m.size(), i})
				sides["host "+t] = append(sides["host "+t], span{m.Host, m.Host + m.size(), i})
			}
		}
	}
	for _, side := range slices.Sorted(maps.Keys(sides)) {
		spans := sides[side]
		slices.SortFunc(spans, func(a, b span) int { return a.first - b.first })
		for j := 1; j < len(spans); j++ {
			if prev, cur := spans[j-1], spans[j]; prev.end > cur.first {
				// validate_id_maps' check (pve-container src/PVE/LXC.pm).
				bad(fmt.Sprintf("spec.security.idMap[%d]", cur.i), "%s %d is also mapped by spec.security.idMap[%d]", side, cur.first, prev.i)
			}
		}
	}
	// The default part of the map gives container id N host id 100000+N:
	// a custom range there would map one host id twice.
	for _, side := range []string{"uid", "gid"} {
		for _, s := range sides["host "+side] {
			if s.end > DefaultIDMapHost && s.first < DefaultIDMapHost+IDMapIDs {
				for id := max(s.first, DefaultIDMapHost); id < min(s.end, DefaultIDMapHost+IDMapIDs); id++ {
					if !slices.ContainsFunc(sides["container "+side], func(c span) bool { return id-DefaultIDMapHost >= c.first && id-DefaultIDMapHost < c.end }) {
						bad(fmt.Sprintf("spec.security.idMap[%d].host", s.i), "host %s %d is the default map's for container %s %d: map that id too, or use host ids outside %d..%d",
							side, id, side, id-DefaultIDMapHost, DefaultIDMapHost, DefaultIDMapHost+IDMapIDs-1)
						break
					}
				}
			}
		}
	}
}

// securityResolved checks what depends on the lineage.
func securityResolved(r *Resolved, bad func(field, format string, args ...any)) {
	sec := r.Settings.Security
	if sec == nil {
		return
	}
	if len(sec.IDMap) > 0 && !r.Settings.Unprivileged {
		bad("spec.security.idMap", "id maps are for unprivileged containers; this one is privileged (unprivileged: false)")
	}
	if slices.Contains(r.Effective, FeatureDocker) && sec.Features != nil {
		for name, v := range map[string]*bool{"nesting": sec.Features.Nesting, "keyctl": sec.Features.Keyctl} {
			if v != nil && !*v {
				bad("spec.security.features."+name, "feature docker needs %s: true (it is set for docker whatever the spec says)", name)
			}
		}
	}
}

// overlaySecurity lays a document's security block over the one it
// inherits: each flag, the profile, the id map and each raw key on its own.
func overlaySecurity(s *Settings, sec *Security) {
	out := cloneSecurity(s.Security)
	if sec == nil {
		// A clone's settings are its own, not its template's.
		s.Security = out
		return
	}
	if out == nil {
		out = &Security{}
	}
	if f := sec.Features; f != nil {
		if out.Features == nil {
			out.Features = &ContainerFeatures{}
		}
		for _, p := range []struct{ dst, src **bool }{
			{&out.Features.Nesting, &f.Nesting}, {&out.Features.Keyctl, &f.Keyctl}, {&out.Features.Fuse, &f.Fuse},
			{&out.Features.Mknod, &f.Mknod}, {&out.Features.ForceRwSys, &f.ForceRwSys},
		} {
			if *p.src != nil {
				b := **p.src
				*p.dst = &b
			}
		}
		if f.Mount != nil {
			out.Features.Mount = slices.Clone(f.Mount)
		}
	}
	if sec.AppArmor != nil {
		a := *sec.AppArmor
		out.AppArmor = &a
	}
	if sec.IDMap != nil {
		out.IDMap = slices.Clone(sec.IDMap)
	}
	if sec.RawLXC != nil && out.RawLXC == nil {
		out.RawLXC = map[string][]string{}
	}
	for k, vs := range sec.RawLXC {
		out.RawLXC[k] = slices.Clone(vs)
	}
	s.Security = out
}

// cloneSecurity is a deep copy; nil stays nil.
func cloneSecurity(sec *Security) *Security {
	if sec == nil {
		return nil
	}
	out := &Security{IDMap: slices.Clone(sec.IDMap)}
	if sec.AppArmor != nil {
		a := *sec.AppArmor
		out.AppArmor = &a
	}
	if f := sec.Features; f != nil {
		c := ContainerFeatures{Mount: slices.Clone(f.Mount)}
		for _, p := range []struct{ dst, src **bool }{
			{&c.Nesting, &f.Nesting}, {&c.Keyctl, &f.Keyctl}, {&c.Fuse, &f.Fuse}, {&c.Mknod, &f.Mknod}, {&c.ForceRwSys, &f.ForceRwSys},
		} {
			if *p.src != nil {
				b := **p.src
				*p.dst = &b
			}
		}
		out.Features = &c
	}
	if sec.RawLXC != nil {
		out.RawLXC = map[string][]string{}
		for k, vs := range sec.RawLXC {
			out.RawLXC[k] = slices.Clone(vs)
		}
	}
	return out
}

// securityDescriptions and securityFieldRules document and check the
// security block in the JSON Schema (schema.go merges them in).
var securityDescriptions = map[string]string{
	"GuestSpec.Security": "Security is the container's features flags, AppArmor profile, id maps and raw lxc.* keys. " +
		"Every field inherits on its own (features flag by flag, rawLXC key by key); an explicit empty value clears it. phoenix owns exactly the raw keys the spec names; other lxc.* lines are left as they are.",
	"Security.Features": "Features are Proxmox's features flags. A flag set here is phoenix's (false clears it); a flag left out is left as it is. " +
		"Only root@pam may change flags other than nesting (and any flag of a privileged container) through the API: with another session phoenix uses pct set on the node.",
	"Security.AppArmor": "AppArmor is the AppArmor profile (lxc.apparmor.profile): unconfined, generated, or the name of a profile loaded on the node. " +
		"An empty string removes the line (Proxmox's generated profile). Written to /etc/pve/lxc/VMID.conf on the node.",
	"Security.IDMap": "IDMap maps container ids to other host ids than the unprivileged container's default (container id N is host id 100000+N). " +
		"phoenix writes the complete lxc.idmap lines around these ranges, and the plan checks that root may use the host ids (/etc/subuid, /etc/subgid). An explicit empty list removes the lines.",
	"Security.RawLXC": "RawLXC are other raw lxc.* keys, each with its lines' values, in order. Only keys Proxmox accepts in a config file are allowed " +
		"(lxc.apparmor.profile and lxc.idmap have fields of their own); an empty list removes the key's lines.",
	"ContainerFeatures.Nesting":    "Nesting allows nested containers (systemd and docker need it).",
	"ContainerFeatures.Keyctl":     "Keyctl allows the keyctl() system call (unprivileged containers; docker needs it).",
	"ContainerFeatures.Fuse":       "Fuse allows FUSE file systems.",
	"ContainerFeatures.Mknod":      "Mknod allows unprivileged containers to make some device nodes.",
	"ContainerFeatures.ForceRwSys": "ForceRwSys mounts /sys read-write in unprivileged containers (force_rw_sys).",
	"ContainerFeatures.Mount":      "Mount are the file system types the container may mount (nfs, cifs, ...). An explicit empty list clears them.",
	"IDMapping.Type":               "Type is uid, gid or both.",
	"IDMapping.Container":          "Container is the first id inside the container, 0..65535.",
	"IDMapping.Host":               "Host is the first id on the node it maps to. root on the node must be allowed it in /etc/subuid or /etc/subgid.",
	"IDMapping.Size":               "Size is how many ids are mapped (default 1).",
}

var securityFieldRules = map[string][]rule{
	"GuestSpec.Security":      {notNull},
	"Security.AppArmor":       {optPattern(appArmorProfile)},
	"Security.IDMap":          {items(notNull)},
	"Security.RawLXC":         {keys(pattern(rawLXCKey))},
	"ContainerFeatures.Mount": {items(pattern(fsType)), unique},
	"IDMapping.Type":          {required, oneOfStrings("uid", "gid", "both")},
	"IDMapping.Container":     {required, between(0, IDMapIDs-1)},
	"IDMapping.Host":          {required, between(0, 1<<32-2)},
	"IDMapping.Size":          {between(1, IDMapIDs)},
}

func init() {
	maps.Copy(fieldDescriptions, securityDescriptions)
	maps.Copy(fieldRules, securityFieldRules)
}
