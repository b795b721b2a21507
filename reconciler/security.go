package reconciler

import (
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

// Security settings (spec/security.go): features flags go through the API,
// or pct set where Proxmox reserves them for root@pam; the AppArmor profile,
// id maps and other raw lxc.* keys exist only in /etc/pve/lxc/VMID.conf,
// which phoenix edits on the node (Node.SetRawLXC) for the keys it owns:
// exactly those the resolved spec names. Raw lines take effect when the
// container starts, and no pending section records them: a running
// container is stopped, written and started again in one change (Restart
// with the raw fields), so that no crash can leave new lines unapplied in a
// container that reads as converged.

// applySecurity merges a spec's features flags into d's and sets the raw
// keys it owns.
func applySecurity(d *desired, sec *spec.Security) {
	if sec == nil {
		return
	}
	maps.Copy(d.features, sec.Features.Flags())
	d.raw = sec.RawLines()
}

// sameFlag compares a features flag as Proxmox reads it: a boolean that is
// 0 is the same as one that is absent, and mount's list is a set.
func sameFlag(name, want, have string) bool {
	if name == spec.FlagMount {
		split := func(v string) []string {
			out := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ' ' })
			slices.Sort(out)
			return slices.Compact(out)
		}
		return slices.Equal(split(want), split(have))
	}
	if have == "0" {
		have = ""
	}
	return want == have
}

// featuresChange is the features value that has every flag phoenix wants
// and keeps the others; ok is false when the observed one has them already.
func featuresChange(want map[string]string, have string) (string, bool) {
	parts := propString(have)
	changed := false
	for k, w := range want {
		if sameFlag(k, w, parts[k]) {
			continue
		}
		changed = true
		if w == "" {
			delete(parts, k)
		} else {
			parts[k] = w
		}
	}
	return printPropString(parts), changed
}

// createFeatures is the features value a create request may carry: set
// flags only, and only where every session may set them (nesting alone, on
// an unprivileged container); the rest follows in an update.
func createFeatures(d desired) string {
	set := map[string]string{}
	for k, v := range d.features {
		if v != "" {
			set[k] = v
		}
	}
	flags := printPropString(set)
	if len(set) == 0 || !d.unprivileged || featuresBeyondNesting("", flags) {
		return ""
	}
	return flags
}

// rootOnlyFeatures reports whether a features change needs root@pam: any
// flag but nesting, and on a privileged container any flag at all
// (check_ct_modify_config_perm, pve-container src/PVE/LXC.pm).
func rootOnlyFeatures(before, after string, unprivileged bool) bool {
	return !unprivileged || featuresBeyondNesting(before, after)
}

// rawValues are a config's values for one raw key, in file order.
func rawValues(lxc [][2]string, key string) []string {
	out := []string{}
	for _, l := range lxc {
		if l[0] == key {
			out = append(out, l[1])
		}
	}
	return out
}

// rawDiff lists, for each key phoenix owns whose lines differ, the change:
// Before and After hold the key's values one per line ("" for none).
func rawDiff(want map[string][]string, lxc [][2]string) []FieldChange {
	var out []FieldChange
	for _, k := range slices.Sorted(maps.Keys(want)) {
		have := rawValues(lxc, k)
		if !slices.Equal(have, want[k]) {
			out = append(out, FieldChange{Key: k, Before: strings.Join(have, "\n"), After: strings.Join(want[k], "\n")})
		}
	}
	return out
}

// withoutOwned drops the raw GPU lines of keys phoenix owns: writing those
// keys replaces their lines anyway.
func withoutOwned(raw [][2]string, owned map[string][]string) [][2]string {
	return slices.DeleteFunc(raw, func(l [2]string) bool { _, ok := owned[l[0]]; return ok })
}

// ownedRawFields splits the changes of owned raw keys from the others.
func ownedRawFields(fields []FieldChange, owned map[string][]string) (rest, raw []FieldChange) {
	for _, f := range fields {
		if _, ok := owned[f.Key]; ok && isRawKey(f.Key) {
			raw = append(raw, f)
		} else {
			rest = append(rest, f)
		}
	}
	return rest, raw
}

