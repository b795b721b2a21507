package main

import (
	"bufio"
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
	binPath   string
	buildErr  error
)

// phoenixBinary builds the command once for the tests that need a real process.
func phoenixBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "phoenix-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "phoenix")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// TestSimEvalPattern runs the documented shell pattern: eval the export lines of a
// backgrounded phoenix sim, use them, then stop it with SIGTERM.
func TestSimEvalPattern(t *testing.T) {
	bash := testtool.Require(t, "bash")
	bin := phoenixBinary(t)
	script := `set -e
eval "$("$PHOENIX" sim --world ../../examples/world.yaml 2>"$SIMLOG" &)"
echo "endpoint=$PROXMOX_VE_ENDPOINT"
echo "pid=$PHOENIX_SIM_PID"
echo "ca=$PROXMOX_VE_CA_FILE"
test -s "$PROXMOX_VE_CA_FILE"
test -s "$PROXMOX_VE_SSH_KNOWN_HOSTS"
`
	cmd := exec.Command(bash, "-c", script)
	// The simulator's stderr goes to a file: a background process holding the
	// test's output pipe open would keep CombinedOutput waiting.
	cmd.Env = append(os.Environ(), "PHOENIX="+bin, "SIMLOG="+filepath.Join(t.TempDir(), "sim.log"))
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
	pid, err := strconv.Atoi(vals["pid"])
	if err != nil {
		t.Fatalf("pid %q", vals["pid"])
	}
	proc, _ := os.FindProcess(pid)
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	// The simulator removes its files on the way out.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(vals["ca"]); os.IsNotExist(err) && proc.Signal(syscall.Signal(0)) != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("phoenix sim (pid %d) still running or its files still there after SIGTERM", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSimBadWorld(t *testing.T) {
	code, _, errOut := phoenix(t, "sim", "--world", "testdata/bad.yaml")
	if code != 1 || !strings.Contains(errOut, "no document with apiVersion sim.phoenix/v1alpha1") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestDemo(t *testing.T) {
	code, out, errOut := phoenix(t, "demo", "--specs", "../../examples", "--world", "../../examples/world.yaml", "--time-scale", "0.002", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"== The lineage", "└── nginx (Container 960 on pve1): inherits base; installs nginx",
		"Plan: 6 to create", "Apply complete: 6 created", "0 failed.",
		"vllm-qwen         Container  950   pve1  yes     yes           yes            yes       yes    580.76.05 / CT 580.76.05",
		"No changes. The cluster matches the specs.", "nothing is left running",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
