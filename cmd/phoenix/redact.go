package main

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"

	gitsrc "github.com/phoenixhv/phoenix/providers/git"
	"github.com/phoenixhv/phoenix/providers/proxmox"
	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/providers/ssh"
	"github.com/phoenixhv/phoenix/reconciler"
)

// Nothing phoenix writes holds a credential value. The providers' errors
// name variables, never values; behind them, one redactor that knows every
// credential in the environment stands in front of every output: standard
// output and error (plans, reports, progress, the final error), the log
// handler, the HTTP endpoints of run, a saved plan file, and the
// descriptions phoenix writes into Proxmox (the state record, with the last
// error of each guest).

// credentialRedactor knows the credential values the providers read from
// the environment.
func credentialRedactor(getenv func(string) string) *redact.Redactor {
	return redact.New(slices.Concat(proxmox.Secrets(getenv), ssh.Secrets(getenv), gitsrc.Secrets(getenv))...)
}

type redactorKey struct{}

// withRedactor gives the commands run under ctx the redactor.
func withRedactor(ctx context.Context, r *redact.Redactor) context.Context {
	return context.WithValue(ctx, redactorKey{}, r)
}

// redactorOf returns the redactor the command runs with; nil (which
// replaces nothing) outside run.
func redactorOf(ctx context.Context) *redact.Redactor {
	if ctx == nil {
		return nil
	}
	r, _ := ctx.Value(redactorKey{}).(*redact.Redactor)
	return r
}

// warnShortSecrets says which credentials are too short to be found in
// output reliably.
func warnShortSecrets(log *slog.Logger, r *redact.Redactor) {
	if short := r.Short(); len(short) > 0 && log != nil {
		log.Warn("a credential is shorter than 6 characters: phoenix removes it from what it writes only where it stands alone as a word; use an API token, or a longer password",
			"variables", short)
	}
}

// unwrapWriter returns the writer underneath redacting writers: the
// terminal, or the file.
func unwrapWriter(w io.Writer) io.Writer {
	for {
		u, ok := w.(interface{ Unwrap() io.Writer })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// redactedClient is the API client with the descriptions it writes redacted:
// the description holds phoenix's state record, whose last error is the
// text of whatever failed, and everyone who may audit the guest, its backups
// and its clones reads it.
type redactedClient struct {
	*proxmox.Client
	red *redact.Redactor
}

var _ reconciler.Cluster = (*redactedClient)(nil)

func (c *redactedClient) SetConfig(ctx context.Context, node string, vmid int, set map[string]string, del []string, digest string) error {
	if d, ok := set["description"]; ok && !c.red.Empty() {
		set = maps.Clone(set)
		set["description"] = c.red.String(d)
	}
	return c.Client.SetConfig(ctx, node, vmid, set, del, digest)
}

func (c *redactedClient) Create(ctx context.Context, req reconciler.CreateRequest) error {
	if d, ok := req.Options["description"]; ok && !c.red.Empty() {
		req.Options = maps.Clone(req.Options)
		req.Options["description"] = c.red.String(d)
	}
	return c.Client.Create(ctx, req)
}

func (c *redactedClient) Clone(ctx context.Context, req reconciler.CloneRequest) error {
	req.Description = c.red.String(req.Description)
	return c.Client.Clone(ctx, req)
}

// CreateSnapshot redacts the snapshot's comment, which carries the
// guest's record too.
func (c *redactedClient) CreateSnapshot(ctx context.Context, node string, vmid int, name, description string) error {
	return c.Client.CreateSnapshot(ctx, node, vmid, name, c.red.String(description))
}

// redactHTTP redacts the bodies h writes. Compression is asked off: a
// redactor reads text, not gzip.
func redactHTTP(r *redact.Redactor, h http.Handler) http.Handler {
	if r.Empty() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req = req.Clone(req.Context())
		req.Header.Del("Accept-Encoding")
		rw := &redactedResponse{ResponseWriter: w, body: r.Writer(w)}
		h.ServeHTTP(rw, req)
		_ = rw.body.Flush()
	})
}

type redactedResponse struct {
	http.ResponseWriter
	body *redact.Writer
}

func (w *redactedResponse) WriteHeader(code int) {
	// The length a handler counted is not the length of the redacted body.
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(code)
}

// Flush sends what the handler wrote so far (the status page's event
// stream): what the redactor held back goes out redacted as the end of the
// output, so a handler flushes only after a whole message.
func (w *redactedResponse) Flush() {
	_ = w.body.Flush()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *redactedResponse) Write(p []byte) (int, error) {
	w.Header().Del("Content-Length")
	return w.body.Write(p)
}
