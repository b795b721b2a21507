package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Files and services inside a container, as phoenix writes and keeps them:
//
//	phoenix/stage-file (node)  $PHOENIX_STAGE: apply keeps standard input as the node's file, clean removes it
//	pct push --perms --user --group: the copy lands with its mode and owner, in a directory that exists
//	phoenix/file               $PHOENIX_FILE: prepare makes its directory, apply renames PATH.phoenix-new
//	                           over PATH, clean removes the copy
//	phoenix/inspect (check)    $PHOENIX_FILES $PHOENIX_SERVICES: what inspect.sh prints
//	phoenix/service (apply)    $SERVICE $ENABLE $RUN $RESTART: what service.sh does
//
// A container's disk knows its units' enablement (a clone copies it); its
// run knows which are active: a start starts the enabled ones, a stop ends
// them all. docker/engine and ollama/install enable and start their
// services, as their installers do.

// stageDir is where phoenix/stage-file keeps files on the node.
const stageDir = "/var/lib/phoenix/stage"

// maxStaged bounds what the simulator keeps of one staged file: beyond it
// the node's disk is full, as a real one is at some size.
const maxStaged = 64 << 20

// fileMeta is a file's mode and owner inside a container, as stat shows
// them. A file without one (a download) is root's, 0644.
type fileMeta struct {
	mode     uint64 // permission bits, setuid, setgid and sticky included
	uid, gid int
}

var rootFile = fileMeta{mode: 0o644}

// with and without return a changed copy of a map the disk holds: disks
// share these maps with their clones and snapshots (a shallow copy), so
// they are never written in place.
func with[K comparable, V any](m map[K]V, k K, v V) map[K]V {
	c := maps.Clone(m)
	if c == nil {
		c = map[K]V{}
	}
	c[k] = v
	return c
}

func without[K comparable, V any](m map[K]V, k K) map[K]V {
	if _, ok := m[k]; !ok {
		return m
	}
	c := maps.Clone(m)
	delete(c, k)
	return c
}

// A Debian or Ubuntu container's users and groups (base-passwd), and those
// the modelled installers add. pct push resolves --user and --group inside
// the container (getpwnam, getgrnam), and stat -c %U:%G names the ids.
var (
	passwd = map[string]int{"root": 0, "daemon": 1, "bin": 2, "sys": 3, "sync": 4, "games": 5, "man": 6, "lp": 7,
		"mail": 8, "news": 9, "uucp": 10, "proxy": 13, "www-data": 33, "backup": 34, "list": 38, "irc": 39, "_apt": 42,
		"nobody": 65534}
	groups = map[string]int{"root": 0, "daemon": 1, "bin": 2, "sys": 3, "adm": 4, "tty": 5, "disk": 6, "lp": 7,
		"mail": 8, "news": 9, "uucp": 10, "man": 12, "proxy": 13, "kmem": 15, "dialout": 20, "cdrom": 24, "sudo": 27,
		"audio": 29, "www-data": 33, "backup": 34, "operator": 37, "list": 38, "irc": 39, "src": 40, "shadow": 42,
		"utmp": 43, "video": 44, "plugdev": 46, "staff": 50, "games": 60, "users": 100, "render": 993, "nogroup": 65534}
	// ollama's install script adds a system user and group of its name.
	ollamaID = 999
)

func (d *disk) users() map[string]int {
	if d.ollama == "" {
		return passwd
	}
	return with(passwd, "ollama", ollamaID)
}

func (d *disk) groupIDs() map[string]int {
	if d.ollama == "" {
		return groups
	}
	return with(groups, "ollama", ollamaID)
}

// idName is what stat -c %U (or %G) prints for an id: its name, or UNKNOWN.
func idName(names map[string]int, id int) string {
	for n, i := range names {
		if i == id {
			return n
		}
	}
	return "UNKNOWN"
}

// standardDirs are the directories every container's root file system has.
var standardDirs = []string{"/", "/bin", "/boot", "/dev", "/etc", "/etc/apt", "/etc/apt/sources.list.d", "/etc/cron.d",
	"/etc/default", "/etc/profile.d", "/etc/ssh", "/etc/sysctl.d", "/etc/systemd", "/etc/systemd/system", "/home", "/lib",
	"/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib",
	"/usr/local", "/usr/local/bin", "/usr/local/etc", "/usr/local/lib", "/usr/local/sbin", "/usr/local/share",
	"/usr/sbin", "/usr/share", "/var", "/var/cache", "/var/lib", "/var/log", "/var/tmp"}

