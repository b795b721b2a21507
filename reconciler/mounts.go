package reconciler

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Mount points (mpN). A volume mount point is written STORAGE:SIZE the first
// time, which Proxmox allocates (vm-VMID-disk-N) and writes back as
// STORAGE:VOLUME,mp=PATH,size=NG; afterwards phoenix keeps the volume and
// its size as Proxmox has them, grows the size with a resize, and changes
// only the options. A bind mount is the host directory's path; Proxmox lets
// only root@pam set one (pct set on the node otherwise), and does not create
// the directory: phoenix does, before the mount point is set.

// newDiskValue matches the STORAGE:SIZE form of a volume not allocated yet
// ($NEW_DISK_RE of pve-container src/PVE/LXC.pm).
func newDiskValue(vol string) (storage string, gib int, ok bool) {
	st, size, found := strings.Cut(vol, ":")
	if !found || st == "" {
		return "", 0, false
	}
	f, err := strconv.ParseFloat(size, 64)
	if err != nil || f <= 0 {
		return "", 0, false
	}
	return st, int(f + 0.5), true
}

// bindMountValue reports whether an mpN value is a bind mount (or a device
// mount): an absolute path, which only root@pam may set.
func bindMountValue(v string) bool {
	return strings.HasPrefix(propString(v)[""], "/") || strings.HasPrefix(propString(v)["volume"], "/")
}

// mountVolume is the volume part of an mpN value, written with or without
// its volume= key.
func mountVolume(parts map[string]string) string { return cmp.Or(parts[""], parts["volume"]) }

// mountPathOf is the path inside the container of an mpN value.
func mountPathOf(v string) string { return strings.TrimRight(propString(v)["mp"], "/") }

func flag(parts map[string]string, key string, on bool) {
	if on {
		parts[key] = "1"
	} else {
		delete(parts, key)
	}
}

func optFlag(parts map[string]string, key string, v *bool) {
	if v == nil {
		delete(parts, key)
	} else {
		parts[key] = boolString(*v)
	}
}

// mountValue is the mpN value for a mount: the observed volume and size kept
// when the observed value is a volume on the same storage, STORAGE:SIZE for a
// volume to allocate.
func mountValue(m spec.Mount, observed string) string {
	old := propString(observed)
	parts := map[string]string{}
	switch {
	case m.IsBind():
		parts[""] = m.HostPath
	case sameStorage(old, m.Storage):
		parts[""] = mountVolume(old)
		if s := old["size"]; s != "" {
			parts["size"] = s
		}
	default:
		parts[""] = fmt.Sprintf("%s:%d", m.Storage, m.Size)
	}
	parts["mp"] = m.Path
	flag(parts, "ro", m.ReadOnly)
	flag(parts, "backup", m.Backup)
	flag(parts, "quota", m.Quota)
	flag(parts, "shared", m.Shared)
	optFlag(parts, "acl", m.ACL)
	optFlag(parts, "replicate", m.Replicate)
	if len(m.MountOptions) > 0 {
		parts["mountoptions"] = strings.Join(m.MountOptions, ";")
	}
	return printPropString(parts, "mp")
}

// sameStorage reports whether an observed mpN value is a volume on storage
// (storage IDs ignore case in Proxmox).
func sameStorage(parts map[string]string, storage string) bool {
	vol := mountVolume(parts)
	if vol == "" || strings.HasPrefix(vol, "/") {
		return false
	}
	st, _, _ := strings.Cut(vol, ":")
	return strings.EqualFold(st, storage)
}

// mountSizeGiB is the size of an observed volume mount point: its size=, or
// the SIZE of a STORAGE:SIZE value not allocated yet.
func mountSizeGiB(v string) (int, bool) {
	if n, ok := rootfsGiB(v); ok {
		return n, true
	}
	if _, n, ok := newDiskValue(mountVolume(propString(v))); ok {
		return n, true
	}
	return 0, false
}

