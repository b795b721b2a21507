// Package git is phoenix's git source: it fetches a repository of specs
// (go-git, no git binary), checks each new head out whole into a directory of
// its own and switches to it atomically, so that a pass never reads half of a
// change. An unsigned or badly signed head is refused when the operator gave
// keys to verify with; the last good revision stays in use.
package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/phoenixhv/phoenix/providers/redact"
)

// Environment variables the command reads the credentials from.
const (
	EnvToken      = "PHOENIX_GIT_TOKEN"
	EnvUsername   = "PHOENIX_GIT_USERNAME"
	EnvSSHKey     = "PHOENIX_GIT_SSH_KEY"
	EnvKnownHosts = "PHOENIX_GIT_KNOWN_HOSTS"
	// DefaultUsername goes with a token over https: GitHub, Gitea and
	// GitLab take a token as the password whatever the user name.
	DefaultUsername = "git"
)

// Options configure a Source.
type Options struct {
	// URL of the repository: https://, http://, ssh://, user@host:path or file://.
	URL string
	// Ref is a branch or tag name, or a full ref (refs/...); empty follows
	// the remote's HEAD.
	Ref string
	// Path is the directory of the specs inside the repository ("" or ".": the root).
	Path string
	// CacheDir holds the fetched objects and the checked-out revisions.
	CacheDir string
	// Username and Token authenticate over http(s) (basic auth).
	Username, Token string
	// SSHKey is the private key (PEM) for ssh URLs, and KnownHosts the
	// known_hosts file the server's key is checked against (required for ssh).
	SSHKey     []byte
	KnownHosts string
	// CABundle, when set, is the PEM certificates an https server's is
	// checked against instead of the system's.
	CABundle []byte
	// Verify, when set, is the keys a head commit must be signed with.
	Verify *Verifier
}

// Revision is a checked-out commit.
type Revision struct {
	// Commit is the full hash and Short its first 12 hex digits.
	Commit, Short string
	// Dir is the checked-out tree's directory plus Options.Path: a
	// directory of its own, never the "current" link, so that it stays
	// whole while the next revision is switched to.
	Dir string
	// Changed says whether this Sync switched to it.
	Changed bool
	// Time is when it was switched to.
	Time time.Time
}

// RefusedError is a head that was not checked out because its signature
// did not verify: the last good revision stays in use.
type RefusedError struct {
	Commit string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("git: refused commit %s: %s", short(e.Commit), e.Reason)
}

// Source fetches and checks out one repository's ref.
type Source struct {
	opts Options
	auth transport.AuthMethod
	repo *gogit.Repository

	mu      sync.Mutex // one Sync at a time
	current Revision
	refused *RefusedError
}

// DefaultCacheDir is where a URL's clone lives by default:
// $XDG_CACHE_HOME/phoenix/git/<hash of the URL>.
func DefaultCacheDir(rawURL string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("git: no cache directory (set XDG_CACHE_HOME or --git-cache): %w", err)
	}
	sum := sha256.Sum256([]byte(rawURL))
	return filepath.Join(base, "phoenix", "git", hex.EncodeToString(sum[:8])), nil
}

// New checks the options and opens (or makes) the cache; it fetches nothing.
func New(opts Options) (*Source, error) {
	if opts.URL == "" {
		return nil, errors.New("git: no repository URL")
	}
	if opts.CacheDir == "" {
		return nil, errors.New("git: no cache directory")
	}
	p := filepath.Clean(filepath.FromSlash(opts.Path))
	if p == "" || !filepath.IsLocal(p) {
		return nil, fmt.Errorf("git: path %q: want a directory inside the repository", opts.Path)
	}
	opts.Path = p
	auth, err := authFor(opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("git: cache: %w", err)
	}
	repoDir := filepath.Join(opts.CacheDir, "repo")
	repo, err := gogit.PlainOpen(repoDir)
	if errors.Is(err, gogit.ErrRepositoryNotExists) {
		repo, err = gogit.PlainInit(repoDir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("git: cache %s: %w", repoDir, err)
	}
	_ = repo.DeleteRemote("origin")
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{opts.URL}}); err != nil {
		return nil, fmt.Errorf("git: cache %s: %w", repoDir, err)
	}
	return &Source{opts: opts, auth: auth, repo: repo}, nil
}

