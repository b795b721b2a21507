package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// phoenix keeps no state of its own: what it has converged on a guest is
// written into the guest's description, between these lines, as JSON. User
// text around the block is kept as it is. A clone copies its source's
// description, so a clone starts with its template's records.
const (
	stateBegin = "<!-- phoenix:state"
	stateEnd   = "-->"
	// ManagedTag marks a guest phoenix owns. A guest without it is never touched.
	ManagedTag = "phoenix-managed"
)

// managedTags reports whether tags, as a listing gives them or as a config
// stores them ("a;b"), carry ManagedTag. The one test of ownership.
func managedTags(tags ...string) bool {
	return slices.Contains(spec.NormalizeTags(tags), ManagedTag)
}

// State is the record phoenix keeps in a guest's description.
type State struct {
	// V is the block's format version (StateVersion when phoenix writes it).
	V int `json:"v"`
	// Name and Kind are the spec this guest was made for.
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Dep is the deployment that made (or adopted) the guest, and VMID the
	// VMID it was made at. A copy of the guest at another VMID (a hand-made
	// clone, a restored backup) carries a record that is not its own, and
	// another deployment's guest one that names that deployment: phoenix
	// changes and deletes neither. Records older than version 3 have
	// neither field.
	Dep  string `json:"dep,omitempty"`
	VMID int    `json:"vmid,omitempty"`
	// Parent is the Template it was cloned from, empty for a root.
	Parent string `json:"parent,omitempty"`
	// Generation counts a template's renewals: a renewed template is made
	// again at another VMID while linked clones keep the old one's disk.
	// Zero is the first.
	Generation int `json:"generation,omitempty"`
	// IdentityDue marks a container phoenix cloned: a clone keeps its
	// source's SSH host keys (Proxmox's clone only clears the machine-id),
	// so it gets its own at its first start. Identity is when it did.
	IdentityDue bool       `json:"identityDue,omitempty"`
	Identity    *time.Time `json:"identity,omitempty"`
	// Features are the installations that completed, by feature name.
	Features map[string]FeatureRecord `json:"features,omitempty"`
	// Files are the files phoenix wrote, by path: the first 16 hex digits
	// of their content's SHA-256.
	Files map[string]string `json:"files,omitempty"`
	// Restarts are the services a written file asks to restart or reload
	// ("restart NAME", "reload NAME"), until they were.
	Restarts []string `json:"restarts,omitempty"`
	// Error is the last failure converging this guest, cleared once it
	// converges: phoenix status shows it without any state of its own.
	Error *StateError `json:"error,omitempty"`
	// Rev is the revision of the specs (a git commit) whose apply last
	// changed this guest; empty when they came from no revision.
	Rev string `json:"rev,omitempty"`
	// Took is how long phoenix measured each step on this guest, in whole
	// seconds by step ("create", "install vllm"): the schedule's expected
	// durations on this cluster (took.go).
	Took map[string]int `json:"took,omitempty"`
}

// StateError is a failure recorded on the guest.
type StateError struct {
	At      time.Time `json:"at"`
	Step    string    `json:"step"`
	Message string    `json:"message"`
	// Kind classifies the failure (an ErrorKind).
	Kind ErrorKind `json:"kind,omitempty"`
}

// FeatureRecord says a feature was installed, where, and with what.
type FeatureRecord struct {
	// VMID is the guest it was installed on: a record whose VMID is another
	// guest's came with a clone.
	VMID int `json:"vmid"`
	// Version is the feature's version: the host driver's for nvidia-driver,
	// a Feature document's version for user features.
	Version string            `json:"version,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
	At      time.Time         `json:"at"`
	// Requires holds, for each feature this one requires, the At of that
	// feature's record when this one was installed. A requirement installed
	// again since (its At differs) makes this record stale: what was built
	// on the old one is installed again, however the reinstall came about
	// and whoever made it. Records without it (older phoenix) are trusted.
	Requires map[string]time.Time `json:"requires,omitempty"`
}

// ParseDescription splits a description into the user's text and phoenix's
// state. A description without a block has no state and no error; a damaged
// block (no end line, bad JSON, an unknown version) is reported and not
// trusted, and its text counts as the user's, so that nothing is lost. The
// last block counts: a new one is written after a damaged one, which stays
// in the text for the user to look at.
func ParseDescription(desc string) (user string, state *State, err error) {
	start := strings.LastIndex(desc, stateBegin)
	if start < 0 {
		return desc, nil, nil
	}
	rest := desc[start+len(stateBegin):]
	end := strings.Index(rest, stateEnd)
	if end < 0 {
		return desc, nil, errors.New("phoenix state block has no end line (-->)")
	}
	user = strings.TrimRight(desc[:start], "\n") + trimLeadingNewline(rest[end+len(stateEnd):])
	// The version first: a newer phoenix's block has fields this one does
	// not know, which the strict decoding below would call damage.
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal([]byte(rest[:end]), &v); err == nil && v.V > StateVersion {
		return desc, nil, &NewerStateError{V: v.V}
	}
	var s State
	dec := json.NewDecoder(strings.NewReader(rest[:end]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return desc, nil, fmt.Errorf("phoenix state block is damaged: %v", err)
	}
	if s.V < 1 {
		return desc, nil, fmt.Errorf("phoenix state block is damaged: version %d", s.V)
	}
	return user, &s, nil
}

// NewerStateError is a record written by a newer phoenix: this one cannot
// tell what the fields it does not know mean, and writing the record back
// would lose them, so it leaves the guest alone.
type NewerStateError struct{ V int }

func (e *NewerStateError) Error() string {
	return fmt.Sprintf("phoenix state block has version %d; this phoenix reads versions 1 to %d (a newer phoenix wrote it: upgrade this one)", e.V, StateVersion)
}

func trimLeadingNewline(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return "\n" + strings.TrimLeft(s, "\n")
}

// StateVersion is the version of the state block phoenix writes. Version 2
// added the records' requirements, the template generation and the kind of
// the last error; version 3 the owner (the deployment and the VMID the guest
// was made at); version 4 the revision of the specs that last changed the
// guest and the durations its steps took. Older blocks read as ones without
// them.
const StateVersion = 4

// RenderDescription puts the state block, at the current version, after the
// user's text. Where the two would be longer than Proxmox VE keeps
// (DescriptionLimit), the last error's message is cut to fit, its oldest
// output first; the user's text and the records are never cut, so the
// result may still be too long: BoundedDescription says so.
func RenderDescription(user string, s *State) string {
	user = strings.TrimRight(user, "\n")
	if user != "" {
		user += "\n"
	}
	desc := user + renderBlock(s)
	if s.Error == nil || descriptionLength(desc) <= DescriptionLimit {
		return desc
	}
	return user + fitError(user, s)
}
