package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/sim"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// startCanarySim serves the example world with canary credentials and points
// the environment at it, the SSH key given as key material, as terraform
// users give it.
func startCanarySim(t *testing.T, edit func(*sim.World)) (*sim.Sim, sim.Credentials) {
	t.Helper()
	creds, err := sim.CanaryCredentials()
	if err != nil {
		t.Fatal(err)
	}
	w, err := sim.LoadWorld("../../examples/homelab/world.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(w)
	}
	s, err := sim.Start(w, sim.Options{TimeScale: 0.001, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("PROXMOX_VE_SSH_PRIVATE_KEY", string(creds.ClientKey))
	return s, creds
}

// leakedKey is the error an older phoenix recorded on a guest when
// PROXMOX_VE_SSH_PRIVATE_KEY held a key it took for a path: the key itself,
// in the guest's description, for every auditor to read.
func leakedKey(key []byte) string {
	return "PROXMOX_VE_SSH_PRIVATE_KEY: want the PEM private key or the path of a key file: open " + string(key) + ": no such file or directory"
}

// plantLeak writes leakedKey into the state record of a guest, as the last
// error, the way such a record was written.
func plantLeak(t *testing.T, node string, vmid int, key []byte) {
	t.Helper()
	cfg, err := proxmox.ConfigFromEnv(os.Getenv, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := client.GuestConfig(context.Background(), node, vmid)
	if err != nil {
		t.Fatal(err)
	}
	user, state, err := reconciler.ParseDescription(gc.Values["description"])
	if err != nil || state == nil {
		t.Fatalf("guest %d has no state record (%v)", vmid, err)
	}
	state.Error = &reconciler.StateError{At: time.Now().UTC(), Step: "connect", Message: leakedKey(key)}
	desc := reconciler.RenderDescription(user, state)
	if err := client.SetConfig(context.Background(), node, vmid, map[string]string{"description": desc}, nil, gc.Digest); err != nil {
		t.Fatal(err)
	}
}

// TestNoCredentialInAnyOutput runs the CLI against a simulated cluster
// whose credentials are canaries: plan (text, JSON, a saved plan file),
// apply (JSON), status (table, JSON), run --once with JSON logs, and phoenix
// run's /status and /metrics. A guest fails its install, and its state
// record holds a private key (the error an older phoenix wrote): without the
// redaction layer, status and /status print it. Then the canaries are
// looked for in every output, every stored configuration (the descriptions
// phoenix wrote) and the simulator's journal.
func TestNoCredentialInAnyOutput(t *testing.T) {
	s, creds := startCanarySim(t, func(w *sim.World) {
		w.Spec.Faults.Exec.Scripts = map[string]float64{"nginx/install": 1}
	})
	var outputs []string
	keep := func(what string, texts ...string) {
		for _, text := range texts {
			outputs = append(outputs, what+":\n"+text)
		}
	}
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.out")

	code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab", "--out", planFile)
	keep("plan", out, errOut)
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errOut)
	}
	saved, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	keep("the saved plan", string(saved))
	_, out, errOut = phoenix(t, "plan", "-f", "../../examples/homelab", "-o", "json", "--log-level", "debug", "--log-format", "json")
	keep("plan -o json", out, errOut)

	code, out, errOut = phoenix(t, "apply", "-f", "../../examples/homelab", "--auto-approve", "-o", "json", "--log-level", "debug", "--log-format", "json")
	keep("apply -o json", out, errOut)
	if code != 1 || !strings.Contains(out, `"nginx"`) {
		t.Fatalf("apply: exit %d, want 1 (nginx's install fails)\n%s%s", code, out, errOut)
	}

	plantLeak(t, "pve1", 960, creds.ClientKey)
	for _, format := range []string{"table", "json"} {
		code, out, errOut = phoenix(t, "status", "-f", "../../examples/homelab", "-o", format, "--log-level", "debug", "--log-format", "json")
		keep("status -o "+format, out, errOut)
		if code != 1 || !strings.Contains(out, "[redacted PROXMOX_VE_SSH_PRIVATE_KEY]") {
			t.Errorf("status -o %s: exit %d, want 1 and nginx's last error with the key redacted:\n%s%s", format, code, out, errOut)
		}
	}

	code, out, errOut = phoenix(t, "run", "-f", "../../examples/homelab", "--once", "--log-level", "debug", "--log-format", "json")
	keep("run --once", out, errOut)
	if code != 1 {
		t.Errorf("run --once: exit %d, want 1 (nginx fails)\n%s", code, errOut)
	}

	plantLeak(t, "pve1", 960, creds.ClientKey)
	logs, status, metrics := runServing(t)
	keep("phoenix run's log", logs)
	keep("/status", status)
	keep("/metrics", metrics)
	if !strings.Contains(status, `"nginx"`) {
		t.Errorf("/status without nginx:\n%s", status)
	}

	var journal strings.Builder
	_ = json.NewEncoder(&journal).Encode(s.Journal())
	keep("the simulator's journal", journal.String())
	for vmid, cfg := range s.StoredConfigs() {
		keep(fmt.Sprintf("the stored config of %d", vmid), cfg)
	}
	for _, text := range outputs {
		for _, c := range creds.Canaries() {
			if i := strings.Index(text, c); i >= 0 {
				what, _, _ := strings.Cut(text, ":\n")
				t.Errorf("%s holds a credential: ...%s...", what, text[max(0, i-100):min(len(text), i+len(c)+20)])
			}
		}
	}
}

// runServing runs phoenix run as a process with --listen and JSON logs,
// reads /status and /metrics once the first pass is done, stops it with
// SIGTERM, and returns the log and the two bodies.
func runServing(t *testing.T) (logs, status, metrics string) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(phoenixBinary(t), "run", "-f", "../../examples/homelab", "--interval", "1h", "--listen", addr,
		"--log-format", "json", "--log-level", "debug")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	base := "http://" + addr
	if !eventually(90*time.Second, func() bool { code, _ := httpGet(base + "/readyz"); return code == 200 }) {
		t.Fatalf("phoenix run: no full pass\n%s", out.String())
	}
	_, status = httpGet(base + "/status")
	_, metrics = httpGet(base + "/metrics")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("phoenix run did not exit after SIGTERM")
	}
	return out.String(), status, metrics
}

