package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func hookMAC(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestGitWebhookSignatures(t *testing.T) {
	const secret, body = "hook-secret-123", `{"ref":"refs/heads/main"}`
	g := &gitSource{log: slog.New(slog.DiscardHandler), secret: secret, wake: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	g.routes(mux)
	cases := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"github", map[string]string{"X-Hub-Signature-256": "sha256=" + hookMAC(secret, body)}, http.StatusAccepted},
		{"gitea", map[string]string{"X-Gitea-Signature": hookMAC(secret, body)}, http.StatusAccepted},
		{"forgejo", map[string]string{"X-Forgejo-Signature": hookMAC(secret, body)}, http.StatusAccepted},
		{"gitlab", map[string]string{"X-Gitlab-Token": secret}, http.StatusAccepted},
		{"github wrong secret", map[string]string{"X-Hub-Signature-256": "sha256=" + hookMAC("other", body)}, http.StatusUnauthorized},
		{"github no prefix", map[string]string{"X-Hub-Signature-256": hookMAC(secret, body)}, http.StatusUnauthorized},
		{"gitea wrong secret", map[string]string{"X-Gitea-Signature": hookMAC("other", body)}, http.StatusUnauthorized},
		{"gitlab wrong token", map[string]string{"X-Gitlab-Token": "other"}, http.StatusUnauthorized},
		{"unsigned", nil, http.StatusUnauthorized},
	}
	for _, c := range cases {
		req := httptest.NewRequest("POST", "/hooks/git", strings.NewReader(body))
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		woke := false
		select {
		case <-g.wake:
			woke = true
		default:
		}
		if rec.Code != c.want || woke != (c.want == http.StatusAccepted) {
			t.Errorf("%s: status %d (woke %v), want %d: %s", c.name, rec.Code, woke, c.want, rec.Body)
		}
	}

	// A body signed and then changed is refused.
	req := httptest.NewRequest("POST", "/hooks/git", strings.NewReader(body+" "))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hookMAC(secret, body))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("changed body: %d", rec.Code)
	}
	// Too large a body is refused before it is read whole.
	req = httptest.NewRequest("POST", "/hooks/git", strings.NewReader(strings.Repeat("x", maxHookBody+1)))
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d", rec.Code)
	}
	// Without a secret the webhook accepts nothing.
	open := &gitSource{log: g.log, wake: make(chan struct{}, 1)}
	req = httptest.NewRequest("POST", "/hooks/git", strings.NewReader(body))
	req.Header.Set("X-Gitlab-Token", "")
	rec = httptest.NewRecorder()
	open.hook(rec, req)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), EnvGitWebhookSecret) {
		t.Errorf("no secret: %d %s", rec.Code, rec.Body)
	}
	// Without --git there is no route.
	var none *gitSource
	none.routes(http.NewServeMux())
}

func TestRunGitFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--git", "https://example.com/x.git", "specs/"}, "exclude each other"},
		{[]string{"run", "--git", "https://example.com/x.git", "-f", "specs/"}, "exclude each other"},
		{[]string{"run", "--ref", "main", "specs/"}, "--ref goes with --git"},
		{[]string{"run", "--git-verify-ssh", "keys", "specs/"}, "--git-verify-ssh goes with --git"},
		{[]string{"run", "--git", "https://example.com/x.git", "--git-interval", "0s"}, "--git-interval"},
		{[]string{"run", "--git", "ssh://git@127.0.0.1:1/x.git", "--git-cache", t.TempDir()}, "PHOENIX_GIT_SSH_KEY"},
	} {
		var out strings.Builder
		cmd := newRootCmd(&out, &out)
		cmd.SetArgs(c.args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
}
