// Package local runs phoenix's node commands (pct exec, pct push, pct set,
// the host probe) directly, for when phoenix runs on the Proxmox VE node
// itself: the same argv the SSH transport sends, executed without a shell.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/phoenixhv/phoenix/providers/internal/nodecmd"
	"github.com/phoenixhv/phoenix/reconciler"
)

// CommandError is a command that failed as a command: pct refused it, or it
// could not be run. See reconciler's error kinds for what to branch on.
type CommandError = nodecmd.CommandError

// DefaultKillGrace is how long a cancelled command has between SIGTERM and
// SIGKILL.
const DefaultKillGrace = 5 * time.Second

// Node runs commands on the node phoenix runs on.
type Node struct {
	// Name is the node's name in the cluster, for messages.
	Name string
	// KillGrace is the time between SIGTERM and SIGKILL when a command is
	// cancelled; default DefaultKillGrace.
	KillGrace time.Duration
	// OutputLimit bounds what is kept of each command's stdout and of its
	// stderr; default 1 MiB.
	OutputLimit int
}

var _ reconciler.Node = (*Node)(nil)

// New returns the Node for the local machine, which the cluster knows as name.
func New(name string) *Node { return &Node{Name: name} }

func (n *Node) ops() nodecmd.Ops {
	return nodecmd.Ops{Node: n.Name, Run: n.run, OutputLimit: n.OutputLimit}
}

// Exec runs a named script inside a running container.
func (n *Node) Exec(ctx context.Context, vmid int, s reconciler.Script) (reconciler.Result, error) {
	return n.ops().Exec(ctx, vmid, s)
}

// ExecHost runs a named script on the node itself.
func (n *Node) ExecHost(ctx context.Context, s reconciler.Script) (reconciler.Result, error) {
	return n.ops().ExecHost(ctx, s)
}

// Push copies a file on the node into a running container.
func (n *Node) Push(ctx context.Context, vmid int, src, dst string, mode os.FileMode) error {
	return n.ops().Push(ctx, vmid, src, dst, mode)
}

// HostProbe reports the node's NVIDIA driver, GPUs and device nodes.
func (n *Node) HostProbe(ctx context.Context) (reconciler.HostInfo, error) {
	return n.ops().HostProbe(ctx)
}

// SetConfig sets container options with pct set.
func (n *Node) SetConfig(ctx context.Context, vmid int, set map[string]string, del []string) error {
	return n.ops().SetConfig(ctx, vmid, set, del)
}

// RemoveRawLXC removes raw lxc.* lines from a container's config file.
func (n *Node) RemoveRawLXC(ctx context.Context, vmid int, lines [][2]string) error {
	return n.ops().RemoveRawLXC(ctx, vmid, lines)
}

// SetRawLXC sets the raw lxc.* keys phoenix owns in a container's config file.
func (n *Node) SetRawLXC(ctx context.Context, vmid int, keys map[string][]string) error {
	return n.ops().SetRawLXC(ctx, vmid, keys)
}

// FindRunfile says where a driver version's runfile will come from.
func (n *Node) FindRunfile(ctx context.Context, q reconciler.RunfileQuery) (reconciler.RunfileSource, error) {
	return n.ops().FindRunfile(ctx, q)
}

// TakeLease takes the cluster-wide lease through this node, or says who
// holds it.
func (n *Node) TakeLease(ctx context.Context, c reconciler.LeaseClaim) (*reconciler.Holder, error) {
	return n.ops().TakeLease(ctx, c)
}

// RenewLease keeps the lease taken through this node another timeout.
func (n *Node) RenewLease(ctx context.Context, c reconciler.LeaseClaim) error {
	return n.ops().RenewLease(ctx, c)
}

// WriteFile puts a file into a running container (reconciler.Node).
func (n *Node) WriteFile(ctx context.Context, vmid int, f reconciler.FileWrite) error {
	return n.ops().WriteFile(ctx, vmid, f)
}

// ReleaseLease lets the lease go.
func (n *Node) ReleaseLease(ctx context.Context, c reconciler.LeaseClaim) error {
	return n.ops().ReleaseLease(ctx, c)
}

// keptEnv are the variables a command inherits from phoenix. Over SSH a
// command gets a fresh login environment; here it gets the same few, so
// phoenix's own secrets (PROXMOX_VE_PASSWORD, API tokens) never reach pct or
// a host script.
var keptEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

func commandEnv() []string {
	env := []string{}
	for _, k := range keptEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		// Where a Proxmox node keeps pct and the tools host scripts use.
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return env
}

// run executes argv directly, stdin as its standard input (nil: /dev/null).
// The command gets its own process group, so a cancellation reaches what it
// started too (pct's lxc-attach, a script's children): SIGTERM to the group,
// SIGKILL after the grace period.
func (n *Node) run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return -1, errors.New("local: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = commandEnv()
	// Not *os.File writers: os/exec copies each pipe on a goroutine of its
	// own, which Wait waits for.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A daemon a script leaves behind may hold its stdout open; do not wait
	// for it once the script itself has exited.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			err = fmt.Errorf("%w (phoenix runs commands locally only on a Proxmox VE node)", err)
		}
		return -1, nodecmd.TransportError(fmt.Errorf("local: %w", err), startErrorKind(err), false)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		grace := n.KillGrace
		if grace <= 0 {
			grace = DefaultKillGrace
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		select {
		case <-done:
			timer.Stop()
		case <-timer.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		return -1, ctx.Err()
	}
	var exit *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		return 0, nil
	case errors.As(err, &exit):
		return exitCode(exit.ProcessState), nil
	}
	return -1, nodecmd.TransportError(fmt.Errorf("local: %w", err), reconciler.ErrUnavailable, true)
}

// exitCode reports a signalled process as a shell would: 128+signal.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// startErrorKind classifies a command that could not be started. A missing
// pct is not a missing container: this machine is no Proxmox VE node.
func startErrorKind(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return reconciler.ErrPermission
	}
	return reconciler.ErrRefused
}
