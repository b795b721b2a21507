package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/internal/nodecmd"
	"github.com/phoenixhv/phoenix/reconciler"
)

// fakePct is a stand-in for Proxmox's pct, first in PATH: it records its
// argv NUL-separated (so every byte can be checked), then behaves as pct
// does: exec runs the command after --, a stopped or missing container is
// refused with pct's words and 255, push exits 0 even when it cannot read
// the source, set answers an unknown option with a 400.
const fakePct = `#!/bin/sh
printf '%s\0' "$@" > "$PHOENIX_TEST_DIR/argv"
case $1 in
exec)
	case $2 in
	101) echo "container '101' not running!" >&2; exit 255 ;;
	999) echo "Configuration file 'nodes/pve1/lxc/999.conf' does not exist" >&2; exit 255 ;;
	esac
	shift 3
	exec "$@"
	;;
push)
	if ! [ -r "$3" ]; then echo "failed to open $3 for reading" >&2; exit 0; fi
	cp "$3" "$PHOENIX_TEST_DIR/pushed"
	exit 0
	;;
set)
	case " $* " in
	*" --bogus "*)
		printf '400 Parameter verification failed.\nbogus: property is not defined in schema and the schema does not allow additional properties\npct set <vmid> [OPTIONS]\n' >&2
		exit 255 ;;
	esac
	exit 0
	;;
esac
echo "ERROR: unknown command 'pct $1'" >&2
exit 255
`

