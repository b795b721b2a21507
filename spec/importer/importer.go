// Package importer turns the original bash system's configuration
// (phoenix_lxc_configs.json and phoenix_hypervisor_config.json, every shape
// they had) into phoenix specs, with a report of every field that has no home.
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

// Options say what the config files do not.
type Options struct {
	LXCFile        string            // the container config's name, for the headers and the report
	HypervisorFile string            // the hypervisor config's name, "" when there is none
	Node           string            // the node, which neither file names
	ClusterName    string            // the Cluster document's metadata.name
	Scripts        map[string][]byte // the original's bin/ directory: relative path -> content; nil when not given
	World          bool              // also write a simulator world built from the same config
}

// File is one written file.
type File struct {
	Name string
	Data []byte
}

// Result is what an import produced.
type Result struct {
	Files    []File
	Findings []Finding
	Guests   int
	Features int
}

// guest is one container of the original's config on its way to a spec.
type guest struct {
	ctid      int
	key       string // the key in lxc_configs
	path      string // its JSON path
	name      string
	g         *spec.Guest
	parentID  int // clone_from_ctid, 0 for none
	pool      string
	template  string // the OS template path
	isTmpl    bool
	hasClones bool     // another container of the config is cloned from it
	features  []string // phoenix's names
	effective map[string]bool
	security  effectiveSecurity
	deps      []string
	depPaths  []string
	apps      []appUse
	vllm      *vllmConf   // vllm_engine_config or the flat vllm_* keys
	health    *healthConf // health_check
	snapshots snapshotConf
	startAt   bool
	order     int
	delay     int
	hasOrder  bool
	hasDelay  bool
}

type appUse struct {
	path, script string
}

type effectiveSecurity struct {
	apparmor string
	features map[string]string
	raw      map[string][]string
	idMap    []spec.IDMapping
}

// Import reads the two config files (hypervisor may be nil) and returns the
// specs. An error names the JSON path of each field that cannot be read.
func Import(lxc, hypervisor []byte, opt Options) (*Result, error) {
	if opt.Node == "" {
		opt.Node = "phoenix"
	}
	if opt.LXCFile == "" {
		opt.LXCFile = "phoenix_lxc_configs.json"
	}
	if opt.ClusterName == "" {
		opt.ClusterName = "phoenix-lab"
	}
	r := &reader{}
	im := &importer{r: r, opt: opt, byID: map[int]*guest{}}
	if hypervisor != nil {
		r.file = opt.HypervisorFile
		hv, err := decode(hypervisor)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opt.HypervisorFile, err)
		}
		im.hypervisor(r.object("$", hv))
		if err := r.err(); err != nil {
			return nil, fmt.Errorf("%s: %w", opt.HypervisorFile, err)
		}
	}
	r.file = opt.LXCFile
	doc, err := decode(lxc)
	if err != nil {
		return nil, err
	}
	top := r.object("$", doc)
	if top == nil {
		return nil, r.err()
	}
	im.top(top)
	if err := r.err(); err != nil {
		return nil, err
	}
	res := im.build()
	if err := r.err(); err != nil {
		return nil, err
	}
	return res, nil
}

type importer struct {
	r    *reader
	opt  Options
	byID map[int]*guest
	list []*guest // parents first

	bridge        string
	bridgeFrom    string
	storageIDs    map[string]string // the storage ids the hypervisor config names (its datasets: pool-name)
	runfileURL    string
	driverVersion string
	cudaVersion   string
	version       string
	hvRead        bool
	hostObjects   []*object // the hypervisor config's objects, whose unread keys are the node's
}

var versionPattern = regexp.MustCompile(`[0-9]+\.[0-9]+(\.[0-9]+)?`)

// runfilePattern makes the driver version of a runfile URL a {version}
// placeholder, since phoenix installs the host's version.
func runfilePattern(url, version string) string {
	if version == "" {
		version = versionPattern.FindString(path.Base(url))
	}
	if version == "" {
		return url
	}
	return strings.ReplaceAll(url, version, "{version}")
}

