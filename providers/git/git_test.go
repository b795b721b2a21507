package git

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/crypto/ssh"

	"github.com/phoenixhv/phoenix/hack/testgit"
	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/providers/sim/sshd"
)

func caOf(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSyncOverHTTPSSwitchesWholeRevisions(t *testing.T) {
	r := testgit.New(t)
	first := r.Commit(map[string]string{"specs/a.yaml": "a: 1\n", "specs/sub/b.yaml": "b: 1\n", "README": "x\n"})
	srv := r.HTTPServer(true, "s3cret-token")
	cache := t.TempDir()
	src, err := New(Options{URL: srv.URL + "/specs.git", Ref: "main", Path: "specs", CacheDir: cache, Token: "s3cret-token", CABundle: caOf(srv)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rev1, err := src.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rev1.Commit != first || !rev1.Changed || rev1.Short != first[:12] {
		t.Fatalf("first sync: %+v, want commit %s changed", rev1, first)
	}
	if got := read(t, filepath.Join(rev1.Dir, "sub", "b.yaml")); got != "b: 1\n" {
		t.Errorf("checked out b.yaml = %q", got)
	}
	if strings.Contains(rev1.Dir, "current") {
		t.Errorf("Dir %s goes through the current link", rev1.Dir)
	}
	again, err := src.Sync(ctx)
	if err != nil || again.Changed || again.Commit != first {
		t.Fatalf("sync without a new commit: %+v, %v", again, err)
	}

	// A pass that holds the old revision reads it whole after the switch.
	second := r.Commit(map[string]string{"specs/a.yaml": "a: 2\n", "specs/sub/b.yaml": ""})
	rev2, err := src.Sync(ctx)
	if err != nil || rev2.Commit != second || !rev2.Changed || rev2.Dir == rev1.Dir {
		t.Fatalf("second sync: %+v, %v", rev2, err)
	}
	if read(t, filepath.Join(rev1.Dir, "a.yaml")) != "a: 1\n" || read(t, filepath.Join(rev1.Dir, "sub", "b.yaml")) != "b: 1\n" {
		t.Error("the revision in use changed under its reader")
	}
	if read(t, filepath.Join(rev2.Dir, "a.yaml")) != "a: 2\n" {
		t.Error("the new revision lacks its change")
	}
	if _, err := os.Stat(filepath.Join(rev2.Dir, "sub", "b.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file the commit removed is in its checkout: %v", err)
	}
	if got := read(t, filepath.Join(cache, "current", "specs", "a.yaml")); got != "a: 2\n" {
		t.Errorf("current link reads %q", got)
	}

	// Older revisions than the one replaced are removed.
	third := r.Commit(map[string]string{"specs/a.yaml": "a: 3\n"})
	if rev3, err := src.Sync(ctx); err != nil || rev3.Commit != third {
		t.Fatalf("third sync: %+v, %v", rev3, err)
	}
	if _, err := os.Stat(filepath.Dir(rev1.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first revision was kept: %v", err)
	}
	if _, err := os.Stat(rev2.Dir); err != nil {
		t.Errorf("the revision just replaced was removed: %v", err)
	}

	// The wrong token is refused, and the revision in use stays.
	bad, err := New(Options{URL: srv.URL + "/specs.git", CacheDir: t.TempDir(), Token: "wrong", CABundle: caOf(srv)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Sync(ctx); err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Errorf("a wrong token: %v", err)
	}
	// A server whose certificate is not trusted is refused.
	untrusted, err := New(Options{URL: srv.URL + "/specs.git", CacheDir: t.TempDir(), Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Sync(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an untrusted certificate: %v", err)
	}
}

func TestSyncFollowsHEADAndNamesMissingRef(t *testing.T) {
	r := testgit.New(t)
	head := r.Commit(map[string]string{"x.yaml": "x: 1\n"})
	srv := r.HTTPServer(false, "")
	src, err := New(Options{URL: srv.URL + "/specs.git", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := src.Sync(context.Background())
	if err != nil || rev.Commit != head {
		t.Fatalf("HEAD: %+v, %v", rev, err)
	}
	r.Run(r.Work, "tag", "-a", "-m", "v1", "v1")
	r.Run(r.Work, "push", "-q", "origin", "v1")
	tagged, err := New(Options{URL: srv.URL + "/specs.git", Ref: "v1", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := tagged.Sync(context.Background()); err != nil || rev.Commit != head {
		t.Fatalf("annotated tag: %+v, %v", rev, err)
	}
	missing, err := New(Options{URL: srv.URL + "/specs.git", Ref: "nope", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := missing.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing ref: %v", err)
	}
	if _, err := New(Options{URL: srv.URL, Path: "../up", CacheDir: t.TempDir()}); err == nil {
		t.Error("a path outside the repository was taken")
	}
}

// sshRemote serves the bare repository's git-upload-pack over SSH.
func sshRemote(t *testing.T, r *testgit.Remote, client ssh.PublicKey) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	upload := testtool.Require(t, "git-upload-pack")
	srv, err := sshd.New(sshd.Config{AuthorizedKeys: []ssh.PublicKey{client}, Handler: func(ctx context.Context, s *sshd.Session) int {
		// git-upload-pack '/path/specs.git'
		path := strings.Trim(strings.TrimPrefix(s.Command, "git-upload-pack "), "'")
		cmd := exec.CommandContext(ctx, upload, path)
		cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = s.Stdin, s.Stdout, s.Stderr, r.Env
		if err := cmd.Run(); err != nil {
			return 1
		}
		return 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), srv.PublicKey()
}

func TestSyncOverSSHChecksTheHostKey(t *testing.T) {
	r := testgit.New(t)
	head := r.Commit(map[string]string{"x.yaml": "x: 1\n"})
	client, keyPEM, err := sshd.GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	addr, hostKey := sshRemote(t, r, client.PublicKey())
	url := "ssh://git@" + addr + r.Bare
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(sshd.KnownHostsLine([]string{addr}, hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := New(Options{URL: url, CacheDir: t.TempDir(), SSHKey: keyPEM, KnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := src.Sync(context.Background()); err != nil || rev.Commit != head {
		t.Fatalf("ssh: %+v, %v", rev, err)
	}

	other, err := sshd.GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(wrong, []byte(sshd.KnownHostsLine([]string{addr}, other.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	impostor, err := New(Options{URL: url, CacheDir: t.TempDir(), SSHKey: keyPEM, KnownHosts: wrong})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := impostor.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Errorf("a host key that is not in known_hosts: %v", err)
	}
	if _, err := New(Options{URL: url, CacheDir: t.TempDir(), SSHKey: keyPEM}); err == nil || !strings.Contains(err.Error(), EnvKnownHosts) {
		t.Errorf("ssh without known_hosts: %v", err)
	}
	if _, err := New(Options{URL: url, CacheDir: t.TempDir(), KnownHosts: known}); err == nil || !strings.Contains(err.Error(), EnvSSHKey) {
		t.Errorf("ssh without a key: %v", err)
	}
}

func TestSSHSignaturesAreVerified(t *testing.T) {
	r := testgit.New(t)
	signA, pubA := r.SSHSigner("alice")
	signB, _ := r.SSHSigner("mallory")
	keys := filepath.Join(t.TempDir(), "allowed_signers")
	// allowed_signers style (principals first) and a comment line.
	if err := os.WriteFile(keys, []byte("# trusted\nalice@example.com "+pubA), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(keys, "")
	if err != nil {
		t.Fatal(err)
	}
	good := r.Commit(map[string]string{"x.yaml": "x: 1\n"}, signA...)
	src, err := New(Options{URL: "file://" + r.Bare, CacheDir: t.TempDir(), Verify: v})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if rev, err := src.Sync(ctx); err != nil || rev.Commit != good {
		t.Fatalf("signed with the trusted key: %+v, %v", rev, err)
	}
	for name, sign := range map[string][]string{"unsigned": nil, "another key": signB} {
		bad := r.Commit(map[string]string{"x.yaml": "x: " + name + "\n"}, sign...)
		rev, err := src.Sync(ctx)
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Commit != bad {
			t.Fatalf("%s: %v, want a refusal of %s", name, err, bad)
		}
		if rev.Commit != good || src.Current().Commit != good {
			t.Errorf("%s: the revision in use became %s", name, rev.Commit)
		}
		if src.Refused() == nil {
			t.Errorf("%s: Refused() is nil", name)
		}
		t.Logf("%s: %v", name, err)
	}
	fixed := r.Commit(map[string]string{"x.yaml": "x: 2\n"}, signA...)
	if rev, err := src.Sync(ctx); err != nil || rev.Commit != fixed || src.Refused() != nil {
		t.Fatalf("signed again: %+v, %v", rev, err)
	}

	// A signed commit whose content was changed does not verify.
	c, err := src.repo.CommitObject(plumbing.NewHash(fixed))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(c); err != nil {
		t.Fatalf("the good commit: %v", err)
	}
	c.Message = "something else\n"
	if err := v.Verify(c); err == nil || !strings.Contains(err.Error(), "bad ssh signature") {
		t.Errorf("tampered commit: %v", err)
	}
	if _, err := NewVerifier(filepath.Join(t.TempDir(), "none"), ""); err == nil {
		t.Error("a missing key file was taken")
	}
}

func TestGPGSignaturesAreVerified(t *testing.T) {
	r := testgit.New(t)
	gpg := testtool.Require(t, "gpg")
	gnupg := filepath.Join(r.Root, "gpg")
	if err := os.MkdirAll(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []byte {
		cmd := exec.Command(gpg, append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Env = r.Env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	run("--quick-gen-key", "Signer <signer@example.com>", "ed25519", "sign", "never")
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run()
	})
	ring := filepath.Join(t.TempDir(), "keys.asc")
	if err := os.WriteFile(ring, run("--armor", "--export", "signer@example.com"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier("", ring)
	if err != nil {
		t.Fatal(err)
	}
	sign := []string{"-c", "gpg.program=" + gpg, "-c", "user.signingkey=signer@example.com", "-c", "commit.gpgsign=true"}
	good := r.Commit(map[string]string{"x.yaml": "x: 1\n"}, sign...)
	src, err := New(Options{URL: "file://" + r.Bare, CacheDir: t.TempDir(), Verify: v})
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := src.Sync(context.Background()); err != nil || rev.Commit != good {
		t.Fatalf("gpg-signed: %+v, %v", rev, err)
	}
	r.Commit(map[string]string{"x.yaml": "x: 2\n"})
	var refused *RefusedError
	if _, err := src.Sync(context.Background()); !errors.As(err, &refused) {
		t.Errorf("unsigned after gpg: %v", err)
	}
	// An ssh-signed head is refused when only gpg keys were given.
	signSSH, _ := r.SSHSigner("other")
	r.Commit(map[string]string{"x.yaml": "x: 3\n"}, signSSH...)
	if _, err := src.Sync(context.Background()); !errors.As(err, &refused) || !strings.Contains(err.Error(), "--git-verify-ssh") {
		t.Errorf("ssh-signed with only gpg keys: %v", err)
	}
}

func TestDefaultCacheDirIsPerURL(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/tmp/phx-git-cache")
	a, err := DefaultCacheDir("https://example.com/a.git")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DefaultCacheDir("https://example.com/b.git")
	if a == b || !strings.HasPrefix(a, "/tmp/phx-git-cache/phoenix/git/") {
		t.Errorf("cache dirs %s, %s", a, b)
	}
}

func TestSecretsNameTheCredentials(t *testing.T) {
	key := filepath.Join(t.TempDir(), "deploy")
	if err := os.WriteFile(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAkeymaterial\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvToken: "tok-123456", EnvWebhookSecret: "hook-123456", EnvSSHKey: key}
	got := map[string]string{}
	for _, s := range Secrets(func(k string) string { return env[k] }) {
		got[s.Var] = s.Value
	}
	if got[EnvToken] != "tok-123456" || got[EnvWebhookSecret] != "hook-123456" || !strings.Contains(got[EnvSSHKey], "AAAAkeymaterial") {
		t.Errorf("secrets: %v", got)
	}
}
