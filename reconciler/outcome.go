package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ProblemKind says what it takes for a guest with a plan problem to move on.
// The loop parks a guest whose problem needs a person and keeps retrying one
// whose problem may pass by itself.
type ProblemKind string

const (
	// ProblemConflict: a guest phoenix does not own holds the VMID or the
	// name. A person resolves it (another vmid, or adopting the guest).
	ProblemConflict ProblemKind = "conflict"
	// ProblemSpec: the spec asks for what cannot be (a GPU the node does
	// not have, a disk smaller than it is, another node). Change the spec.
	ProblemSpec ProblemKind = "spec"
	// ProblemFlag: the change destroys something and needs the flag that
	// allows it (--allow-replace, --prune), or is refused even with it
	// (protection: 1).
	ProblemFlag ProblemKind = "flag"
	// ProblemNode: the node must be fixed first (its NVIDIA driver,
	// nvidia-uvm, a storage, an OS template volume).
	ProblemNode ProblemKind = "node"
	// ProblemObserve: the cluster could not be observed (a config read or a
	// host probe failed, a node is offline). It may pass: retried.
	ProblemObserve ProblemKind = "observe"
	// ProblemBlocked: the guest waits for its template, which has a problem
	// of its own.
	ProblemBlocked ProblemKind = "blocked"
)

// ProblemKinds lists every kind, for documentation and tests.
var ProblemKinds = []ProblemKind{ProblemConflict, ProblemSpec, ProblemFlag, ProblemNode, ProblemObserve, ProblemBlocked}

// NeedsPerson reports whether trying again cannot help until a person acts.
func (k ProblemKind) NeedsPerson() bool {
	switch k {
	case ProblemConflict, ProblemSpec, ProblemFlag, ProblemNode:
		return true
	}
	return false
}

// Problem is why a guest cannot be converged as specified. Nothing is done to
// a guest with a problem.
type Problem struct {
	Kind    ProblemKind `json:"kind"`
	Message string      `json:"message"`
}

func (p Problem) String() string { return p.Message }

func problem(kind ProblemKind, format string, args ...any) Problem {
	return Problem{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// ProblemError carries the problems a guest's plan found during an apply.
type ProblemError struct{ Problems []Problem }

func (e *ProblemError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Message
	}
	return strings.Join(msgs, "; ")
}

// Kind is the kind of the first problem that needs a person, else the first.
func (e *ProblemError) Kind() ProblemKind {
	for _, p := range e.Problems {
		if p.Kind.NeedsPerson() {
			return p.Kind
		}
	}
	if len(e.Problems) == 0 {
		return ProblemObserve
	}
	return e.Problems[0].Kind
}

// Outcome is how a step of the apply went. Every event carries one.
type Outcome string

const (
	// Started: an action or a phase of a feature step begins.
	Started Outcome = "started"
	// Done: it succeeded.
	Done Outcome = "done"
	// Skipped: nothing to do. A check found the step already done, or an
	// action of the plan had become true by the time its turn came.
	Skipped Outcome = "skipped"
	// Needed: a check found its step not done; the apply phase follows.
	Needed Outcome = "needed"
	// Retrying: it failed in a way worth another try; Duration is the wait.
	Retrying Outcome = "retrying"
	// Running: a heartbeat of a step that is still running, with how long it
	// has run (Duration) and the last line it printed (Output).
	Running Outcome = "running"
	// Output: a line a running step printed, as it printed it.
	Output Outcome = "output"
	// Failed: it failed; Err says why and ErrKind what kind of failure.
	Failed Outcome = "failed"
)

// Outcomes lists every outcome, for documentation and tests.
var Outcomes = []Outcome{Started, Done, Skipped, Needed, Retrying, Running, Output, Failed}

// ErrorKind classifies a failure for the loop, the metrics and the JSON
// output. The plan's problem kinds are error kinds too, for problems found
// while applying.
type ErrorKind string

const (
	// ErrorTransient: a lock, a timeout, a dropped connection; retried.
	ErrorTransient ErrorKind = "transient"
	// ErrorPermission: the credentials may not do it.
	ErrorPermission ErrorKind = "permission"
	// ErrorRefused: Proxmox refused the request as made.
	ErrorRefused ErrorKind = "refused"
	// ErrorStep: a feature's script failed (its output says why).
	ErrorStep ErrorKind = "step"
	// ErrorTimeout: a wait ran out (a container that never initialised).
	ErrorTimeout ErrorKind = "timeout"
	// ErrorStopped: a stop signal came before the guest converged.
	ErrorStopped ErrorKind = "stopped"
	// ErrorCanceled: the apply was aborted.
	ErrorCanceled ErrorKind = "canceled"
	// ErrorChanged: the guest changed while it was applied, so that it
	// needs what the approved plan did not show: plan again.
	ErrorChanged ErrorKind = "changed"
	// ErrorInternal: a bug in phoenix (a panic), reported with its stack in
	// the log.
	ErrorInternal ErrorKind = "internal"
	// ErrorOther: anything else.
	ErrorOther ErrorKind = "error"
)

// ErrorKinds lists every apply error kind besides the problem kinds.
var ErrorKinds = []ErrorKind{ErrorTransient, ErrorPermission, ErrorRefused, ErrorStep, ErrorTimeout, ErrorStopped,
	ErrorCanceled, ErrorChanged, ErrorInternal, ErrorOther}

// ErrorKindOf classifies an error. A nil error has no kind.
func ErrorKindOf(err error) ErrorKind {
	var (
		pe *ProblemError
		se *StepError
		ke kinded
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ke):
		return ke.ErrorKind()
	case errors.As(err, &pe):
		return ErrorKind(pe.Kind())
	case errors.Is(err, ErrStopped):
		return ErrorStopped
	case errors.Is(err, context.Canceled):
		return ErrorCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return ErrorTimeout
	case errors.As(err, &se):
		return ErrorStep
	case Retryable(err):
		return ErrorTransient
	case errors.Is(err, ErrPermission):
		return ErrorPermission
	case errors.Is(err, ErrRefused), errors.Is(err, ErrBadRequest), errors.Is(err, ErrAlreadyExists):
		return ErrorRefused
	}
	return ErrorOther
}

// NeedsPerson reports whether an apply failure of this kind repeats until a
// person acts (credentials, a refusal, a spec or a node to fix).
func (k ErrorKind) NeedsPerson() bool {
	switch k {
	case ErrorPermission, ErrorRefused:
		return true
	}
	return ProblemKind(k).NeedsPerson()
}

// kinded is an error that knows its kind.
type kinded interface{ ErrorKind() ErrorKind }

// kindError gives an error a kind.
type kindError struct {
	kind ErrorKind
	err  error
}

func (e *kindError) Error() string        { return e.err.Error() }
func (e *kindError) Unwrap() error        { return e.err }
func (e *kindError) ErrorKind() ErrorKind { return e.kind }

func withKind(kind ErrorKind, err error) error { return &kindError{kind: kind, err: err} }

// StepError is a feature script that exited non-zero, with the end of what
// it printed.
type StepError struct {
	Step     string
	Phase    string
	ExitCode int
	Output   string
}

func (e *StepError) Error() string {
	if e.Output == "" {
		return fmt.Sprintf("%s %s exited %d and printed nothing", e.Step, e.Phase, e.ExitCode)
	}
	return fmt.Sprintf("%s %s exited %d: %s", e.Step, e.Phase, e.ExitCode, e.Output)
}
