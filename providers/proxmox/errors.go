package proxmox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"syscall"

	"github.com/phoenixhv/phoenix/reconciler"
)

// This file is the one place where what Proxmox answers becomes a typed
// error, and where it is decided whether trying again may help. Nothing else
// in phoenix reads Proxmox's error texts.

// lockRE matches Proxmox's guest lock ("CT is locked (disk)") and its config
// and storage file-lock timeouts ("can't lock file '...' - got timeout").
var lockRE = regexp.MustCompile(`^(CT|VM) is locked \(|can't lock file '[^']*' - got timeout`)

// transientRE are server-side conditions that pass: a busy or restarting
// node, a proxy between nodes that timed out, cluster filesystem hiccups.
var transientRE = regexp.MustCompile(`got timeout|timeout|temporarily|cluster not ready|no quorum|proxy|connection refused|connection reset`)

// classify turns an HTTP answer other than 200 into an *APIError.
func classify(op string, status int, reason string, body []byte) error {
	e := &reconciler.APIError{Op: op, Status: status, Message: reason}
	var payload struct {
		Errors  map[string]string `json:"errors"`
		Message string            `json:"message"`
	}
	if json.Unmarshal(body, &payload) == nil {
		e.Params = payload.Errors
		// PVE 9 repeats the message in the body, with the lines the status
		// line cannot carry.
		if m := strings.TrimRight(payload.Message, "\n"); m != "" && strings.HasPrefix(m, reason) {
			e.Message = m
		}
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind = reconciler.ErrPermission
	case status == http.StatusBadRequest:
		e.Kind = reconciler.ErrBadRequest
		for _, msg := range e.Params {
			if strings.Contains(msg, "already exists") {
				e.Kind = reconciler.ErrAlreadyExists
			}
		}
	case lockRE.MatchString(reason):
		e.Kind, e.Transient = reconciler.ErrLocked, true
	case strings.Contains(reason, "already exists"):
		e.Kind = reconciler.ErrAlreadyExists
	case strings.HasPrefix(reason, "Configuration file ") && strings.HasSuffix(reason, "does not exist"),
		strings.HasPrefix(reason, "no such"):
		e.Kind = reconciler.ErrNotFound
	case strings.HasPrefix(reason, "detected modified configuration"):
		e.Kind, e.Transient = reconciler.ErrConflict, true
	case status == 595 || status == 596 || status == http.StatusBadGateway || status == http.StatusServiceUnavailable ||
		status == http.StatusGatewayTimeout || (status >= 500 && transientRE.MatchString(reason)):
		e.Kind, e.Transient = reconciler.ErrUnavailable, true
	default:
		e.Kind = reconciler.ErrRefused
	}
	return e
}

// refusedBeforeHandling reports whether an answer is pveproxy refusing the
// request's ticket or CSRF token: a 401 to anything but a login comes from
// pve-manager's PVE/HTTPServer.pm auth_handler, which runs before the
// handler, so nothing happened and a write is as safe to send again, after a
// new login, as a read. (A 403 is a permission check a new ticket does not
// change.)
func refusedBeforeHandling(path string, status int) bool {
	return status == http.StatusUnauthorized && !strings.HasPrefix(path, "/access/")
}

// classifyTransport wraps a failure to get any answer: a dropped connection or
// a timeout is worth another try; a certificate that does not verify is not.
func classifyTransport(op string, err error) error {
	d := diagnose(err)
	e := &reconciler.APIError{Op: op, Message: d.cause, Kind: reconciler.ErrUnavailable, Transient: !d.trust}
	text := op + ": " + d.cause
	if d.trust {
		// The endpoint answered before, so only the trust settings are worth
		// naming: the other hints are for a first contact.
		text += " (" + d.check + ")"
	}
	return &wireError{text: text, api: e}
}

// wireError is an *APIError with a text of its own: APIError.Error prints an
// HTTP status, and a request that got no answer has none ("GET /x: 0 ...").
type wireError struct {
	text string
	api  *reconciler.APIError
}

func (e *wireError) Error() string { return e.text }
func (e *wireError) Unwrap() error { return e.api }