func (im *importer) hypervisor(o *object) {
	if o == nil {
		return
	}
	r := im.r
	im.hvRead = true
	im.storageIDs = map[string]string{}
	im.hostObjects = append(im.hostObjects, o)
	if v, ok := r.str(o, "version"); ok {
		im.version = v
	}
	if n := r.child(o, "network"); n != nil {
		if ifs := r.child(n, "interfaces"); ifs != nil {
			if b, ok := r.str(ifs, "name"); ok {
				im.bridge, im.bridgeFrom = b, ifs.at("name")
			}
			im.hostObjects = append(im.hostObjects, ifs)
		}
		im.hostObjects = append(im.hostObjects, n)
	}
	if ids := r.child(o, "proxmox_storage_ids"); ids != nil {
		for _, k := range slices.Sorted(maps.Keys(ids.m)) {
			if id, ok := r.str(ids, k); ok {
				im.storageIDs[id] = id
			}
		}
	}
	if z := r.child(o, "zfs"); z != nil {
		im.hostObjects = append(im.hostObjects, z)
		if ds, ok := r.list(z, "datasets"); ok {
			for i, d := range ds {
				do := r.object(index(z.at("datasets"), i), d)
				name, _ := r.str(do, "name")
				pool, _ := r.str(do, "pool")
				if name != "" && pool != "" {
					im.storageIDs[pool+"-"+name] = pool + "-" + name
				}
			}
		}
	}
	if nv := r.child(o, "nvidia_driver"); nv != nil {
		if v, ok := r.str(nv, "version"); ok {
			im.driverVersion = v
		}
		if u, ok := r.str(nv, "runfile_url"); ok {
			im.runfileURL = runfilePattern(u, im.driverVersion)
		}
		if c, ok := r.str(nv, "cuda_version"); ok {
			im.cudaVersion = c
		}
		im.hostObjects = append(im.hostObjects, nv)
	}
	// The rest configures the host itself (users, ZFS pools, NFS, Samba, the
	// host's firewall and DNS): phoenix reconciles guests, not the node.
	for _, h := range im.hostObjects {
		for _, k := range slices.Sorted(maps.Keys(h.m)) {
			if !h.read[k] {
				h.read[k] = true
				r.note(h.at(k), "the node's own configuration: phoenix configures guests, not the node")
			}
		}
	}
}

