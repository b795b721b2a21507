package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

const testSecret = "5f1c2a9e-0b7d-4c3e-9a41-7d2be0c4f6a8"

func TestCredentialRedactorKnowsEveryCredential(t *testing.T) {
	env := map[string]string{
		"PROXMOX_VE_API_TOKEN":       "root@pam!phoenix=" + testSecret,
		"PROXMOX_VE_PASSWORD":        "root-password-1",
		"PROXMOX_VE_ENDPOINT":        "https://root:endpoint-password@pve1:8006/",
		"PROXMOX_VE_SSH_PRIVATE_KEY": "PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\nAAAAIK9Xh3cL3eGmM2YvMUbpQdS0z3CD1kqS9mG1xg1Kx7pS\n",
		"PROXMOX_VE_SSH_PASSWORD":    "ssh-password-1",
		"PROXMOX_VE_USERNAME":        "root@pam",
	}
	r := credentialRedactor(func(k string) string { return env[k] })
	in := fmt.Sprintf("%s %s %s %s %s %s", env["PROXMOX_VE_API_TOKEN"], "root-password-1", "https://root:endpoint-password@pve1",
		"AAAAIK9Xh3cL3eGmM2YvMUbpQdS0z3CD1kqS9mG1xg1Kx7pS", "ssh-password-1", "root@pam")
	want := "root@pam!phoenix=[redacted PROXMOX_VE_API_TOKEN] [redacted PROXMOX_VE_PASSWORD] https://root:[redacted PROXMOX_VE_ENDPOINT]@pve1 " +
		"[redacted PROXMOX_VE_SSH_PRIVATE_KEY] [redacted PROXMOX_VE_SSH_PASSWORD] root@pam"
	if got := r.String(in); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestLoggerRedacts(t *testing.T) {
	r := redact.New(redact.Secret{Var: "PROXMOX_VE_API_TOKEN", Value: testSecret})
	for _, format := range []string{"text", "json"} {
		var b bytes.Buffer
		cmd := &cobra.Command{}
		cmd.Flags().String("log-format", format, "")
		cmd.Flags().String("log-level", "info", "")
		cmd.SetErr(&b)
		cmd.SetContext(withRedactor(context.Background(), r))
		logger(cmd).Info("token "+testSecret, "error", fmt.Errorf("refused %s", testSecret))
		if strings.Contains(b.String(), testSecret) || !strings.Contains(b.String(), "[redacted PROXMOX_VE_API_TOKEN]") {
			t.Errorf("%s log: %s", format, b.String())
		}
	}
}

// TestRedactHTTP serves a body that holds a secret, with a Content-Length
// counted before, to a client that asks for gzip: the client gets the
// redacted text, whole.
func TestRedactHTTP(t *testing.T) {
	r := redact.New(redact.Secret{Var: "PROXMOX_VE_PASSWORD", Value: "hunter2-hunter2"})
	body := `{"error":"login hunter2-hunter2 refused"}`
	h := redactHTTP(r, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Accept-Encoding") != "" {
			t.Errorf("the handler was offered %s", req.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body[:20])
		fmt.Fprint(w, body[20:])
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	if want := `{"error":"login [redacted PROXMOX_VE_PASSWORD] refused"}`; b.String() != want {
		t.Errorf("body %q, want %q", b.String(), want)
	}
}

// TestRedactedClientWritesNoSecret writes, through the client phoenix uses,
// a state record whose last error holds the key and the password: Proxmox
// stores it redacted, and the other options as they were.
func TestRedactedClientWritesNoSecret(t *testing.T) {
	s, creds := startCanarySim(t, nil)
	cfg, err := proxmox.ConfigFromEnv(os.Getenv, spec.ClusterSpec{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := proxmox.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &redactedClient{Client: client, red: credentialRedactor(os.Getenv)}
	ctx := context.Background()
	state := reconciler.RenderDescription("notes", &reconciler.State{V: 1, Name: "pihole", Kind: "Container",
		Error: &reconciler.StateError{Step: "connect", Message: "open " + string(creds.ClientKey) + ": password " + creds.RootPassword}})
	if err := c.SetConfig(ctx, "pve2", 120, map[string]string{"description": state, "cores": "2"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	stored := s.StoredConfigs()[120]
	for _, canary := range creds.Canaries() {
		if strings.Contains(stored, canary) {
			t.Errorf("the description holds %q:\n%s", canary, stored)
		}
	}
	for _, want := range []string{"[redacted PROXMOX_VE_SSH_PRIVATE_KEY]", "[redacted PROXMOX_VE_PASSWORD]", "cores: 2\n"} {
		if !strings.Contains(stored, want) {
			t.Errorf("the stored config lacks %q:\n%s", want, stored)
		}
	}
}
