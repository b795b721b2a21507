package importer

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// build turns the containers read into specs: lineage, kinds, names,
// features, what a clone inherits, and the documents.
func (im *importer) build() *Result {
	r := im.r
	im.order()
	im.names()
	storage := im.defaultStorage()
	bridge := im.bridge
	if bridge == "" {
		bridge = mostCommon(im.list, func(g *guest) string {
			if len(g.g.Spec.Network) > 0 {
				return g.g.Spec.Network[0].Bridge
			}
			return ""
		})
		if bridge == "" {
			bridge = "vmbr0"
		}
	}
	features := &featureSet{im: im, docs: map[string]*spec.Feature{}}
	for _, g := range im.list {
		s := &g.g.Spec
		parent := im.byID[g.parentID]
		im.cloneable(g)
		if parent != nil {
			im.clonesKeep(g, parent)
			s.From.Template = parent.name
			if g.template != "" {
				r.note(g.path+".template", "ignored: the container is cloned from CT %d", g.parentID)
			}
			if g.pool != "" && parent.pool != "" && g.pool != parent.pool {
				r.note(g.path+".storage_pool", "not carried: a linked clone's disk is on its template's storage (%s)", parent.pool)
			}
		} else {
			s.From.OSTemplate = im.osTemplate(g)
			if g.pool != "" && g.pool != storage {
				s.Storage = g.pool
			}
		}
		for i := range s.Network {
			if s.Network[i].Bridge == "" {
				s.Network[i].Bridge = bridge
			}
		}
		im.guestFeatures(g, parent, features)
		im.carryVLLM(g)
		im.carryHealth(g)
		im.carrySnapshots(g)
		im.guestSecurity(g, parent)
		im.startup(g)
		im.dependsOn(g)
	}
	cluster := im.cluster(storage, bridge)
	res := &Result{Guests: len(im.list), Features: len(features.docs)}
	header := im.header()
	var templates, containers []any
	for _, g := range im.list {
		if g.g.Kind == spec.KindTemplate {
			templates = append(templates, g.g)
		} else {
			containers = append(containers, g.g)
		}
	}
	res.Files = append(res.Files, File{Name: "cluster.yaml", Data: emit(header, cluster)})
	if len(templates) > 0 {
		res.Files = append(res.Files, File{Name: "templates.yaml", Data: emit(header, templates...)})
	}
	if len(containers) > 0 {
		res.Files = append(res.Files, File{Name: "containers.yaml", Data: emit(header, containers...)})
	}
	for _, name := range slices.Sorted(maps.Keys(features.docs)) {
		res.Files = append(res.Files, File{Name: "features/" + name + ".yaml", Data: emit(header, features.docs[name])})
	}
	if im.opt.World {
		res.Files = append(res.Files, File{Name: "world.yaml", Data: im.world(storage, bridge)})
	}
	slices.SortStableFunc(r.findings, func(a, b Finding) int {
		return cmp.Or(strings.Compare(a.File, b.File), strings.Compare(a.Path, b.Path))
	})
	res.Findings = r.findings
	res.Files = append(res.Files, File{Name: "IMPORT-REPORT.md", Data: im.report(res)})
	return res
}

// cloneable settles a copy source with a bind mount, which Proxmox refuses
// to clone: without clones in the config it is a Container; with clones,
// its bind mounts are not carried.
func (im *importer) cloneable(g *guest) {
	s := &g.g.Spec
	if g.g.Kind != spec.KindTemplate || !slices.ContainsFunc(s.Mounts, spec.Mount.IsBind) {
		return
	}
	if !g.hasClones {
		g.g.Kind = spec.KindContainer
		im.r.note(g.path, "a Container here, not a Template: it has a bind mount, which Proxmox refuses to clone, and nothing in the config is cloned from it")
		return
	}
	s.Mounts = slices.DeleteFunc(s.Mounts, spec.Mount.IsBind)
	if len(s.Mounts) == 0 {
		s.Mounts = nil
	}
	im.r.note(g.path+".mount_points", "not carried: a bind mount on a container others are cloned from, which Proxmox refuses to clone; give it to the clones")
}