func (im *importer) top(o *object) {
	r := im.r
	o.take("$schema")
	if v, ok := r.str(o, "nvidia_driver_version"); ok {
		if im.driverVersion == "" {
			im.driverVersion = v
		}
		r.note(o.at("nvidia_driver_version"), "phoenix installs the node's own driver version in each container")
	}
	r.skip(o, "nvidia_repo_url", "phoenix picks NVIDIA's CUDA repository for the guest's distribution (cuda-toolkit's repository parameter sets a mirror)")
	if u, ok := r.str(o, "nvidia_runfile_url"); ok && im.runfileURL == "" {
		im.runfileURL = runfilePattern(u, im.driverVersion)
	}
	cts := r.child(o, "lxc_configs")
	if cts == nil {
		if _, present := o.m["lxc_configs"]; !present {
			r.fail("$.lxc_configs", "missing: the file has no containers")
		}
		return
	}
	r.rest(o)
	keys := slices.Collect(maps.Keys(cts.m))
	slices.SortFunc(keys, func(a, b string) int {
		ia, ea := strconv.Atoi(a)
		ib, eb := strconv.Atoi(b)
		if ea == nil && eb == nil {
			return cmp.Compare(ia, ib)
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		cts.read[k] = true
		p := member(cts.path, k)
		id, err := strconv.Atoi(k)
		if err != nil || id < 100 || id > 999999999 || strconv.Itoa(id) != k {
			r.fail(p, "the key must be a CTID, 100..999999999")
			continue
		}
		g := im.container(id, k, p, r.object(p, cts.m[k]))
		if g != nil {
			im.byID[id] = g
		}
	}
}

var labelChars = regexp.MustCompile(`[^A-Za-z0-9-]+`)
var rfc1123 = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// label is the RFC 1123 label phoenix names a guest by: the original's name
// when it is one, else that name with what a label cannot hold made hyphens.
func label(name string) string {
	l := strings.Trim(labelChars.ReplaceAllString(name, "-"), "-")
	for strings.Contains(l, "--") && !strings.Contains(name, "--") {
		l = strings.ReplaceAll(l, "--", "-")
	}
	if len(l) > 63 {
		l = strings.Trim(l[:63], "-")
	}
	return l
}

func ptr[T any](v T) *T { return &v }

func (im *importer) container(id int, key, p string, o *object) *guest {
	if o == nil {
		return nil
	}
	r := im.r
	g := &guest{ctid: id, key: key, path: p, g: &spec.Guest{Kind: spec.KindContainer}}
	s := &g.g.Spec
	s.VMID = id
	g.name, _ = r.str(o, "name")
	if n, ok := r.integer(o, "memory_mb"); ok {
		s.Resources.Memory = ptr(n)
	}
	if n, ok := r.integer(o, "cores"); ok {
		s.Resources.Cores = ptr(n)
	}
	if n, ok := r.integer(o, "swap_mb"); ok {
		s.Resources.Swap = ptr(n)
	}
	if n, ok := r.integer(o, "storage_size_gb"); ok {
		s.Resources.Disk = ptr(n)
	}
	g.pool, _ = r.str(o, "storage_pool")
	im.network(g, o)
	if a, ok := r.str(o, "gpu_assignment"); ok {
		im.gpus(g, o.at("gpu_assignment"), a)
	}
	if u, ok := r.boolean(o, "unprivileged"); ok {
		s.Unprivileged = ptr(u)
	}
	im.features(g, o)
	for _, k := range []string{"clone_from_ctid", "clone_from_template_ctid"} {
		if c, ok := r.str(o, k); ok && c != "" {
			n, err := strconv.Atoi(c)
			if err != nil {
				r.fail(o.at(k), "expected a CTID, got %q", c)
				continue
			}
			if g.parentID != 0 && g.parentID != n {
				r.note(o.at(k), "ignored: the container is cloned from CT %d", g.parentID)
				continue
			}
			g.parentID = n
		}
	}
	if t, ok := r.str(o, "template"); ok {
		g.template = t
	}
	if t, ok := r.str(o, "template_file"); ok {
		switch {
		case g.parentID != 0:
			r.note(o.at("template_file"), "ignored: the container is cloned from CT %d", g.parentID)
		case g.template == "":
			g.template = t
		default:
			r.note(o.at("template_file"), "ignored: template names the OS template")
		}
	}
	if t, ok := r.boolean(o, "is_template"); ok && t {
		g.isTmpl = true
	}
	if t, ok := r.str(o, "template_snapshot_name"); ok && t != "" {
		g.isTmpl = true
		g.snapshots.name, g.snapshots.namePath = t, o.at("template_snapshot_name")
	}
	g.snapshots.lifecycle, _ = r.boolean(o, "enable_lifecycle_snapshots")
	g.snapshots.lifecyclePath = o.at("enable_lifecycle_snapshots")
	g.startAt, _ = r.boolean(o, "start_at_boot")
	g.order, g.hasOrder = r.integer(o, "boot_order")
	g.delay, g.hasDelay = r.integer(o, "boot_delay")
	if deps, ok := r.strings(o, "dependencies"); ok {
		g.deps = deps
		for i := range deps {
			g.depPaths = append(g.depPaths, index(o.at("dependencies"), i))
		}
	}
	im.security(g, o)
	im.mounts(g, o)
	im.firewall(g, o)
	if a, ok := r.str(o, "application_script"); ok && a != "" {
		g.apps = append(g.apps, appUse{path: o.at("application_script"), script: a})
	}
	im.vllm(g, o)
	im.healthCheck(g, o)
	why := map[string]string{
		"ports":                      "no home in phoenix yet: port forwards",
		"traefik_service":            "no home in phoenix yet: the proxy's routes",
		"portainer_role":             "no home in phoenix yet: Portainer's roles",
		"tests":                      "no home in phoenix yet: the original's test scripts",
		"integration_tests":          "no home in phoenix yet: the original's test scripts",
		"run_integration_tests":      "no home in phoenix yet: the original's test scripts",
		"trigger_sync_on_completion": "no home in phoenix yet: the original's sync hook",
		"bootstrap_ca_url":           "no home in phoenix yet: set the CA in a feature's config (trusted-ca's CA_URL)",
		"apparmor_manages_nesting":   "no home in phoenix: security.features.nesting and security.apparmor say it",
	}
	for _, k := range slices.Sorted(maps.Keys(why)) {
		r.skip(o, k, why[k])
	}
	r.rest(o)
	return g
}

func (im *importer) gpus(g *guest, p, a string) {
	a = strings.TrimSpace(a)
	if a == "" || strings.EqualFold(a, "none") {
		return
	}
	if strings.EqualFold(a, "all") {
		g.g.Spec.GPUs = &spec.GPUSet{All: true}
		return
	}
	set := &spec.GPUSet{}
	for f := range strings.SplitSeq(a, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 63 {
			im.r.fail(p, "expected GPU indices such as \"0, 1\" or none, got %q", a)
			return
		}
		if !slices.Contains(set.Indices, n) {
			set.Indices = append(set.Indices, n)
		}
	}
	g.g.Spec.GPUs = set
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' || c == ';' })
}

func (im *importer) network(g *guest, o *object) {
	r := im.r
	s := &g.g.Spec
	nic := func(n *object) spec.NIC {
		c := spec.NIC{Name: "eth0"}
		if v, ok := r.str(n, "name"); ok {
			c.Name = v
		}
		c.Bridge, _ = r.str(n, "bridge")
		c.IP, _ = r.str(n, "ip")
		c.Gateway, _ = r.str(n, "gw")
		c.HWAddr, _ = r.str(n, "hwaddr")
		return c
	}
	if n := r.child(o, "network_config"); n != nil {
		c := nic(n)
		if c.Gateway != "" && (c.IP == "" || c.IP == "dhcp" || c.IP == "manual") {
			r.note(g.path+".network_config.gw", "not carried: a gateway goes with a static ip; with %q the network provides it", cmp.Or(c.IP, "no ip"))
			c.Gateway = ""
		}
		for _, k := range []string{"nameservers", "nameserver"} {
			if v, ok := r.str(n, k); ok && len(s.Nameservers) == 0 {
				s.Nameservers = splitList(v)
			}
		}
		r.rest(n)
		s.Network = append(s.Network, c)
	}
	if ip, ok := r.str(o, "static_ip"); ok {
		switch {
		case len(s.Network) == 0:
			s.Network = append(s.Network, spec.NIC{Name: "eth0", IP: ip})
		case s.Network[0].IP == "":
			s.Network[0].IP = ip
		case s.Network[0].IP != ip:
			r.note(o.at("static_ip"), "ignored: network_config.ip is %s", s.Network[0].IP)
		}
	}
	if mac, ok := r.str(o, "mac_address"); ok && mac != "" {
		switch {
		case len(s.Network) == 0:
			s.Network = append(s.Network, spec.NIC{Name: "eth0", HWAddr: mac})
		case s.Network[0].HWAddr == "":
			s.Network[0].HWAddr = mac
		case !strings.EqualFold(s.Network[0].HWAddr, mac):
			r.note(o.at("mac_address"), "ignored: network_config.hwaddr is %s", s.Network[0].HWAddr)
		}
	}
	if n := r.child(o, "secondary_network_config"); n != nil {
		c := nic(n)
		if c.Name == "eth0" {
			c.Name = "eth1"
		}
		r.rest(n)
		s.Network = append(s.Network, c)
	}
	r.skip(o, "public_interface", "no home in phoenix yet: macvlan interfaces")
}

// builtins maps the original's feature names to phoenix's.
var builtins = map[string]string{
	"base_setup": "base", "base": "base", "docker": "docker", "vllm": "vllm", "ollama": "ollama",
	"nvidia": "nvidia-driver", "nvidia_container_toolkit": "nvidia-container-toolkit",
}

func (im *importer) features(g *guest, o *object) {
	r := im.r
	v, ok := o.take("features")
	if !ok {
		return
	}
	p := o.at("features")
	if s, isStr := v.(string); isStr {
		// The first versions: Proxmox's container features, nesting=1,keyctl=1.
		for i, f := range splitList(s) {
			im.pctOption(g, fmt.Sprintf("%s (item %d)", p, i), f)
		}
		return
	}
	l, isList := v.([]any)
	if !isList {
		r.fail(p, "expected a list of feature names, got %s", describe(v))
		return
	}
	for i, e := range l {
		name, isStr := e.(string)
		if !isStr || name == "" {
			r.fail(index(p, i), "expected a feature name, got %s", describe(e))
			continue
		}
		if b, ok := builtins[name]; ok {
			g.features = append(g.features, b)
			continue
		}
		g.features = append(g.features, "user:"+name)
	}
}

// pctOption carries one of Proxmox's container features, as pct --features
// takes them, into security.features.
func (im *importer) pctOption(g *guest, p, opt string) {
	k, v, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(opt), "--features")), "=")
	k = strings.TrimSpace(k)
	switch k {
	case "nesting", "keyctl", "fuse", "mknod", "force_rw_sys", "mount":
		if g.security.features == nil {
			g.security.features = map[string]string{}
		}
		g.security.features[k] = strings.TrimSpace(v)
	default:
		im.r.note(p, "no home in phoenix: %q is not a container feature flag phoenix sets", opt)
	}
}

