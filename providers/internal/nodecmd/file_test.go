package nodecmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/reconciler"
)

// fileSecret is content that must never show in an argv or an error.
const fileSecret = "password=hunter2-do-not-print"

// writeRun is one command WriteFile ran: what it was for, its argv, what it
// got on standard input and whether its ctx had ended.
type writeRun struct {
	what    string
	argv    []string
	stdin   string
	ctxDone bool
}

// writeRunner answers WriteFile's commands by what they are for ("stage
// apply", "file prepare", "push", ...): fail says how each ends, default
// exit 0 and nothing printed.
type writeRunner struct {
	mu   sync.Mutex
	runs []writeRun
	fail map[string]reconciler.Result
	// during is called while a command runs, by what it is for.
	during map[string]func()
}

// what names a command of WriteFile's by its script and phase.
func what(argv []string) string {
	if len(argv) >= 2 && argv[0] == "pct" && argv[1] == "push" {
		return "push"
	}
	name, phase := "", ""
	for i, w := range argv {
		if w == "-c" && i+3 < len(argv) {
			name, phase = argv[i+2], argv[i+3]
		}
	}
	return strings.TrimPrefix(name, "phoenix/") + " " + phase
}

func (r *writeRunner) run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	w := what(argv)
	in := ""
	if stdin != nil {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return -1, err
		}
		in = string(b)
	}
	if f := r.during[w]; f != nil {
		f()
	}
	r.mu.Lock()
	r.runs = append(r.runs, writeRun{what: w, argv: argv, stdin: in, ctxDone: ctx.Err() != nil})
	res := r.fail[w]
	r.mu.Unlock()
	_, _ = io.WriteString(stdout, res.Stdout)
	_, _ = io.WriteString(stderr, res.Stderr)
	return res.ExitCode, nil
}

func (r *writeRunner) whats() []string {
	var out []string
	for _, x := range r.runs {
		out = append(out, x.what)
	}
	return out
}

var stageRE = regexp.MustCompile(`^PHOENIX_STAGE=/var/lib/phoenix/stage/101-[0-9a-f]{16}$`)

func TestWriteFileArgv(t *testing.T) {
	r := &writeRunner{}
	o := Ops{Node: "pve1", Run: r.run}
	f := reconciler.FileWrite{Path: "/etc/app/app.conf", Content: []byte(fileSecret + "\n"), Mode: 0o640, User: "www-data", Group: "33"}
	if err := o.WriteFile(context.Background(), 101, f); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"stage-file apply", "file prepare", "push", "file apply", "stage-file clean"}, r.whats()); diff != "" {
		t.Fatalf("commands (-want +got):\n%s", diff)
	}
	stage := strings.TrimPrefix(r.runs[0].argv[1], "PHOENIX_STAGE=")
	if !stageRE.MatchString(r.runs[0].argv[1]) {
		t.Errorf("staged at %q, want /var/lib/phoenix/stage/101-<16 hex digits>", r.runs[0].argv[1])
	}
	want := [][]string{
		{"env", "PHOENIX_STAGE=" + stage, "/bin/sh", "-c", stageFileBody, "phoenix/stage-file", "apply"},
		{"pct", "exec", "101", "--", "env", "PHOENIX_FILE=/etc/app/app.conf", "/bin/sh", "-c", reconciler.FileScript, "phoenix/file", "prepare"},
		{"pct", "push", "101", stage, "/etc/app/app.conf.phoenix-new", "--perms", "0640", "--user", "www-data", "--group", "33"},
		{"pct", "exec", "101", "--", "env", "PHOENIX_FILE=/etc/app/app.conf", "/bin/sh", "-c", reconciler.FileScript, "phoenix/file", "apply"},
		{"env", "PHOENIX_STAGE=" + stage, "/bin/sh", "-c", stageFileBody, "phoenix/stage-file", "clean"},
	}
	var got [][]string
	for _, x := range r.runs {
		got = append(got, x.argv)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	for _, x := range r.runs {
		wantIn := ""
		if x.what == "stage-file apply" {
			wantIn = fileSecret + "\n"
		}
		if x.stdin != wantIn {
			t.Errorf("%s got %q on standard input, want %q", x.what, x.stdin, wantIn)
		}
		if strings.Contains(strings.Join(x.argv, " "), "hunter2") {
			t.Errorf("%s carries the content in its argv", x.what)
		}
	}
	// Two writes never share a staged file.
	if err := o.WriteFile(context.Background(), 101, f); err != nil {
		t.Fatal(err)
	}
	if again := r.runs[5].argv[1]; again == r.runs[0].argv[1] {
		t.Errorf("the second write staged at %s too", again)
	}
}

