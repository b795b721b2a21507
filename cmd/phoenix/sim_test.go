package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// phoenixBinary builds the command once per test binary for the tests that need
// a real process. TestMain calls removeBinary: at 23 MB a build, one left behind
// by every run soon fills the temporary directory.
func phoenixBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "phoenix-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "phoenix")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func removeBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// eventually polls cond until it holds or d has passed, and reports whether it
// held. It is for what a test can only see from outside: files another process
// writes or removes, the exit of a process that is not the test's child.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// leftIn lists what is under dir, relative to it.
func leftIn(dir string) []string {
	var left []string
	_ = filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dir, path); rel != "." {
			left = append(left, rel)
		}
		return err
	})
	return left
}

// TestSimEvalPattern runs the documented shell pattern: eval the export lines of a
// backgrounded phoenix sim, use them, then stop it with SIGTERM.
func TestSimEvalPattern(t *testing.T) {
	bash := testtool.Require(t, "bash")
	bin := phoenixBinary(t)
	script := `set -e
eval "$("$PHOENIX" sim --world ../../examples/homelab/world.yaml 2>"$SIMLOG" &)"
echo "endpoint=$PROXMOX_VE_ENDPOINT"
echo "pid=$PHOENIX_SIM_PID"
echo "ca=$PROXMOX_VE_CA_FILE"
test -s "$PROXMOX_VE_CA_FILE"
test -s "$PROXMOX_VE_SSH_KNOWN_HOSTS"
`
	cmd := exec.Command(bash, "-c", script)
	// The simulator's stderr goes to a file: a background process holding the
	// test's output pipe open would keep CombinedOutput waiting. Its own
	// TMPDIR shows anything it leaves behind, and keeps that out of /tmp.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "PHOENIX="+bin, "SIMLOG="+filepath.Join(t.TempDir(), "sim.log"), "TMPDIR="+tmp)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal(`eval "$(phoenix sim ... &)" did not return: standard output was not closed`)
	}
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vals[k] = v
		}
	}
	if !strings.HasPrefix(vals["endpoint"], "https://127.0.0.1:") {
		t.Errorf("endpoint %q\n%s", vals["endpoint"], out)
	}
	if !strings.HasPrefix(vals["ca"], tmp+string(filepath.Separator)) {
		t.Errorf("CA file %q is not under TMPDIR %s", vals["ca"], tmp)
	}
	pid, err := strconv.Atoi(vals["pid"])
	if err != nil {
		t.Fatalf("pid %q", vals["pid"])
	}
	proc, _ := os.FindProcess(pid)
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	// The simulator is bash's orphan, not the test's child: its exit shows
	// only as a signal that can no longer be delivered.
	if !eventually(30*time.Second, func() bool { return proc.Signal(syscall.Signal(0)) != nil && len(leftIn(tmp)) == 0 }) {
		t.Fatalf("phoenix sim (pid %d) still running or its files still there after SIGTERM: %q", pid, leftIn(tmp))
	}
}

// simStop is the moment a test sends phoenix sim its SIGTERM.
type simStop int

const (
	atStart   simStop = iota // right after the process starts
	atDir                    // once its directory exists, while it is still starting
	atExports                // once it has printed its export lines
)

func (w simStop) String() string {
	return [...]string{"right after start", "once its directory exists", "once the export lines are read"}[w]
}

// TestSimPromptSIGTERM stops phoenix sim at the earliest moments a user (or a
// script) can: whenever the SIGTERM comes, it must exit and leave nothing in
// the temporary directory, neither the CA nor the SSH private key.
func TestSimPromptSIGTERM(t *testing.T) {
	bin := phoenixBinary(t)
	for _, r := range []struct {
		when simStop
		runs int
	}{{atStart, 1}, {atDir, 3}, {atExports, 20}} {
		leaked, failed := 0, 0
		for i := range r.runs {
			left, problem := sigtermSim(t, bin, r.when)
			if len(left) > 0 {
				leaked++
				t.Errorf("SIGTERM %s, run %d: left %q in TMPDIR", r.when, i+1, left)
			}
			if problem != "" {
				failed++
				t.Errorf("SIGTERM %s, run %d: %s", r.when, i+1, problem)
			}
		}
		t.Logf("SIGTERM %s: %d of %d runs left files, %d failed otherwise", r.when, leaked, r.runs, failed)
	}
}

