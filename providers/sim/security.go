package sim

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Security settings as Proxmox VE and LXC treat them.
//
//   - Raw lxc.* keys cannot be set through the API: PUT .../config's schema
//     has no such parameter (the simulator's schema check answers 400), so
//     they live only in /etc/pve/lxc/N.conf, which root on the node edits.
//   - parse_pct_config (pve-container src/PVE/LXC/Config.pm) keeps a raw
//     line only when is_valid_lxc_conf_key accepts its key: the keys of
//     $valid_lxc_conf_keys with value 1 and the lxc.cgroup2.*, lxc.prlimit.*
//     and lxc.net.* families (lxc.cgroup.* and renamed keys with a warning).
//     Any other line is reported ("vm N - unable to parse config: LINE")
//     and dropped when the file is read, so the API never shows it and the
//     next write of the config loses it.
//   - Raw lines take effect when the container starts: update_lxc_config
//     (src/PVE/LXC.pm) copies them into the LXC config vm_start hands to
//     lxc-start. They never wait in the pending section.
//   - A custom lxc.idmap replaces the default map (u/g 0 100000 65536).
//     LXC writes it with newuidmap and newgidmap, which allow root only the
//     ranges of /etc/subuid and /etc/subgid: any other range fails the start
//     (lxc_map_ids, "newgidmap failed to write mapping"), and vm_start dies
//     with "startup for container 'N' failed".
//   - check_ct_modify_config_perm (src/PVE/LXC.pm): only root@pam changes
//     features flags other than nesting, and any flag of a privileged
//     container (checkModifyPerm).

// validRawKeys are $valid_lxc_conf_keys with the value 1
// (pve-container src/PVE/LXC/Config.pm).
var validRawKeys = map[string]bool{}

func init() {
	for k := range strings.FieldsSeq(`lxc.apparmor.profile lxc.apparmor.allow_incomplete lxc.apparmor.allow_nesting
		lxc.apparmor.raw lxc.selinux.context lxc.include lxc.arch lxc.uts.name lxc.signal.halt lxc.signal.reboot
		lxc.signal.stop lxc.init.cmd lxc.init.cwd lxc.init.uid lxc.init.gid lxc.init.groups lxc.pty.max
		lxc.console.logfile lxc.console.path lxc.tty.max lxc.devtty.dir lxc.hook.autodev lxc.autodev lxc.kmsg
		lxc.mount.fstab lxc.mount.entry lxc.mount.auto lxc.rootfs.mount lxc.cap.drop lxc.cap.keep
		lxc.seccomp.profile lxc.seccomp.notify.proxy lxc.seccomp.notify.cookie lxc.idmap lxc.hook.pre-start
		lxc.hook.pre-mount lxc.hook.mount lxc.hook.start lxc.hook.stop lxc.hook.post-stop lxc.hook.clone
		lxc.hook.destroy lxc.hook.version lxc.log.level lxc.log.file lxc.start.auto lxc.start.delay
		lxc.start.order lxc.group lxc.environment lxc.environment.runtime lxc.environment.hooks
		lxc.sysctl.fs.mqueue lxc.sysctl.kernel.msgmax lxc.sysctl.kernel.msgmnb lxc.sysctl.kernel.msgmni
		lxc.sysctl.kernel.sem lxc.sysctl.kernel.shmall lxc.sysctl.kernel.shmmax lxc.sysctl.kernel.shmmni
		lxc.sysctl.kernel.shm_rmid_forced`) {
		validRawKeys[k] = true
	}
}

// parsedRawKey reports whether parse_pct_config keeps a raw line of key.
func parsedRawKey(key string) bool {
	return validRawKeys[key] || strings.HasPrefix(key, "lxc.cgroup2.") || strings.HasPrefix(key, "lxc.prlimit.") ||
		strings.HasPrefix(key, "lxc.net.") || strings.HasPrefix(key, "lxc.cgroup.") || strings.HasPrefix(key, "lxc.limit.")
}

// rawLine is parse_pct_config's pattern for a raw line: "key: value" or
// "key = value", the value trimmed.
var rawLine = regexp.MustCompile(`^(lxc\.[a-z0-9_\-.]+)(?::|\s*=)\s*(.*?)\s*$`)