// TestWriteFileCleansAfterFailure: whatever fails, the staged copy is
// removed from the node; a copy that may have reached the container is
// removed there; the error is classified, and never holds the content.
func TestWriteFileCleansAfterFailure(t *testing.T) {
	notRunning := reconciler.Result{ExitCode: 255, Stderr: "can only push files to a running CT\n"}
	cases := map[string]struct {
		fail map[string]reconciler.Result
		runs []string
		kind error
		msg  string
	}{
		"staging fails": {
			fail: map[string]reconciler.Result{"stage-file apply": {ExitCode: 1, Stderr: "cat: write error: No space left on device\n"}},
			runs: []string{"stage-file apply", "stage-file clean"}, kind: reconciler.ErrRefused, msg: "No space left on device",
		},
		"the directory cannot be made": {
			fail: map[string]reconciler.Result{"file prepare": {ExitCode: 1, Stderr: "mkdir: cannot create directory '/etc/app': Read-only file system\n"}},
			runs: []string{"stage-file apply", "file prepare", "stage-file clean"}, kind: reconciler.ErrRefused, msg: "exit status 1: mkdir: cannot create directory",
		},
		"pct push fails in its worker": {
			fail: map[string]reconciler.Result{"push": {Stderr: "failed to get uid for: www-data\n"}},
			runs: []string{"stage-file apply", "file prepare", "push", "file clean", "stage-file clean"}, kind: reconciler.ErrRefused, msg: "failed to get uid for: www-data",
		},
		"the container stopped": {
			fail: map[string]reconciler.Result{"push": notRunning},
			runs: []string{"stage-file apply", "file prepare", "push", "stage-file clean"}, kind: reconciler.ErrNotRunning, msg: "can only push files to a running CT",
		},
		"the rename fails": {
			fail: map[string]reconciler.Result{"file apply": {ExitCode: 1, Stderr: "phoenix: /etc/app/app.conf.phoenix-new is missing: pct push did not copy it\n"}},
			runs: []string{"stage-file apply", "file prepare", "push", "file apply", "file clean", "stage-file clean"}, kind: reconciler.ErrRefused, msg: "is missing",
		},
		"the removals fail too": {
			fail: map[string]reconciler.Result{
				"file apply":       {ExitCode: 1, Stderr: "mv: cannot move\n"},
				"file clean":       {ExitCode: 1, Stderr: "rm: cannot remove\n"},
				"stage-file clean": {ExitCode: 1, Stderr: "rm: cannot remove stage\n"},
			},
			runs: []string{"stage-file apply", "file prepare", "push", "file apply", "file clean", "stage-file clean"}, kind: reconciler.ErrRefused,
			msg: "remove the staged copy of /etc/app/app.conf from the node",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := &writeRunner{fail: tc.fail}
			o := Ops{Node: "pve1", Run: r.run}
			err := o.WriteFile(context.Background(), 101, reconciler.FileWrite{Path: "/etc/app/app.conf", Content: []byte(fileSecret), Mode: 0o600, User: "www-data", Group: "www-data"})
			if diff := cmp.Diff(tc.runs, r.whats()); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
			if err == nil || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v; want %v saying %q", err, tc.kind, tc.msg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error holds the content: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "pve1: ") {
				t.Errorf("the error does not name the node: %v", err)
			}
		})
	}
}

// TestWriteFileCleansAfterCancel: a write given up on (its ctx ended while
// the push ran) still removes both copies, under a ctx of their own.
func TestWriteFileCleansAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &writeRunner{during: map[string]func(){"push": cancel}}
	o := Ops{Node: "pve1", Run: func(c context.Context, argv []string, in io.Reader, stdout, stderr io.Writer) (int, error) {
		code, _ := r.run(c, argv, in, stdout, stderr)
		if err := c.Err(); err != nil {
			return -1, err
		}
		return code, nil
	}}
	err := o.WriteFile(ctx, 101, reconciler.FileWrite{Path: "/etc/app/app.conf", Content: []byte(fileSecret), Mode: 0o600})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want the cancellation", err)
	}
	if diff := cmp.Diff([]string{"stage-file apply", "file prepare", "push", "file clean", "stage-file clean"}, r.whats()); diff != "" {
		t.Fatalf("commands (-want +got):\n%s", diff)
	}
	for _, x := range r.runs[3:] {
		if x.ctxDone {
			t.Errorf("%s ran under the ended ctx", x.what)
		}
	}
}

