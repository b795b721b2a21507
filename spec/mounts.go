package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Mount is one container mount point, a Proxmox mpN: a volume of its own on a
// storage (storage and size), or a bind mount of a directory of the node
// (hostPath). A clone's volume mount points are copies (full clone) or
// linked clones of its template's; Proxmox refuses to clone a container with
// a bind mount, so a Template has none.
type Mount struct {
	// Path is where the mount point is inside the container.
	Path string `json:"path"`
	// Storage is the storage a volume mount point's volume is allocated on.
	Storage string `json:"storage,omitempty"`
	// Size is a volume's size in GiB; it grows, never shrinks.
	Size int `json:"size,omitempty"`
	// HostPath is the directory of the node a bind mount shows in the
	// container. phoenix creates it when it is missing.
	HostPath string `json:"hostPath,omitempty"`
	// Owner is "UID:GID" inside the container: the owner phoenix gives the
	// host directory of a bind mount, mapped through the container's id map.
	Owner string `json:"owner,omitempty"`
	// ReadOnly mounts it read-only (ro).
	ReadOnly bool `json:"readOnly,omitempty"`
	// Backup includes a volume in the container's backups.
	Backup bool `json:"backup,omitempty"`
	// ACL enables (true) or disables (false) POSIX ACLs; unset, the file
	// system's default.
	ACL *bool `json:"acl,omitempty"`
	// Quota enables user quotas inside the container on a volume.
	Quota bool `json:"quota,omitempty"`
	// Replicate includes a volume in storage replication (default true).
	Replicate *bool `json:"replicate,omitempty"`
	// Shared marks a bind mount's directory as present on every node, so
	// that the container may migrate.
	Shared bool `json:"shared,omitempty"`
	// MountOptions are extra mount options: discard, lazytime, noatime,
	// nodev, noexec, nosuid.
	MountOptions []string `json:"mountOptions,omitempty"`
}

// IsBind reports whether the mount point is a bind mount of a host directory.
func (m Mount) IsBind() bool { return m.HostPath != "" }

