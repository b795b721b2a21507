// Package nodecmd is what the two ways of running commands on a Proxmox node
// (over SSH, or directly when phoenix runs on the node) have in common: the
// argv of each operation, the host probe and its parser, bounded output
// capture, and the classification of how a command ended.
//
// The transports only move an argv to the node and bring back its exit
// status and output; everything that depends on what pct prints lives here,
// in one place, so both transports fail in exactly the same way.
package nodecmd

import (
	"fmt"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Proxmox VE accepts VMIDs from 100 to 999999999 (pve-common's pve-vmid
// format); pct refuses anything else with a 400 before it looks at the CT.
const (
	minVMID = 100
	maxVMID = 999_999_999
)

// ExecArgv is how a named script runs inside a container:
// pct exec VMID -- [timeout ...] env K=V... /bin/sh -c BODY NAME PHASE. pct passes
// everything after -- to lxc-attach without a shell, so the script's words
// arrive as they are; only the transport to the node needs quoting.
func ExecArgv(vmid int, s reconciler.Script) ([]string, error) {
	if err := checkScript(s); err != nil {
		return nil, err
	}
	return PctExecArgv(vmid, bounded(s)...)
}

// bounded is a script's argv under timeout(1) when it has a Timeout:
// timeout -k KILL SECONDS env ... /bin/sh -c BODY NAME PHASE. The bound is
// kept where the script runs: a dropped SSH session or a cancelled pct exec
// does not end a process inside a container, timeout(1) does, and it
// signals the script's whole process group (apt-get, curl, pip below the
// shell). Whole seconds, rounded up, and short options only: the form
// coreutils and busybox both read.
func bounded(s reconciler.Script) []string {
	if s.Timeout <= 0 {
		return s.Argv()
	}
	return append([]string{"timeout", "-k", seconds(reconciler.ScriptKillAfter), seconds(s.Timeout)}, s.Argv()...)
}

// seconds renders a duration as whole seconds, rounded up, at least 1.
func seconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// PctExecArgv is pct exec VMID -- ARGV..., for a plain command.
func PctExecArgv(vmid int, argv ...string) ([]string, error) {
	if err := checkVMID(vmid); err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, badRequest("pct exec %d: no command", vmid)
	}
	return append([]string{"pct", "exec", strconv.Itoa(vmid), "--"}, argv...), nil
}

// HostArgv is how a named script runs on the node itself: the same
// env K=V... /bin/sh -c BODY NAME PHASE, without pct.
func HostArgv(s reconciler.Script) ([]string, error) {
	if err := checkScript(s); err != nil {
		return nil, err
	}
	return bounded(s), nil
}

// PushArgv is pct push VMID SRC DST --perms MODE. Both paths must be
// absolute: pct resolves a relative source against its own working directory
// (root's home over SSH) and a relative destination against the container's
// root, neither of which the caller means.
func PushArgv(vmid int, src, dst string, mode os.FileMode) ([]string, error) {
	return PushOwnedArgv(vmid, src, dst, mode, "", "")
}

// ownerRE is what pct push --user and --group take: a name, which must
// exist inside the container, or a decimal id (pve-container
// src/PVE/CLI/pct.pm, create_file: getpwnam/getgrnam unless all digits).
// Names are kept to the portable set, so none reads as an option.
var ownerRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10})$`)

// PushOwnedArgv is pct push VMID SRC DST --perms MODE [--user U] [--group G]:
// PushArgv with the file's owner inside the container; an empty user or
// group leaves it to pct, which makes a new file root's.
func PushOwnedArgv(vmid int, src, dst string, mode os.FileMode, user, group string) ([]string, error) {
	if err := checkVMID(vmid); err != nil {
		return nil, err
	}
	for _, p := range []struct{ what, path string }{{"source", src}, {"destination", dst}} {
		if !path.IsAbs(p.path) || strings.ContainsRune(p.path, 0) {
			return nil, badRequest("pct push %d: %s %q is not an absolute path", vmid, p.what, p.path)
		}
	}
	argv := []string{"pct", "push", strconv.Itoa(vmid), src, dst, "--perms", Perms(mode)}
	for _, o := range []struct{ opt, name string }{{"user", user}, {"group", group}} {
		if o.name == "" {
			continue
		}
		if !ownerRE.MatchString(o.name) {
			return nil, badRequest("pct push %d: %s %q is neither a name nor a numeric id", vmid, o.opt, o.name)
		}
		argv = append(argv, "--"+o.opt, o.name)
	}
	return argv, nil
}

// Perms renders a file mode the way pct push --perms reads it: octal, with
// the setuid, setgid and sticky bits in their Unix positions (os.FileMode
// keeps them elsewhere).
func Perms(mode os.FileMode) string {
	m := uint32(mode.Perm())
	if mode&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return fmt.Sprintf("%04o", m)
}

// optionKey is the shape of a container option name in pct's schema
// (dev0, net1, features, lxc options are not among them: pct set cannot set
// raw lxc.* keys either).
var optionKey = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// SetArgv is pct set VMID --key value ... [--delete k1,k2], keys sorted so
// the same change is the same command every time. It returns nil when there
// is nothing to change: pct set without options is an error.
func SetArgv(vmid int, set map[string]string, del []string) ([]string, error) {
	if err := checkVMID(vmid); err != nil {
		return nil, err
	}
	if len(set) == 0 && len(del) == 0 {
		return nil, nil
	}
	argv := []string{"pct", "set", strconv.Itoa(vmid)}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if err := checkOptionKey(vmid, k); err != nil {
			return nil, err
		}
		if slices.Contains(del, k) {
			return nil, badRequest("pct set %d: option %s is both set and deleted", vmid, k)
		}
		argv = append(argv, "--"+k, set[k])
	}
	if len(del) > 0 {
		keys := slices.Clone(del)
		slices.Sort(keys)
		keys = slices.Compact(keys)
		for _, k := range keys {
			if err := checkOptionKey(vmid, k); err != nil {
				return nil, err
			}
		}
		argv = append(argv, "--delete", strings.Join(keys, ","))
	}
	return argv, nil
}

func checkOptionKey(vmid int, k string) error {
	// delete and digest are parameters of the config call, not options:
	// passed as keys they would change what the command means.
	if !optionKey.MatchString(k) || k == "delete" || k == "digest" || k == "revert" {
		return badRequest("pct set %d: %q is not a container option", vmid, k)
	}
	return nil
}

func checkVMID(vmid int) error {
	if vmid < minVMID || vmid > maxVMID {
		return badRequest("VMID %d is outside %d..%d", vmid, minVMID, maxVMID)
	}
	return nil
}

// envName is what env(1) takes as an assignment rather than as the command:
// a word with = whose name part is non-empty. POSIX names keep scripts
// portable to every /bin/sh.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkScript refuses scripts whose argv would not mean what the Script
// says: a name env(1) would read as an assignment, an environment key that is
// no variable name, or a NUL, which no command line can carry.
func checkScript(s reconciler.Script) error {
	if s.Name == "" {
		return badRequest("script without a name")
	}
	if strings.Contains(s.Name, "=") || strings.HasPrefix(s.Name, "-") {
		return badRequest("script name %q: must not contain = or start with -", s.Name)
	}
	for k, v := range s.Env {
		if !envName.MatchString(k) {
			return badRequest("script %s: %q is not a variable name", s.Name, k)
		}
		if strings.ContainsRune(v, 0) {
			return badRequest("script %s: value of %s holds a NUL byte", s.Name, k)
		}
	}
	for _, w := range []string{s.Name, s.Phase, s.Body} {
		if strings.ContainsRune(w, 0) {
			return badRequest("script %s: holds a NUL byte", s.Name)
		}
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, reconciler.ErrBadRequest)...)
}
