package spec

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits and formats Proxmox VE enforces, so that a spec it would reject fails
// here, at validate time, with a line number.
const (
	MinVMID     = 100
	MaxVMID     = 999_999_999
	maxNICs     = 32 // net0..net31
	maxCores    = 8192
	minMemory   = 16
	maxHostname = 63
	// maxDNSName is the maxLength of a container's hostname option.
	maxDNSName = 255
	// maxDeploymentID keeps the id short: it is in every guest's record.
	maxDeploymentID = 63
)

var (
	// RFC 1123 label: the hostname Proxmox writes into the container.
	hostnameLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	// Proxmox's dns-name format (PVE::JSONSchema), which the hostname
	// option of a container takes.
	dnsName = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	// Proxmox's mac-addr format: a unicast address (the I/G bit clear).
	macAddress = regexp.MustCompile(`^[A-Fa-f0-9][02468aceACE](:[A-Fa-f0-9]{2}){5}$`)
	nicType    = regexp.MustCompile(`^veth$`)
	// Proxmox's pve-node format.
	nodeName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	// Proxmox's pve-storage-id format, which ignores case
	// (PVE::JSONSchema::parse_storage_id matches it with /i).
	storageID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.]*[A-Za-z0-9]$`)
	// The bridge and interface name patterns of Proxmox's net[n] property string.
	bridgeName = regexp.MustCompile(`^[-_.\w]+$`)
	nicName    = regexp.MustCompile(`^[-_.\w]+$`)
	// A container template volume: storage:vztmpl/file.
	osTemplate = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.]*[A-Za-z0-9]:vztmpl/[^/\s]+$`)
	// Proxmox's tag format (pve-tag), before it lower-cases.
	tagFormat = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_\-+.]*$`)
	// Feature and step names appear in script names and the journal.
	featureName   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	envName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	driverVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`)
	sha256Hex     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// A deployment id, recorded in every guest phoenix makes.
	deploymentID = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$`)
	// A step's timeout: hours, minutes and seconds, such as 20m or 1h30m.
	stepTimeout = regexp.MustCompile(`^([0-9]+[hms])+$`)
)

// The range of a step's timeout.
const (
	minStepTimeout = time.Second
	maxStepTimeout = 24 * time.Hour
)

// ParseStepTimeout reads a Feature step's timeout; empty is none (the
// default applies).
func ParseStepTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case !stepTimeout.MatchString(s) || err != nil:
		return 0, fmt.Errorf("timeout %q: want hours, minutes and seconds such as 20m, 90s or 1h30m", s)
	case d < minStepTimeout || d > maxStepTimeout:
		return 0, fmt.Errorf("timeout %s is outside %v..%v", s, minStepTimeout, maxStepTimeout)
	}
	return d, nil
}

type validator struct {
	set   *Set
	diags Diagnostics
	res   *resolver
	// root is the spec repository: the deepest directory that holds every
	// spec file. Files a spec reads stay inside it.
	root string
}

// validate checks everything a loaded set can get wrong beyond its YAML types.
func validate(set *Set) Diagnostics {
	v := &validator{set: set, res: newResolver(set), root: commonDir(set.Files)}
	if set.Cluster != nil {
		v.cluster(set.Cluster)
	}
	v.features()
	v.guests()
	return v.diags
}

func (v *validator) report(src Source, pos *positions, subject, field, format string, args ...any) {
	v.diags = append(v.diags, Diagnostic{
		File: src.File, Line: pos.line(field), Subject: subject, Field: field,
		Message: fmt.Sprintf(format, args...),
	})
}

func (v *validator) cluster(c *Cluster) {
	bad := func(field, format string, args ...any) {
		v.report(c.Source, c.pos, strings.TrimSpace("Cluster "+c.Metadata.Name), field, format, args...)
	}
	sp := c.Spec
	switch id := sp.Deployment; {
	case id != "" && (!deploymentID.MatchString(id) || len(id) > maxDeploymentID):
		bad("spec.deployment", "%q is not a deployment id: 1 to %d letters, digits and - _ ., starting and ending with a letter or digit", id, maxDeploymentID)
	case id == "" && c.Metadata.Name != "" && (!deploymentID.MatchString(c.Metadata.Name) || len(c.Metadata.Name) > maxDeploymentID):
		bad("metadata.name", "%q is the deployment id (without spec.deployment), which is 1 to %d letters, digits and - _ ., starting and ending with a letter or digit: rename it or set spec.deployment",
			c.Metadata.Name, maxDeploymentID)
	}
	if sp.Endpoint != "" {
		u, err := url.Parse(sp.Endpoint)
		switch {
		// Before anything quotes the URL: a password may hold what ends
		// the authority for a URL parser (/ ? #), no endpoint holds an @.
		case strings.Contains(sp.Endpoint, "@"):
			bad("spec.endpoint", "credentials never go in spec files: remove them from the URL and set PROXMOX_VE_API_TOKEN or PROXMOX_VE_USERNAME/PROXMOX_VE_PASSWORD")
		case err != nil || u.Scheme != "https" || u.Host == "":
			bad("spec.endpoint", "want an https:// URL such as https://pve1:8006/, got %q", sp.Endpoint)
		}
	}
	if d := sp.Defaults.Node; d != "" && !nodeName.MatchString(d) {
		bad("spec.defaults.node", "%q is not a valid node name", d)
	}
	if d := sp.Defaults.Storage; d != "" && !storageID.MatchString(d) {
		bad("spec.defaults.storage", "%q is not a valid storage ID", d)
	}
	if d := sp.Defaults.Bridge; d != "" && !bridgeName.MatchString(d) {
		bad("spec.defaults.bridge", "%q is not a valid bridge name", d)
	}
	if p := sp.SSH.Port; p != nil && (*p < 1 || *p > 65535) {
		bad("spec.ssh.port", "port %d is outside 1..65535", *p)
	}
	for _, node := range sortedKeys(sp.SSH.Nodes) {
		field := "spec.ssh.nodes." + node
		if !nodeName.MatchString(node) {
			bad(field, "%q is not a valid node name", node)
		}
		if addr := sp.SSH.Nodes[node]; addr == "" || strings.ContainsAny(addr, " /@") {
			bad(field, "want a host, IP address or host:port, got %q", addr)
		}
	}
	checkRunfileURL := func(field, u string) {
		parsed, err := url.Parse(strings.ReplaceAll(u, "{version}", "0"))
		switch {
		case err == nil && parsed.User != nil:
			// Spec files are committed: a password in one is no secret,
			// and it would be shown wherever the URL is.
			bad(field, "the URL holds a user name or password (user:password@): spec files are committed and shown; use a source that needs none")
		case err != nil && strings.Contains(u, "@"):
			bad(field, "want an http(s) URL, got one that does not parse (not shown: it may hold a password)")
		case err != nil || (parsed.Scheme != "https" && parsed.Scheme != "http") || parsed.Host == "" || strings.ContainsAny(u, " \t\n"):
			bad(field, "want an http(s) URL, got %q", u)
		case !strings.Contains(u, "{version}"):
			bad(field, "the URL must contain {version}, replaced by the host's driver version")
		// The runfile runs as root in every GPU container; anyone on the
		// path can answer plain http.
		case parsed.Scheme == "http" && len(sp.NVIDIA.SHA256) == 0:
			bad(field, "a plain-http source needs the runfile's digest: give it for each driver version in spec.nvidia.sha256, or use https (the runfile runs as root in every GPU container)")
		}
	}
	if u := sp.NVIDIA.RunfileURL; u != "" {
		checkRunfileURL("spec.nvidia.runfileURL", u)
	}
	for i, u := range sp.NVIDIA.RunfileURLs {
		checkRunfileURL(fmt.Sprintf("spec.nvidia.runfileURLs[%d]", i), u)
	}
	for _, ver := range sortedKeys(sp.NVIDIA.SHA256) {
		field := "spec.nvidia.sha256." + ver
		if !driverVersion.MatchString(ver) {
			bad(field, "malformed driver version %q: want e.g. 580.76.05", ver)
		}
		if sum := sp.NVIDIA.SHA256[ver]; !sha256Hex.MatchString(sum) {
			bad(field, "want 64 lower-case hex digits, got %q", sum)
		}
	}
}

func (v *validator) features() {
	seen := map[string]*Feature{}
	builtin := BuiltinFeatureNames()
	for _, f := range v.set.Features {
		name := f.Metadata.Name
		subject := "Feature " + name
		bad := func(field, format string, args ...any) {
			v.report(f.Source, f.pos, subject, field, format, args...)
		}
		switch {
		case name == "":
			bad("metadata.name", "a Feature needs a name")
		case slices.Contains(builtin, name):
			bad("metadata.name", "%s is a built-in feature; give yours another name", name)
		case !featureName.MatchString(name):
			bad("metadata.name", "%q is not a valid feature name (lower-case letters, digits and hyphens)", name)
		case seen[name] != nil:
			bad("metadata.name", "feature %s is also defined at %s:%d", name, seen[name].Source.File, seen[name].Source.Line)
		default:
			seen[name] = f
		}
		if ver := f.Spec.Version; ver != "" && !versionWord.MatchString(ver) {
			bad("spec.version", "malformed version %q: want e.g. 1.2.0", ver)
		}
		for i, r := range f.Spec.Requires {
			field := fmt.Sprintf("spec.requires[%d]", i)
			if _, ok := v.res.catalog.Lookup(r); !ok {
				bad(field, "%s", v.unknownFeature(r))
			} else if r == name {
				bad(field, "a feature cannot require itself")
			}
		}
		for _, k := range sortedKeys(f.Spec.Config) {
			if !envName.MatchString(k) {
				bad("spec.config."+k, "parameter names reach the scripts as environment variables: want letters, digits and _, not starting with a digit")
			}
		}
		for _, k := range sortedKeys(f.Spec.Settings) {
			switch {
			case !envName.MatchString(k):
				bad("spec.settings."+k, "parameter names reach the scripts as environment variables: want letters, digits and _, not starting with a digit")
			case hasKey(f.Spec.Config, k):
				bad("spec.settings."+k, "%s is also in config: a parameter is either installed with (config) or read at run time (settings)", k)
			}
		}
		units := v.services(f.Spec.Services, "spec.services", bad)
		v.files(f.Spec.Files, f.Source.File, "spec.files", units, bad)
		if len(f.Spec.Steps) == 0 {
			bad("spec.steps", "a Feature needs at least one step")
		}
		steps := map[string]bool{}
		for i, s := range f.Spec.Steps {
			field := fmt.Sprintf("spec.steps[%d]", i)
			checkListedName(field+".name", "step", s.Name, steps, bad)
			if strings.TrimSpace(s.Check) == "" {
				bad(field+".check", "a step needs a check (exit 0 when the step is already done), so that it is not re-run")
			}
			if strings.TrimSpace(s.Apply) == "" {
				bad(field+".apply", "a step needs an apply body")
			}
			if _, err := ParseStepTimeout(s.Timeout); err != nil {
				bad(field+".timeout", "%v", err)
			}
		}
		checkHealthList(f.Spec.Health, true, bad)
	}
	for _, cycle := range v.res.catalog.requireCycles() {
		if f := seen[cycle[0]]; f != nil {
			v.report(f.Source, f.pos, "Feature "+f.Metadata.Name, "spec.requires",
				"dependency cycle: %s", formatCycle(cycle))
		}
	}
}

// unknownFeature explains a feature name the catalog lacks.
func (v *validator) unknownFeature(name string) string {
	known := v.res.catalog.Names()
	if best := closest(name, known); best != "" {
		return fmt.Sprintf("unknown feature %q (did you mean %s?)", name, best)
	}
	return fmt.Sprintf("unknown feature %q (known: %s; define others with a Feature document)", name, strings.Join(known, ", "))
}

func (v *validator) guests() {
	names := map[string]*Guest{}
	vmids := map[int]*Guest{}
	lin := v.res.lin
	for _, g := range v.set.Guests {
		v.guestFields(g)
		subject := string(g.Kind) + " " + g.Name()
		// Hostnames ignore case: GPU-base and gpu-base are one name.
		switch prev := names[nameKey(g.Name())]; {
		case prev == nil || g.Name() == "":
			names[nameKey(g.Name())] = g
		case prev.Name() == g.Name():
			v.report(g.Source, g.pos, subject, "metadata.name", "name %s is also used by the %s at %s:%d",
				g.Name(), prev.Kind, prev.Source.File, prev.Source.Line)
		default:
			v.report(g.Source, g.pos, subject, "metadata.name", "name %s is the same hostname as %s, the %s at %s:%d (hostnames ignore case)",
				g.Name(), prev.Name(), prev.Kind, prev.Source.File, prev.Source.Line)
		}
		if prev := vmids[g.Spec.VMID]; prev != nil && g.Spec.VMID != 0 {
			v.report(g.Source, g.pos, subject, "spec.vmid", "VMID %d is also used by %s %s at %s:%d",
				g.Spec.VMID, prev.Kind, prev.Name(), prev.Source.File, prev.Source.Line)
		} else {
			vmids[g.Spec.VMID] = g
		}
		if g.Spec.Renewal != nil {
			for i, id := range g.Spec.Renewal.VMIDs {
				field := fmt.Sprintf("spec.renewal.vmids[%d]", i)
				if prev := vmids[id]; prev != nil {
					v.report(g.Source, g.pos, subject, field, "VMID %d is also used by %s %s at %s:%d",
						id, prev.Kind, prev.Name(), prev.Source.File, prev.Source.Line)
					continue
				}
				vmids[id] = g
			}
		}
		if c := g.Spec.From.Container; c != "" && lin.missing[g] {
			switch p := lin.guest(c); {
			case p == nil:
				v.report(g.Source, g.pos, subject, "spec.from.container", "no Container named %s", c)
			case p == g:
				v.report(g.Source, g.pos, subject, "spec.from.container", "a container cannot be cloned from itself")
			case p.Kind != KindContainer:
				v.report(g.Source, g.pos, subject, "spec.from.container",
					"%s is a Template: clone it with from.template (a template has no snapshots to clone from)", c)
			}
		}
		if t := g.Spec.From.Template; t != "" && lin.missing[g] {
			switch p := lin.guest(t); {
			case p == nil:
				v.report(g.Source, g.pos, subject, "spec.from.template", "no Template named %s", t)
			case p.Kind != KindTemplate:
				v.report(g.Source, g.pos, subject, "spec.from.template",
					"%s is a Container; only a Template can be cloned (make it kind: Template)", t)
			}
		}
	}
	for _, cycle := range lin.cycles {
		g := lin.guest(cycle[0])
		v.report(g.Source, g.pos, string(g.Kind)+" "+g.Name(), "spec.from.template",
			"cycle in the clone lineage: %s", formatCycle(cycle))
	}
	// What needs the lineage: inheritance rules, effective features.
	for _, g := range v.set.Guests {
		if lin.guest(g.Name()) != g {
			continue
		}
		if lin.intact(g) {
			v.guestResolved(g)
		}
	}
	v.staticAddresses()
	v.pinnedMACs()
	v.startOrder()
}

// guestFields checks one document on its own.
func (v *validator) guestFields(g *Guest) {
	subject := strings.TrimSpace(string(g.Kind) + " " + g.Name())
	bad := func(field, format string, args ...any) {
		v.report(g.Source, g.pos, subject, field, format, args...)
	}
	sp := g.Spec
	switch name := g.Name(); {
	case name == "":
		bad("metadata.name", "a %s needs a name (its hostname)", g.Kind)
	case len(name) > maxHostname || !hostnameLabel.MatchString(name):
		bad("metadata.name", "%q is not a valid hostname: up to 63 letters, digits and hyphens, not starting or ending with a hyphen (RFC 1123)", name)
	}
	if h := sp.Hostname; h != "" {
		first, _, _ := strings.Cut(h, ".")
		switch {
		case len(h) > maxDNSName || !dnsName.MatchString(h):
			bad("spec.hostname", "%q is not a valid host name: labels of letters, digits and hyphens (not starting or ending with one) joined by dots, up to %d characters in all", h, maxDNSName)
		case len(first) > maxHostname:
			// Proxmox writes the part before the first dot to /etc/hostname,
			// and Linux host names are at most 64 bytes.
			bad("spec.hostname", "%q: the part before the first dot (%d characters) is the container's host name, which is at most %d characters", h, len(first), maxHostname)
		}
	}
	switch {
	case !g.pos.has("spec.vmid"):
		bad("spec.vmid", "a %s needs a vmid", g.Kind)
	case sp.VMID < MinVMID || sp.VMID > MaxVMID:
		bad("spec.vmid", "VMID %d is outside %d..%d", sp.VMID, MinVMID, MaxVMID)
	}
	switch sp.State {
	case "", StateRunning, StateStopped:
		if sp.State != "" && g.Kind == KindTemplate {
			bad("spec.state", "a Template has no run state: it is converted, never run")
		}
	default:
		bad("spec.state", "want running or stopped, got %q", sp.State)
	}
	if sp.GPUGroup != nil && (*sp.GPUGroup < 0 || *sp.GPUGroup > 65535) {
		bad("spec.gpuGroup", "a gid inside the container, 0..65535, got %d", *sp.GPUGroup)
	}
	if rn := sp.Renewal; rn != nil {
		switch {
		case g.Kind != KindTemplate:
			bad("spec.renewal", "only a Template is renewed: a Container is replaced (--allow-replace)")
		case len(rn.VMIDs) == 0:
			bad("spec.renewal.vmids", "list the VMIDs a new generation may take")
		}
		for i, id := range rn.VMIDs {
			if id < MinVMID || id > MaxVMID {
				bad(fmt.Sprintf("spec.renewal.vmids[%d]", i), "VMID %d is outside %d..%d", id, MinVMID, MaxVMID)
			}
		}
	}
	if sp.Node != "" && !nodeName.MatchString(sp.Node) {
		bad("spec.node", "%q is not a valid node name", sp.Node)
	}
	from := sp.From
	fromSnapshot(g, bad)
	switch {
	case from.Container != "":
	case from.OSTemplate != "" && from.Template != "":
		bad("spec.from", "set either ostemplate (create from an OS template) or template (clone a Template), not both")
	case from.OSTemplate == "" && from.Template == "" && g.Kind == KindTemplate:
		bad("spec.from", "a root Template needs from.ostemplate, e.g. local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst (or from.template to clone another Template)")
	case from.OSTemplate == "" && from.Template == "":
		bad("spec.from", "set from.ostemplate (an OS template volume) or from.template (a Template to clone)")
	case from.OSTemplate != "" && !osTemplate.MatchString(from.OSTemplate):
		if store, rest, ok := strings.Cut(from.OSTemplate, ":"); ok && !storageID.MatchString(store) && osTemplate.MatchString("st:"+rest) {
			bad("spec.from.ostemplate", "in %q, the storage %q is not a valid storage ID: a letter, then letters, digits, '-', '_' or '.', ending in a letter or digit", from.OSTemplate, store)
		} else {
			bad("spec.from.ostemplate", "%q is not a container template volume: want STORAGE:vztmpl/FILE, e.g. local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst", from.OSTemplate)
		}
	}
	checkDownload(from, bad)
	switch sp.CloneMode {
	case "", CloneLinked, CloneFull:
	default:
		bad("spec.cloneMode", "want linked or full, got %q", sp.CloneMode)
	}
	if sp.CloneMode != "" && from.Template == "" && from.Container == "" {
		bad("spec.cloneMode", "cloneMode applies to clones only (this guest is created from an OS template)")
	}
	if sp.Storage != "" {
		switch {
		case !storageID.MatchString(sp.Storage):
			bad("spec.storage", "%q is not a valid storage ID", sp.Storage)
		case from.Template != "" && sp.CloneMode != CloneFull:
			// Proxmox: "parameter 'storage' not allowed for linked clones".
			bad("spec.storage", "a linked clone stays on its template's storage; set cloneMode: full to choose one")
		}
	}
	r := sp.Resources
	if r.Cores != nil && (*r.Cores < 1 || *r.Cores > maxCores) {
		bad("spec.resources.cores", "cores %d is outside 1..%d", *r.Cores, maxCores)
	}
	if r.Memory != nil && *r.Memory < minMemory {
		bad("spec.resources.memory", "memory is in MiB and at least %d, got %d", minMemory, *r.Memory)
	}
	if r.Swap != nil && *r.Swap < 0 {
		bad("spec.resources.swap", "swap is in MiB and cannot be negative, got %d", *r.Swap)
	}
	if r.Disk != nil && *r.Disk < 1 {
		bad("spec.resources.disk", "disk is in GiB and at least 1, got %d", *r.Disk)
	}
	v.network(g, bad)
	v.firewall(g, bad)
	v.security(g, bad)
	v.snapshots(g, bad)
	v.health(g, bad)
	v.mounts(g, bad)
	v.files(g.Spec.Files, g.Source.File, "spec.files", nil, bad)
	if g.Kind == KindTemplate && len(g.Spec.Files) > 0 {
		bad("spec.files", "a Template keeps no files of its own (it never runs once made): give the files to a Feature, which its clones then have, or to the Containers")
	}
	if sp.GPUs != nil {
		seen := map[int]bool{}
		for i, idx := range sp.GPUs.Indices {
			field := fmt.Sprintf("spec.gpus[%d]", i)
			switch {
			case idx < 0:
				bad(field, "GPU index %d is negative", idx)
			case seen[idx]:
				bad(field, "GPU %d is listed twice", idx)
			}
			seen[idx] = true
		}
	}
	seenFeature := map[string]bool{}
	for i, f := range sp.Features {
		field := fmt.Sprintf("spec.features[%d]", i)
		if _, ok := v.res.catalog.Lookup(f); !ok {
			bad(field, "%s", v.unknownFeature(f))
		} else if seenFeature[f] {
			bad(field, "feature %s is listed twice", f)
		}
		seenFeature[f] = true
	}
	for i, t := range sp.Tags {
		if !tagFormat.MatchString(t) {
			bad(fmt.Sprintf("spec.tags[%d]", i), "Proxmox would reject tag %q: one tag per entry, starting with a letter, digit or _, then letters, digits and _ - + .", t)
		}
	}
}

func (v *validator) network(g *Guest, bad func(field, format string, args ...any)) {
	if len(g.Spec.Network) > maxNICs {
		bad("spec.network", "at most %d interfaces (net0..net%d), got %d", maxNICs, maxNICs-1, len(g.Spec.Network))
	}
	names := map[string]bool{}
	for i, n := range g.Spec.Network {
		field := fmt.Sprintf("spec.network[%d]", i)
		switch {
		case n.Name == "":
			bad(field+".name", "an interface needs a name, e.g. eth0")
		case len(n.Name) > 15 || !nicName.MatchString(n.Name):
			bad(field+".name", "%q is not a valid interface name (up to 15 letters, digits, - _ .)", n.Name)
		case names[n.Name]:
			bad(field+".name", "interface %s is listed twice", n.Name)
		}
		names[n.Name] = true
		if n.Bridge != "" && !bridgeName.MatchString(n.Bridge) {
			bad(field+".bridge", "%q is not a valid bridge name", n.Bridge)
		}
		static := false
		switch ip := n.IP; {
		case ip == "" || ip == "dhcp" || ip == "manual":
		default:
			prefix, err := netip.ParsePrefix(ip)
			if err != nil || !prefix.Addr().Is4() {
				bad(field+".ip", "want dhcp, manual or an IPv4 address in CIDR form such as 192.168.1.50/24, got %q", ip)
			}
			static = true
		}
		if n.Gateway != "" {
			if ip := net.ParseIP(n.Gateway); ip == nil || ip.To4() == nil {
				bad(field+".gw", "want an IPv4 address, got %q", n.Gateway)
			} else if !static {
				bad(field+".gw", "a gateway needs a static ip (CIDR); with dhcp the DHCP server provides it")
			}
		}
		if n.VLAN != nil && (*n.VLAN < 1 || *n.VLAN > 4094) {
			bad(field+".vlan", "VLAN tag %d is outside 1..4094", *n.VLAN)
		}
		static6 := false
		switch ip := n.IP6; {
		case ip == "" || ip == "auto" || ip == "dhcp" || ip == "manual":
		default:
			prefix, err := netip.ParsePrefix(ip)
			if err != nil || !prefix.Addr().Is6() || prefix.Addr().Is4In6() {
				bad(field+".ip6", "want auto, dhcp, manual or an IPv6 address in CIDR form such as fd00::50/64, got %q", ip)
			}
			static6 = true
		}
		if n.Gateway6 != "" {
			if a, err := netip.ParseAddr(n.Gateway6); err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
				bad(field+".gw6", "want an IPv6 address, got %q", n.Gateway6)
			} else if !static6 {
				bad(field+".gw6", "an IPv6 gateway needs a static ip6 (CIDR); with auto or dhcp the network provides it")
			}
		}
		if n.HWAddr != "" && !macAddress.MatchString(n.HWAddr) {
			bad(field+".hwaddr", "%q is not a unicast MAC address such as BC:24:11:2A:3B:4C (six hex pairs separated by colons; the first octet even)", n.HWAddr)
		}
		if n.MTU != nil && (*n.MTU < 64 || *n.MTU > 65535) {
			bad(field+".mtu", "MTU %d is outside 64..65535", *n.MTU)
		}
		if n.Rate != nil && (*n.Rate < 0 || math.IsNaN(*n.Rate) || math.IsInf(*n.Rate, 0)) {
			bad(field+".rate", "rate %v is not a number of MB/s, 0 or more", *n.Rate)
		}
		if n.Type != "" && n.Type != "veth" {
			bad(field+".type", "interface type %q: Proxmox knows veth only", n.Type)
		}
	}
	for i, ns := range g.Spec.Nameservers {
		if a, err := netip.ParseAddr(ns); err != nil || a.Zone() != "" {
			bad(fmt.Sprintf("spec.nameservers[%d]", i), "%q is not an IPv4 or IPv6 address", ns)
		}
	}
	for i, d := range g.Spec.SearchDomains {
		if len(d) > maxDNSName || !dnsName.MatchString(d) {
			bad(fmt.Sprintf("spec.searchDomains[%d]", i), "%q is not a DNS name", d)
		}
	}
}

// guestResolved checks what depends on the lineage: inherited settings and the
// effective feature set.
func (v *validator) guestResolved(g *Guest) {
	subject := string(g.Kind) + " " + g.Name()
	bad := func(field, format string, args ...any) {
		v.report(g.Source, g.pos, subject, field, format, args...)
	}
	r := v.res.resolve(g)
	s := r.Settings
	if s.Node == "" {
		bad("spec.node", "no node: set spec.node here, on a template it is cloned from, or defaults.node in the Cluster")
	}
	if g.Spec.From.OSTemplate != "" && s.Storage == "" {
		bad("spec.storage", "no storage for the root disk: set spec.storage or defaults.storage in the Cluster")
	}
	if p := v.res.lin.parent[g]; p != nil {
		ps := v.res.resolve(p).Settings
		if g.Spec.Unprivileged != nil && *g.Spec.Unprivileged != ps.Unprivileged {
			bad("spec.unprivileged", "a clone keeps its template's privilege mode (%s has unprivileged: %t); clone another template instead", p.Name(), ps.Unprivileged)
		}
		mountsResolved(s, ps, bad)
		if s.DiskGiB < ps.DiskGiB {
			bad("spec.resources.disk", "a clone starts with its template's %d GiB disk and disks cannot shrink (got %d)", ps.DiskGiB, s.DiskGiB)
		}
	}
	securityResolved(r, bad)
	v.healthResolved(r, bad)
	if !s.GPUs.Empty() && slices.Contains(r.Effective, FeatureOllama) && !slices.Contains(r.Effective, FeatureNVIDIADriver) {
		// ollama's installer, finding an NVIDIA GPU and no nvidia-smi,
		// installs NVIDIA's cuda-drivers and a kernel module build: the
		// container's driver is the nvidia-driver feature's to install.
		v.diags = append(v.diags, Diagnostic{File: g.Source.File, Line: g.pos.line("spec.features"), Subject: subject, Field: "spec.features",
			Message: "feature ollama on a guest with GPUs needs the nvidia-driver feature (here or on a template): without it ollama runs on the CPU only, and its installer would install NVIDIA's driver packages in the container"})
	}
	if s.GPUs.Empty() {
		for _, f := range r.Effective {
			via := v.res.catalog.gpuVia(f, map[string]bool{})
			if via == "" {
				continue
			}
			why := ""
			if via != f {
				why = " (it requires " + via + ")"
			}
			origin := "listed here"
			if !slices.Contains(r.Own, f) {
				origin = "inherited or required"
			}
			// Point at the features list: that is where the author asked for it.
			line := g.pos.line("spec.features")
			if g.pos.has("spec.gpus") {
				line = g.pos.line("spec.gpus")
			}
			v.diags = append(v.diags, Diagnostic{File: g.Source.File, Line: line, Subject: subject, Field: "spec.gpus",
				Message: fmt.Sprintf("feature %s (%s) needs GPUs%s, but this guest has none: set spec.gpus", f, origin, why)})
			break
		}
	}
	for _, f := range sortedKeys(g.Spec.FeatureConfig) {
		field := "spec.featureConfig." + f
		def, ok := v.res.catalog.Lookup(f)
		if !ok {
			bad(field, "%s", v.unknownFeature(f))
			continue
		}
		if !slices.Contains(r.Effective, f) {
			bad(field, "%s is not among this guest's features (%s)", f, strings.Join(r.Effective, ", "))
			continue
		}
		params := g.Spec.FeatureConfig[f]
		for _, k := range sortedKeys(params) {
			if err := def.checkParam(k, params[k]); err != nil {
				bad(field+"."+k, "%v", err)
			}
		}
	}
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