func (im *importer) security(g *guest, o *object) {
	r := im.r
	if a, ok := r.str(o, "apparmor_profile"); ok && a != "" {
		g.security.apparmor = a
	}
	if opts, ok := r.strings(o, "pct_options"); ok {
		for i, opt := range opts {
			im.pctOption(g, index(o.at("pct_options"), i), opt)
		}
	}
	if opts, ok := r.strings(o, "lxc_options"); ok {
		for i, line := range opts {
			p := index(o.at("lxc_options"), i)
			cut := strings.IndexAny(line, "=:")
			if cut <= 0 {
				r.fail(p, "expected KEY=VALUE or KEY:VALUE, got %q", line)
				continue
			}
			k, v := strings.TrimSpace(line[:cut]), strings.TrimSpace(line[cut+1:])
			switch {
			case k == "lxc.apparmor.profile":
				if g.security.apparmor != "" && g.security.apparmor != v {
					r.note(p, "ignored: apparmor_profile says %s", g.security.apparmor)
					continue
				}
				g.security.apparmor = v
			case k == "lxc.idmap":
				r.note(p, "carried by id_maps: phoenix writes the whole lxc.idmap from security.idMap")
			default:
				if g.security.raw == nil {
					g.security.raw = map[string][]string{}
				}
				g.security.raw[k] = append(g.security.raw[k], v)
			}
		}
	}
	if maps, ok := r.list(o, "id_maps"); ok {
		for i, m := range maps {
			mo := r.object(index(o.at("id_maps"), i), m)
			if mo == nil {
				continue
			}
			var e spec.IDMapping
			e.Type, _ = r.str(mo, "type")
			e.Container, _ = r.integer(mo, "container_id")
			e.Host, _ = r.integer(mo, "host_id")
			e.Size, _ = r.integer(mo, "size")
			r.rest(mo)
			g.security.idMap = append(g.security.idMap, e)
		}
	}
}