// clonesKeep drops what a clone declares that Proxmox's clone cannot give
// it: a disk smaller than its template's, or another privilege mode. The
// clone keeps its template's, and the report says so.
func (im *importer) clonesKeep(g, parent *guest) {
	s := &g.g.Spec
	disk, unpriv := spec.DefaultDiskGiB, spec.DefaultUnprivileged
	diskSet, unprivSet := false, false
	for p := parent; p != nil; p = im.byID[p.parentID] {
		if d := p.g.Spec.Resources.Disk; d != nil && !diskSet {
			disk, diskSet = *d, true
		}
		if u := p.g.Spec.Unprivileged; u != nil && !unprivSet {
			unpriv, unprivSet = *u, true
		}
	}
	if d := s.Resources.Disk; d != nil && *d < disk {
		im.r.note(g.path+".storage_size_gb", "not carried: %d GiB is smaller than the %d GiB disk the clone starts with, and disks cannot shrink; %d GiB kept", *d, disk, disk)
		s.Resources.Disk = nil
	}
	if u := s.Unprivileged; u != nil && *u != unpriv {
		im.r.note(g.path+".unprivileged", "not carried: a clone keeps its template's privilege mode (unprivileged: %t)", unpriv)
		s.Unprivileged = nil
	}
}

// order puts parents before their clones, reports clones of containers not
// in the config and breaks clone cycles.
func (im *importer) order() {
	r := im.r
	ids := slices.Sorted(maps.Keys(im.byID))
	state := map[int]int{} // 1 visiting, 2 done
	var visit func(id int) bool
	visit = func(id int) bool {
		g := im.byID[id]
		switch state[id] {
		case 1:
			r.fail(g.path+".clone_from_ctid", "a clone cycle runs through CT %d", id)
			return false
		case 2:
			return true
		}
		state[id] = 1
		ok := true
		if g.parentID != 0 {
			if _, in := im.byID[g.parentID]; !in {
				if g.template == "" {
					r.fail(g.path+".clone_from_ctid", "CT %d is not in the config, and no OS template is given to create the container from", g.parentID)
					ok = false
				} else {
					r.note(g.path+".clone_from_ctid", "CT %d is not in the config: the container is created from its OS template instead", g.parentID)
					g.parentID = 0
				}
			} else {
				ok = visit(g.parentID)
				im.byID[g.parentID].isTmpl = true
				im.byID[g.parentID].hasClones = true
			}
		} else if g.template == "" {
			r.fail(g.path, "neither clone_from_ctid nor template: nothing to make the container from")
			ok = false
		}
		state[id] = 2
		if ok {
			im.list = append(im.list, g)
		}
		return ok
	}
	for _, id := range ids {
		visit(id)
	}
	depth := map[*guest]int{}
	for _, g := range im.list {
		if g.isTmpl {
			g.g.Kind = spec.KindTemplate
		}
		if p := im.byID[g.parentID]; p != nil {
			depth[g] = depth[p] + 1
		}
	}
	// Parents first, then by CTID: the order the files are read in.
	slices.SortStableFunc(im.list, func(a, b *guest) int {
		return cmp.Or(cmp.Compare(depth[a], depth[b]), cmp.Compare(a.ctid, b.ctid))
	})
}

// names gives every guest an RFC 1123 label, unique regardless of case; a
// name that is not one goes to hostname.
func (im *importer) names() {
	taken := map[string]bool{}
	for _, g := range im.list {
		taken[strings.ToLower(g.name)] = rfc1123.MatchString(g.name)
	}
	used := map[string]bool{}
	for _, g := range im.list {
		orig := g.name
		name := orig
		if !rfc1123.MatchString(name) {
			name = label(orig)
		}
		if name == "" || used[strings.ToLower(name)] || (name != orig && taken[strings.ToLower(name)]) {
			base := name
			if base == "" {
				base = "ct"
			}
			name = fmt.Sprintf("%s-%d", base, g.ctid)
			if len(name) > 63 {
				name = fmt.Sprintf("ct-%d", g.ctid)
			}
			im.r.note(g.path+".name", "the name %q is taken or not a label: the guest is named %s", orig, name)
		}
		used[strings.ToLower(name)] = true
		g.name = name
		g.g.Metadata.Name = name
		switch {
		case orig == name || orig == "":
		case hostname.MatchString(orig) && len(orig) <= 255:
			g.g.Spec.Hostname = orig
		default:
			im.r.note(g.path+".name", "%q is not a host name (letters, digits and hyphens, joined by dots): the guest's host name is %s", orig, name)
		}
	}
}

