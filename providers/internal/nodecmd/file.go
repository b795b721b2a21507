package nodecmd

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/phoenixhv/phoenix/reconciler"
)

// The scripts of Ops.WriteFile; the simulator models them by these names.
const (
	// StageFileName is the node's side: the content, from standard input,
	// kept on the node for pct push (phases apply and clean).
	StageFileName = "phoenix/stage-file"
	// FileName is the container's side: the directory made (prepare), the
	// copy renamed over the file (apply), a copy left by a failure removed
	// (clean).
	FileName = "phoenix/file"
)

// StageDir is where files wait on the node on their way into a container,
// readable by root only.
const StageDir = "/var/lib/phoenix/stage"

// NewSuffix is what pct push writes beside a file: the copy the guest's
// phoenix/file apply renames over it.
const NewSuffix = ".phoenix-new"

//go:embed stage-file.sh
var stageFileBody string

// StageFileScript is phoenix/stage-file for one phase and staged path.
func StageFileScript(phase, stage string) reconciler.Script {
	return reconciler.Script{Name: StageFileName, Phase: phase, Body: stageFileBody, Env: map[string]string{"PHOENIX_STAGE": stage}}
}

// FileScript is phoenix/file for one phase and file.
func FileScript(phase, file string) reconciler.Script {
	return reconciler.Script{Name: FileName, Phase: phase, Body: reconciler.FileScript, Env: map[string]string{"PHOENIX_FILE": file}}
}

// cleanBound bounds each removal after a write: it runs even when the
// write's ctx has ended, and must not hang on a dead node.
const cleanBound = 30 * time.Second

// WriteFile implements reconciler.Node's WriteFile: the content is staged on
// the node through standard input (never in an argv, which ps shows and
// errors print), the file's directory made in the container, the staged
// copy pushed beside the file with its mode and owner and renamed over it.
// The staged copy is removed whatever happened, and a copy pushed beside the
// file is removed after a failure.
func (o Ops) WriteFile(ctx context.Context, vmid int, f reconciler.FileWrite) (err error) {
	if err := checkFileWrite(vmid, f); err != nil {
		return o.invalid(err)
	}
	token, err := stageToken()
	if err != nil {
		return fmt.Errorf("%s: write %s into %d: %w", o.Node, f.Path, vmid, err)
	}
	stage := path.Join(StageDir, strconv.Itoa(vmid)+"-"+token)
	newPath := f.Path + NewSuffix
	push, err := PushOwnedArgv(vmid, stage, newPath, f.Mode, f.User, f.Group)
	if err != nil {
		return o.invalid(err)
	}
	defer func() {
		cctx, cancel := cleanCtx(ctx)
		defer cancel()
		cerr := o.hostScript(cctx, StageFileScript("clean", stage), nil)
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the staged copy of %s from the node: %w", f.Path, cerr))
		}
	}()
	if err := o.hostScript(ctx, StageFileScript("apply", stage), bytes.NewReader(f.Content)); err != nil {
		return err
	}
	if err := o.guestScript(ctx, vmid, FileScript("prepare", f.Path)); err != nil {
		return err
	}
	if _, err := o.do(ctx, OpPush, push, nil, nil); err != nil {
		return o.cleanGuest(ctx, vmid, f.Path, err)
	}
	if err := o.guestScript(ctx, vmid, FileScript("apply", f.Path)); err != nil {
		return o.cleanGuest(ctx, vmid, f.Path, err)
	}
	return nil
}

// cleanGuest removes what a failed write left beside the file, and returns
// the failure (with the removal's, if that failed too).
func (o Ops) cleanGuest(ctx context.Context, vmid int, file string, failure error) error {
	if errors.Is(failure, reconciler.ErrNotRunning) {
		// A stopped container runs nothing; the copy, if any, waits for
		// the next write, which replaces it.
		return failure
	}
	cctx, cancel := cleanCtx(ctx)
	defer cancel()
	if err := o.guestScript(cctx, vmid, FileScript("clean", file)); err != nil {
		return errors.Join(failure, fmt.Errorf("remove %s%s after the failure: %w", file, NewSuffix, err))
	}
	return failure
}

// cleanCtx is ctx for a removal after a write: not cancelled with it (the
// removal matters most when the write was given up), yet bounded.
func cleanCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanBound)
}

// hostScript runs a script on the node whose failure is an error.
func (o Ops) hostScript(ctx context.Context, s reconciler.Script, stdin io.Reader) error {
	argv, err := HostArgv(s)
	if err != nil {
		return o.invalid(err)
	}
	_, err = o.do(ctx, OpProbe, argv, stdin, nil)
	return err
}

// guestScript runs a script inside a container whose non-zero exit is an
// error, as pct's own failures are.
func (o Ops) guestScript(ctx context.Context, vmid int, s reconciler.Script) error {
	argv, err := ExecArgv(vmid, s)
	if err != nil {
		return o.invalid(err)
	}
	res, err := o.do(ctx, OpExec, argv, nil, nil)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &CommandError{Node: o.Node, Argv: argv, ExitCode: res.ExitCode, Stderr: Tail(res.Stderr), Kind: reconciler.ErrRefused}
	}
	return nil
}

// checkFileWrite refuses a file whose path would not mean one file: not
// absolute, not clean (.., //, a trailing /), the root, or with a control
// character, which no script's word should carry.
func checkFileWrite(vmid int, f reconciler.FileWrite) error {
	if err := checkVMID(vmid); err != nil {
		return err
	}
	p := f.Path
	switch {
	case !path.IsAbs(p) || path.Clean(p) != p || p == "/":
		return badRequest("write file %q into %d: want an absolute, clean path of a file", p, vmid)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return badRequest("write file %q into %d: the path holds a control character", p, vmid)
	case strings.HasSuffix(p, NewSuffix):
		return badRequest("write file %q into %d: %s is the suffix of phoenix's copies", p, vmid, NewSuffix)
	}
	return nil
}

// stageToken names one staged copy: random, so that two writes into one
// container never share a staged file.
func stageToken() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("a name for the staged copy: %w", err)
	}
	return hex.EncodeToString(b), nil
}