// setup puts the fake pct first in PATH and returns the directory it
// records into. The directory is baked into the script: the commands run
// with a scrubbed environment, so a variable would not reach it.
func setup(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(fakePct, `"$PHOENIX_TEST_DIR`, `"`+dir)
	if err := os.WriteFile(filepath.Join(bin, "pct"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

// recordedArgv is the argv the fake pct last ran with.
func recordedArgv(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "argv"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestExecRunsTheExactArgv(t *testing.T) {
	dir := setup(t)
	t.Setenv("PROXMOX_VE_PASSWORD", "do-not-leak")
	n := New("pve1")
	s := reconciler.Script{
		Name: "test/quoting", Phase: "apply",
		Body: "printf '%s|%s|%s|%s\\n' \"$QUOTE\" \"$MULTI\" \"$0\" \"$1\"\n# $(rm -rf /) `id` ünïcødé 🔥 'it''s'\nenv\nexit 7\n",
		Env:  map[string]string{"QUOTE": "it's $(reboot) `id`", "MULTI": "a\nb", "EMPTY": ""},
	}
	res, err := n.Exec(ctxT(t), 100, s)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := nodecmd.ExecArgv(100, s)
	if diff := cmp.Diff(want[1:], recordedArgv(t, dir)); diff != "" {
		t.Errorf("pct's argv (-want +got):\n%s", diff)
	}
	if res.ExitCode != 7 {
		t.Errorf("exit %d, want the script's 7", res.ExitCode)
	}
	if first := strings.SplitN(res.Stdout, "\n", 3); len(first) < 2 || first[0]+"\n"+first[1] != "it's $(reboot) `id`|a\nb|test/quoting|apply" {
		t.Errorf("script saw %q", res.Stdout)
	}
	if strings.Contains(res.Stdout, "do-not-leak") {
		t.Error("phoenix's environment reached the command")
	}
}

func TestExitStatus(t *testing.T) {
	setup(t)
	n := New("pve1")
	cases := map[string]int{
		"exit 0":                  0,
		"exit 42":                 42,
		"exit 255":                255, // the script's own 255, without pct's words, is a result
		"kill -TERM $$; sleep 5":  128 + 15,
		"echo oops >&2; exit 100": 100,
		"nonexistent-command-xyz": 127,
		"exec 1>&-; exit 3":       3,
		"(sleep 5 &) ; exit 0":    0, // a child left holding stdout does not hold up the result
	}
	for body, want := range cases {
		start := time.Now()
		res, err := n.ExecHost(ctxT(t), reconciler.Script{Name: "test/exit", Body: body})
		if err != nil || res.ExitCode != want {
			t.Errorf("%q: %+v, %v; want exit %d", body, res, err, want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%q took %v", body, d)
		}
	}
}

func TestPctFailures(t *testing.T) {
	setup(t)
	n := New("pve1")
	s := reconciler.Script{Name: "test/any", Phase: "check", Body: "true"}
	_, err := n.Exec(ctxT(t), 101, s)
	var ce *CommandError
	if !errors.As(err, &ce) || !ce.NotRunning || !errors.Is(err, reconciler.ErrRefused) {
		t.Errorf("stopped container: %v", err)
	}
	if _, err := n.Exec(ctxT(t), 999, s); !errors.Is(err, reconciler.ErrNotFound) {
		t.Errorf("missing container: %v", err)
	}
}

func TestPushAndSet(t *testing.T) {
	dir := setup(t)
	n := New("pve1")
	src := filepath.Join(dir, "runfile")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Push(ctxT(t), 100, src, "/root/runfile", 0o755); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"push", "100", src, "/root/runfile", "--perms", "0755"}, recordedArgv(t, dir)); diff != "" {
		t.Errorf("push argv (-want +got):\n%s", diff)
	}
	err := n.Push(ctxT(t), 100, filepath.Join(dir, "missing"), "/root/x", 0o644)
	if err == nil || !strings.Contains(err.Error(), "failed to open") {
		t.Errorf("push of a missing file: %v; want an error although pct exits 0", err)
	}

	if err := n.SetConfig(ctxT(t), 100, map[string]string{"dev1": "/dev/nvidiactl", "dev0": "/dev/nvidia0"}, []string{"dev2"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"set", "100", "--dev0", "/dev/nvidia0", "--dev1", "/dev/nvidiactl", "--delete", "dev2"}, recordedArgv(t, dir)); diff != "" {
		t.Errorf("set argv (-want +got):\n%s", diff)
	}
	err = n.SetConfig(ctxT(t), 100, map[string]string{"bogus": "1"}, nil)
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, reconciler.ErrBadRequest) || ce.Params["bogus"] == "" {
		t.Errorf("unknown option: %v", err)
	}
}

// alive reports whether a process exists and is not a zombie (a container's
// init may be slow to reap).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces, so look after the last ')'.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	return !bytes.HasPrefix(bytes.TrimSpace(rest), []byte("Z"))
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("%s never written", path)
	return 0
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	dir := setup(t)
	n := New("pve1")
	pidFile, childFile := filepath.Join(dir, "pid"), filepath.Join(dir, "child")
	s := reconciler.Script{Name: "test/slow", Phase: "apply",
		Body: "sleep 60 &\necho $! > " + childFile + "\necho $$ > " + pidFile + "\nwait\n"}
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		_, err := n.Exec(ctx, 100, s)
		errc <- err
	}()
	child := readPid(t, childFile)
	pid := readPid(t, pidFile)
	start := time.Now()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned %v after the cancel", d)
	}
	for deadline := time.Now().Add(2 * time.Second); (alive(pid) || alive(child)) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) || alive(child) {
		t.Errorf("still running after the cancel: script %v, its child %v", alive(pid), alive(child))
	}
}

func TestCancelEscalatesToSIGKILL(t *testing.T) {
	dir := setup(t)
	n := &Node{Name: "pve1", KillGrace: 300 * time.Millisecond}
	pidFile := filepath.Join(dir, "pid")
	s := reconciler.Script{Name: "test/stubborn", Phase: "apply",
		Body: "trap '' TERM\necho $$ > " + pidFile + "\nwhile :; do sleep 0.05; done\n"}
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		_, err := n.Exec(ctx, 100, s)
		errc <- err
	}()
	pid := readPid(t, pidFile)
	start := time.Now()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("returned %v after the cancel; want about the 300ms grace", d)
	}
	if alive(pid) {
		t.Error("a script ignoring SIGTERM survived")
	}
}

