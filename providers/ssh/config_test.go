package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/spec"
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

// TestKeyMaterialIsNeverQuoted gives PROXMOX_VE_SSH_PRIVATE_KEY key material
// in formats phoenix cannot use: each is recognised as key material (not
// taken for a path) and refused with the formats phoenix takes, and no error
// shows any of it.
func TestKeyMaterialIsNeverQuoted(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(block))
	body := base64.StdEncoding.EncodeToString(block.Bytes)
	pub, err := gossh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	putty := "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: eddsa-key-20250101\nPublic-Lines: 2\n" +
		"AAAAC3NzaC1lZDI1NTE5AAAAIDaX1pYk2yUpFNbK7KbQH0TmO7Rx3pwq7QKmhxEEVzvq\nPrivate-Lines: 1\nAAAAIK9Xh3cL3eGmM2YvMUbpQdS0z3CD1kqS9mG1xg1Kx7pS\nPrivate-MAC: 0a1b2c\n"
	env := func(key string) func(string) string {
		return func(k string) string {
			return map[string]string{"HOME": t.TempDir(), EnvPrivateKey: key}[k]
		}
	}
	const (
		refused = "PROXMOX_VE_SSH_PRIVATE_KEY holds key material in a format phoenix cannot use ("
		accepts = "): give an OpenSSH or PEM private key, or the path of one"
	)
	cases := map[string]struct {
		value  string
		format string
	}{
		"PuTTY":                     {putty, "a PuTTY private key: convert it with puttygen KEY -O private-openssh"},
		"PuTTY flattened to a line": {strings.ReplaceAll(putty, "\n", `\n`), "a PuTTY private key: convert it with puttygen KEY -O private-openssh"},
		"base64 of the PEM":         {base64.StdEncoding.EncodeToString([]byte(keyPEM)), "base64 of a PEM key: decode it first"},
		"the PEM's body alone":      {body, "an OpenSSH key without its BEGIN and END lines"},
		"the body, URL-safe":        {base64.RawURLEncoding.EncodeToString(block.Bytes), "an OpenSSH key without its BEGIN and END lines"},
		"a public key":              {string(gossh.MarshalAuthorizedKey(pub)), "an SSH public key, not the private key"},
		"lines of something":        {"first line of it\nsecond line", "several lines of text"},
		"SSH2 format":               {"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAi4AAAA3aWYtbW9kbntzaWdu\n---- END SSH2 ENCRYPTED PRIVATE KEY ----", "an SSH2 (RFC 4716) key"},
		"base64 of something else":  {base64.StdEncoding.EncodeToString([]byte("not a key at all, but long enough to be one")), "base64 text that is no file name"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ConfigFromEnv(env(tc.value), spec.SSHSettings{})
			if err == nil || err.Error() != refused+tc.format+accepts {
				t.Fatalf("err = %v\nwant %s", err, refused+tc.format+accepts)
			}
			for _, line := range strings.FieldsFunc(tc.value, func(r rune) bool { return r == '\n' || r == ' ' }) {
				if len(line) >= 12 && strings.Contains(err.Error(), line) {
					t.Errorf("the error shows %q", line)
				}
			}
		})
	}

	// A key file in a format phoenix cannot use: the path is named, not what is in it.
	file := filepath.Join(t.TempDir(), "id.ppk")
	if err := os.WriteFile(file, []byte(putty), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ConfigFromEnv(env(file), spec.SSHSettings{})
	if want := "PROXMOX_VE_SSH_PRIVATE_KEY: the key file " + file + " holds a PuTTY private key: convert it with puttygen KEY -O private-openssh" + accepts[1:]; err == nil || err.Error() != want {
		t.Errorf("PuTTY key file: %v\nwant %s", err, want)
	}
	// A path is a path: named when it is missing.
	_, err = ConfigFromEnv(env("/etc/phoenix/id_ed25519"), spec.SSHSettings{})
	if err == nil || !strings.Contains(err.Error(), "PROXMOX_VE_SSH_PRIVATE_KEY: no key file at /etc/phoenix/id_ed25519") {
		t.Errorf("missing file: %v", err)
	}
	// A bare word may be a mistyped key or a password: not shown.
	_, err = ConfigFromEnv(env("hunter2-not-a-file"), spec.SSHSettings{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), EnvPrivateKey) {
		t.Errorf("bare word: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(block))
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	putty := "PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\nAAAAIK9Xh3cL3eGmM2YvMUbpQdS0z3CD1kqS9mG1xg1Kx7pS\n"
	cases := map[string]struct {
		env  map[string]string
		want []redact.Secret
	}{
		"key material": {env: map[string]string{EnvPrivateKey: keyPEM, EnvPassword: "ssh-pass-1"},
			want: []redact.Secret{{Var: EnvPrivateKey, Value: keyPEM, Lines: true}, {Var: EnvPassword, Value: "ssh-pass-1"}}},
		"one-line key material": {env: map[string]string{EnvPrivateKey: strings.ReplaceAll(keyPEM, "\n", `\n`)},
			want: []redact.Secret{{Var: EnvPrivateKey, Value: strings.ReplaceAll(keyPEM, "\n", `\n`), Lines: true}}},
		"material phoenix cannot use": {env: map[string]string{EnvPrivateKey: putty},
			want: []redact.Secret{{Var: EnvPrivateKey, Value: putty, Lines: true}}},
		"a key file: what is in it, not its path": {env: map[string]string{EnvPrivateKey: file},
			want: []redact.Secret{{Var: EnvPrivateKey, Value: keyPEM, Lines: true}}},
		"neither": {env: map[string]string{EnvPrivateKey: "mistyped"},
			want: []redact.Secret{{Var: EnvPrivateKey, Value: "mistyped", Lines: true}}},
		"a missing path": {env: map[string]string{EnvPrivateKey: "/no/such/key"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Secrets(func(k string) string { return tc.env[k] })
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzKeyFromEnv gives PROXMOX_VE_SSH_PRIVATE_KEY any value: ConfigFromEnv
// never panics, and its error never shows a value that is not a path.
func FuzzKeyFromEnv(f *testing.F) {
	f.Add("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none")
	f.Add("LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K")
	f.Add("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW")
	f.Add("-----BEGIN OPENSSH PRIVATE KEY-----\\nAAAA\\n-----END OPENSSH PRIVATE KEY-----")
	f.Add("~/.ssh/id_ed25519")
	f.Add("hunter22")
	f.Fuzz(func(t *testing.T, v string) {
		_, err := ConfigFromEnv(func(k string) string {
			return map[string]string{"HOME": "/nonexistent", EnvPrivateKey: v}[k]
		}, spec.SSHSettings{})
		if err == nil {
			return
		}
		if looksLikePath(v) {
			return
		}
		for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' || r == ' ' }) {
			// What is long enough to be a secret, and not words phoenix's
			// messages use themselves.
			if len(part) >= 16 && strings.Contains(err.Error(), part) {
				t.Fatalf("the error shows %q of the value: %v", part, err)
			}
		}
	})
}