// sameMount compares two mpN values as Proxmox reads them: the volume (or
// the host path), the path inside, and every option with its default
// (replicate is on unless 0); size is compared apart.
func sameMount(a, b string) bool {
	norm := func(v string) string {
		p := propString(v)
		opts := strings.Split(p["mountoptions"], ";")
		slices.Sort(opts)
		return strings.Join([]string{mountVolume(p), strings.TrimRight(p["mp"], "/"), cmp.Or(p["ro"], "0"), cmp.Or(p["backup"], "0"),
			cmp.Or(p["quota"], "0"), cmp.Or(p["shared"], "0"), p["acl"], cmp.Or(p["replicate"], "1"), strings.Join(opts, ";")}, "|")
	}
	return norm(a) == norm(b)
}

// mpKeys are mp0..mp255.
var mpKeys = func() (k [spec.MaxMounts]string) {
	for i := range k {
		k[i] = "mp" + strconv.Itoa(i)
	}
	return k
}()

// mountGrowth is a volume mount point that grows.
type mountGrowth struct {
	key string
	gib int
}

// mountDiff lists the changes that bring a config's mount points to the
// spec's: a mount point keeps its mpN key while its path stays (a new one
// takes the lowest free key), a volume grows with a resize, and one the spec
// no longer has is removed (Proxmox keeps its volume as unusedN).
func mountDiff(d desired, v map[string]string) (fields []FieldChange, grows []mountGrowth, errs []Problem) {
	if d.mounts == nil {
		return nil, nil, nil
	}
	byPath := map[string]string{}
	used := map[int]bool{}
	for _, i := range indexedKeys(v, "mp") {
		used[i] = true
		if p := mountPathOf(v[mpKeys[i]]); p != "" {
			if _, dup := byPath[p]; !dup {
				byPath[p] = mpKeys[i]
			}
		}
	}
	kept := map[string]bool{}
	var added []spec.Mount
	for _, m := range d.mounts {
		k, ok := byPath[strings.TrimRight(m.Path, "/")]
		if !ok {
			added = append(added, m)
			continue
		}
		kept[k] = true
		have := v[k]
		if !m.IsBind() {
			parts := propString(have)
			if vol := mountVolume(parts); vol != "" && !strings.HasPrefix(vol, "/") && !sameStorage(parts, m.Storage) {
				st, _, _ := strings.Cut(vol, ":")
				errs = append(errs, problem(ProblemSpec, "%s (%s) is a volume on storage %s and the spec says %s: phoenix does not move volumes (pct move-volume VMID %s %s)",
					k, m.Path, st, m.Storage, k, m.Storage))
				continue
			}
			if size, ok := mountSizeGiB(have); ok && sameStorage(parts, m.Storage) {
				switch {
				case m.Size > size:
					grows = append(grows, mountGrowth{key: k, gib: m.Size})
				case m.Size < size:
					errs = append(errs, problem(ProblemSpec, "the volume of %s (%s) is %d GiB and the spec asks for %d GiB: volumes cannot shrink", k, m.Path, size, m.Size))
					continue
				}
			}
		}
		if want := mountValue(m, have); !sameMount(want, have) {
			fields = append(fields, FieldChange{Key: k, Before: have, After: want})
		}
	}
	for _, i := range indexedKeys(v, "mp") {
		if k := mpKeys[i]; !kept[k] {
			fields = append(fields, FieldChange{Key: k, Before: v[k]})
		}
	}
	next := 0
	for _, m := range added {
		// A freed key is not reused in the same change: Proxmox refuses to
		// set and delete one key at once.
		for next < len(mpKeys) && used[next] {
			next++
		}
		if next == len(mpKeys) {
			errs = append(errs, problem(ProblemSpec, "no free mount point key for %s: mp0..mp%d are taken", m.Path, len(mpKeys)-1))
			break
		}
		used[next] = true
		fields = append(fields, FieldChange{Key: mpKeys[next], After: mountValue(m, "")})
	}
	return fields, grows, errs
}

// mountReason says why a mount point changes, for the plan's update.
func mountResizeReason(key, path string, made bool) string {
	if made {
		return fmt.Sprintf("the spec's volume at %s is larger than the template's (%s)", path, key)
	}
	return fmt.Sprintf("the spec's volume at %s is larger (%s)", path, key)
}

// idRange is one line of a container's id map: ids First..First+Count-1
// inside are Host.. on the node.
type idRange struct{ first, host, count int }

