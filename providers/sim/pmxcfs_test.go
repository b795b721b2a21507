package sim

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The cluster file system's locks as pmxcfs keeps them (pve-cluster
// src/pmxcfs/memdb.c, cfs-plug-memdb.c, dcdb.c), and phoenix's lease script
// on top of them.

// clockedCluster is the SSH test world's cluster, read by a clock the test
// moves; nothing serves it.
func clockedCluster(t *testing.T, change func(*World)) (*cluster, *shiftedClock) {
	t.Helper()
	w, err := LoadWorld(filepath.Join("testdata", "ssh-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(w)
		if err := CheckWorld(w); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(context.Background(), w)
	clk := &shiftedClock{}
	c.now = clk.now
	return c, clk
}

func TestPmxcfsLocks(t *testing.T) {
	const lock = cfsLockDir + "/test"
	type step struct {
		at   time.Duration // since the start
		node string
		op   string // mkdir, touch (a renewal at the clock's time, or at mtime), unlock, rmdir, file (inside the lock)
		// mtime, for touch, is the time set, relative to the start (0:
		// the clock's time).
		mtime time.Duration
		want  string
	}
	cases := map[string][]step{
		"mkdir is atomic: a second one fails, from any node": {
			{node: "pve1", op: "mkdir"},
			{node: "pve1", op: "mkdir", want: eexist},
			{node: "pve2", op: "mkdir", want: eexist},
		},
		"an unlock request before the timeout leaves the lock; the mtime 0 itself is refused": {
			{node: "pve1", op: "mkdir"},
			{at: 119 * time.Second, node: "pve2", op: "unlock", want: eacces},
			{at: 120 * time.Second, node: "pve2", op: "unlock", want: eacces},
			{at: 120 * time.Second, node: "pve2", op: "mkdir", want: eexist},
		},
		"after 120 s an unlock request removes the lock, and the next mkdir takes it": {
			{node: "pve1", op: "mkdir"},
			{at: 121 * time.Second, node: "pve2", op: "mkdir", want: eexist},
			{at: 121 * time.Second, node: "pve2", op: "unlock", want: enoent},
			{at: 121 * time.Second, node: "pve2", op: "mkdir"},
		},
		"the writer's renewal restarts the timeout": {
			{node: "pve1", op: "mkdir"},
			{at: 100 * time.Second, node: "pve1", op: "touch"},
			{at: 200 * time.Second, node: "pve2", op: "unlock", want: eacces},
			{at: 221 * time.Second, node: "pve2", op: "unlock", want: enoent},
		},
		"a renewal from another node is refused and restarts nothing": {
			{node: "pve1", op: "mkdir"},
			{at: 100 * time.Second, node: "pve2", op: "touch", want: eacces},
			{at: 121 * time.Second, node: "pve3", op: "unlock", want: enoent},
		},
		"an mtime older than the lock's is refused, even from the writer": {
			{at: time.Minute, node: "pve1", op: "mkdir"},
			{at: 90 * time.Second, node: "pve1", op: "touch", mtime: time.Second, want: eacces},
			{at: 182 * time.Second, node: "pve2", op: "unlock", want: enoent},
		},
		// Each node counts from when it saw the change, by its own clock: a
		// writer whose clock runs ahead gains nothing.
		"the age is counted from when the change was seen, not from the mtime": {
			{node: "pve1", op: "mkdir"},
			{at: 10 * time.Second, node: "pve1", op: "touch", mtime: time.Hour},
			{at: 131 * time.Second, node: "pve2", op: "unlock", want: enoent},
		},
		"rmdir works from any node": {
			{node: "pve1", op: "mkdir"},
			{node: "pve3", op: "rmdir"},
			{node: "pve3", op: "rmdir", want: enoent},
			{node: "pve2", op: "mkdir"},
		},
		"a lock with a file inside cannot be removed, not even once expired": {
			{node: "pve1", op: "mkdir"},
			{node: "pve1", op: "file"},
			{node: "pve1", op: "rmdir", want: enotempty},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			c, clk := clockedCluster(t, nil)
			start := clk.now()
			c.mu.Lock()
			defer c.mu.Unlock()
			for i, s := range steps {
				clk.advance(start.Add(s.at).Sub(clk.now()))
				n := c.node(s.node)
				var got string
				switch s.op {
				case "mkdir":
					got = c.cfsMkdir(n, lock)
				case "touch":
					mtime := clk.now().Unix()
					if s.mtime != 0 {
						mtime = start.Add(s.mtime).Unix()
					}
					got = c.cfsUtime(n, lock, mtime)
				case "unlock":
					got = c.cfsUtime(n, lock, 0)
				case "rmdir":
					got = c.cfsRmdir(n, lock)
				case "file":
					got = c.cfsWrite(n, lock+"/holder", "x")
				}
				if got != s.want {
					t.Fatalf("step %d (%s %s at %v): %q, want %q", i+1, s.op, s.node, s.at, got, s.want)
				}
			}
		})
	}
}

func TestPmxcfsWithoutQuorumIsReadOnly(t *testing.T) {
	c, _ := clockedCluster(t, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := c.cfsMkdir(c.node("pve1"), leaseLock); got != "" {
		t.Fatal(got)
	}
	// A node cut off from the others has no quorum; the other two have.
	c.node("pve3").offline = true
	if got := c.cfsMkdir(c.node("pve3"), cfsLockDir+"/other"); got != eacces {
		t.Errorf("mkdir on a node without quorum: %q", got)
	}
	if got := c.cfsUtime(c.node("pve1"), leaseLock, c.now().Unix()); got != "" {
		t.Errorf("renewal in the quorate part: %q", got)
	}
	// With two of three nodes gone, nobody has quorum.
	c.node("pve2").offline = true
	if got := c.cfsUtime(c.node("pve1"), leaseLock, c.now().Unix()); got != eacces {
		t.Errorf("renewal without quorum: %q", got)
	}
	if got := c.cfsRmdir(c.node("pve1"), leaseLock); got != eacces {
		t.Errorf("rmdir without quorum: %q", got)
	}
}

func TestPmxcfsWorldShortensTheLockTimeout(t *testing.T) {
	c, clk := clockedCluster(t, func(w *World) { w.Spec.LockTimeout = Duration(time.Second) })
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.cfsMkdir(c.node("pve1"), leaseLock)
	clk.advance(900 * time.Millisecond)
	if got := c.cfsUtime(c.node("pve2"), leaseLock, 0); got != eacces {
		t.Errorf("before a second: %q", got)
	}
	clk.advance(200 * time.Millisecond)
	if got := c.cfsUtime(c.node("pve2"), leaseLock, 0); got != enoent {
		t.Errorf("after a second: %q", got)
	}
	for _, bad := range []time.Duration{-time.Second, 3 * time.Minute} {
		w, _ := LoadWorld(filepath.Join("testdata", "ssh-cluster.yaml"))
		w.Spec.LockTimeout = Duration(bad)
		if err := CheckWorld(w); err == nil || !strings.Contains(err.Error(), "lockTimeout") {
			t.Errorf("lockTimeout %v: %v", bad, err)
		}
	}
}

// leaseEnv is the lease script's environment for a holder.
func leaseEnv(token, host string) []string {
	return []string{"PHOENIX_LEASE_TOKEN=" + token,
		"PHOENIX_LEASE_HOLDER=host=" + host + "\npid=42\ncommand=phoenix apply\nsince=2026-05-01T14:03:10Z"}
}

const (
	tokenA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokenB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// TestLeaseScriptOverSSH runs the lease script's phases the way phoenix
// sends them: the same lease on every node, named to whoever waits,
// renewed only through the node that took it, released only by its
// holder.
func TestLeaseScriptOverSSH(t *testing.T) {
	t.Parallel()
	l := startLab(t, "ssh-cluster.yaml", nil)
	lease := func(node, phase, token, host string) sshResult {
		return l.script(node, 0, "phoenix/lease", phase, "# lease.sh", leaseEnv(token, host)...)
	}
	holderA := "host=runner-a\npid=42\ncommand=phoenix apply\nsince=2026-05-01T14:03:10Z\n"
	steps := []struct {
		node, phase, token, host string
		code                     int
		stdout, stderr           string
	}{
		{node: "pve1", phase: "take", token: tokenA, host: "runner-a", stdout: "acquired\n"},
		{node: "pve2", phase: "take", token: tokenB, host: "runner-b", stdout: "held\n" + holderA},
		{node: "pve1", phase: "take", token: tokenB, host: "runner-b", stdout: "held\n" + holderA},
		{node: "pve1", phase: "renew", token: tokenA, stdout: "renewed\n"},
		// pmxcfs refuses a new mtime from another node than the lock's writer.
		{node: "pve2", phase: "renew", token: tokenA, code: 1, stderr: "touch: setting times of '/etc/pve/priv/lock/phoenix': Permission denied\n"},
		{node: "pve1", phase: "renew", token: tokenB, stdout: "lost\n" + holderA},
		{node: "pve2", phase: "release", token: tokenB, stdout: "lost\n" + holderA},
		// rmdir works from any node.
		{node: "pve3", phase: "release", token: tokenA, stdout: "released\n"},
		{node: "pve1", phase: "renew", token: tokenA, stdout: "lost\n" + holderA + "released=*\n"},
		{node: "pve2", phase: "take", token: tokenB, host: "runner-b", stdout: "acquired\n" + holderA + "released=*\n"},
		{node: "pve2", phase: "steal", token: tokenB, code: 2, stderr: "phoenix/lease: unknown phase 'steal' (take, renew or release)\n"},
	}
	for i, s := range steps {
		r := lease(s.node, s.phase, s.token, s.host)
		stdout := r.stdout
		if j := strings.Index(stdout, "released=2"); j >= 0 && strings.HasSuffix(stdout, "Z\n") {
			stdout = stdout[:j] + "released=*\n"
		}
		if r.code != s.code || stdout != s.stdout || r.stderr != s.stderr {
			t.Fatalf("step %d (%s on %s): %v\nwant exit %d, stdout %q, stderr %q", i+1, s.phase, s.node, r, s.code, s.stdout, s.stderr)
		}
	}
	var got []string
	for _, e := range l.s.Journal() {
		if e.Name == "phoenix/lease" && e.Node == "pve1" {
			got = append(got, e.Phase+": "+e.Detail)
		}
	}
	want := []string{"take: acquired phoenix apply (pid 42 on runner-a)", "take: held phoenix apply (pid 42 on runner-a)",
		"renew: renewed phoenix apply (pid 42 on runner-a)", "renew: lost phoenix apply (pid 42 on runner-a)",
		"renew: lost phoenix apply (pid 42 on runner-a) released"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("journal of pve1 (-want +got):\n%s", diff)
	}
}

// TestLeaseScriptExpiry: a holder that dies renews no more; once pmxcfs's
// timeout has passed, the next taker's unlock request removes its lock and
// the taker gets the lease, told who held it before (not released).
func TestLeaseScriptExpiry(t *testing.T) {
	c, clk := clockedCluster(t, nil)
	run := func(node, phase, token, host string) (int, string) {
		env := map[string]string{}
		for _, kv := range leaseEnv(token, host) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		var out, errOut strings.Builder
		code := c.leaseScript(c.node(node), &script{c: c, name: "phoenix/lease", phase: phase, env: env}, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := run("pve1", "take", tokenA, "runner-a"); code != 0 || out != "acquired\n" {
		t.Fatalf("take: %d %q", code, out)
	}
	clk.advance(100 * time.Second)
	if code, out := run("pve1", "renew", tokenA, ""); code != 0 || out != "renewed\n" {
		t.Fatalf("renew: %d %q", code, out)
	}
	// It dies here. Two minutes after its last renewal, not after its take:
	clk.advance(119 * time.Second)
	if _, out := run("pve2", "take", tokenB, "runner-b"); !strings.HasPrefix(out, "held\nhost=runner-a\n") {
		t.Fatalf("take within the timeout of the last renewal: %q", out)
	}
	clk.advance(2 * time.Second)
	code, out := run("pve2", "take", tokenB, "runner-b")
	if want := "acquired\nhost=runner-a\npid=42\ncommand=phoenix apply\nsince=2026-05-01T14:03:10Z\n"; code != 0 || out != want {
		t.Fatalf("take after the timeout: %d %q, want %q", code, out, want)
	}
	// The dead holder, should it come back, has lost it.
	if _, out := run("pve1", "renew", tokenA, ""); !strings.HasPrefix(out, "lost\nhost=runner-b\n") {
		t.Errorf("renewal of the expired holder: %q", out)
	}
}
