// Package testgit is a git remote for tests: a bare repository and a work
// tree that pushes to it, made with the git binary (the judge of what a real
// server serves), served over smart HTTP by git http-backend on 127.0.0.1.
package testgit

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/hack/testtool"
)

// Remote is a bare repository (Bare, its branch main) and a work tree
// (Work) whose origin it is, under Root.
type Remote struct {
	t                *testing.T
	Git              string // the git binary
	Root, Bare, Work string
	// Env is the environment git runs in: a home of its own, no system
	// configuration, a fixed author.
	Env []string
}

// New makes an empty remote and its work tree in a temporary directory.
func New(t *testing.T) *Remote {
	t.Helper()
	r := &Remote{t: t, Git: testtool.Require(t, "git"), Root: t.TempDir()}
	home := filepath.Join(r.Root, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	r.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com", "GNUPGHOME="+filepath.Join(r.Root, "gpg"))
	r.Bare = filepath.Join(r.Root, "specs.git")
	r.Work = filepath.Join(r.Root, "work")
	r.Run(r.Root, "init", "-q", "--bare", "-b", "main", r.Bare)
	r.Run(r.Root, "init", "-q", "-b", "main", r.Work)
	r.Run(r.Work, "remote", "add", "origin", r.Bare)
	return r
}

// Run runs git in dir and returns its output, trimmed; a failure fails the
// test.
func (r *Remote) Run(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.Git, args...)
	cmd.Dir, cmd.Env = dir, r.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes files into the work tree (an empty content removes the
// file), then commits and pushes as CommitAll.
func (r *Remote) Commit(files map[string]string, gitArgs ...string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Work, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	return r.CommitAll("change", gitArgs...)
}

// CommitAll commits the work tree as it is with git's gitArgs before the
// command (signing: SSHSigner's), pushes it, and returns the commit.
func (r *Remote) CommitAll(msg string, gitArgs ...string) string {
	r.t.Helper()
	r.Run(r.Work, "add", "-A")
	r.Run(r.Work, append(append([]string{}, gitArgs...), "commit", "-q", "-m", msg)...)
	r.Run(r.Work, "push", "-q", "origin", "main")
	return r.Run(r.Work, "rev-parse", "HEAD")
}

// SSHSigner makes an ed25519 key with ssh-keygen and returns the git
// arguments that sign a commit with it, and its public key line.
func (r *Remote) SSHSigner(name string) (args []string, pub string) {
	r.t.Helper()
	keygen := testtool.Require(r.t, "ssh-keygen")
	key := filepath.Join(r.Root, name)
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key).CombinedOutput(); err != nil {
		r.t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	b, err := os.ReadFile(key + ".pub")
	if err != nil {
		r.t.Fatal(err)
	}
	return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key, "-c", "commit.gpgsign=true"}, string(b)
}

// HTTPServer serves the bare repository over smart HTTP on 127.0.0.1
// (git http-backend), over TLS when tls, asking for the token as the basic
// auth password when it is not empty. Its URL + "/specs.git" is the remote's.
func (r *Remote) HTTPServer(tls bool, token string) *httptest.Server {
	r.t.Helper()
	backend := &cgi.Handler{Path: r.Git, Args: []string{"http-backend"}, Dir: r.Root,
		Env: []string{"GIT_PROJECT_ROOT=" + r.Root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + r.Root}}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if token != "" {
			if _, pass, ok := req.BasicAuth(); !ok || pass != token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, req)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	r.t.Cleanup(srv.Close)
	return srv
}