func mostCommon(list []*guest, f func(*guest) string) string {
	count := map[string]int{}
	for _, g := range list {
		if v := f(g); v != "" {
			count[v]++
		}
	}
	best := ""
	for _, k := range slices.Sorted(maps.Keys(count)) {
		if count[k] > count[best] {
			best = k
		}
	}
	return best
}

var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func (im *importer) defaultStorage() string {
	s := mostCommon(im.list, func(g *guest) string { return g.pool })
	if s == "" {
		s = "local-lvm"
		im.r.note("$.lxc_configs", "no container names its storage_pool: the root disks go to %s", s)
	}
	return s
}

// osTemplate is the volume of the OS template a path in the node's file
// system names: /fastData/shared-iso/template/cache/FILE is
// fastData-shared-iso:vztmpl/FILE.
func (im *importer) osTemplate(g *guest) string {
	t := g.template
	file := path.Base(t)
	dir := strings.TrimSuffix(path.Dir(t), "/template/cache")
	if !strings.Contains(t, "/") || dir == path.Dir(t) {
		// A file name alone: the cache of the storage the others use.
		dir = ""
	}
	dataset := strings.TrimPrefix(strings.TrimPrefix(dir, "/mnt/pve"), "/")
	var id string
	switch {
	case dir == "/var/lib/vz":
		id = "local"
	case im.storageIDs[strings.ReplaceAll(dataset, "/", "-")] != "":
		id = im.storageIDs[strings.ReplaceAll(dataset, "/", "-")]
	case dataset != "":
		id = strings.ReplaceAll(dataset, "/", "-")
		why := "no hypervisor config was given"
		if im.hvRead {
			why = "the hypervisor config's proxmox_storage_ids and zfs datasets do not name it"
		}
		im.r.note(g.path+".template", "the storage of %s is taken to be %s: %s", path.Dir(t), id, why)
	default:
		id = "local"
		im.r.note(g.path+".template", "%q names no directory: the OS template is taken to be on the storage local", t)
	}
	return id + ":vztmpl/" + file
}

// featureSet collects the Feature documents the import writes.
type featureSet struct {
	im   *importer
	docs map[string]*spec.Feature
}

func userFeatureName(name string) string {
	return strings.ToLower(strings.Trim(labelChars.ReplaceAllString(strings.ReplaceAll(name, "_", "-"), "-"), "-"))
}

// script is the content of a script of the original's bin/ directory, found
// under any of the names.
func (fs *featureSet) script(names ...string) (string, []byte) {
	for _, n := range names {
		if b, ok := fs.im.opt.Scripts[n]; ok {
			return n, b
		}
	}
	return "", nil
}

const markerDir = "/var/lib/phoenix/imported"

// scriptFeature is a Feature that runs one of the original's scripts as it
// is, once: its check is the marker file the apply writes last.
func scriptFeature(name, file string, content []byte, requires []string, param string) *spec.Feature {
	f := &spec.Feature{Metadata: spec.Metadata{Name: name}}
	f.Spec.Description = "the original's " + path.Base(file) + ", carried over as it is"
	f.Spec.Version = "1.0.0"
	f.Spec.Requires = requires
	marker := markerDir + "/" + name + ".done"
	arg := ""
	if param != "" {
		f.Spec.Config = spec.Params{param: ""}
		arg = ` "${` + param + `}"`
	}
	delim := "PHOENIX_IMPORTED_SCRIPT"
	for strings.Contains(string(content), delim) {
		delim += "_"
	}
	body := strings.TrimSuffix(string(content), "\n")
	f.Spec.Steps = []spec.Step{{
		Name:  "script",
		Check: "test -e " + marker,
		Apply: "set -eu\nmkdir -p " + markerDir + "\ncat > " + markerDir + "/" + name + ".sh <<'" + delim + "'\n" + body + "\n" + delim + "\n" +
			"bash " + markerDir + "/" + name + ".sh" + arg + "\ntouch " + marker + "\n",
	}}
	return f
}

