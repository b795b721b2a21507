package sim

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// The cluster file system's locks, as pmxcfs keeps them (pve-cluster
// src/pmxcfs/memdb.c, cfs-plug-memdb.c, dcdb.c; the README's "File
// Locking"), and the lease script phoenix builds on them
// (providers/internal/nodecmd/lease.sh), modelled by its name.
//
// A lock is a directory under /etc/pve/priv/lock/, the same on every node:
//   - mkdir is atomic cluster-wide and fails with EEXIST while it exists;
//   - each node notes by its own clock when it last saw the directory
//     change (memdb_lock_expired's ltime, reset whenever the entry's
//     checksum changes: its mtime, writer or version), not the mtime;
//     the lock has expired when that is more than CFS_LOCK_TIMEOUT (120 s)
//     ago. Every node sees a change at once here, so one ltime stands for
//     all of them;
//   - utime with mtime 0 is an unlock request (cfs_plug_memdb_utimens):
//     the quorate member with the lowest node id removes the lock if it
//     has expired (dcdb_deliver); the mtime 0 itself is refused
//     (memdb_mtime: older than the current one), EACCES;
//   - any other mtime is refused when older than the current one, or when
//     the node setting it is not the lock's writer; otherwise it renews the
//     lock for every node;
//   - rmdir removes it from any node; a lock directory with files inside
//     cannot be removed (ENOTEMPTY), by rmdir or by expiry;
//   - without quorum /etc/pve is read-only: every write fails with EACCES;
//     reads still work.

// pveLockTimeout is CFS_LOCK_TIMEOUT in src/pmxcfs/memdb.c.
const pveLockTimeout = 120 * time.Second

// leaseLock and leaseFile are where the lease script keeps the lease.
const (
	cfsLockDir = "/etc/pve/priv/lock"
	leaseLock  = cfsLockDir + "/phoenix"
	leaseFile  = "/etc/pve/priv/phoenix-lease"
)

// pmxcfs is the part of /etc/pve the simulator models: the lock
// directories, and regular files under /etc/pve/priv.
type pmxcfs struct {
	locks   map[string]*cfsLock // by path
	files   map[string]string   // by path
	timeout func() time.Duration
}

// cfsLock is one lock directory.
type cfsLock struct {
	// writer is the node whose write last changed it (memdb's te->writer,
	// the node id of the message's sender).
	writer string
	// mtime is the directory's mtime in seconds, as the writer set it.
	mtime int64
	// ltime is when the cluster last saw it change.
	ltime time.Time
}

// errno texts as coreutils prints them.
const (
	eexist    = "File exists"
	eacces    = "Permission denied"
	enoent    = "No such file or directory"
	enotempty = "Directory not empty"
)

// fs returns the cluster file system, made on first use. Call with c.mu
// held.
func (c *cluster) fs() *pmxcfs {
	if c.cfs == nil {
		c.cfs = &pmxcfs{locks: map[string]*cfsLock{}, files: map[string]string{}, timeout: c.lockTimeout}
	}
	return c.cfs
}

func (c *cluster) lockTimeout() time.Duration {
	if l := c.world.Spec.LockTimeout.D(); l > 0 {
		return l
	}
	return pveLockTimeout
}

// quorate reports whether a node's /etc/pve is writable: the node is in
// the cluster, and the cluster has a majority of its nodes (one vote each,
// corosync's default).
func (c *cluster) quorate(n *node) bool {
	online := 0
	for _, m := range c.nodes {
		if !m.offline {
			online++
		}
	}
	return !n.offline && 2*online > len(c.nodes)
}

// cfsMkdir is mkdir of a lock directory from node n.
func (c *cluster) cfsMkdir(n *node, path string) string {
	fs := c.fs()
	if !c.quorate(n) {
		return eacces
	}
	if fs.locks[path] != nil || fs.files[path] != "" {
		return eexist
	}
	now := c.now()
	fs.locks[path] = &cfsLock{writer: n.Name, mtime: now.Unix(), ltime: now}
	return ""
}

// cfsUtime sets a lock directory's mtime from node n; 0 is the unlock
// request.
func (c *cluster) cfsUtime(n *node, path string, mtime int64) string {
	fs := c.fs()
	l := fs.locks[path]
	if l == nil {
		return enoent
	}
	if !c.quorate(n) {
		return eacces
	}
	now := c.now()
	if mtime == 0 {
		// The lowest quorate node judges by its ltime, which here is the
		// cluster's.
		if now.Sub(l.ltime) > fs.timeout() {
			delete(fs.locks, path)
			return enoent
		}
		return eacces
	}
	if mtime < l.mtime || l.writer != n.Name {
		return eacces
	}
	l.mtime, l.ltime = mtime, now
	return ""
}

// cfsRmdir removes a lock directory from node n.
func (c *cluster) cfsRmdir(n *node, path string) string {
	fs := c.fs()
	if fs.locks[path] == nil {
		return enoent
	}
	if !c.quorate(n) {
		return eacces
	}
	for p := range fs.files {
		if strings.HasPrefix(p, path+"/") {
			return enotempty
		}
	}
	delete(fs.locks, path)
	return ""
}