// authFor picks the credentials for the URL's transport.
func authFor(opts Options) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("git: URL %q: %w", opts.URL, err)
	}
	switch ep.Protocol {
	case "https", "http":
		if opts.Token == "" {
			return nil, nil
		}
		user := opts.Username
		if user == "" {
			user = DefaultUsername
		}
		return &githttp.BasicAuth{Username: user, Password: opts.Token}, nil
	case "ssh":
		if len(opts.SSHKey) == 0 {
			return nil, fmt.Errorf("git: %s is an ssh URL: set %s to the deploy key (the PEM key or its file)", redactURL(opts.URL), EnvSSHKey)
		}
		if opts.KnownHosts == "" {
			return nil, fmt.Errorf("git: %s is an ssh URL: set %s to a known_hosts file with the server's host key", redactURL(opts.URL), EnvKnownHosts)
		}
		hostKeys, err := knownhosts.New(opts.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("git: %s: %w", EnvKnownHosts, err)
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		signer, err := ssh.ParsePrivateKey(opts.SSHKey)
		if err != nil {
			return nil, fmt.Errorf("git: %s: %w", EnvSSHKey, err)
		}
		return &gitssh.PublicKeys{User: user, Signer: signer,
			HostKeyCallbackHelper: gitssh.HostKeyCallbackHelper{HostKeyCallback: hostKeys}}, nil
	case "file":
		return nil, nil
	}
	return nil, fmt.Errorf("git: URL %q: protocol %q: want https, http, ssh or file", redactURL(opts.URL), ep.Protocol)
}

// redactURL drops a password from a URL for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return s
}

// Current is the revision in use (zero before the first good Sync).
func (s *Source) Current() Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Refused is the head refused last, nil when the last Sync took the head.
func (s *Source) Refused() *RefusedError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Sync asks the remote for the ref's commit and, when it is new, fetches,
// verifies and checks it out, then switches to it. On an error the revision
// in use stays (Current); a refused head is a *RefusedError.
func (s *Source) Sync(ctx context.Context) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, hash, err := s.resolve(ctx)
	if err != nil {
		return s.current, err
	}
	if s.current.Commit == hash.String() {
		s.refused = nil
		rev := s.current
		rev.Changed = false
		return rev, nil
	}
	if s.refused != nil && s.refused.Commit == hash.String() {
		return s.current, s.refused
	}
	local := plumbing.ReferenceName("refs/phoenix/head")
	err = s.repo.FetchContext(ctx, &gogit.FetchOptions{RemoteName: "origin", Auth: s.auth, CABundle: s.opts.CABundle,
		RefSpecs: []config.RefSpec{config.RefSpec("+" + ref.String() + ":" + local.String())}, Tags: gogit.NoTags, Force: true})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return s.current, fmt.Errorf("git: fetch %s from %s: %w", ref, redactURL(s.opts.URL), err)
	}
	commit, err := s.commitOf(hash)
	if err != nil {
		return s.current, err
	}
	if s.opts.Verify != nil {
		if err := s.opts.Verify.Verify(commit); err != nil {
			s.refused = &RefusedError{Commit: commit.Hash.String(), Reason: err.Error()}
			return s.current, s.refused
		}
	}
	dir, err := s.checkout(commit)
	if err != nil {
		return s.current, err
	}
	s.refused = nil
	c := commit.Hash.String()
	s.current = Revision{Commit: c, Short: short(c), Dir: filepath.Join(dir, s.opts.Path), Changed: true, Time: time.Now()}
	return s.current, nil
}

// resolve asks the remote which commit the ref names now.
func (s *Source) resolve(ctx context.Context) (plumbing.ReferenceName, plumbing.Hash, error) {
	remote, err := s.repo.Remote("origin")
	if err != nil {
		return "", plumbing.ZeroHash, fmt.Errorf("git: %w", err)
	}
	refs, err := remote.ListContext(ctx, &gogit.ListOptions{Auth: s.auth, CABundle: s.opts.CABundle})
	if err != nil {
		return "", plumbing.ZeroHash, fmt.Errorf("git: list %s: %w", redactURL(s.opts.URL), err)
	}
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, r := range refs {
		byName[r.Name()] = r
	}
	var want []plumbing.ReferenceName
	switch {
	case s.opts.Ref == "":
		want = []plumbing.ReferenceName{plumbing.HEAD}
	case strings.HasPrefix(s.opts.Ref, "refs/"):
		want = []plumbing.ReferenceName{plumbing.ReferenceName(s.opts.Ref)}
	default:
		want = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(s.opts.Ref), plumbing.NewTagReferenceName(s.opts.Ref)}
	}
	for _, name := range want {
		r := byName[name]
		for range 5 { // follow symbolic refs (HEAD -> refs/heads/main)
			if r == nil || r.Type() != plumbing.SymbolicReference {
				break
			}
			name = r.Target()
			r = byName[name]
		}
		if r != nil && r.Type() == plumbing.HashReference {
			return name, r.Hash(), nil
		}
	}
	if s.opts.Ref == "" {
		return "", plumbing.ZeroHash, fmt.Errorf("git: %s names no HEAD: give --ref", redactURL(s.opts.URL))
	}
	return "", plumbing.ZeroHash, fmt.Errorf("git: %s has no branch or tag %q", redactURL(s.opts.URL), s.opts.Ref)
}