// stubFeature stands for a feature whose script was not given: it validates
// and plans, and its apply says what to do.
func stubFeature(name, orig string) *spec.Feature {
	f := &spec.Feature{Metadata: spec.Metadata{Name: name}}
	f.Spec.Description = "the original's " + orig + " feature: its script was not imported; write its steps"
	f.Spec.Version = "0.0.0"
	f.Spec.Steps = []spec.Step{{
		Name:  "install",
		Check: "test -e " + markerDir + "/" + name + ".done",
		Apply: "echo 'the feature " + name + " was imported without its script: write its steps in features/" + name + ".yaml' >&2\nexit 1\n",
	}}
	return f
}

func (im *importer) guestFeatures(g *guest, parent *guest, fs *featureSet) {
	s := &g.g.Spec
	g.effective = map[string]bool{}
	if parent != nil {
		maps.Copy(g.effective, parent.effective)
	}
	var out []string
	add := func(f string) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
		g.effective[f] = true
	}
	for _, f := range g.features {
		orig, user := strings.CutPrefix(f, "user:")
		if !user {
			add(f)
			// The original's nvidia feature installed the CUDA toolkit too: the
			// first guest of a lineage with it gets cuda-toolkit.
			if f == "nvidia-driver" && !g.effective["cuda-toolkit"] {
				add("cuda-toolkit")
				if im.cudaVersion != "" {
					if s.FeatureConfig == nil {
						s.FeatureConfig = map[string]spec.Params{}
					}
					s.FeatureConfig["cuda-toolkit"] = spec.Params{"version": im.cudaVersion}
				}
			}
			continue
		}
		name := userFeatureName(orig)
		if name == "" {
			im.r.fail(g.path+".features", "the feature name %q makes no phoenix name", orig)
			continue
		}
		if _, done := fs.docs[name]; !done {
			file, content := fs.script("lxc_setup/phoenix_hypervisor_feature_install_"+orig+".sh", "phoenix_hypervisor_feature_install_"+orig+".sh")
			switch {
			case content != nil:
				fs.docs[name] = scriptFeature(name, file, content, nil, "")
				im.r.note(g.path+".features", "%s: carried over as it is from %s, as the user Feature %s; review it: the original ran it with its own helpers beside it", orig, file, name)
			default:
				fs.docs[name] = stubFeature(name, orig)
				why := "no --scripts directory was given"
				if im.opt.Scripts != nil {
					why = "its script is not in the --scripts directory"
				}
				im.r.note(g.path+".features", "%s: %s; features/%s.yaml is a stub whose apply fails until its steps are written", orig, why, name)
			}
		}
		add(name)
	}
	for _, a := range g.apps {
		base := strings.TrimSuffix(path.Base(a.script), ".sh")
		name := userFeatureName("app-" + strings.TrimPrefix(base, "phoenix_hypervisor_"))
		file, content := fs.script(a.script, "lxc_setup/"+a.script)
		if content == nil {
			why := "no --scripts directory was given"
			if im.opt.Scripts != nil {
				why = "the script is not in the --scripts directory"
			}
			im.r.note(a.path, "not carried: %s", why)
			continue
		}
		if _, done := fs.docs[name]; !done {
			fs.docs[name] = scriptFeature(name, file, content, nil, "CTID")
		}
		im.r.note(a.path, "carried over as it is, as the user Feature %s (run with the CTID as its argument); review it: the original ran it with its own helpers beside it", name)
		add(name)
		if s.FeatureConfig == nil {
			s.FeatureConfig = map[string]spec.Params{}
		}
		s.FeatureConfig[name] = spec.Params{"CTID": strconv.Itoa(g.ctid)}
	}
	s.Features = out
}