// setRawLXC models phoenix's edit of a container's config file on the node
// (its script takes Proxmox's config lock: here the cluster lock): the
// owned keys' lines go from the current section and the given ones follow.
// Lines Proxmox does not parse are dropped, as reading the file drops them.
func (c *cluster) setRawLXC(n *node, x *script, stderr io.Writer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	vmid, _ := strconv.Atoi(x.env["PHOENIX_VMID"])
	g := c.guests[vmid]
	if g == nil || g.node != n.Name {
		fmt.Fprintf(stderr, "Configuration file '/etc/pve/lxc/%d.conf' does not exist\n", vmid)
		c.journal.add(c.now(), Event{Node: n.Name, VMID: vmid, Kind: "exec", Name: x.name, OK: false, Detail: "no such container"})
		return 2
	}
	owned := map[string]bool{}
	for k := range strings.SplitSeq(x.env["PHOENIX_KEYS"], "\n") {
		owned[k] = true
	}
	g.conf.lxc = slices.DeleteFunc(g.conf.lxc, func(l [2]string) bool { return owned[l[0]] })
	detail := ""
	for l := range strings.SplitSeq(x.env["PHOENIX_LINES"], "\n") {
		m := rawLine.FindStringSubmatch(l)
		switch {
		case m == nil:
		case !parsedRawKey(m[1]):
			detail = fmt.Sprintf("vm %d - unable to parse config: %s", vmid, l)
		default:
			g.conf.lxc = append(g.conf.lxc, [2]string{m[1], m[2]})
		}
	}
	c.journal.add(c.now(), Event{Node: n.Name, VMID: vmid, Kind: "exec", Name: x.name, OK: true, Detail: detail})
	return 0
}

// subIDRange is one "root:FIRST:COUNT" line of /etc/subuid or /etc/subgid.
type subIDRange struct{ first, count int }

// subIDs are root's ranges in the node's /etc/subuid (u) or /etc/subgid
// (g): a Proxmox VE install has root:100000:65536 in both.
func (n *node) subIDs(t string) []subIDRange {
	lines := n.SubUID
	if t == "g" {
		lines = n.SubGID
	}
	if lines == nil {
		lines = []string{"root:100000:65536"}
	}
	var out []subIDRange
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) != 3 || (f[0] != "root" && f[0] != "0") {
			continue
		}
		first, err1 := strconv.Atoi(f[1])
		count, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil {
			out = append(out, subIDRange{first, count})
		}
	}
	return out
}

// subIDs models phoenix's read of root's ranges (its phoenix/subids script).
func (c *cluster) subIDs(n *node, x *script, stdout io.Writer) int {
	c.mu.Lock()
	var b strings.Builder
	for _, t := range []string{"u", "g"} {
		for _, r := range n.subIDs(t) {
			fmt.Fprintf(&b, "%s %d %d\n", t, r.first, r.count)
		}
	}
	c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, OK: true})
	c.mu.Unlock()
	_, _ = io.WriteString(stdout, b.String())
	return 0
}

// idMapError is what a start meets when the container's lxc.idmap names
// host ids root may not map: newuidmap or newgidmap refuses the whole map.
func idMapError(n *node, lxc [][2]string) error {
	var maps []string
	bad := ""
	for _, l := range lxc {
		if l[0] != "lxc.idmap" {
			continue
		}
		f := strings.Fields(l[1])
		if len(f) != 4 || (f[0] != "u" && f[0] != "g") {
			continue
		}
		host, _ := strconv.Atoi(f[2])
		count, _ := strconv.Atoi(f[3])
		maps = append(maps, l[1])
		if bad == "" && !covered(n.subIDs(f[0]), host, count) {
			tool, kind := "newuidmap", "uid"
			if f[0] == "g" {
				tool, kind = "newgidmap", "gid"
			}
			bad = fmt.Sprintf(`lxc_map_ids: 3701 %s failed to write mapping "%s: %s range [%d-%d) -> [%d-%d) not allowed"`,
				tool, tool, kind, host, host+count, host, host+count)
		}
	}
	if bad == "" {
		return nil
	}
	return fmt.Errorf("%s: %s", bad, strings.Join(maps, ", "))
}

func covered(ranges []subIDRange, host, count int) bool {
	next, end := host, host+count
	for next < end {
		i := slices.IndexFunc(ranges, func(r subIDRange) bool { return next >= r.first && next < r.first+r.count })
		if i < 0 {
			return false
		}
		next = ranges[i].first + ranges[i].count
	}
	return true
}

// startIDMap fails a start (vzstart, vzreboot) whose id map root may not
// use, as vm_start does: LXC's error in the task log, then "startup for
// container 'N' failed".
func startIDMap(t *task, n *node, g *guest) error {
	if err := idMapError(n, g.conf.lxc); err != nil {
		if t != nil {
			t.logf("%v", err)
			t.logf("lxc_spawn: 1788 Failed to set up id mapping.")
		}
		return fmt.Errorf("startup for container '%d' failed", g.vmid)
	}
	return nil
}

// privilegedFeatures is check_ct_modify_config_perm's rule for a
// privileged container: any change of its features flags is root@pam's.
func privilegedFeatures(oldConf, set map[string]string) bool {
	unpriv, ok := set["unprivileged"]
	if !ok {
		unpriv = oldConf["unprivileged"]
	}
	return unpriv != "1"
}
