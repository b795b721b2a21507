package ssh

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/spec"

	"github.com/google/go-cmp/cmp"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/phoenixhv/phoenix/reconciler"
)

func newPublicKey(t *testing.T, kind string) gossh.PublicKey {
	t.Helper()
	var pub any
	switch kind {
	case "ed25519":
		p, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = p
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	}
	key, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writeKnownHosts writes lines to a new known_hosts file and returns its path.
func writeKnownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestChangedHostKeyIsRefused(t *testing.T) {
	c := startCluster(t)
	addr := net.JoinHostPort(c.cfg.Addresses["pve1"], c.env["PROXMOX_VE_SSH_PORT"])
	cfg := c.cfg
	cfg.KnownHostsFile = writeKnownHosts(t, knownhosts.Line([]string{addr}, newPublicKey(t, "ed25519")))
	n, err := c.pool(cfg).Node("pve1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Exec(ctxT(t), 100, reconciler.Script{Name: "test/x", Phase: "apply", Body: "true"})
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Changed || !errors.Is(err, reconciler.ErrPermission) || reconciler.Retryable(err) {
		t.Fatalf("got %v; want a permanent *HostKeyError with Changed", err)
	}
	if !strings.Contains(err.Error(), "HAS CHANGED") || !strings.Contains(err.Error(), cfg.KnownHostsFile+":1") {
		t.Errorf("message: %v", err)
	}
	if len(c.events("test/x")) != 0 {
		t.Error("the command ran on a host with the wrong key")
	}
}

func TestUnknownHostIsRefused(t *testing.T) {
	c := startCluster(t)
	port := c.env["PROXMOX_VE_SSH_PORT"]
	// known_hosts knows pve2 (with the simulator's real key) but not pve1.
	real, err := os.ReadFile(c.cfg.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(real))
	cfg := c.cfg
	cfg.KnownHostsFile = writeKnownHosts(t, "[127.0.0.3]:"+port+" "+fields[1]+" "+fields[2])
	p := c.pool(cfg)
	n, _ := p.Node("pve1")
	_, err = n.HostProbe(ctxT(t))
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Changed || reconciler.Retryable(err) {
		t.Fatalf("got %v; want a permanent *HostKeyError for an unknown host", err)
	}
	if want := "ssh-keyscan -p " + port + " 127.0.0.2 >> " + cfg.KnownHostsFile; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not say how to add the host (%s)", err, want)
	}
	if n2, _ := p.Node("pve2"); n2 != nil {
		if _, err := n2.HostProbe(ctxT(t)); err != nil {
			t.Errorf("the known node: %v", err)
		}
	}
	// Adding the key, as the message says, works without a restart.
	f, err := os.OpenFile(cfg.KnownHostsFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("[127.0.0.2]:" + port + " " + fields[1] + " " + fields[2] + "\n")
	_ = f.Close()
	if _, err := n.HostProbe(ctxT(t)); err != nil {
		t.Errorf("after adding the key: %v", err)
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	rsaKey, edKey, ecKey := newPublicKey(t, "rsa"), newPublicKey(t, "ed25519"), newPublicKey(t, "ecdsa")
	file := writeKnownHosts(t,
		knownhosts.Line([]string{"10.0.0.1:22"}, rsaKey),
		knownhosts.Line([]string{"10.0.0.1:22"}, edKey),
		knownhosts.Line([]string{"10.0.0.2:2222"}, ecKey),
		"@revoked * "+strings.TrimSpace(string(gossh.MarshalAuthorizedKey(newPublicKey(t, "ed25519")))),
	)
	cb, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"10.0.0.1:22":   {gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA, gossh.KeyAlgoED25519},
		"10.0.0.2:2222": {gossh.KeyAlgoECDSA256},
		"10.0.0.3:22":   nil,
	}
	for addr, want := range cases {
		if diff := cmp.Diff(want, hostKeyAlgorithms(cb, addr)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", addr, diff)
		}
	}
}

func TestAgentAuth(t *testing.T) {
	c := startCluster(t)
	keyPEM, err := os.ReadFile(c.env["PROXMOX_VE_SSH_PRIVATE_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gossh.ParseRawPrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_ = agent.ServeAgent(keyring, conn)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })

	cfg, err := ConfigFromEnv(func(k string) string {
		if k == EnvPrivateKey {
			return ""
		}
		if k == EnvAgent {
			return sock
		}
		return c.env[k]
	}, spec.SSHSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent != sock || cfg.PrivateKey != nil {
		t.Fatalf("config: agent %q, key set %v", cfg.Agent, cfg.PrivateKey != nil)
	}
	cfg.Addresses = c.cfg.Addresses
	n, _ := c.pool(cfg).Node("pve1")
	if _, err := n.HostProbe(ctxT(t)); err != nil {
		t.Errorf("with the agent's key: %v", err)
	}

	// An agent without the key: the node refuses the login, for good.
	if err := keyring.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	n, _ = c.pool(cfg).Node("pve2")
	_, err = n.HostProbe(ctxT(t))
	if !errors.Is(err, reconciler.ErrPermission) || reconciler.Retryable(err) {
		t.Errorf("with an empty agent: %v; want a permanent ErrPermission", err)
	}
}