// What to check, by cause. Each names the variable, never its value.
const (
	hintEndpoint = "check " + EnvEndpoint
	hintAPIPort  = "check " + EnvEndpoint + ": Proxmox VE serves its API over HTTPS, on port 8006"
	hintTrust    = "set " + EnvCAFile + " to a copy of a node's /etc/pve/pve-root-ca.pem, or " +
		EnvInsecure + "=true to skip verification"
	hintName  = "check " + EnvEndpoint + ": use a name the certificate carries, or set " + EnvInsecure + "=true to skip verification"
	hintToken = "check " + EnvToken + ": the token may not exist, may have expired, or its secret may be wrong"
	hintLogin = "check " + EnvUsername + " and " + EnvPassword
)

// diagnosis says in plain words why a request got no HTTP answer, and what
// to check.
type diagnosis struct {
	cause string
	check string
	// trust is a certificate that did not verify: trying again cannot help.
	trust bool
}

// diagnose reads Go's transport error, which says what failed in the terms of
// the layer that failed ("dial tcp ...: connect: connection refused").
func diagnose(err error) diagnosis {
	var (
		opErr    *net.OpError
		dnsErr   *net.DNSError
		hostErr  x509.HostnameError
		caErr    x509.UnknownAuthorityError
		verErr   *tls.CertificateVerificationError
		recErr   tls.RecordHeaderError
		protoErr textproto.ProtocolError
		netErr   net.Error
	)
	addr := "the server"
	if errors.As(err, &opErr) && opErr.Addr != nil {
		addr = opErr.Addr.String()
	}
	switch {
	case errors.As(err, &dnsErr):
		return diagnosis{cause: fmt.Sprintf("cannot resolve the host name %s: %s", dnsErr.Name, dnsErr.Err), check: hintEndpoint}
	case errors.Is(err, syscall.ECONNREFUSED):
		return diagnosis{cause: "connection refused: nothing listens on " + addr, check: hintEndpoint}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return diagnosis{cause: "no route to " + addr, check: hintEndpoint}
	case errors.As(err, &hostErr):
		return diagnosis{cause: "TLS: " + certNames(hostErr), check: hintName, trust: true}
	case errors.As(err, &caErr):
		return diagnosis{cause: "TLS: the server's certificate is signed by an authority phoenix does not trust", check: hintTrust, trust: true}
	case errors.As(err, &verErr):
		return diagnosis{cause: "TLS: the server's certificate does not verify: " + verErr.Err.Error(), check: hintTrust, trust: true}
	case errors.Is(err, http.ErrSchemeMismatch):
		return diagnosis{cause: "the port speaks plain HTTP, not HTTPS", check: hintAPIPort}
	case errors.As(err, &recErr):
		return diagnosis{cause: fmt.Sprintf("the server does not speak TLS: its answer begins %q", recErr.RecordHeader[:]), check: hintAPIPort}
	case errors.As(err, &netErr) && netErr.Timeout():
		return diagnoseTimeout(err, opErr, addr)
	// net/http reports a status line it cannot parse with an unexported type.
	case errors.As(err, &protoErr), strings.Contains(err.Error(), "malformed HTTP"):
		return diagnosis{cause: "the server does not speak HTTP", check: hintAPIPort}
	case closedConn(err):
		return diagnosis{cause: "the server closed the connection", check: hintAPIPort}
	}
	return diagnosis{cause: innermost(err), check: hintEndpoint}
}

// diagnoseTimeout tells which step ran out of time: the connection, the TLS
// handshake, or the answer.
func diagnoseTimeout(err error, opErr *net.OpError, addr string) diagnosis {
	switch {
	case opErr != nil && opErr.Op == "dial":
		return diagnosis{cause: fmt.Sprintf("no connection to %s within %s", addr, connectTimeout),
			check: hintEndpoint + ", and that no firewall drops the packets"}
	// net/http's handshake timeout has no type of its own.
	case strings.Contains(err.Error(), "TLS handshake timeout"):
		return diagnosis{cause: fmt.Sprintf("no TLS handshake within %s", connectTimeout), check: hintAPIPort}
	}
	return diagnosis{cause: "no answer in time: " + innermost(err), check: hintEndpoint}
}

// certNames says which names a certificate that does not fit the endpoint
// is for.
func certNames(e x509.HostnameError) string {
	var names []string
	if e.Certificate != nil {
		names = append(names, e.Certificate.DNSNames...)
		for _, ip := range e.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
	}
	if len(names) == 0 {
		return e.Error()
	}
	return fmt.Sprintf("the server's certificate is for %s, not %s", strings.Join(names, ", "), e.Host)
}