// guestSecurity writes what differs from what the guest inherits: a clone
// starts with its template's lxc lines and flags, as in the original.
func (im *importer) guestSecurity(g *guest, parent *guest) {
	var inh effectiveSecurity
	if parent != nil {
		inh = parent.security
	}
	own := g.security
	eff := effectiveSecurity{apparmor: inh.apparmor, features: maps.Clone(inh.features), raw: maps.Clone(inh.raw), idMap: inh.idMap}
	sec := &spec.Security{}
	if own.apparmor != "" && own.apparmor != inh.apparmor {
		sec.AppArmor = ptr(own.apparmor)
		eff.apparmor = own.apparmor
	}
	for _, k := range slices.Sorted(maps.Keys(own.features)) {
		v := own.features[k]
		if inh.features[k] == v {
			continue
		}
		if eff.features == nil {
			eff.features = map[string]string{}
		}
		eff.features[k] = v
		if sec.Features == nil {
			sec.Features = &spec.ContainerFeatures{}
		}
		on := v == "1" || strings.EqualFold(v, "true")
		switch k {
		case "nesting":
			sec.Features.Nesting = ptr(on)
		case "keyctl":
			sec.Features.Keyctl = ptr(on)
		case "fuse":
			sec.Features.Fuse = ptr(on)
		case "mknod":
			sec.Features.Mknod = ptr(on)
		case "force_rw_sys":
			sec.Features.ForceRwSys = ptr(on)
		case "mount":
			sec.Features.Mount = splitList(v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(own.raw)) {
		if slices.Equal(inh.raw[k], own.raw[k]) {
			continue
		}
		if sec.RawLXC == nil {
			sec.RawLXC = map[string][]string{}
		}
		if eff.raw == nil {
			eff.raw = map[string][]string{}
		}
		sec.RawLXC[k] = own.raw[k]
		eff.raw[k] = own.raw[k]
	}
	if len(own.idMap) > 0 && !slices.Equal(own.idMap, inh.idMap) {
		sec.IDMap = own.idMap
		eff.idMap = own.idMap
	}
	g.security = eff
	if sec.AppArmor != nil || sec.Features != nil || sec.RawLXC != nil || sec.IDMap != nil {
		g.g.Spec.Security = sec
	}
}

func (im *importer) startup(g *guest) {
	s := &g.g.Spec
	if g.g.Kind == spec.KindTemplate {
		if g.startAt {
			im.r.note(g.path+".start_at_boot", "not carried: a Template never starts")
		}
		if g.order > 0 || g.delay > 0 {
			im.r.note(g.path+".boot_order", "not carried: a Template never starts")
		}
		return
	}
	if g.startAt {
		s.OnBoot = ptr(true)
	}
	if g.order > 0 || g.delay > 0 {
		st := &spec.Startup{}
		if g.hasOrder {
			st.Order = ptr(g.order)
		}
		if g.hasDelay {
			st.Up = ptr(g.delay)
		}
		s.Startup = st
	}
}

func (im *importer) dependsOn(g *guest) {
	for i, d := range g.deps {
		p := g.depPaths[i]
		id, err := strconv.Atoi(strings.TrimSpace(d))
		dep := im.byID[id]
		switch {
		case err != nil:
			im.r.fail(p, "expected a CTID, got %q", d)
		case dep == nil || !slices.Contains(im.list, dep):
			im.r.note(p, "not carried: a dependency on %s, a guest not in the config", d)
		case dep == g:
			im.r.note(p, "not carried: the container depends on itself")
		case g.g.Kind == spec.KindTemplate:
			im.r.note(p, "not carried: %s is a Template in phoenix, which never runs, and is made before its clones anyway", g.name)
		case dep.g.Kind == spec.KindTemplate:
			im.r.note(p, "not carried: %s is a Template in phoenix, which never runs; it is made before its clones anyway", dep.name)
		case slices.Contains(g.g.Spec.DependsOn, dep.name):
		default:
			g.g.Spec.DependsOn = append(g.g.Spec.DependsOn, dep.name)
		}
	}
}

func (im *importer) cluster(storage, bridge string) *spec.Cluster {
	c := &spec.Cluster{Metadata: spec.Metadata{Name: im.opt.ClusterName}}
	c.Spec.Defaults = spec.ClusterDefaults{Node: im.opt.Node, Storage: storage, Bridge: bridge}
	c.Spec.SSH.Username = "root"
	c.Spec.NVIDIA.RunfileURL = im.runfileURL
	im.r.note("$", "the node's name is in neither file: the guests are on %s (--node)", im.opt.Node)
	return c
}

func (im *importer) header() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Imported by phoenix import from %s", cmp.Or(path.Base(im.opt.LXCFile), "the container config"))
	if im.opt.HypervisorFile != "" {
		fmt.Fprintf(&b, " and %s", path.Base(im.opt.HypervisorFile))
		if im.version != "" {
			fmt.Fprintf(&b, " (version %s)", im.version)
		}
	}
	b.WriteString(".\nIMPORT-REPORT.md lists what was not carried over.")
	return b.String()
}
