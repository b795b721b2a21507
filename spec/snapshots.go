package spec

import (
	"maps"
	"regexp"
)

// Snapshots asks for Proxmox snapshots around what phoenix changes on a
// Container: one before phoenix changes anything (so that a failed driver
// install can be rolled back), one once the container converged after a
// change. phoenix names its snapshots phoenix-before-YYYYMMDD-HHMMSS and
// phoenix-after-YYYYMMDD-HHMMSS (or Name for the after one), keeps Keep of
// each kind, and deletes only snapshots it named, never a user's.
//
// Not inherited: Proxmox takes no snapshot of a template ("you can't take a
// snapshot if it's a template"), nor converts a container that has one, so
// only a Container's own document asks for them.
type Snapshots struct {
	// Before takes a snapshot before phoenix changes an existing container.
	Before bool `json:"before,omitempty"`
	// After takes a snapshot once the container converged after a change.
	After bool `json:"after,omitempty"`
	// Keep is how many of its own snapshots of each kind phoenix keeps,
	// 1..50 (default 3).
	Keep *int `json:"keep,omitempty"`
	// Name is the fixed name of the after snapshot (e.g. final-form), made
	// again each time the container converges after a change; unset, each
	// after snapshot has a name of its own with the time.
	Name string `json:"name,omitempty"`
	// Rollback puts the container back to the before snapshot when
	// phoenix's changes to it fail (a driver install that broke it), with
	// the record phoenix had then; it needs before.
	Rollback bool `json:"rollback,omitempty"`
}

// Snapshot retention bounds and default.
const (
	DefaultSnapshotKeep = 3
	MaxSnapshotKeep     = 50
)

// The prefixes of phoenix's own snapshot names; the time follows
// (SnapshotTimeLayout).
const (
	SnapshotBeforePrefix = "phoenix-before-"
	SnapshotAfterPrefix  = "phoenix-after-"
	SnapshotTimeLayout   = "20060102-150405"
)

