package nodecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
)

// Runner runs one argv on a node to its end, with stdin as its standard
// input (nil: none, the command reads end of file), writing what it prints
// to stdout and stderr as it arrives, and returns its exit status. Standard
// input is how content that must not show (a file's text, a secret) reaches
// a node: never the argv, which ps shows and errors print. It returns
// an error only when there is no exit status: the command could not be
// started, the connection was lost, or ctx ended (then the error wraps
// ctx's). A *CommandError from TransportError keeps its kind; any other
// error is taken as a lost connection. The writers never block and never
// fail; once Runner has returned without an error nothing may write to them.
type Runner func(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)

// Ops implements reconciler.Node's operations on top of a Runner: both
// transports delegate to it, so they build the same argv, capture and
// stream output the same way, and fail the same way.
type Ops struct {
	Node string
	Run  Runner
	// OutputLimit bounds what is kept of each command's stdout and of its
	// stderr; default DefaultOutputLimit.
	OutputLimit int
}

// Exec runs a named script inside a running container.
func (o Ops) Exec(ctx context.Context, vmid int, s reconciler.Script) (reconciler.Result, error) {
	argv, err := ExecArgv(vmid, s)
	if err != nil {
		return reconciler.Result{}, o.invalid(err)
	}
	return o.do(ctx, OpExec, argv, nil, s.Output)
}

// ExecHost runs a named script on the node itself.
func (o Ops) ExecHost(ctx context.Context, s reconciler.Script) (reconciler.Result, error) {
	argv, err := HostArgv(s)
	if err != nil {
		return reconciler.Result{}, o.invalid(err)
	}
	return o.do(ctx, OpHost, argv, nil, s.Output)
}

// Push copies a file already on the node into a running container.
func (o Ops) Push(ctx context.Context, vmid int, src, dst string, mode os.FileMode) error {
	argv, err := PushArgv(vmid, src, dst, mode)
	if err != nil {
		return o.invalid(err)
	}
	_, err = o.do(ctx, OpPush, argv, nil, nil)
	return err
}

// SetConfig sets container options with pct set. Nothing to change runs
// nothing.
func (o Ops) SetConfig(ctx context.Context, vmid int, set map[string]string, del []string) error {
	argv, err := SetArgv(vmid, set, del)
	if err != nil || argv == nil {
		return o.invalid(err)
	}
	_, err = o.do(ctx, OpSet, argv, nil, nil)
	return err
}

// HostProbe runs the host probe and parses what it printed.
func (o Ops) HostProbe(ctx context.Context) (reconciler.HostInfo, error) {
	argv, err := HostArgv(HostProbeScript())
	if err != nil {
		return reconciler.HostInfo{}, o.invalid(err)
	}
	res, err := o.do(ctx, OpProbe, argv, nil, nil)
	if err != nil {
		return reconciler.HostInfo{}, err
	}
	info, err := ParseHostProbe(res.Stdout)
	if err != nil {
		return reconciler.HostInfo{}, fmt.Errorf("%s: %w", o.Node, err)
	}
	return info, nil
}

// CommandBound bounds the wait for a command whose caller set no deadline:
// pct set, pct push (of a driver runfile, hundreds of megabytes), a probe.
// These answer in seconds; one that has not after this long will not.
const CommandBound = 10 * time.Minute

// do runs argv with stdin (nil: none), passing each line it prints to lines
// (when not nil) until it returns: no call to lines comes after.
func (o Ops) do(ctx context.Context, op Op, argv []string, stdin io.Reader, lines func(string)) (reconciler.Result, error) {
	if err := ctx.Err(); err != nil {
		return reconciler.Result{}, fmt.Errorf("%s: %s: %w", o.Node, RenderArgv(argv), err)
	}
	if _, ok := ctx.Deadline(); !ok {
		bounded, cancel := context.WithTimeoutCause(ctx, CommandBound,
			fmt.Errorf("no exit status within %v: %w", CommandBound, context.DeadlineExceeded))
		defer cancel()
		ctx = bounded
	}
	out := NewOutput(o.OutputLimit, lines)
	code, err := o.Run(ctx, argv, stdin, out.Stdout(), out.Stderr())
	if err != nil && ctx.Err() != nil {
		// A command given up on reports nothing more, and its transport may
		// still be writing.
		out.Abandon()
		return reconciler.Result{}, o.transport(ctx, argv, err)
	}
	out.Close()
	res := out.Result()
	if err != nil {
		return res, o.transport(ctx, argv, err)
	}
	res.ExitCode = code
	if err := Classify(op, o.Node, argv, res); err != nil {
		return res, err
	}
	return res, nil
}

// transport names the node and command on an error that left no exit
// status.
func (o Ops) transport(ctx context.Context, argv []string, err error) error {
	var ce *CommandError
	switch {
	case errors.As(err, &ce):
		if ce.Node == "" {
			ce.Node = o.Node
		}
		if ce.Argv == nil {
			ce.Argv = argv
		}
		return ce
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		if cause := context.Cause(ctx); errors.Is(cause, err) {
			err = cause // says which bound ran out (CommandBound)
		}
		return fmt.Errorf("%s: %s: %w", o.Node, RenderArgv(argv), err)
	}
	return &CommandError{Node: o.Node, Argv: argv, ExitCode: -1, Err: err, Kind: reconciler.ErrUnavailable, Transient: true}
}

func (o Ops) invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", o.Node, err)
}