// idMaps reads a container's uid and gid maps: its raw lxc.idmap lines when
// it has any, else Proxmox's default for an unprivileged container (0..65535
// inside are 100000.. on the node), else none (privileged: ids are the
// node's).
func idMaps(unprivileged bool, lxc [][2]string) (uids, gids []idRange) {
	for _, l := range lxc {
		if l[0] != "lxc.idmap" {
			continue
		}
		f := strings.Fields(l[1])
		if len(f) != 4 {
			continue
		}
		first, err1 := strconv.Atoi(f[1])
		host, err2 := strconv.Atoi(f[2])
		count, err3 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		switch f[0] {
		case "u":
			uids = append(uids, idRange{first, host, count})
		case "g":
			gids = append(gids, idRange{first, host, count})
		}
	}
	if uids == nil && gids == nil && unprivileged {
		def := []idRange{{0, 100000, 65536}}
		return def, def
	}
	return uids, gids
}

// mapID is the node's id for an id inside the container; ok is false when
// the map does not map it. Without a map (privileged) ids are the node's.
func mapID(ranges []idRange, id int, privileged bool) (int, bool) {
	if privileged && ranges == nil {
		return id, true
	}
	for _, r := range ranges {
		if id >= r.first && id < r.first+r.count {
			return r.host + id - r.first, true
		}
	}
	return 0, false
}

// HostDirectory is what a node has at a bind mount's host path.
type HostDirectory struct {
	// Exists is a directory there; Other is something else there.
	Exists, Other bool
	// Owner is its UID:GID on the node.
	Owner string
}

// HostDirObservation is what the bind mount directories of a node's guests
// look like there.
type HostDirObservation struct {
	Dirs map[string]HostDirectory
	Err  error
}

// HostDirsScriptName names the host script that reads and makes bind mount
// directories on a node; the simulator models it by this name.
const HostDirsScriptName = "phoenix/host-dirs"

//go:embed hostdirs.sh
var hostDirsBody string

// hostDirsScript is the script for a phase (check or apply) over lines of
// "UID:GID PATH" ("-" for no owner).
func hostDirsScript(phase string, lines []string) Script {
	return Script{Name: HostDirsScriptName, Phase: phase, Body: hostDirsBody, Timeout: 5 * time.Minute,
		Env: map[string]string{"PHOENIX_DIRS": strings.Join(lines, "\n")}}
}