// isDir reports whether a directory exists in the container: a standard
// one, one an installer made, one phoenix/file prepare made (and its
// parents), or one holding a file.
func (d *disk) isDir(p string) bool {
	switch {
	case slices.Contains(standardDirs, p),
		d.docker && p == "/etc/docker",
		d.ollama != "" && (p == "/usr/share/ollama" || p == "/usr/share/ollama/.ollama"):
		return true
	}
	under := strings.TrimSuffix(p, "/") + "/"
	for q := range d.dirs {
		if q == p || strings.HasPrefix(q, under) {
			return true
		}
	}
	for f := range d.files {
		if strings.HasPrefix(f, under) {
			return true
		}
	}
	return false
}

func (d *disk) meta(p string) fileMeta {
	if m, ok := d.fileMeta[p]; ok {
		return m
	}
	return rootFile
}

// pctPerms reads pct push --perms as pct does: octal unless it says 0x,
// a 0 put in front of a value without one (pve-container
// src/PVE/CLI/pct.pm, push: "assume octal as default", then create_file's
// POSIX::strtoul($perms, 0), which must read the whole word).
func pctPerms(p string) (uint64, string) {
	if !strings.HasPrefix(p, "0") {
		p = "0" + p
	}
	base, digits := 8, p[1:]
	if rest, ok := strings.CutPrefix(strings.ToLower(p), "0x"); ok {
		base, digits = 16, rest
	}
	if digits == "" && base == 8 {
		return 0, ""
	}
	m, err := strconv.ParseUint(digits, base, 64)
	if err != nil || strings.HasPrefix(digits, "+") || strings.HasPrefix(digits, "-") {
		return 0, fmt.Sprintf("invalid mode: '%s'", p)
	}
	return m, ""
}

// pushMeta is what pct push's create_file makes of the destination: its
// mode and owner, or the message it dies with. The order is pct's: user,
// group, mode, then the file. A new file without --perms gets 0666 less
// pct's umask (022); an existing one keeps its mode and owner unless told.
func (d *disk) pushMeta(dst string, opts map[string]string) (fileMeta, string) {
	m := fileMeta{mode: 0o644}
	if _, exists := d.files[dst]; exists {
		m = d.meta(dst)
	}
	if u, ok := opts["user"]; ok {
		id, err := strconv.Atoi(u)
		if !allDigits(u) || err != nil {
			var known bool
			if id, known = d.users()[u]; !known {
				return m, "failed to get uid for: " + u
			}
		}
		m.uid = id
	}
	if g, ok := opts["group"]; ok {
		id, err := strconv.Atoi(g)
		if !allDigits(g) || err != nil {
			var known bool
			if id, known = d.groupIDs()[g]; !known {
				return m, "failed to get gid for: " + g
			}
		}
		m.gid = id
	}
	if p, ok := opts["perms"]; ok {
		mode, msg := pctPerms(p)
		if msg != "" {
			return m, msg
		}
		m.mode = mode & 0o7777 // chmod(2) takes these bits
	}
	switch dir := path.Dir(dst); {
	case !d.isDir(dir):
		return m, "failed to create file: " + dst + ": No such file or directory"
	case d.isDir(dst):
		return m, "failed to create file: " + dst + ": Is a directory"
	}
	return m, ""
}

func allDigits(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
}