// snapshotName is Proxmox's pve-snapshot-name: a pve-configid (pve-common
// src/PVE/JSONSchema.pm, a letter, then letters, digits, - and _) of at most
// 40 characters.
var snapshotName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]+$`)

const maxSnapshotName = 40

// KeepCount is the retention with its default.
func (s *Snapshots) KeepCount() int {
	if s == nil || s.Keep == nil {
		return DefaultSnapshotKeep
	}
	return *s.Keep
}

// Wanted reports whether any snapshot is asked for.
func (s *Snapshots) Wanted() bool { return s != nil && (s.Before || s.After) }

// snapshots checks a guest's snapshots block.
func (v *validator) snapshots(g *Guest, bad func(field, format string, args ...any)) {
	s := g.Spec.Snapshots
	if s == nil {
		return
	}
	if g.Kind == KindTemplate {
		bad("spec.snapshots", "Proxmox takes no snapshot of a template (\"you can't take a snapshot if it's a template\") and converts no container that has one: ask for snapshots on the Containers")
		return
	}
	if k := s.Keep; k != nil && (*k < 1 || *k > MaxSnapshotKeep) {
		bad("spec.snapshots.keep", "keep is how many of its own snapshots of each kind phoenix keeps, 1..%d, got %d", MaxSnapshotKeep, *k)
	}
	switch {
	case s.Name == "":
	case !s.After:
		bad("spec.snapshots.name", "name is the after snapshot's name: set after: true too")
	case len(s.Name) > maxSnapshotName || !snapshotName.MatchString(s.Name):
		bad("spec.snapshots.name", "%q is not a Proxmox snapshot name: a letter, then letters, digits, - and _, 2 to %d characters", s.Name, maxSnapshotName)
	case s.Name == "current" || s.Name == "vzdump":
		bad("spec.snapshots.name", "Proxmox reserves the snapshot name %s", s.Name)
	case len(s.Name) >= len(SnapshotBeforePrefix) && s.Name[:len(SnapshotBeforePrefix)] == SnapshotBeforePrefix:
		bad("spec.snapshots.name", "%s names one of phoenix's before snapshots, which it deletes beyond keep: pick another name", s.Name)
	}
	if !s.Before && !s.After {
		bad("spec.snapshots", "set before: true, after: true or both (an empty snapshots block asks for nothing)")
	}
	if s.Rollback && !s.Before {
		bad("spec.snapshots.rollback", "rollback puts the container back to the snapshot taken before phoenix's changes: set before: true too")
	}
}

// fromSnapshot checks from.container and from.snapshot.
func fromSnapshot(g *Guest, bad func(field, format string, args ...any)) {
	from := g.Spec.From
	switch {
	case from.Container != "" && (from.OSTemplate != "" || from.Template != ""):
		bad("spec.from", "set one of ostemplate, template or container, not more")
	case from.Container != "" && from.Snapshot == "":
		bad("spec.from.snapshot", "Proxmox makes a full clone of a running container only from a snapshot: name the snapshot of %s to clone (e.g. its snapshots.name)", from.Container)
	case from.Snapshot != "" && from.Template != "":
		bad("spec.from.snapshot", "a Template has no snapshots (Proxmox takes none of a template, and converts no container that has one): clone from.container with from.snapshot, or drop from.snapshot")
	case from.Snapshot != "" && from.Container == "":
		bad("spec.from.snapshot", "from.snapshot is the snapshot of from.container to clone: set from.container too")
	}
	if n := from.Snapshot; n != "" && (len(n) > maxSnapshotName || !snapshotName.MatchString(n)) {
		bad("spec.from.snapshot", "%q is not a Proxmox snapshot name: a letter, then letters, digits, - and _, 2 to %d characters", n, maxSnapshotName)
	}
	if from.Container != "" && g.Spec.CloneMode == CloneLinked {
		bad("spec.cloneMode", "Proxmox clones a container that is no template in full only (\"Linked clone feature ... is not available\"): leave cloneMode out or set full")
	}
}

var snapshotDescriptions = map[string]string{
	"From.Container": "Container names a Container to clone, from its snapshot: a full clone of the snapshot, made once the Container converged and the snapshot exists. " +
		"Its features come with the clone and are not installed again, as from a Template.",
	"From.Snapshot": "Snapshot is the snapshot of the container to clone. For example the container's snapshots.name, such as final-form; " +
		"Proxmox clones a running container only from a snapshot, and a template has none.",
	"GuestSpec.Snapshots": "Snapshots asks for Proxmox snapshots around what phoenix changes on a Container. One is taken before it changes anything, one once it converged after a change. " +
		"phoenix names them phoenix-before-YYYYMMDD-HHMMSS and phoenix-after-YYYYMMDD-HHMMSS, keeps keep of each kind, and never deletes a snapshot it did not name. " +
		"Skipped, with a plan note, where a volume's storage cannot snapshot a container (directory, NFS, CIFS, plain LVM, bind mounts). Not inherited; not allowed on a Template.",
	"Snapshots.Before":   "Before takes a snapshot before phoenix changes an existing container (config, installs, restarts), so that a failed change can be rolled back.",
	"Snapshots.After":    "After takes a snapshot once the container converged after a change (and once when first asked for).",
	"Snapshots.Keep":     "Keep is how many of its own snapshots of each kind phoenix keeps, 1..50 (default 3).",
	"Snapshots.Rollback": "Rollback puts the container back to the before snapshot when phoenix's changes to it fail (a driver install that broke it), with the record phoenix had then; it needs before.",
	"Snapshots.Name":     "Name is the fixed name of the after snapshot (e.g. final-form), made again each time the container converges after a change; unset, each after snapshot is named with its time.",
}

var snapshotFieldRules = map[string][]rule{
	"From.Container":      {optPattern(hostnameLabel), maxLength(maxHostname)}, // it names a guest
	"From.Snapshot":       {optPattern(snapshotName), maxLength(maxSnapshotName)},
	"GuestSpec.Snapshots": {notNull},
	"Snapshots.Keep":      {between(1, MaxSnapshotKeep)},
	"Snapshots.Name":      {optPattern(snapshotName), maxLength(maxSnapshotName)},
}

func init() {
	maps.Copy(fieldDescriptions, snapshotDescriptions)
	maps.Copy(fieldRules, snapshotFieldRules)
}
