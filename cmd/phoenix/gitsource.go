package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	gitsrc "github.com/phoenixhv/phoenix/providers/git"
	"github.com/phoenixhv/phoenix/spec"
)

// EnvGitWebhookSecret is the secret the push webhooks are signed with.
const EnvGitWebhookSecret = gitsrc.EnvWebhookSecret

// maxHookBody bounds a webhook's body: push events are small, and only the
// signature over them is read.
const maxHookBody = 4 << 20

// gitFlags are phoenix run's flags of the git source.
type gitFlags struct {
	url, ref, path, cache *string
	interval              *time.Duration
	verifySSH, verifyGPG  *string
}

func addGitFlags(cmd *cobra.Command) *gitFlags {
	return &gitFlags{
		url:       cmd.Flags().String("git", "", "read the specs from this git repository (https, ssh or file URL) instead of spec paths"),
		ref:       cmd.Flags().String("ref", "", "with --git: the branch or tag to follow (default: the remote's HEAD)"),
		path:      cmd.Flags().String("path", ".", "with --git: the directory of the specs inside the repository"),
		cache:     cmd.Flags().String("git-cache", "", "with --git: where the clone and its checkouts live (default $XDG_CACHE_HOME/phoenix/git/<hash of the URL>)"),
		interval:  cmd.Flags().Duration("git-interval", time.Minute, "with --git: how often to fetch (a webhook on --listen fetches at once)"),
		verifySSH: cmd.Flags().String("git-verify-ssh", "", "with --git: refuse a head commit not signed by one of the ssh public keys in this file (authorized_keys or allowed_signers lines)"),
		verifyGPG: cmd.Flags().String("git-verify-gpg", "", "with --git: refuse a head commit not signed by a key of this armored OpenPGP key ring"),
	}
}

// runArgs is specArgs, save that --git replaces the spec paths.
func runArgs(cmd *cobra.Command, args []string) error {
	if u, _ := cmd.Flags().GetString("git"); u != "" {
		if len(specFiles(cmd, args)) > 0 {
			return errors.New("--git and spec paths (-f PATH or arguments) exclude each other: the specs come from the repository (choose its directory with --path)")
		}
		return nil
	}
	return specArgs(cmd, args)
}

// gitSource is the git source of phoenix run: it syncs at an interval and
// when a webhook asks, and starts a pass when the commit changed.
type gitSource struct {
	src      *gitsrc.Source
	log      *slog.Logger
	interval time.Duration
	secret   string
	link     string // the "current" link's spec directory
	wake     chan struct{}

	mu      sync.Mutex
	loaded  gitsrc.Revision // what the last load read
	refused string          // why the head was refused, "" if it was not
	// logged is the refused commit already logged, so that the log says so
	// once and not every poll.
	logged string

	revisionInfo *prometheus.GaugeVec
	syncErrors   prometheus.Counter
	lastSync     prometheus.Gauge
}

// newGitSource makes the git source --git asks for, and syncs it once: the
// first revision must be good (the specs name the cluster). It is nil
// without --git.
func newGitSource(ctx context.Context, cmd *cobra.Command, f *gitFlags, log *slog.Logger, getenv func(string) string) (*gitSource, error) {
	if *f.url == "" {
		for _, name := range []string{"ref", "path", "git-cache", "git-interval", "git-verify-ssh", "git-verify-gpg"} {
			if cmd.Flags().Changed(name) {
				return nil, fmt.Errorf("--%s goes with --git URL", name)
			}
		}
		return nil, nil
	}
	if *f.interval <= 0 {
		return nil, fmt.Errorf("--git-interval %v: want a positive duration such as 1m", *f.interval)
	}
	opts := gitsrc.Options{URL: *f.url, Ref: *f.ref, Path: *f.path, CacheDir: *f.cache,
		Username: getenv(gitsrc.EnvUsername), Token: getenv(gitsrc.EnvToken), KnownHosts: getenv(gitsrc.EnvKnownHosts)}
	if key := getenv(gitsrc.EnvSSHKey); key != "" {
		if strings.HasPrefix(strings.TrimSpace(key), "-----BEGIN") {
			opts.SSHKey = []byte(key)
		} else {
			b, err := os.ReadFile(key)
			if err != nil {
				return nil, fmt.Errorf("%s: neither a PEM key nor a readable key file: %w", gitsrc.EnvSSHKey, err)
			}
			opts.SSHKey = b
		}
	}
	if opts.CacheDir == "" {
		dir, err := gitsrc.DefaultCacheDir(opts.URL)
		if err != nil {
			return nil, err
		}
		opts.CacheDir = dir
	}
	if *f.verifySSH != "" || *f.verifyGPG != "" {
		v, err := gitsrc.NewVerifier(*f.verifySSH, *f.verifyGPG)
		if err != nil {
			return nil, err
		}
		opts.Verify = v
	}
	src, err := gitsrc.New(opts)
	if err != nil {
		return nil, err
	}
	if opts.Token != "" && strings.HasPrefix(opts.URL, "http://") {
		log.Warn("git: the token goes over plain http, readable on the way: use https", "variable", gitsrc.EnvToken)
	}
	g := &gitSource{src: src, log: log, interval: *f.interval, secret: getenv(EnvGitWebhookSecret),
		// The trailing separator has the link followed, where only a
		// walk of the specs' files needs it (the lease's holder, the
		// files' ages); a pass loads from the resolved directory.
		link: filepath.Join(opts.CacheDir, "current", filepath.Clean(opts.Path)) + string(filepath.Separator),
		wake: make(chan struct{}, 1),
		revisionInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "phoenix_git_revision_info", Help: "The git commit whose specs are in use (1).",
		}, []string{"commit"}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_git_sync_errors_total", Help: "Fetches of the git source that failed, and heads refused for their signature.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "phoenix_git_last_sync_timestamp_seconds", Help: "When the git source last fetched without error.",
		}),
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rev, err := src.Sync(sctx)
	if err != nil {
		return nil, err
	}
	g.note(rev, nil)
	return g, nil
}