// stageFile models phoenix/stage-file on the node. Standard input is read
// before the cluster lock is taken: a client may send it slowly.
func (c *cluster) stageFile(ctx context.Context, n *node, x *script, stderr io.Writer) int {
	stage, set := x.env["PHOENIX_STAGE"]
	name, under := strings.CutPrefix(stage, stageDir+"/")
	phase := cmpOr(x.phase, "apply")
	journal := func(code int, detail string) int {
		c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, Phase: x.phase, OK: code == 0, Detail: detail})
		return code
	}
	var msg string
	switch {
	case !set:
		msg = "/bin/sh: 1: PHOENIX_STAGE: parameter not set"
	case !under || name == "" || strings.Contains(name, "/") || name == "." || name == "..":
		msg = "phoenix/stage-file: " + stage + " is not a file in " + stageDir
	case phase != "apply" && phase != "clean":
		msg = "phoenix/stage-file: unknown phase " + phase
	}
	if msg != "" {
		fmt.Fprintln(stderr, msg)
		c.mu.Lock()
		defer c.mu.Unlock()
		return journal(2, msg)
	}
	if phase == "clean" {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(n.files, stage)
		return journal(0, "")
	}
	var content []byte
	if x.stdin != nil {
		var err error
		if content, err = io.ReadAll(io.LimitReader(x.stdin, maxStaged+1)); err != nil || ctx.Err() != nil {
			c.mu.Lock()
			defer c.mu.Unlock()
			return journal(128+15, fmt.Sprintf("cancelled: standard input: %v", err))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	full := len(content) > maxStaged || c.chance(c.world.Spec.Faults.Exec.Scripts[x.name])
	if full {
		// cat has made the file and written what fitted.
		content = content[:min(len(content), maxStaged)]
	}
	n.files[stage] = string(content)
	if full {
		msg := "cat: write error: No space left on device"
		fmt.Fprintln(stderr, msg)
		return journal(1, msg)
	}
	// The journal says how much, never what: staged files hold secrets.
	return journal(0, fmt.Sprintf("%d bytes", len(content)))
}

// insideScripts are the models of the scripts that keep files and services,
// by name; each runs in a container only.
var insideScripts = map[string]func(x *script) int{
	"phoenix/file":    fileScript,
	"phoenix/inspect": inspectScript,
	"phoenix/service": serviceScript,
}

// fileScript is file.sh.
func fileScript(x *script) int {
	p, set := x.env["PHOENIX_FILE"]
	if !set {
		return x.fail(2, "/bin/sh: 1: PHOENIX_FILE: parameter not set")
	}
	d, copyPath := x.g.disk, p+".phoenix-new"
	switch phase := cmpOr(x.phase, "apply"); phase {
	case "prepare":
		// mkdir -p: each missing component is made; one that is a file
		// stops it.
		dir := path.Dir(p)
		for q := dir; ; q = path.Dir(q) {
			if _, isFile := d.files[q]; isFile {
				if q == dir {
					return x.fail(1, "mkdir: cannot create directory '%s': File exists", dir)
				}
				return x.fail(1, "mkdir: cannot create directory '%s': Not a directory", dir)
			}
			if q == "/" || q == "." {
				break
			}
		}
		if !d.isDir(dir) {
			d.dirs = with(d.dirs, dir, true)
		}
		return 0
	case "apply":
		content, ok := d.files[copyPath]
		switch {
		case !ok:
			return x.fail(1, "phoenix: %s is missing: pct push did not copy it", copyPath)
		case d.isDir(p):
			return x.fail(1, "mv: cannot overwrite directory '%s' with non-directory", p)
		}
		d.files[p] = content
		d.fileMeta = with(d.fileMeta, p, d.meta(copyPath))
		delete(d.files, copyPath)
		d.fileMeta = without(d.fileMeta, copyPath)
		return 0
	case "clean":
		delete(d.files, copyPath)
		d.fileMeta = without(d.fileMeta, copyPath)
		return 0
	default:
		return x.fail(2, "phoenix/file: unknown phase %s", phase)
	}
}

// inspectScript is inspect.sh: every phase prints (phoenix runs it as a
// check).
func inspectScript(x *script) int {
	d := x.g.disk
	for _, p := range strings.Fields(x.env["PHOENIX_FILES"]) {
		content, ok := d.files[p]
		if !ok {
			fmt.Fprintf(&x.out, "file %s -\n", p)
			continue
		}
		m := d.meta(p)
		sum := sha256.Sum256([]byte(content))
		fmt.Fprintf(&x.out, "file %s %s %o %d:%d %s:%s\n", p, hex.EncodeToString(sum[:]), m.mode, m.uid, m.gid,
			idName(d.users(), m.uid), idName(d.groupIDs(), m.gid))
	}
	for _, name := range strings.Fields(x.env["PHOENIX_SERVICES"]) {
		if !d.systemd() {
			fmt.Fprintf(&x.out, "service %s not-found no-systemd\n", name)
			continue
		}
		enabled, active := "not-found", "inactive"
		if d.hasUnit(name) {
			enabled = "disabled"
			if d.units[name] {
				enabled = "enabled"
			}
			active = x.g.run.serviceState(name)
		}
		fmt.Fprintf(&x.out, "service %s %s %s\n", name, enabled, active)
	}
	return 0
}

// serviceScript is service.sh's apply.
func serviceScript(x *script) int {
	name := x.env["SERVICE"]
	unit := name + ".service"
	fail := func(format string, args ...any) int {
		return x.fail(1, "phoenix: %s: "+format, append([]any{unit}, args...)...)
	}
	d := x.g.disk
	switch {
	case !d.systemd():
		return fail("the container runs no systemd: phoenix keeps services with systemd")
	case name == "" || !d.hasUnit(name):
		return fail("systemd has no such unit: the feature that provides it is not installed, or its unit file is missing")
	}
	if enable := x.env["ENABLE"] == "true"; d.units[name] != enable {
		d.units = with(d.units, name, enable)
	}
	if x.env["RUN"] != "true" {
		x.g.run.setService(name, "inactive")
		return 0
	}
	// start, restart and reload-or-restart all leave it started, or failed.
	state := x.c.startService(x.g.vmid, name)
	x.g.run.setService(name, state)
	if state != "active" {
		fmt.Fprintf(&x.err, "  systemd[1]: %s: Main process exited, code=exited, status=1/FAILURE\n", unit)
		fmt.Fprintf(&x.err, "  systemd[1]: %s: Failed with result 'exit-code'.\n", unit)
		return fail("is %s after it was started: see journalctl -u %s in the container", state, unit)
	}
	return 0
}

// systemd reports whether the container's init is systemd: not in the
// distributions whose templates boot OpenRC or sysvinit.
func (d *disk) systemd() bool {
	return !slices.Contains([]string{"alpine", "gentoo", "devuan"}, d.os.id)
}

// hasUnit reports whether systemd knows NAME.service: a unit file phoenix
// (or anyone) wrote, or one a modelled installer put in place.
func (d *disk) hasUnit(name string) bool {
	for _, dir := range []string{"/etc/systemd/system/", "/lib/systemd/system/", "/usr/lib/systemd/system/"} {
		if _, ok := d.files[dir+name+".service"]; ok {
			return true
		}
	}
	switch name {
	case "docker":
		return d.docker
	case "ollama":
		return d.ollama != ""
	}
	return false
}

// installService is what an installer that ships a service does: enable
// it and start it (docker's package and ollama's install script both do).
func (x *script) installService(name string) {
	x.g.disk.units = with(x.g.disk.units, name, true)
	if x.g.run != nil {
		x.g.run.setService(name, x.c.startService(x.g.vmid, name))
	}
}

// bootServices are the services a container's start starts: the enabled
// units systemd knows. Call with c.mu held.
func (c *cluster) bootServices(g *guest) map[string]string {
	out := map[string]string{}
	if !g.disk.systemd() {
		return out
	}
	for _, name := range slices.Sorted(maps.Keys(g.disk.units)) {
		if g.disk.units[name] && g.disk.hasUnit(name) {
			out[name] = c.startService(g.vmid, name)
		}
	}
	return out
}

// startService is one start of a service by systemd: active, or failed
// while the world's faults.services makes its starts fail. Call with c.mu
// held.
func (c *cluster) startService(vmid int, name string) string {
	key := strconv.Itoa(vmid) + "/" + name
	limit, ok := c.world.Spec.Faults.Services[key]
	if !ok || limit >= 0 && c.serviceFails[key] >= limit {
		return "active"
	}
	if c.serviceFails == nil {
		c.serviceFails = map[string]int{}
	}
	c.serviceFails[key]++
	return "failed"
}

// serviceState is systemctl is-active for a unit systemd knows.
func (r *runState) serviceState(name string) string {
	if s, ok := r.services[name]; ok {
		return s
	}
	return "inactive"
}

func (r *runState) setService(name, state string) {
	if r.services == nil {
		r.services = map[string]string{}
	}
	r.services[name] = state
}