// commitOf peels an annotated tag down to its commit.
func (s *Source) commitOf(h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := s.repo.Object(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("git: object %s: %w", h, err)
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, fmt.Errorf("git: %s is a %s, not a commit", h, obj.Type())
		}
	}
	return nil, fmt.Errorf("git: %s: tags nested too deep", h)
}

// checkout writes the commit's whole tree into rev-<hash> (by way of a
// temporary directory renamed into place, so that a rev- directory is always
// whole), points the "current" link at it by renaming a new link over the
// old, and removes the revisions older than the one it replaces: a pass that
// still reads the previous revision keeps it.
func (s *Source) checkout(c *object.Commit) (string, error) {
	name := "rev-" + c.Hash.String()
	dir := filepath.Join(s.opts.CacheDir, name)
	if _, err := os.Stat(dir); err != nil {
		tmp, err := os.MkdirTemp(s.opts.CacheDir, "tmp-"+short(c.Hash.String())+"-")
		if err != nil {
			return "", fmt.Errorf("git: checkout: %w", err)
		}
		if err := writeTree(c, tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return "", fmt.Errorf("git: checkout %s: %w", short(c.Hash.String()), err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			_ = os.RemoveAll(tmp)
			return "", fmt.Errorf("git: checkout: %w", err)
		}
	}
	link := filepath.Join(s.opts.CacheDir, "current")
	previous, _ := os.Readlink(link)
	tmpLink := link + ".tmp"
	_ = os.Remove(tmpLink)
	if err := os.Symlink(name, tmpLink); err != nil {
		return "", fmt.Errorf("git: switch: %w", err)
	}
	if err := os.Rename(tmpLink, link); err != nil {
		return "", fmt.Errorf("git: switch: %w", err)
	}
	entries, _ := os.ReadDir(s.opts.CacheDir)
	for _, e := range entries {
		n := e.Name()
		if (strings.HasPrefix(n, "rev-") || strings.HasPrefix(n, "tmp-")) && n != name && n != filepath.Base(previous) {
			_ = os.RemoveAll(filepath.Join(s.opts.CacheDir, n))
		}
	}
	return dir, nil
}

// writeTree writes every file of the commit's tree under dir, with its mode;
// symbolic links stay links. A path that would leave dir is refused.
func writeTree(c *object.Commit, dir string) error {
	tree, err := c.Tree()
	if err != nil {
		return err
	}
	return tree.Files().ForEach(func(f *object.File) error {
		rel := filepath.FromSlash(f.Name)
		if !filepath.IsLocal(rel) || strings.HasPrefix(rel, ".git"+string(filepath.Separator)) || rel == ".git" {
			return fmt.Errorf("%q: a path outside the checkout", f.Name)
		}
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		if f.Mode == filemode.Symlink {
			target, err := io.ReadAll(io.LimitReader(r, 4096))
			if err != nil {
				return err
			}
			return os.Symlink(string(target), path)
		}
		perm := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			perm = 0o755
		}
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// EnvWebhookSecret is the secret the push webhooks are signed with.
const EnvWebhookSecret = "PHOENIX_GIT_WEBHOOK_SECRET"

// Secrets returns the credential values among the git source's variables,
// for phoenix to keep out of everything it writes: the token, the webhook
// secret and the deploy key (the key itself, or what its file holds).
func Secrets(getenv func(string) string) []redact.Secret {
	var out []redact.Secret
	for _, name := range []string{EnvToken, EnvWebhookSecret} {
		if v := getenv(name); v != "" {
			out = append(out, redact.Secret{Var: name, Value: v})
		}
	}
	switch v := strings.TrimSpace(getenv(EnvSSHKey)); {
	case v == "":
	case strings.HasPrefix(v, "-----BEGIN"):
		out = append(out, redact.Secret{Var: EnvSSHKey, Value: v, Lines: true})
	default:
		if b, err := os.ReadFile(v); err == nil && len(b) > 0 && len(b) < 1<<20 {
			out = append(out, redact.Secret{Var: EnvSSHKey, Value: string(b), Lines: true})
		}
	}
	return out
}
