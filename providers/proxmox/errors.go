package proxmox

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"

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

// classifyTransport wraps a failure to get any answer: a dropped connection or
// a timeout is worth another try; a certificate that does not verify is not.
func classifyTransport(op string, err error) error {
	e := &reconciler.APIError{Op: op, Message: err.Error(), Kind: reconciler.ErrUnavailable, Transient: true}
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) {
		e.Transient = false
		e.Message += " (set PROXMOX_VE_CA_FILE to the cluster's CA, or PROXMOX_VE_INSECURE=true to skip verification)"
	}
	return e
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