// innermost drops net/http's "Get "URL": " prefix: the caller names the
// request already.
func innermost(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}

// contactError explains why New's first request failed, in one line that
// names the endpoint, the cause and the variable to check. None of these
// passes by waiting, so none is retryable, except a failure Proxmox VE itself
// reports (a 5xx with its JSON body), which keeps classify's verdict, and a
// request dropped or left unanswered once the connection was up.
func contactError(cfg Config, op string, capt *capture, err error) error {
	switch {
	case capt.status == http.StatusUnauthorized || capt.status == http.StatusForbidden:
		e := classify(op, capt.status, capt.reason, capt.body).(*reconciler.APIError)
		what, check := "the API token was refused", hintToken
		if cfg.TokenID == "" {
			what, check = "the login was refused", hintLogin
		}
		return contact(cfg.Endpoint, fmt.Sprintf("%s: %d %s", what, e.Status, e.Message), check, e)
	case capt.status >= 500 && capt.status != http.StatusNotImplemented && mediaType(capt.contentType) == "application/json":
		e := classify(op, capt.status, capt.reason, capt.body).(*reconciler.APIError)
		return &wireError{text: cfg.Endpoint + ": " + e.Error(), api: e}
	case closedConn(err) && capt.connected.Load():
		// The server spoke TLS, then dropped the request: a restarting
		// pveproxy does that, and so does a flaky network.
		return classifyTransport(op, err)
	case errors.Is(err, context.DeadlineExceeded) && capt.connected.Load():
		// A busy server, not a wrong address.
		msg := fmt.Sprintf("no answer within %s", firstContactTimeout)
		return &wireError{text: op + ": " + msg,
			api: &reconciler.APIError{Op: op, Message: msg, Kind: reconciler.ErrUnavailable, Transient: true}}
	case errors.Is(err, context.DeadlineExceeded):
		msg := fmt.Sprintf("no connection within %s", firstContactTimeout)
		return contact(cfg.Endpoint, msg, hintEndpoint, &reconciler.APIError{Op: op, Message: msg, Kind: reconciler.ErrUnavailable})
	case closedConn(err):
		return contact(cfg.Endpoint, "the server closed the connection during the TLS handshake", hintAPIPort,
			&reconciler.APIError{Op: op, Message: "the server closed the connection", Kind: reconciler.ErrUnavailable})
	case capt.status != 0 || errors.Is(err, errNotPVE) || decodeError(err):
		cause := op + " answered " + capt.answer
		if t := mediaType(capt.contentType); t != "" {
			cause += " with " + t
		}
		cause += ", not the Proxmox VE API"
		e := &reconciler.APIError{Op: op, Status: capt.answerCode, Message: cause, Kind: reconciler.ErrUnavailable}
		return contact(cfg.Endpoint, cause, hintAPIPort, e)
	}
	d := diagnose(err)
	return contact(cfg.Endpoint, d.cause, d.check, &reconciler.APIError{Op: op, Message: d.cause, Kind: reconciler.ErrUnavailable})
}

// contact makes a first-contact error: permanent, and reading
// "ENDPOINT: CAUSE (CHECK)".
func contact(endpoint, cause, check string, e *reconciler.APIError) error {
	e.Transient = false
	return &wireError{text: fmt.Sprintf("%s: %s (%s)", endpoint, cause, check), api: e}
}

// closedConn reports a connection the server closed without an answer.
func closedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// decodeError reports an answer whose body is not the JSON Proxmox VE sends.
func decodeError(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ)
}

// mediaType is a Content-Type without its parameters.
func mediaType(contentType string) string {
	t, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// taskTransient reports whether a task's exit status names a condition that
// passes: a guest lock taken by another task, a lock file timeout.
func taskTransient(exit string) bool {
	return lockRE.MatchString(exit) || strings.Contains(exit, "got timeout")
}

// taskOK reports whether a stopped task succeeded. "WARNINGS: N" is success:
// Proxmox ran the task to its end and only logged warnings.
func taskOK(exit string) bool {
	return exit == "OK" || strings.HasPrefix(exit, "WARNINGS: ")
}