// rawAtRestart takes the owned raw key changes of a container that runs and
// keeps running out of its update: they are written while it is stopped,
// as part of its restart.
func rawAtRestart(fields []FieldChange, d desired, og *ObservedGuest, r *spec.Resolved) (update, restart []FieldChange) {
	if og.Status != "running" || og.Template || r.IsTemplate() || r.Stopped {
		return fields, nil
	}
	return ownedRawFields(fields, d.raw)
}

// rawRestartReason says why a running container is restarted for its raw
// lines (and whatever else waits).
func rawRestartReason(raw []FieldChange, keys []string) string {
	var names []string
	for _, f := range raw {
		names = append(names, f.Key)
	}
	reason := fmt.Sprintf("%s in /etc/pve/lxc/VMID.conf take effect when the container starts: phoenix stops it, writes them and starts it",
		strings.Join(names, ", "))
	var others []string
	for _, k := range keys {
		if !isRawKey(k) {
			others = append(others, k)
		}
	}
	if len(others) > 0 {
		reason += "; " + restartReason(others)
	}
	return reason
}

// lxcAfter is a config's raw lines once raw fields are written: an owned
// key's lines go to the end, as the script writes them; a removal (a GPU
// line) drops that line.
func lxcAfter(lxc [][2]string, fields []FieldChange, owned map[string][]string) [][2]string {
	out := slices.Clone(lxc)
	for _, f := range fields {
		if !isRawKey(f.Key) {
			continue
		}
		if _, ok := owned[f.Key]; !ok {
			out = slices.DeleteFunc(out, func(l [2]string) bool { return l[0] == f.Key && l[1] == f.Before })
			continue
		}
		out = slices.DeleteFunc(out, func(l [2]string) bool { return l[0] == f.Key })
		if f.After != "" {
			for v := range strings.SplitSeq(f.After, "\n") {
				out = append(out, [2]string{f.Key, v})
			}
		}
	}
	return out
}

// setRaw writes the owned raw keys of fields on the node.
func (e *engine) setRaw(ctx context.Context, g GuestPlan, action Action, fields []FieldChange) error {
	keys := map[string][]string{}
	for _, f := range fields {
		keys[f.Key] = []string{}
		if f.After != "" {
			keys[f.Key] = strings.Split(f.After, "\n")
		}
	}
	if len(keys) == 0 {
		return nil
	}
	node, err := e.nodes(g.Node)
	if err != nil {
		return err
	}
	// No API sets raw lines: the file is edited on the node.
	return e.retry(ctx, g, Event{Action: action, Step: "set raw lxc lines"}, func() error { return node.SetRawLXC(ctx, g.VMID, keys) })
}

// restartForRaw restarts a running container whose raw lines change: stop,
// write, start. Proxmox applies what is pending at the stop too.
func (e *engine) restartForRaw(ctx context.Context, j *job, g GuestPlan, r *spec.Resolved, og *ObservedGuest, fields []FieldChange) error {
	if og != nil && og.Status == "running" {
		if err := e.retry(ctx, g, Event{Action: Restart, Step: "shutdown"}, func() error { return e.cluster.Shutdown(ctx, g.Node, g.VMID) }); err != nil {
			return err
		}
	}
	if err := e.setRaw(ctx, g, Restart, fields); err != nil {
		return err
	}
	if err := e.retry(ctx, g, Event{Action: Restart, Step: "start"}, func() error { return e.cluster.Start(ctx, g.Node, g.VMID) }); err != nil {
		return err
	}
	j.ran = true
	return e.waitInitialized(ctx, g, r)
}

// SubIDsScriptName names the host script that reads which host ids root may
// map (/etc/subuid, /etc/subgid); the simulator models it by this name.
const SubIDsScriptName = "phoenix/subids"

//go:embed subids.sh
var subIDsBody string

// SubIDRange is one range of host ids root may use: first, count.
type SubIDRange struct{ First, Count int }

// SubIDObservation is what root may map on a node, by type (u, g).
type SubIDObservation struct {
	Ranges map[string][]SubIDRange
	Err    error
}

