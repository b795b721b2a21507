package nodecmd

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
	"github.com/phoenixhv/phoenix/reconciler"
)

// PctFailure is pct's exit status for its own failures: pct is a Perl CLI
// and dies with 255 before (or instead of) running anything.
const PctFailure = 255

// CommandError is a command on a node that failed as a command: pct refused
// it, or it never reached an exit status (no connection, connection lost).
// A named script that exits non-zero is not a CommandError: its exit status
// is a Result for the caller to interpret.
type CommandError struct {
	Node string
	Argv []string
	// ExitCode is -1 when the command ended without an exit status or
	// never started.
	ExitCode int
	// Stderr is the end of what the command wrote to stderr.
	Stderr string
	// Kind is one of the reconciler.Err* values.
	Kind error
	// NotRunning: the container is not running (pct exec and pct push need
	// a running one).
	NotRunning bool
	// Params are the per-option messages of a 400 from pct set.
	Params map[string]string
	// Transient: trying again unchanged may succeed (a lock, a lost
	// connection, a cluster without quorum).
	Transient bool
	// Err is the transport's error when there is no exit status.
	Err error
}

func (e *CommandError) Error() string {
	var b strings.Builder
	if e.Node != "" {
		b.WriteString(e.Node + ": ")
	}
	b.WriteString(RenderArgv(e.Argv))
	switch {
	case e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	}
	lines := strings.Split(strings.TrimSpace(e.Stderr), "\n")
	switch {
	case e.Stderr == "" || strings.TrimSpace(e.Stderr) == "":
	case len(lines) == 1:
		b.WriteString(": " + lines[0])
	default:
		b.WriteString(":\n  " + strings.Join(lines, "\n  "))
	}
	return b.String()
}

// Is matches the error's kind, so callers branch on reconciler.ErrNotFound
// and friends without knowing which transport ran the command.
func (e *CommandError) Is(target error) bool {
	return e.Kind != nil && target == e.Kind || e.NotRunning && target == reconciler.ErrNotRunning
}

func (e *CommandError) Unwrap() error { return e.Err }

// Retryable reports whether trying again unchanged may succeed.
func (e *CommandError) Retryable() bool { return e.Transient }

// TransportError is a command that did not reach an exit status. Transports
// use it for failures they can classify (an unknown host key is permanent);
// anything else they return is taken as a lost connection, worth a retry.
func TransportError(err error, kind error, transient bool) *CommandError {
	return &CommandError{ExitCode: -1, Err: err, Kind: kind, Transient: transient}
}

// secretKey matches environment variable names whose values are not to be
// printed: scripts receive tokens and passwords as parameters.
var secretKey = regexp.MustCompile(`(?i)PASSWORD|PASSWD|TOKEN|SECRET|KEY`)

// RenderArgv renders an argv for people: quoted like a command line, with
// the values of secret-looking environment variables redacted and script
// bodies left out (the script's name says which one it was).
func RenderArgv(argv []string) string {
	words := make([]string, len(argv))
	inEnv := false
	for i, w := range argv {
		switch {
		case w == "env" && (i == 0 || argv[i-1] == "--" || afterTimeout(argv, i)):
			inEnv = true
			words[i] = w
			continue
		case inEnv && strings.Contains(w, "="):
			if k, _, _ := strings.Cut(w, "="); secretKey.MatchString(k) {
				words[i] = shellwords.Quote(k) + "=<redacted>"
				continue
			}
		case i >= 2 && argv[i-1] == "-c" && strings.HasSuffix(argv[i-2], "sh"):
			words[i] = fmt.Sprintf("<script: %d bytes>", len(w))
			inEnv = false
			continue
		default:
			inEnv = false
		}
		words[i] = shellwords.Quote(w)
	}
	return strings.Join(words, " ")
}

// afterTimeout reports whether argv[i] is the command timeout(1) runs, as
// bounded writes it: timeout -k KILL SECONDS COMMAND.
func afterTimeout(argv []string, i int) bool {
	return i >= 4 && argv[i-4] == "timeout" && argv[i-3] == "-k"
}

// Op is what a command was for; it decides which endings are failures.
type Op int

const (
	// OpExec is a script inside a container: its own exit status is a
	// result, only pct's failures are errors.
	OpExec Op = iota
	// OpHost is a script on the node: its exit status is always a result.
	OpHost
	// OpPush is pct push: anything but a clean exit 0 is an error.
	OpPush
	// OpSet is pct set: any non-zero exit is an error.
	OpSet
	// OpProbe is a host script whose output phoenix reads: any non-zero
	// exit is an error.
	OpProbe
)

