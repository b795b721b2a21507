package sim

import (
	"fmt"
	"net/http"
)

// apiError is an answer Proxmox gives instead of data: a status, the reason
// phrase (where pveproxy puts the handler's message), and for parameter errors
// the per-parameter map.
type apiError struct {
	Status int
	Reason string
	Errors map[string]string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Reason) }

// die is Perl's die in an API handler: a 500 whose reason is the message.
func die(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Reason: fmt.Sprintf(format, args...)}
}

// permission is PVE's raise_perm_exc.
func permission(what string) *apiError {
	reason := "Permission check failed"
	if what != "" {
		reason += " (" + what + ")"
	}
	return &apiError{Status: http.StatusForbidden, Reason: reason}
}

// paramError is PVE's raise_param_exc: 400 with the per-parameter map.
func paramError(errs map[string]string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Reason: "Parameter verification failed.", Errors: errs}
}