func (im *importer) mounts(g *guest, o *object) {
	r := im.r
	s := &g.g.Spec
	if mps, ok := r.list(o, "mount_points"); ok {
		for i, m := range mps {
			mo := r.object(index(o.at("mount_points"), i), m)
			if mo == nil {
				continue
			}
			var mp spec.Mount
			mp.HostPath, _ = r.str(mo, "host_path")
			mp.Path, _ = r.str(mo, "container_path")
			uid, hasUID := r.integer(mo, "owner_uid")
			gid, hasGID := r.integer(mo, "owner_gid")
			switch {
			case hasUID && hasGID:
				mp.Owner = fmt.Sprintf("%d:%d", uid, gid)
			case hasUID || hasGID:
				r.note(mo.path, "owner not carried: phoenix takes an owner as UID:GID, and only one of them is given")
			}
			r.rest(mo)
			s.Mounts = append(s.Mounts, mp)
		}
	}
	for _, k := range []string{"zfs_volumes", "volumes"} {
		vols, ok := r.list(o, k)
		if !ok {
			continue
		}
		for i, v := range vols {
			vo := r.object(index(o.at(k), i), v)
			if vo == nil {
				continue
			}
			var mp spec.Mount
			mp.Path, _ = r.str(vo, "mount_point")
			mp.Storage, _ = r.str(vo, "pool")
			mp.Size, _ = r.integer(vo, "size_gb")
			r.skip(vo, "name", "not carried: Proxmox names a volume vm-VMID-disk-N")
			r.rest(vo)
			s.Mounts = append(s.Mounts, mp)
		}
	}
}

func (im *importer) firewall(g *guest, o *object) {
	r := im.r
	fo := r.child(o, "firewall")
	if fo == nil {
		return
	}
	fw := &spec.Firewall{}
	if e, ok := r.boolean(fo, "enabled"); ok {
		fw.Enabled = ptr(e)
	}
	if rules, ok := r.list(fo, "rules"); ok {
		for i, ru := range rules {
			ro := r.object(index(fo.at("rules"), i), ru)
			if ro == nil {
				continue
			}
			var rule spec.FirewallRule
			rule.Direction, _ = r.str(ro, "type")
			rule.Action, _ = r.str(ro, "action")
			rule.Proto, _ = r.str(ro, "proto")
			rule.DPort, _ = r.str(ro, "port")
			if rule.DPort == "" {
				rule.DPort, _ = r.str(ro, "dport")
			}
			rule.SPort, _ = r.str(ro, "sport")
			rule.Source, _ = r.str(ro, "source")
			rule.Dest, _ = r.str(ro, "dest")
			rule.Comment, _ = r.str(ro, "comment")
			rule.Direction = strings.ToLower(rule.Direction)
			rule.Action = strings.ToUpper(rule.Action)
			r.rest(ro)
			fw.Rules = append(fw.Rules, rule)
		}
	}
	r.rest(fo)
	g.g.Spec.Firewall = fw
}