// observeHostDirs reads, on every node where a spec has bind mounts, what
// is at their host paths.
func observeHostDirs(rd reader, nodes NodeOf, res *spec.Resolution, obs *Observed) {
	paths := map[string]map[string]bool{}
	for _, g := range res.Guests {
		for _, m := range g.Settings.Mounts {
			if m.IsBind() {
				if paths[g.Settings.Node] == nil {
					paths[g.Settings.Node] = map[string]bool{}
				}
				paths[g.Settings.Node][m.HostPath] = true
			}
		}
	}
	if len(paths) == 0 {
		return
	}
	obs.HostDirs = map[string]*HostDirObservation{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for node, ps := range paths {
		wg.Go(func() {
			h := readHostDirs(rd, nodes, node, slices.Sorted(maps.Keys(ps)))
			mu.Lock()
			obs.HostDirs[node] = h
			mu.Unlock()
		})
	}
	wg.Wait()
}

// observeHostDirs reads a guest's bind mount directories fresh, for the
// engine's look before each change: the directories may have been made since.
func (e *engine) observeHostDirs(ctx context.Context, g GuestPlan, obs *Observed) {
	r, ok := e.res.Guest(g.Name)
	if !ok {
		return
	}
	var paths []string
	for _, m := range r.Settings.Mounts {
		if m.IsBind() {
			paths = append(paths, m.HostPath)
		}
	}
	if len(paths) > 0 {
		obs.HostDirs = map[string]*HostDirObservation{r.Settings.Node: readHostDirs(reader{ctx: ctx}, e.nodes, r.Settings.Node, paths)}
	}
}

func readHostDirs(rd reader, nodes NodeOf, node string, paths []string) *HostDirObservation {
	h := &HostDirObservation{Dirs: map[string]HostDirectory{}}
	n, err := nodes(node)
	if err != nil {
		h.Err = err
		return h
	}
	var lines []string
	for _, p := range paths {
		lines = append(lines, "- "+p)
	}
	var res Result
	h.Err = rd.retry("read the bind mount directories of "+node, func() (err error) {
		res, err = n.ExecHost(rd.ctx, hostDirsScript("check", lines))
		return err
	})
	if h.Err == nil && res.ExitCode != 0 {
		h.Err = fmt.Errorf("%s check exited %d: %s", HostDirsScriptName, res.ExitCode, lastLine(res))
	}
	if h.Err != nil {
		return h
	}
	for line := range strings.SplitSeq(res.Stdout, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		switch f[0] {
		case "dir":
			h.Dirs[f[2]] = HostDirectory{Exists: true, Owner: f[1]}
		case "other":
			h.Dirs[f[2]] = HostDirectory{Other: true}
		}
	}
	return h
}

// directoryChange plans the host directories a guest's bind mounts need:
// each missing one, and each whose owner is not the spec's owner mapped
// through the container's id map. cfg is the config the guest has (or will
// have, for one still to be made).
func (p *planner) directoryChange(r *spec.Resolved, cfg Config) (*Change, []Problem) {
	var binds []spec.Mount
	for _, m := range r.Settings.Mounts {
		if m.IsBind() {
			binds = append(binds, m)
		}
	}
	if len(binds) == 0 {
		return nil, nil
	}
	node := r.Settings.Node
	h := p.obs.HostDirs[node]
	switch {
	case h == nil:
		return nil, nil // not observed (a partial observation of the apply engine)
	case h.Err != nil:
		return nil, []Problem{problem(ProblemObserve, "the bind mount directories on %s could not be read: %v", node, h.Err)}
	}
	unprivileged := r.Settings.Unprivileged
	if v, ok := cfg.Values["unprivileged"]; ok {
		unprivileged = v == "1"
	}
	uids, gids := idMaps(unprivileged, cfg.LXC)
	var fields []FieldChange
	var errs []Problem
	for _, m := range binds {
		have := h.Dirs[m.HostPath]
		if have.Other {
			errs = append(errs, problem(ProblemNode, "%s on %s is not a directory: the bind mount at %s needs one", m.HostPath, node, m.Path))
			continue
		}
		want := "-"
		if uid, gid, ok := m.OwnerIDs(); ok {
			hu, ok1 := mapID(uids, uid, !unprivileged)
			hg, ok2 := mapID(gids, gid, !unprivileged)
			if !ok1 || !ok2 {
				errs = append(errs, problem(ProblemSpec, "owner %s of %s is not in the container's id map", m.Owner, m.Path))
				continue
			}
			want = fmt.Sprintf("%d:%d", hu, hg)
		}
		switch {
		case !have.Exists:
			fields = append(fields, FieldChange{Key: m.HostPath, After: want})
		case want != "-" && have.Owner != want:
			fields = append(fields, FieldChange{Key: m.HostPath, Before: have.Owner, After: want})
		}
	}
	if len(errs) > 0 || len(fields) == 0 {
		return nil, errs
	}
	reason := "the host directories of its bind mounts, which Proxmox does not make"
	if unprivileged {
		reason += " (owners mapped through the container's id map)"
	}
	return &Change{Action: Directory, Fields: fields, Reason: reason}, nil
}

// makeDirectories makes a directory change's host directories on the node.
func (e *engine) makeDirectories(ctx context.Context, g GuestPlan, fields []FieldChange) error {
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	var lines []string
	for _, f := range fields {
		lines = append(lines, cmp.Or(f.After, "-")+" "+f.Key)
	}
	return e.retry(ctx, g, Event{Action: Directory}, func() error {
		res, err := node.ExecHost(ctx, hostDirsScript("apply", lines))
		if err == nil && res.ExitCode != 0 {
			err = withKind(ErrorRefused, fmt.Errorf("making the bind mount directories on %s failed (exit %d): %s", g.Node, res.ExitCode, lastLine(res)))
		}
		return err
	})
}

// withMountSizes is a config with the mount points' grown sizes.
func withMountSizes(v map[string]string, grows []mountGrowth) {
	for _, gr := range grows {
		v[gr.key] = withSize(v[gr.key], gr.gib)
	}
}
