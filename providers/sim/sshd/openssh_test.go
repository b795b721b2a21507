package sshd

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
	"golang.org/x/crypto/ssh"
)

// openSSH runs the stock OpenSSH client against ts. OpenSSH, not
// x/crypto/ssh's client, is what an operator and Proxmox's own tooling use,
// so it is the reference for what the server must accept and refuse.
type openSSH struct {
	bin, keyFile, knownHosts, host, port string
}

func newOpenSSH(t *testing.T, ts *testServer, hostKey ssh.PublicKey) *openSSH {
	t.Helper()
	bin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("OpenSSH client (ssh) not installed; apt-get install openssh-client to run this test")
	}
	dir := t.TempDir()
	o := &openSSH{bin: bin, keyFile: filepath.Join(dir, "id_ed25519"), knownHosts: filepath.Join(dir, "known_hosts")}
	o.host, o.port, _ = net.SplitHostPort(ts.addr)
	// ssh refuses private keys readable by others.
	if err := os.WriteFile(o.keyFile, ts.clientPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.knownHosts, []byte(KnownHostsLine([]string{ts.addr}, hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return o
}

// run runs ssh with extra options and the remote command words, returning
// stdout, stderr and the exit status of the ssh process.
func (o *openSSH) run(t *testing.T, stdin string, opts []string, remote ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{
		"-F", "/dev/null", // ignore the user's and system's ssh_config
		"-o", "UserKnownHostsFile=" + o.knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "LogLevel=ERROR",
		"-i", o.keyFile,
		"-p", o.port,
	}
	args = append(args, opts...)
	args = append(args, "root@"+o.host)
	args = append(args, remote...)
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("ssh %q: %v\nstderr: %s", args, err, stderr.String())
	return "", "", -1
}

func TestOpenSSHClient(t *testing.T) {
	// The race detector cannot see that ssh exiting orders the handler's
	// append before our read, hence the mutex.
	var mu sync.Mutex
	var commands []string
	handler := func(ctx context.Context, s *Session) int {
		mu.Lock()
		commands = append(commands, s.Command)
		mu.Unlock()
		return scriptHandler(ctx, s)
	}
	ts := startServer(t, handler, "127.0.0.2")
	o := newOpenSSH(t, ts, ts.srv.PublicKey())

	tests := []struct {
		name           string
		opts           []string
		remote         []string
		stdin          string
		stdout, stderr string
		status         int
	}{
		{name: "exit status", remote: []string{"exit 42"}, status: 42},
		{name: "stdout and stderr", remote: []string{"both"}, stdout: "to stdout", stderr: "to stderr", status: 1},
		{name: "stdin", remote: []string{"upper"}, stdin: "hello\n", stdout: "HELLO\n"},
		{name: "user", remote: []string{"whoami"}, stdout: "root"},
		{name: "env", opts: []string{"-o", "SetEnv=LC_PHOENIX=from-openssh"}, remote: []string{"env LC_PHOENIX"}, stdout: "from-openssh"},
	}
	for _, tt := range tests {
		stdout, stderr, status := o.run(t, tt.stdin, tt.opts, tt.remote...)
		if stdout != tt.stdout || stderr != tt.stderr || status != tt.status {
			t.Errorf("%s: got (%q, %q, %d), want (%q, %q, %d)", tt.name, stdout, stderr, status, tt.stdout, tt.stderr, tt.status)
		}
	}

	// OpenSSH sends its command words joined by single spaces, unquoted:
	// the server sees one string, which is why phoenix quotes argv with
	// shellwords.Join before handing it to ssh.
	mu.Lock()
	commands = nil
	mu.Unlock()
	argv := []string{"it's", "a b", "$(rm -rf /)", ""}
	o.run(t, "", nil, "raw", "x", "y  z")
	o.run(t, "", nil, "raw "+shellwords.Join(argv))
	mu.Lock()
	defer mu.Unlock()
	want := []string{"raw x y  z", "raw " + shellwords.Join(argv)}
	if diff := cmp.Diff(want, commands); diff != "" {
		t.Errorf("commands seen by the server (-want +got):\n%s", diff)
	}
	if words, err := shellwords.Split(commands[len(commands)-1]); err != nil || !cmp.Equal(words[1:], argv) {
		t.Errorf("Split(%q) = %q, %v; want raw + %q", commands[len(commands)-1], words, err, argv)
	}
}

func TestOpenSSHRefusals(t *testing.T) {
	var ran atomic.Bool
	ts := startServer(t, func(ctx context.Context, s *Session) int { ran.Store(true); return 0 }, "127.0.0.2")

	// A host key that does not match known_hosts.
	otherHost, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	o := newOpenSSH(t, ts, otherHost.PublicKey())
	_, stderr, status := o.run(t, "", nil, "true")
	if status != 255 || !strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
		t.Errorf("mismatched host key: status %d, stderr %q; want 255 and a host key warning", status, stderr)
	}

	// A client key the server does not know.
	o = newOpenSSH(t, ts, ts.srv.PublicKey())
	_, otherPEM, err := GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.keyFile, otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, status = o.run(t, "", nil, "true")
	// "(publickey)" lists the methods the server offered: only publickey.
	if status != 255 || !strings.Contains(stderr, "Permission denied (publickey)") {
		t.Errorf("unknown client key: status %d, stderr %q; want 255 and Permission denied (publickey)", status, stderr)
	}
	if ran.Load() {
		t.Error("handler ran for a refused connection")
	}
}