func TestOutputIsBounded(t *testing.T) {
	setup(t)
	n := &Node{Name: "pve1", OutputLimit: 1000}
	res, err := n.ExecHost(ctxT(t), reconciler.Script{Name: "test/chatty",
		Body: "echo start; i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; echo the end"})
	if err != nil || res.ExitCode != 0 {
		t.Fatal(res, err)
	}
	if len(res.Stdout) > 1100 || !strings.HasPrefix(res.Stdout, "start\n") || !strings.HasSuffix(res.Stdout, "the end\n") ||
		!strings.Contains(res.Stdout, "bytes of output dropped]") {
		t.Errorf("kept %d bytes: %.80q ... %q", len(res.Stdout), res.Stdout, res.Stdout[max(0, len(res.Stdout)-40):])
	}
}

func TestHostProbeOnThisMachine(t *testing.T) {
	// Whatever this machine has (usually no NVIDIA driver), the real probe
	// runs and its output parses.
	info, err := New("here").HostProbe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this machine: %+v", info)
}

func TestNoPct(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := New("pve1").Exec(ctxT(t), 100, reconciler.Script{Name: "test/x", Body: "true"})
	if !errors.Is(err, reconciler.ErrRefused) || reconciler.Retryable(err) || !strings.Contains(err.Error(), "Proxmox VE node") {
		t.Errorf("without pct: %v", err)
	}
}

// line is one line a script printed, and when it reached the callback.
type line struct {
	text string
	at   time.Time
}

func TestExecStreamsLinesAsPrinted(t *testing.T) {
	setup(t)
	n := New("pve1")
	var mu sync.Mutex
	var got []line
	s := reconciler.Script{Name: "test/progress", Phase: "apply",
		Body: "echo 'Reading package lists...'; sleep 0.3\n" +
			"printf 'Progress: [ 25%%]\\rProgress: [ 50%%]\\r'; sleep 0.3\n" +
			"echo 'W: slow mirror' >&2; sleep 0.3\n" +
			"printf 'Setting up cuda-toolkit-12-8 ...'",
		Output: func(s string) {
			mu.Lock()
			got = append(got, line{s, time.Now()})
			mu.Unlock()
		}}
	res, err := n.Exec(ctxT(t), 100, s)
	end := time.Now()
	if err != nil || res.ExitCode != 0 {
		t.Fatal(res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	var texts []string
	for _, l := range got {
		texts = append(texts, l.text)
	}
	want := []string{"Reading package lists...", "Progress: [ 25%]", "Progress: [ 50%]", "W: slow mirror", "Setting up cuda-toolkit-12-8 ..."}
	if diff := cmp.Diff(want, texts); diff != "" {
		t.Fatalf("lines (-want +got):\n%s", diff)
	}
	// Each line arrives when printed, not when the script ends.
	for i, early := range []time.Duration{800 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 200 * time.Millisecond} {
		if ahead := end.Sub(got[i].at); ahead < early-100*time.Millisecond {
			t.Errorf("%q arrived %v before the end; want about %v", got[i].text, ahead, early)
		}
	}
	if res.Stdout != "Reading package lists...\nProgress: [ 25%]\rProgress: [ 50%]\rSetting up cuda-toolkit-12-8 ..." || res.Stderr != "W: slow mirror\n" {
		t.Errorf("the result holds %+v", res)
	}
}

func TestExecWithoutOutputCallback(t *testing.T) {
	setup(t)
	res, err := New("pve1").ExecHost(ctxT(t), reconciler.Script{Name: "test/quiet", Body: "echo a; echo b >&2; printf c"})
	if err != nil || res != (reconciler.Result{Stdout: "a\nc", Stderr: "b\n"}) {
		t.Errorf("%+v, %v", res, err)
	}
}