// observeSubIDs reads /etc/subuid and /etc/subgid on every node where a
// spec has custom id maps.
func observeSubIDs(rd reader, nodes NodeOf, res *spec.Resolution, obs *Observed) {
	want := map[string]bool{}
	for _, g := range res.Guests {
		if sec := g.Settings.Security; sec != nil && len(sec.IDMap) > 0 {
			want[g.Settings.Node] = true
		}
	}
	if len(want) == 0 {
		return
	}
	obs.SubIDs = map[string]*SubIDObservation{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for node := range want {
		wg.Go(func() {
			o := readSubIDs(rd, nodes, node)
			mu.Lock()
			obs.SubIDs[node] = o
			mu.Unlock()
		})
	}
	wg.Wait()
}

func readSubIDs(rd reader, nodes NodeOf, node string) *SubIDObservation {
	o := &SubIDObservation{Ranges: map[string][]SubIDRange{}}
	n, err := nodes(node)
	if err != nil {
		o.Err = err
		return o
	}
	var res Result
	o.Err = rd.retry("read /etc/subuid and /etc/subgid of "+node, func() (err error) {
		res, err = n.ExecHost(rd.ctx, Script{Name: SubIDsScriptName, Body: subIDsBody, Timeout: time.Minute})
		return err
	})
	if o.Err == nil && res.ExitCode != 0 {
		o.Err = fmt.Errorf("%s exited %d: %s", SubIDsScriptName, res.ExitCode, lastLine(res))
	}
	if o.Err != nil {
		return o
	}
	o.Ranges = parseSubIDs(res.Stdout)
	return o
}

// parseSubIDs reads the script's "u FIRST COUNT" and "g FIRST COUNT" lines.
func parseSubIDs(out string) map[string][]SubIDRange {
	ranges := map[string][]SubIDRange{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || (f[0] != "u" && f[0] != "g") {
			continue
		}
		first, err1 := strconv.Atoi(f[1])
		count, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && count > 0 {
			ranges[f[0]] = append(ranges[f[0]], SubIDRange{first, count})
		}
	}
	return ranges
}

// subIDProblems names each lxc.idmap line whose host ids root may not map
// on the node, with the line to add: LXC's newuidmap refuses such a map and
// the container does not start.
func (p *planner) subIDProblems(r *spec.Resolved, d desired) []Problem {
	lines := d.raw["lxc.idmap"]
	if len(lines) == 0 {
		return nil
	}
	node := r.Settings.Node
	o := p.obs.SubIDs[node]
	switch {
	case o == nil:
		return nil // not observed (a partial observation of the apply engine)
	case o.Err != nil:
		return []Problem{problem(ProblemObserve, "/etc/subuid and /etc/subgid on %s could not be read: %v", node, o.Err)}
	}
	var out []Problem
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue
		}
		host, _ := strconv.Atoi(f[2])
		count, _ := strconv.Atoi(f[3])
		if allowed(o.Ranges[f[0]], host, count) {
			continue
		}
		file := map[string]string{"u": "/etc/subuid", "g": "/etc/subgid"}[f[0]]
		out = append(out, problem(ProblemNode, "%s on %s does not let root map host ids %d..%d (lxc.idmap: %s), so the container would not start: add the line root:%d:%d to %s on %s",
			file, node, host, host+count-1, l, host, count, file, node))
	}
	return out
}

// allowed reports whether ranges cover host..host+count-1.
func allowed(ranges []SubIDRange, host, count int) bool {
	next, end := host, host+count
	for next < end {
		i := slices.IndexFunc(ranges, func(r SubIDRange) bool { return next >= r.First && next < r.First+r.Count })
		if i < 0 {
			return false
		}
		next = ranges[i].First + ranges[i].Count
	}
	return true
}

// ownedRaw are the raw keys phoenix owns on a guest of the plan.
func (e *engine) ownedRaw(g GuestPlan) map[string][]string {
	r, ok := e.res.Guest(g.Name)
	if !ok {
		return nil
	}
	d, _ := desiredConfig(r, e.hosts[r.Settings.Node])
	return d.raw
}