// paths are the spec paths the rest of run reads outside passes.
func (g *gitSource) paths() []string { return []string{g.link} }

// register adds the source's metrics.
func (g *gitSource) register(reg prometheus.Registerer) {
	if g == nil {
		return
	}
	reg.MustRegister(g.revisionInfo, g.syncErrors, g.lastSync)
	if rev := g.src.Current(); rev.Commit != "" {
		g.revisionInfo.WithLabelValues(rev.Commit).Set(1)
	}
}

// load reads the specs of the revision in use, from its own directory: a
// switch to the next one while it reads leaves this one whole.
func (g *gitSource) load() (*spec.Resolution, error) {
	rev := g.src.Current()
	res, err := spec.LoadResolved(rev.Dir)
	if err != nil {
		return nil, fmt.Errorf("specs at git revision %s: %w", rev.Short, err)
	}
	g.mu.Lock()
	g.loaded = rev
	g.mu.Unlock()
	return res, nil
}

// revision is LoopOptions.Revision: nil without --git.
func (g *gitSource) revision() func() (string, string) {
	if g == nil {
		return nil
	}
	return func() (string, string) {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.loaded.Commit, g.refused
	}
}

// shortRevision is AlertOptions.Revision: nil without --git.
func (g *gitSource) shortRevision() func() string {
	if g == nil {
		return nil
	}
	return func() string {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.loaded.Short
	}
}

// routes adds the webhook to the --listen server.
func (g *gitSource) routes(mux *http.ServeMux) {
	if g == nil {
		return
	}
	mux.HandleFunc("POST /hooks/git", g.hook)
}

// hook is POST /hooks/git: a push event, signed as GitHub, Gitea, Forgejo
// or GitLab sign theirs, asks for a sync at once.
func (g *gitSource) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	if g.secret == "" {
		http.Error(w, "webhook disabled: phoenix has no "+EnvGitWebhookSecret, http.StatusUnauthorized)
		return
	}
	if err := checkHook(g.secret, r.Header, body); err != nil {
		g.log.Warn("git webhook refused", "remote", r.RemoteAddr, "error", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	select {
	case g.wake <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(w, "sync scheduled")
}

// checkHook accepts a body signed with the secret: GitHub's
// X-Hub-Signature-256 (sha256=<hex HMAC-SHA256>), Gitea's and Forgejo's
// X-Gitea-Signature and X-Forgejo-Signature (<hex HMAC-SHA256>), or GitLab's
// X-Gitlab-Token (the secret itself).
func checkHook(secret string, h http.Header, body []byte) error {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := mac.Sum(nil)
	hexOK := func(v string) bool {
		got, err := hex.DecodeString(strings.TrimSpace(v))
		return err == nil && hmac.Equal(got, want)
	}
	seen := false
	if v := h.Get("X-Hub-Signature-256"); v != "" {
		seen = true
		if rest, ok := strings.CutPrefix(v, "sha256="); ok && hexOK(rest) {
			return nil
		}
	}
	for _, name := range []string{"X-Gitea-Signature", "X-Forgejo-Signature"} {
		if v := h.Get(name); v != "" {
			seen = true
			if hexOK(v) {
				return nil
			}
		}
	}
	if v := h.Get("X-Gitlab-Token"); v != "" {
		seen = true
		if subtle.ConstantTimeCompare([]byte(v), []byte(secret)) == 1 {
			return nil
		}
	}
	if !seen {
		return errors.New("no signature: want X-Hub-Signature-256, X-Gitea-Signature, X-Forgejo-Signature or X-Gitlab-Token")
	}
	return errors.New("bad signature")
}

// start syncs every interval and when the webhook asks (bursts of pushes
// become one sync); a new commit starts a pass.
func (g *gitSource) start(ctx context.Context, trigger func()) {
	if g == nil {
		return
	}
	go func() {
		tick := time.NewTicker(g.interval)
		defer tick.Stop()
		var debounce <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-g.wake:
				if debounce == nil {
					debounce = time.After(200 * time.Millisecond)
				}
				continue
			case <-debounce:
				debounce = nil
			case <-tick.C:
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			rev, err := g.src.Sync(sctx)
			cancel()
			if g.note(rev, err) {
				trigger()
			}
		}
	}()
}

// note records a sync's outcome in the log, the metrics and the status, and
// says whether a pass should start.
func (g *gitSource) note(rev gitsrc.Revision, err error) bool {
	var refused *gitsrc.RefusedError
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case errors.As(err, &refused):
		g.syncErrors.Inc()
		g.lastSync.SetToCurrentTime()
		g.refused = refused.Error()
		if g.logged != refused.Commit {
			g.logged = refused.Commit
			g.log.Error("git head refused: the last good revision stays in use", "commit", refused.Commit, "reason", refused.Reason, "revision", rev.Short)
		}
		return false
	case err != nil:
		g.syncErrors.Inc()
		g.log.Warn("git sync failed", "error", err, "revision", rev.Short)
		return false
	}
	g.lastSync.SetToCurrentTime()
	g.refused, g.logged = "", ""
	if !rev.Changed {
		return false
	}
	g.revisionInfo.Reset()
	g.revisionInfo.WithLabelValues(rev.Commit).Set(1)
	g.log.Info("git: new revision", "revision", rev.Short, "commit", rev.Commit)
	return true
}