// OwnerIDs reads Owner; ok is false when it is unset or malformed.
func (m Mount) OwnerIDs() (uid, gid int, ok bool) {
	u, g, found := strings.Cut(m.Owner, ":")
	if !found {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	return uid, gid, err1 == nil && err2 == nil
}

// MountOptionNames are the mount options Proxmox VE takes in mountoptions
// (the pattern of the rootfs and mp[n] formats in 8.3 and 9.1).
var MountOptionNames = []string{"discard", "lazytime", "noatime", "nodev", "noexec", "nosuid"}

// MaxMounts is how many mount points a container has keys for: mp0..mp255.
const MaxMounts = 256

var (
	// A path inside the container or on the node: absolute, and free of
	// what a property string cannot hold (commas) or Proxmox's
	// pve-lxc-mp-string refuses (. and .. components).
	mountPath = regexp.MustCompile(`^/[^,\s]*$`)
	// owner is UID:GID, each 0..65535 (the ids of a default id map).
	mountOwner = regexp.MustCompile(`^[0-9]{1,5}:[0-9]{1,5}$`)
)

// checkMountPath reports what is wrong with an absolute path, or "".
func checkMountPath(p string) string {
	if !mountPath.MatchString(p) {
		return fmt.Sprintf("%q is not an absolute path without commas or spaces", p)
	}
	for part := range strings.SplitSeq(p, "/") {
		if part == "." || part == ".." {
			return fmt.Sprintf("%q has a . or .. component, which Proxmox refuses", p)
		}
	}
	return ""
}

// mounts checks a guest's mount points on their own.
func (v *validator) mounts(g *Guest, bad func(field, format string, args ...any)) {
	ms := g.Spec.Mounts
	if len(ms) > MaxMounts {
		bad("spec.mounts", "at most %d mount points (mp0..mp%d), got %d", MaxMounts, MaxMounts-1, len(ms))
	}
	paths := map[string]int{}
	for i, m := range ms {
		field := fmt.Sprintf("spec.mounts[%d]", i)
		switch {
		case m.Path == "":
			bad(field+".path", "a mount point needs a path inside the container")
		case m.Path == "/":
			bad(field+".path", "/ is the root disk (resources.disk), not a mount point")
		case checkMountPath(m.Path) != "":
			bad(field+".path", "%s", checkMountPath(m.Path))
		default:
			clean := strings.TrimRight(m.Path, "/")
			if j, dup := paths[clean]; dup {
				bad(field+".path", "%s is also mounted by spec.mounts[%d]", m.Path, j)
			}
			paths[clean] = i
		}
		switch {
		case m.Storage != "" && m.HostPath != "":
			bad(field, "set either storage (a volume) or hostPath (a bind mount), not both")
		case m.Storage == "" && m.HostPath == "":
			bad(field, "set storage and size (a volume) or hostPath (a bind mount of a node's directory)")
		case m.Storage != "":
			v.volumeMount(m, field, bad)
		default:
			v.bindMount(g, m, field, bad)
		}
		seen := map[string]bool{}
		for j, o := range m.MountOptions {
			f := fmt.Sprintf("%s.mountOptions[%d]", field, j)
			switch {
			case !slices.Contains(MountOptionNames, o):
				bad(f, "unknown mount option %q: Proxmox takes %s", o, strings.Join(MountOptionNames, ", "))
			case seen[o]:
				bad(f, "mount option %s is listed twice", o)
			}
			seen[o] = true
		}
	}
}

func (v *validator) volumeMount(m Mount, field string, bad func(field, format string, args ...any)) {
	if !storageID.MatchString(m.Storage) {
		bad(field+".storage", "%q is not a valid storage ID", m.Storage)
	}
	if m.Size < 1 {
		bad(field+".size", "a volume needs a size in GiB, at least 1 (got %d)", m.Size)
	}
	if m.Owner != "" {
		bad(field+".owner", "owner is for the host directory of a bind mount (hostPath); a new volume belongs to the container's root")
	}
	if m.Shared {
		// Proxmox: "Mark this non-volume mount point as available on
		// multiple nodes"; a volume's storage says whether it is shared.
		bad(field+".shared", "shared is for bind mounts: a volume is shared when its storage is")
	}
}

func (v *validator) bindMount(g *Guest, m Mount, field string, bad func(field, format string, args ...any)) {
	switch {
	case checkMountPath(m.HostPath) != "":
		bad(field+".hostPath", "%s", checkMountPath(m.HostPath))
	case m.HostPath == "/" || m.HostPath == "/dev" || strings.HasPrefix(m.HostPath, "/dev/"):
		// Proxmox takes /dev/... as a device mount point, which phoenix
		// does not manage.
		bad(field+".hostPath", "%s is not a directory phoenix bind-mounts (device mount points are not supported)", m.HostPath)
	}
	if m.Size != 0 {
		bad(field+".size", "a bind mount has no size: the host directory's file system holds it")
	}
	if m.Owner != "" && !mountOwner.MatchString(m.Owner) {
		bad(field+".owner", "%q is not UID:GID, such as 33:33 (ids inside the container)", m.Owner)
	} else if uid, gid, ok := m.OwnerIDs(); ok && (uid > 65535 || gid > 65535) {
		bad(field+".owner", "%q: ids inside the container are 0..65535", m.Owner)
	}
	// Proxmox uses backup and replicate for volumes only, and warns that a
	// bind mount cannot have quota control.
	if m.Backup {
		bad(field+".backup", "backup is for volumes: Proxmox never backs up a bind mount's directory")
	}
	if m.Quota {
		bad(field+".quota", "quota is for volumes: Proxmox cannot enable quota control for bind mounts")
	}
	if m.Replicate != nil {
		bad(field+".replicate", "replicate is for volumes: storage replication never copies a bind mount's directory")
	}
	if g.Kind == KindTemplate {
		// clone_vm (pve-container src/PVE/API2/LXC.pm) dies with "unable to
		// clone mountpoint 'mpN' (type bind)".
		bad(field+".hostPath", "a Template cannot have a bind mount: Proxmox refuses to clone a container with one; give it to the Containers cloned from it")
	}
}

// mountsResolved checks a clone's mount points against its template's: a
// volume the clone keeps cannot shrink.
func mountsResolved(s, parent Settings, bad func(field, format string, args ...any)) {
	for i, m := range s.Mounts {
		for _, pm := range parent.Mounts {
			if pm.Path == m.Path && pm.Storage != "" && m.Storage != "" && m.Size < pm.Size {
				bad(fmt.Sprintf("spec.mounts[%d].size", i), "a clone starts with its template's %d GiB volume at %s and volumes cannot shrink (got %d)", pm.Size, m.Path, m.Size)
			}
		}
	}
}

// cloneMounts copies a mount list, nil staying nil.
func cloneMounts(ms []Mount) []Mount {
	if ms == nil {
		return nil
	}
	out := make([]Mount, len(ms))
	for i, m := range ms {
		m.MountOptions = slices.Clone(m.MountOptions)
		if m.ACL != nil {
			acl := *m.ACL
			m.ACL = &acl
		}
		if m.Replicate != nil {
			r := *m.Replicate
			m.Replicate = &r
		}
		out[i] = m
	}
	return out
}