// sigtermSim starts phoenix sim with a TMPDIR of its own, sends it SIGTERM at
// the given moment, and returns what it left in TMPDIR and what else went
// wrong, if anything.
func sigtermSim(t *testing.T, bin string, when simStop) (left []string, problem string) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command(bin, "sim", "--world", "../../examples/homelab/world.yaml")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidLine, eof := make(chan struct{}), make(chan struct{})
	var ca string
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "export PROXMOX_VE_CA_FILE="); ok {
				ca = strings.Trim(v, "'")
			}
			if strings.HasPrefix(sc.Text(), "export PHOENIX_SIM_PID=") {
				close(pidLine)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { <-eof; exited <- cmd.Wait() }()
	var problems []string
	switch when {
	case atDir:
		if !eventually(30*time.Second, func() bool { return len(leftIn(tmp)) > 0 }) {
			problems = append(problems, "made no directory in TMPDIR")
		}
	case atExports:
		select {
		case <-pidLine:
		case <-eof:
			problems = append(problems, "closed standard output without printing PHOENIX_SIM_PID")
		case <-time.After(30 * time.Second):
			problems = append(problems, "printed no export lines in 30 s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		problems = append(problems, fmt.Sprintf("SIGTERM: %v", err))
	}
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		err = <-exited
		problems = append(problems, "still running 30 s after SIGTERM")
	}
	var ee *exec.ExitError
	killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM
	// Only a signal that comes before phoenix sim could install its handler
	// may kill it, and then it must have written nothing (checked below).
	if err != nil && !(when == atStart && killed) {
		problems = append(problems, fmt.Sprintf("exit: %v\n%s", err, stderr.String()))
	}
	if when == atExports && !strings.HasPrefix(ca, tmp+string(filepath.Separator)) {
		problems = append(problems, fmt.Sprintf("CA file %q is not under TMPDIR %s", ca, tmp))
	}
	return leftIn(tmp), strings.Join(problems, "; ")
}

// TestSimStdoutGone has phoenix sim print its export lines to a pipe nobody
// reads any more (phoenix sim ... | true): it must fail on its own, not be
// killed by SIGPIPE with its files left in place.
func TestSimStdoutGone(t *testing.T) {
	bin := phoenixBinary(t)
	tmp := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	cmd := exec.Command(bin, "sim", "--world", "../../examples/homelab/world.yaml")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal("phoenix sim still running 30 s after its standard output broke")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "broken pipe") {
		t.Errorf("exit %d (%v), want 1 and a broken pipe message:\n%s", code, err, stderr.String())
	}
	if left := leftIn(tmp); len(left) > 0 {
		t.Errorf("left %q in TMPDIR", left)
	}
}

func TestSimBadWorld(t *testing.T) {
	code, _, errOut := phoenix(t, "sim", "--world", "testdata/bad.yaml")
	if code != 1 || !strings.Contains(errOut, "no document with apiVersion sim.phoenix/v1alpha1") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestDemo(t *testing.T) {
	code, out, errOut := phoenix(t, "demo", "--specs", "../../examples/homelab", "--world", "../../examples/homelab/world.yaml", "--time-scale", "0.002", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"== The lineage", "└── nginx (Container 960 on pve1): inherits base; installs nginx",
		"Plan: 6 to create", "Apply complete: 6 created", "0 failed.",
		"vllm-qwen         Container  950   pve1  yes     yes           yes            yes       yes      yes    580.76.05 / CT 580.76.05",
		"ollama            Container  955   pve1  yes     yes           yes            yes       yes      yes    580.76.05 / CT 580.76.05",
		"No changes. The cluster matches the specs.", "nothing is left running",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
