package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/spec"

	gossh "golang.org/x/crypto/ssh"
)

func TestConfigFromEnv(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(block))
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		m := map[string]string{"HOME": "/home/op"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}

	// The PEM itself, as terraform-provider-proxmox takes it; defaults for the rest.
	cfg, err := ConfigFromEnv(env(EnvPrivateKey, keyPEM), spec.SSHSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "root" || cfg.Port != 22 || cfg.KnownHostsFile != "/home/op/.ssh/known_hosts" || string(cfg.PrivateKey) != keyPEM {
		t.Errorf("defaults: %+v", cfg)
	}
	// A path, with ~; the other variables.
	cfg, err = ConfigFromEnv(env("HOME", dir, EnvPrivateKey, "~/id_ed25519", EnvUsername, "admin", EnvPort, "2222",
		EnvKnownHosts, "~/kh"), spec.SSHSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "admin" || cfg.Port != 2222 || cfg.KnownHostsFile != filepath.Join(dir, "kh") || string(cfg.PrivateKey) != keyPEM {
		t.Errorf("from a path: %+v", cfg)
	}
	// The Cluster spec's ssh block sets user, port and known_hosts over the
	// environment's, and pins node addresses that discovery does not move.
	port := 2200
	cfg, err = ConfigFromEnv(env("HOME", dir, EnvPrivateKey, "~/id_ed25519", EnvUsername, "admin", EnvPort, "2222"),
		spec.SSHSettings{Username: "phoenix", Port: &port, KnownHostsFile: "~/spec_kh", Nodes: map[string]string{"pve2": "10.9.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Discovered(map[string]string{"pve1": "10.0.0.1", "pve2": "10.0.0.2"})
	if cfg.User != "phoenix" || cfg.Port != 2200 || cfg.KnownHostsFile != filepath.Join(dir, "spec_kh") ||
		cfg.Addresses["pve1"] != "10.0.0.1" || cfg.Addresses["pve2"] != "10.9.0.2" {
		t.Errorf("with the spec's settings: %+v", cfg)
	}
	// A PEM flattened to one line with literal \n.
	cfg, err = ConfigFromEnv(env(EnvPrivateKey, strings.ReplaceAll(keyPEM, "\n", `\n`)), spec.SSHSettings{})
	if err != nil || string(cfg.PrivateKey) != keyPEM {
		t.Errorf("one-line PEM: %v", err)
	}
	// No key: the agent.
	cfg, err = ConfigFromEnv(env(EnvAgent, "/run/agent.sock"), spec.SSHSettings{})
	if err != nil || cfg.Agent != "/run/agent.sock" {
		t.Errorf("agent: %+v, %v", cfg, err)
	}

	encrypted, err := gossh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	garbled := strings.Replace(keyPEM, "\n", "\nAAAA", 2)
	refusals := map[string]struct {
		env  func(string) string
		want string
	}{
		"no key, no agent":  {env(), EnvPrivateKey},
		"missing key file":  {env(EnvPrivateKey, filepath.Join(dir, "nope")), EnvPrivateKey},
		"encrypted key":     {env(EnvPrivateKey, string(pem.EncodeToMemory(encrypted))), "passphrase"},
		"garbled key":       {env(EnvPrivateKey, garbled), EnvPrivateKey},
		"port not a number": {env(EnvPrivateKey, keyPEM, EnvPort, "ssh"), EnvPort},
		"port out of range": {env(EnvPrivateKey, keyPEM, EnvPort, "70000"), EnvPort},
		"no HOME":           {func(k string) string { return map[string]string{EnvPrivateKey: keyPEM}[k] }, EnvKnownHosts},
	}
	body := strings.Split(keyPEM, "\n")[1]
	for name, tc := range refusals {
		_, err := ConfigFromEnv(tc.env, spec.SSHSettings{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error naming %s", name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), body[:20]) || strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
}

func TestNewPoolRefuses(t *testing.T) {
	kh := writeKnownHosts(t, "")
	cases := map[string]Config{
		"no known_hosts":      {Agent: "/x"},
		"missing known_hosts": {Agent: "/x", KnownHostsFile: filepath.Join(t.TempDir(), "nope")},
		"no credentials":      {KnownHostsFile: kh},
		"bad key":             {KnownHostsFile: kh, PrivateKey: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")},
		"bad port":            {KnownHostsFile: kh, Agent: "/x", Port: 65536},
	}
	for name, cfg := range cases {
		if _, err := NewPool(cfg); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
}
