package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/proxmox"
)

// TestConnectToAClosedPortFailsFast: with a token, an endpoint where nothing
// listens used to cost 30 silent seconds of retries before an error with a
// stray status 0; it must fail at once, in one line that names the endpoint
// and the variable to fix.
func TestConnectToAClosedPortFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	const secret = "0b5e7c1e-never-shown"
	env := map[string]string{
		proxmox.EnvEndpoint: "https://" + addr + "/",
		proxmox.EnvToken:    "root@pam!phoenix=" + secret,
		// plan reads the process environment: blank what the developer's
		// shell may hold.
		proxmox.EnvUsername: "", proxmox.EnvPassword: "", proxmox.EnvCAFile: "", proxmox.EnvInsecure: "",
		EnvNodeAccess: "",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}

	start := time.Now()
	code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab")
	took := time.Since(start)
	t.Logf("exit %d after %v: %s", code, took.Round(time.Millisecond), errOut)

	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if took > 5*time.Second {
		t.Errorf("took %v: a closed port must fail at once, not after retries", took)
	}
	if out != "" {
		t.Errorf("stdout: %q, want nothing", out)
	}
	lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr has %d lines, want one:\n%s", len(lines), errOut)
	}
	for _, want := range []string{"https://" + addr + "/", "connection refused", proxmox.EnvEndpoint} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("stderr does not say %q: %s", want, lines[0])
		}
	}
	if strings.Contains(errOut, secret) || strings.Contains(errOut, ": 0 ") {
		t.Errorf("stderr shows the secret or a status 0: %s", errOut)
	}
}