// cfsWrite writes a regular file (the script writes it and renames it into
// place: one step here).
func (c *cluster) cfsWrite(n *node, path, content string) string {
	if !c.quorate(n) {
		return eacces
	}
	c.fs().files[path] = content
	return ""
}

// leaseScript models phoenix/lease: see lease.sh, which it follows step by
// step. The unlock request is answered at once here, so one request and
// one more mkdir stand for the script's retries.
func (c *cluster) leaseScript(n *node, x *script, stdout, stderr io.Writer) int {
	c.mu.Lock()
	var out, errOut strings.Builder
	code := c.lease(n, x, &out, &errOut)
	verdict, _, _ := strings.Cut(out.String(), "\n")
	detail := verdict
	if h := holderOf(c.fs().files[leaseFile]); h != "" {
		detail += " " + h
	}
	if code != 0 {
		detail = firstLine(strings.TrimSpace(errOut.String()))
	}
	c.journal.add(c.now(), Event{Node: n.Name, Kind: "exec", Name: x.name, Phase: x.phase, OK: code == 0, Detail: detail})
	c.mu.Unlock()
	_, _ = io.WriteString(stdout, out.String())
	_, _ = io.WriteString(stderr, errOut.String())
	return code
}

func (c *cluster) lease(n *node, x *script, out, errOut *strings.Builder) int {
	token := x.env["PHOENIX_LEASE_TOKEN"]
	if token == "" {
		fmt.Fprintln(errOut, "/bin/sh: 1: PHOENIX_LEASE_TOKEN: parameter null or not set")
		return 2
	}
	fs := c.fs()
	show := func() {
		for _, l := range strings.SplitAfter(fs.files[leaseFile], "\n") {
			if l != "" && !strings.HasPrefix(l, "token=") {
				out.WriteString(l)
			}
		}
	}
	mine := strings.Contains("\n"+fs.files[leaseFile], "\ntoken="+token+"\n")
	switch x.phase {
	case "take":
		holder := x.env["PHOENIX_LEASE_HOLDER"]
		if holder == "" {
			fmt.Fprintln(errOut, "/bin/sh: 1: PHOENIX_LEASE_HOLDER: parameter null or not set")
			return 2
		}
		err := c.cfsMkdir(n, leaseLock)
		if err == eexist && fs.locks[leaseLock] != nil {
			_ = c.cfsUtime(n, leaseLock, 0)
			err = c.cfsMkdir(n, leaseLock)
		}
		switch {
		case err == eexist && fs.locks[leaseLock] != nil:
			out.WriteString("held\n")
			show()
			return 0
		case err != "":
			fmt.Fprintf(errOut, "mkdir: cannot create directory '%s': %s\n", leaseLock, err)
			return 1
		}
		out.WriteString("acquired\n")
		show()
		if err := c.cfsWrite(n, leaseFile, "token="+token+"\n"+holder+"\n"); err != "" {
			fmt.Fprintf(errOut, "/bin/sh: 1: cannot create %s.tmp: %s\n", leaseFile, err)
			_ = c.cfsRmdir(n, leaseLock)
			return 1
		}
	case "renew":
		if fs.locks[leaseLock] == nil || !mine {
			out.WriteString("lost\n")
			show()
			return 0
		}
		if err := c.cfsUtime(n, leaseLock, c.now().Unix()); err != "" {
			fmt.Fprintf(errOut, "touch: setting times of '%s': %s\n", leaseLock, err)
			return 1
		}
		out.WriteString("renewed\n")
	case "release":
		if !mine {
			out.WriteString("lost\n")
			show()
			return 0
		}
		var kept []string
		for _, l := range strings.Split(strings.TrimSuffix(fs.files[leaseFile], "\n"), "\n") {
			if !strings.HasPrefix(l, "token=") && !strings.HasPrefix(l, "released=") {
				kept = append(kept, l)
			}
		}
		kept = append(kept, "released="+c.now().UTC().Format(time.RFC3339))
		if err := c.cfsWrite(n, leaseFile, strings.Join(kept, "\n")+"\n"); err != "" {
			fmt.Fprintf(errOut, "/bin/sh: 1: cannot create %s.tmp: %s\n", leaseFile, err)
			return 1
		}
		if fs.locks[leaseLock] == nil {
			out.WriteString("lost\n")
			return 0
		}
		if err := c.cfsRmdir(n, leaseLock); err != "" {
			fmt.Fprintf(errOut, "rmdir: failed to remove '%s': %s\n", leaseLock, err)
			return 1
		}
		out.WriteString("released\n")
	default:
		fmt.Fprintf(errOut, "phoenix/lease: unknown phase '%s' (take, renew or release)\n", x.phase)
		return 2
	}
	return 0
}

// holderOf names the holder in a holder file for the journal: command (pid
// on host), and "released" once it let go.
func holderOf(file string) string {
	v := map[string]string{}
	for _, l := range strings.Split(file, "\n") {
		if k, val, ok := strings.Cut(l, "="); ok {
			v[k] = val
		}
	}
	if v["command"] == "" {
		return ""
	}
	s := fmt.Sprintf("%s (pid %s on %s)", v["command"], v["pid"], v["host"])
	if v["released"] != "" {
		s += " released"
	}
	return s
}