// TestCredentialErrorsNameTheVariable gives phoenix credentials it cannot
// use: an endpoint with the password in it, and a PuTTY key. Each error
// names the variable and shows none of the value.
func TestCredentialErrorsNameTheVariable(t *testing.T) {
	s, creds := startCanarySim(t, nil)
	endpoint := s.Env()["PROXMOX_VE_ENDPOINT"]
	t.Run("an endpoint with the password in it", func(t *testing.T) {
		t.Setenv("PROXMOX_VE_ENDPOINT", strings.Replace(endpoint, "https://", "https://root@pam:"+creds.RootPassword+"@", 1))
		code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab")
		if code != 1 || !strings.Contains(errOut, "PROXMOX_VE_ENDPOINT") || !strings.Contains(errOut, "holds a user name and password") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, creds.RootPassword) {
			t.Errorf("the password is shown:\n%s", errOut)
		}
	})
	t.Run("a PuTTY key", func(t *testing.T) {
		body := creds.Canaries()[2]
		t.Setenv("PROXMOX_VE_SSH_PRIVATE_KEY", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\n"+body+"\n")
		code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab")
		if code != 1 || !strings.Contains(errOut+out, "PROXMOX_VE_SSH_PRIVATE_KEY holds key material in a format phoenix cannot use (a PuTTY private key") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, body) {
			t.Errorf("the key is shown:\n%s%s", out, errOut)
		}
	})
}