// What pct prints when it fails, from pve-container and pve-common.
var (
	notRunningRE = regexp.MustCompile(`^container '[0-9]+' not running!$|^can only push files to a running CT$|^CT [0-9]+ not running$`)
	noConfigRE   = regexp.MustCompile(`^Configuration file '[^']*' does not exist$`)
	lockedRE     = regexp.MustCompile(`^(CT|VM) is locked \(|can't lock file '[^']*' - got timeout`)
	// pmxcfs without quorum or not answering: every pct command that reads
	// or writes /etc/pve fails until the cluster is back.
	clusterRE    = regexp.MustCompile(`cluster not ready - no quorum|ipcc_send_rec\[[0-9]+\] failed|no quorum`)
	modifiedRE   = regexp.MustCompile(`^detected modified configuration`)
	permissionRE = regexp.MustCompile(`only allowed for root@pam|[Pp]ermission denied|Permission check failed`)
	// pctMissingRE is bash's or dash's "command not found" for pct itself.
	pctMissingRE = regexp.MustCompile(`(^|: )pct: (command )?not found$`)
	// getoptRE is Getopt::Long's complaint about one option.
	getoptRE = regexp.MustCompile(`^(Unknown option: ([a-z0-9_-]+)|Option ([a-z0-9_-]+) requires an argument)$`)
	// paramLineRE is one "option: message" line of a 400.
	paramLineRE = regexp.MustCompile(`^([a-z][a-z0-9_-]*): (.*)$`)
)

// Classify returns the error a finished command stands for, or nil when its
// Result is the caller's to interpret.
func Classify(op Op, node string, argv []string, res reconciler.Result) error {
	e := &CommandError{Node: node, Argv: argv, ExitCode: res.ExitCode, Stderr: Tail(res.Stderr)}
	lines := nonEmptyLines(res.Stderr)
	if op != OpHost && op != OpProbe && res.ExitCode == 127 && len(lines) == 1 && pctMissingRE.MatchString(lines[0]) {
		// The login shell found no pct: the address is no Proxmox VE node.
		e.Kind = reconciler.ErrRefused
		return e
	}
	switch op {
	case OpHost:
		return nil
	case OpExec:
		// A script may exit 255 itself; only pct's own words make it pct's
		// failure. pct fails before the script starts, so its message is
		// the last thing on stderr.
		if res.ExitCode != PctFailure || len(lines) == 0 || !classifyPct(e, lines, true) {
			return nil
		}
		return e
	case OpPush:
		// pct push copies in a forked worker whose death does not reach the
		// exit status: "failed to open X for reading" comes with exit 0.
		// A successful push prints nothing, so any stderr is a failure.
		if res.ExitCode == 0 && len(lines) == 0 {
			return nil
		}
	case OpSet, OpProbe:
		if res.ExitCode == 0 {
			return nil
		}
	}
	if !classifyPct(e, lines, false) {
		e.Kind = reconciler.ErrRefused
	}
	return e
}

// classifyPct sets the kind of a pct failure from its message; it reports
// false when the message is not one of pct's. With lastOnly, only the last
// line counts (besides a 400's first line): what a script printed before
// must not pass for pct's words.
func classifyPct(e *CommandError, lines []string, lastOnly bool) bool {
	if len(lines) == 0 {
		return false
	}
	rest := lines
	if lastOnly {
		rest = lines[len(lines)-1:]
	}
	// PVE::CLIHandler reports a bad command line as "400 <message>",
	// after Getopt's own complaints ("Unknown option: x") and before the
	// usage line; parameter verification adds one "option: message" line
	// per option.
	bad := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "400 ") })
	switch {
	case bad >= 0 && (!lastOnly || strings.HasPrefix(lines[len(lines)-1], "pct ")):
		e.Kind, e.Params = reconciler.ErrBadRequest, map[string]string{}
		for i, l := range lines {
			switch m := getoptRE.FindStringSubmatch(l); {
			case i < bad && m != nil:
				e.Params[m[2]+m[3]] = l
			case i > bad && !strings.HasPrefix(l, "pct "):
				if m := paramLineRE.FindStringSubmatch(l); m != nil {
					e.Params[m[1]] = m[2]
				}
			}
		}
	case anyLine(rest, notRunningRE):
		e.Kind, e.NotRunning = reconciler.ErrRefused, true
	case anyLine(rest, noConfigRE):
		e.Kind = reconciler.ErrNotFound
	case anyLine(rest, lockedRE):
		e.Kind, e.Transient = reconciler.ErrLocked, true
	case anyLine(rest, clusterRE):
		e.Kind, e.Transient = reconciler.ErrUnavailable, true
	case anyLine(rest, modifiedRE):
		e.Kind, e.Transient = reconciler.ErrConflict, true
	case anyLine(rest, permissionRE):
		e.Kind = reconciler.ErrPermission
	default:
		return false
	}
	return true
}

func anyLine(lines []string, re *regexp.Regexp) bool {
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, "\r \t"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Tail is the end of a command's stderr worth keeping in an error: the
// last lines, where installers and pct put the reason.
func Tail(s string) string {
	const maxLines, maxBytes = 20, 4096
	s = strings.TrimRight(s, "\n")
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	if lines := strings.Split(s, "\n"); len(lines) > maxLines {
		s = strings.Join(lines[len(lines)-maxLines:], "\n")
	}
	return s
}
