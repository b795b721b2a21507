package sim

import (
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestConfiguredCredentials starts the simulator with credentials of the
// test's choosing: the API takes the token and root@pam's password, every
// node's SSH server the key, and Env hands them out; other values are
// refused as before.
func TestConfiguredCredentials(t *testing.T) {
	creds, err := CanaryCredentials()
	if err != nil {
		t.Fatal(err)
	}
	w, err := LoadWorld("testdata/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(w, Options{TimeScale: labTimeScale, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	env := s.Env()
	if id, secret, _ := strings.Cut(env["PROXMOX_VE_API_TOKEN"], "="); id != "root@pam!phoenix" || secret != creds.TokenSecret {
		t.Errorf("Env's token %q", env["PROXMOX_VE_API_TOKEN"])
	}
	if env["PROXMOX_VE_PASSWORD"] != creds.RootPassword {
		t.Errorf("Env's password %q", env["PROXMOX_VE_PASSWORD"])
	}
	if key, err := os.ReadFile(env["PROXMOX_VE_SSH_PRIVATE_KEY"]); err != nil || string(key) != string(creds.ClientKey) {
		t.Errorf("the key file holds another key (%v)", err)
	}

	api := apiFor(t, s)
	if r := api.call("GET", "/version", nil); r.code != 200 {
		t.Errorf("the configured token: %d %s", r.code, r.reason)
	}
	api.token = "root@pam!phoenix=" + strings.Repeat("0", len(creds.TokenSecret))
	if r := api.call("GET", "/version", nil); r.code != 401 {
		t.Errorf("another secret: %d %s", r.code, r.reason)
	}
	api.token = ""
	for password, want := range map[string]int{creds.RootPassword: 200, "canary-root-password-0": 401} {
		r := api.call("POST", "/access/ticket", url.Values{"username": {"root@pam"}, "password": {password}})
		if r.code != want {
			t.Errorf("ticket with password %q: %d %s, want %d", password, r.code, r.reason, want)
		}
	}

	signer, err := ssh.ParsePrivateKey(creds.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	hostKeys, err := knownhosts.New(env["PROXMOX_VE_SSH_KNOWN_HOSTS"])
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.2", env["PROXMOX_VE_SSH_PORT"])
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys, Timeout: labDeadline})
	if err != nil {
		t.Fatalf("ssh with the configured key: %v", err)
	}
	_ = c.Close()
	other, err := CanaryCredentials()
	if err == nil {
		signer, _ := ssh.ParsePrivateKey(other.ClientKey)
		if c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: hostKeys, Timeout: labDeadline}); err == nil {
			_ = c.Close()
			t.Error("ssh with another key: logged in")
		}
	}
}

func TestCanariesAndStoredConfigs(t *testing.T) {
	creds, err := CanaryCredentials()
	if err != nil {
		t.Fatal(err)
	}
	canaries := creds.Canaries()
	if !slices.Contains(canaries, creds.RootPassword) || !slices.Contains(canaries, creds.TokenSecret) || len(canaries) < 4 {
		t.Errorf("canaries %q", canaries)
	}
	for _, c := range canaries {
		if !strings.Contains(string(creds.ClientKey), c) && c != creds.RootPassword && c != creds.TokenSecret {
			t.Errorf("canary %q is not of the credentials", c)
		}
	}

	l := startLab(t, "small.yaml", nil)
	l.create("pve1", 120, map[string]any{"description": "notes of 120"})
	got := l.s.StoredConfigs()[120]
	for _, want := range []string{"description: notes of 120\n", "hostname: "} {
		if !strings.Contains(got, want) {
			t.Errorf("stored config of 120 lacks %q:\n%s", want, got)
		}
	}
}