func TestWriteFileRefusesBadInput(t *testing.T) {
	cases := map[string]struct {
		vmid int
		f    reconciler.FileWrite
	}{
		"relative path":         {101, reconciler.FileWrite{Path: "etc/app.conf", Mode: 0o644}},
		"dot-dot":               {101, reconciler.FileWrite{Path: "/etc/../root/.ssh/authorized_keys", Mode: 0o644}},
		"trailing slash":        {101, reconciler.FileWrite{Path: "/etc/app/", Mode: 0o644}},
		"the root":              {101, reconciler.FileWrite{Path: "/", Mode: 0o644}},
		"newline":               {101, reconciler.FileWrite{Path: "/etc/a\nb", Mode: 0o644}},
		"phoenix's own suffix":  {101, reconciler.FileWrite{Path: "/etc/a.phoenix-new", Mode: 0o644}},
		"a user read as option": {101, reconciler.FileWrite{Path: "/etc/a", Mode: 0o644, User: "--perms"}},
		"a group with a space":  {101, reconciler.FileWrite{Path: "/etc/a", Mode: 0o644, Group: "a b"}},
		"a bad VMID":            {99, reconciler.FileWrite{Path: "/etc/a", Mode: 0o644}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := &writeRunner{}
			err := Ops{Node: "pve1", Run: r.run}.WriteFile(context.Background(), tc.vmid, tc.f)
			if !errors.Is(err, reconciler.ErrBadRequest) || len(r.runs) != 0 {
				t.Errorf("%v after %v; want ErrBadRequest and nothing run", err, r.whats())
			}
		})
	}
}

func TestPushOwnedArgv(t *testing.T) {
	argv, err := PushOwnedArgv(100, "/s", "/d", os.ModeSetuid|0o755, "1000", "")
	if err != nil {
		t.Fatal(err)
	}
	// The setuid bit in Unix's place, which os.FileMode keeps elsewhere.
	if diff := cmp.Diff([]string{"pct", "push", "100", "/s", "/d", "--perms", "4755", "--user", "1000"}, argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	if argv, err := PushArgv(100, "/s", "/d", 0o644); err != nil || len(argv) != 7 {
		t.Errorf("PushArgv without an owner: %q, %v; want no --user, no --group", argv, err)
	}
}

// TestStageFileRefusesOtherPaths runs the real script with real shells: a
// staged path must be one file right in the stage directory, or root would
// write where the name leads. (Writing needs root; refusing does not.)
func TestStageFileRefusesOtherPaths(t *testing.T) {
	for _, shell := range testtool.Shells(t) {
		for _, p := range []string{"/etc/shadow", "/var/lib/phoenix/stage/../../../etc/shadow", "/var/lib/phoenix/stage/", "/var/lib/phoenix/stage/a/b", "/var/lib/phoenix/stage/.."} {
			cmd := exec.Command(shell, "-c", stageFileBody, StageFileName, "apply")
			cmd.Env = []string{"PHOENIX_STAGE=" + p, "PATH=" + os.Getenv("PATH")}
			cmd.Stdin = strings.NewReader("x")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "is not a file in /var/lib/phoenix/stage") {
				t.Errorf("%s, PHOENIX_STAGE=%s: %v, %q; want exit 2 refusing it", filepath.Base(shell), p, err, stderr.String())
			}
		}
	}
}

// TestFileScript runs reconciler's phoenix/file with real shells in a
// directory standing in for a container's root: prepare makes the
// directory, apply renames the pushed copy over the file (and fails when
// there is none), clean removes a copy left behind.
func TestFileScript(t *testing.T) {
	for _, shell := range testtool.Shells(t) {
		t.Run(filepath.Base(shell), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "etc", "app", "app.conf")
			run := func(phase string) (int, string) {
				cmd := exec.Command(shell, "-c", reconciler.FileScript, FileName, phase)
				cmd.Env = []string{"PHOENIX_FILE=" + file, "PATH=" + os.Getenv("PATH")}
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					return exit.ExitCode(), stderr.String()
				}
				if err != nil {
					t.Fatal(err)
				}
				return 0, stderr.String()
			}
			if code, msg := run("apply"); code != 1 || !strings.Contains(msg, file+".phoenix-new is missing") {
				t.Errorf("apply without a copy: %d %q; want 1 saying the copy is missing", code, msg)
			}
			if code, msg := run("prepare"); code != 0 {
				t.Fatalf("prepare: %d %q", code, msg)
			}
			if err := os.WriteFile(file+NewSuffix, []byte("new"), 0o600); err != nil {
				t.Fatalf("prepare made no directory: %v", err)
			}
			if code, msg := run("apply"); code != 0 {
				t.Fatalf("apply: %d %q", code, msg)
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != "new" {
				t.Errorf("after apply the file holds %q, %v", b, err)
			}
			if _, err := os.Stat(file + NewSuffix); !os.IsNotExist(err) {
				t.Errorf("the copy is still there after apply: %v", err)
			}
			if err := os.WriteFile(file+NewSuffix, []byte("left"), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, msg := run("clean"); code != 0 {
				t.Fatalf("clean: %d %q", code, msg)
			}
			if _, err := os.Stat(file + NewSuffix); !os.IsNotExist(err) {
				t.Errorf("the copy is still there after clean: %v", err)
			}
			if b, _ := os.ReadFile(file); string(b) != "new" {
				t.Errorf("clean touched the file: %q", b)
			}
		})
	}
}
