package importer

import (
	"encoding/json"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// What the original ran in and around a container, beyond installing it:
// the vLLM server's settings, a health check, and lifecycle snapshots.

// vllmConf is what a container's vllm_engine_config (or the older flat
// vllm_* keys) says of the server, read; carried in build, once the guest's
// features (inherited ones too) are known.
type vllmConf struct {
	paths            []string // the keys it was read from, for the report
	model, modelPath string
	host, hostPath   string
	port, portPath   string
	flags            []serveFlag
	flagNames        map[string]int // flag -> index in flags
	carried          bool
}

// serveFlag is one vllm serve flag: --name value, or --name alone for a
// boolean that is true.
type serveFlag struct {
	name, value, path string
}

// The formats spec/builtin_runtime.go holds the vllm feature's settings to:
// each reaches the unit's ExecStart.
var (
	vllmModel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/@-]*$`)
	vllmHost  = regexp.MustCompile(`^(\[?[0-9A-Fa-f:.]+\]?|[A-Za-z0-9.-]+)$`)
	vllmWord  = regexp.MustCompile(`^[A-Za-z0-9._/=:,+-]+$`)
	flagName  = regexp.MustCompile(`^--[a-z0-9][a-z0-9-]*$`)
)

// flagOrder is the order the args setting lists the flags the original's
// configs use; any other follows, by name.
var flagOrder = []string{"--served-model-name", "--max-model-len", "--dtype", "--trust-remote-code", "--quantization",
	"--kv-cache-dtype", "--gpu-memory-utilization", "--tensor-parallel-size", "--max-num-batched-tokens", "--max-num-seqs"}

// scalar is a JSON string, number or boolean as vllm serve takes it.
func scalarWord(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// add sets a flag from a config key; a flag set already (by vllm_args, or
// an earlier key) keeps its value and the report says so.
func (im *importer) addFlag(c *vllmConf, name, p string, v any) {
	w, ok := scalarWord(v)
	switch {
	case !ok:
		im.r.note(p, "not carried: %s is not a value of vllm serve's %s (a string, number or boolean)", describe(v), name)
		return
	case w == "false":
		// vllm serve's boolean flags are off unless given.
		return
	case w == "true":
		w = ""
	case !vllmWord.MatchString(w):
		im.r.note(p, "not carried: %q cannot be a word of the vllm feature's args setting (letters, digits and . _ / = : , + - only; it reaches the unit's ExecStart)", w)
		return
	}
	if i, dup := c.flagNames[name]; dup {
		if c.flags[i].value != w {
			im.r.note(p, "ignored: %s says %s %s", c.flags[i].path, name, cmpOr(c.flags[i].value, "(set)"))
		}
		return
	}
	if c.flagNames == nil {
		c.flagNames = map[string]int{}
	}
	c.flagNames[name] = len(c.flags)
	c.flags = append(c.flags, serveFlag{name: name, value: w, path: p})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func keyFlag(key string) string { return "--" + strings.ReplaceAll(strings.ToLower(key), "_", "-") }

// vllm reads the server's settings: vllm_engine_config, else the flat keys
// of the first versions (vllm_model, vllm_port, vllm_args, ...), which the
// original turned into vllm serve's flags.
func (im *importer) vllm(g *guest, o *object) {
	r := im.r
	c := &vllmConf{}
	setModel := func(p string, v any) {
		if s, ok := v.(string); ok && s != "" {
			c.model, c.modelPath = s, p
		} else if ok := v != nil; ok {
			r.note(p, "not carried: the model is a string, got %s", describe(v))
		}
	}
	setPort := func(p string, v any) {
		if w, ok := scalarWord(v); ok && w != "" {
			c.port, c.portPath = w, p
		}
	}
	if ec := r.child(o, "vllm_engine_config"); ec != nil {
		c.paths = []string{ec.path}
		for _, k := range []string{"vllm_model", "vllm_port", "vllm_args", "vllm_parameters", "vllm_served_model_name", "vllm_max_model_len",
			"vllm_quantization", "vllm_tensor_parallel_size", "vllm_trust_remote_code", "vllm_gpu_memory_utilization"} {
			r.skip(o, k, "ignored: vllm_engine_config gives the vLLM server's settings")
		}
		for _, sec := range slices.Sorted(maps.Keys(ec.m)) {
			so := r.child(ec, sec)
			if so == nil {
				continue
			}
			for _, k := range slices.Sorted(maps.Keys(so.m)) {
				v, _ := so.take(k)
				p := so.at(k)
				switch {
				case v == nil:
				case sec == "ModelConfig" && k == "model":
					setModel(p, v)
				case sec == "ServerConfig" && k == "host":
					if s, ok := v.(string); ok {
						c.host, c.hostPath = s, p
					} else {
						r.note(p, "not carried: the host is a string, got %s", describe(v))
					}
				case sec == "ServerConfig" && k == "port":
					setPort(p, v)
				default:
					// vLLM's engine arguments are its config classes' fields,
					// each the flag --field-name.
					im.addFlag(c, keyFlag(k), p, v)
				}
			}
		}
		c.carried = true
	} else {
		for _, k := range []string{"vllm_model", "vllm_port", "vllm_args", "vllm_served_model_name", "vllm_max_model_len", "vllm_quantization",
			"vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_trust_remote_code", "vllm_parameters"} {
			if o.m[k] != nil {
				c.paths = append(c.paths, o.at(k))
			}
		}
		if v, ok := o.take("vllm_model"); ok {
			setModel(o.at("vllm_model"), v)
		}
		if v, ok := o.take("vllm_port"); ok {
			setPort(o.at("vllm_port"), v)
		}
		// vllm_args is the command line the original wrote: it goes first,
		// and a key saying a flag again is ignored where it differs.
		if args, ok := r.list(o, "vllm_args"); ok {
			im.vllmArgs(c, o.at("vllm_args"), args)
		}
		for _, k := range []string{"vllm_served_model_name", "vllm_max_model_len", "vllm_quantization", "vllm_gpu_memory_utilization",
			"vllm_tensor_parallel_size", "vllm_trust_remote_code"} {
			if v, ok := o.take(k); ok {
				im.addFlag(c, keyFlag(strings.TrimPrefix(k, "vllm_")), o.at(k), v)
			}
		}
		if po := r.child(o, "vllm_parameters"); po != nil {
			for _, k := range slices.Sorted(maps.Keys(po.m)) {
				if v, ok := po.take(k); ok {
					im.addFlag(c, keyFlag(k), po.at(k), v)
				}
			}
		}
		c.carried = len(c.paths) > 0
	}
	r.skip(o, "vllm_model_type", "not carried: it chose the endpoint of the original's smoke-test request (chat or embeddings); vllm serve takes the task from the model")
	r.skip(o, "vllm", "no home in phoenix yet: the original's test scripts")
	if c.carried {
		g.vllm = c
	}
}

// vllmArgs reads vllm_args, a list of vllm serve's words: a flag, then its
// value unless the next word is a flag too.
func (im *importer) vllmArgs(c *vllmConf, p string, args []any) {
	for i := 0; i < len(args); i++ {
		ip := index(p, i)
		w, ok := args[i].(string)
		if !ok || !flagName.MatchString(w) {
			im.r.note(ip, "not carried: %s is not a flag of vllm serve (--name)", describe(args[i]))
			continue
		}
		var v any = true
		if i+1 < len(args) {
			if n, isStr := args[i+1].(string); !isStr || !strings.HasPrefix(n, "--") {
				v = args[i+1]
				i++
			}
		}
		if w == "--model" || w == "--host" || w == "--port" {
			s, ok := v.(string)
			switch {
			case !ok:
				im.r.note(ip, "not carried: %s takes a value", w)
			case w == "--model":
				c.model, c.modelPath = s, ip
			case w == "--host":
				c.host, c.hostPath = s, ip
			default:
				c.port, c.portPath = s, ip
			}
			continue
		}
		im.addFlag(c, w, ip, v)
	}
}

// carryVLLM sets featureConfig.vllm on a guest with the vllm feature: the
// model, host, port and args settings, each only where it differs from
// what the guest's template gives it.
func (im *importer) carryVLLM(g *guest) {
	c := g.vllm
	if c == nil {
		return
	}
	r := im.r
	if !g.effective[spec.FeatureVLLM] {
		for _, p := range c.paths {
			r.note(p, "not carried: the container has no vllm feature (its own or its template's), which runs the vLLM server")
		}
		return
	}
	want := spec.Params{}
	switch {
	case c.model == "":
		for _, p := range c.paths {
			r.note(p, "not carried: no model is named, and the vllm feature serves nothing without one")
		}
		return
	case !vllmModel.MatchString(c.model):
		r.note(c.modelPath, "not carried: %q is not a model the vllm feature's model setting takes (a Hugging Face id such as Qwen/Qwen2.5-7B-Instruct, or a relative path): without it no server is written", c.model)
		return
	}
	want["model"] = c.model
	if c.host != "" {
		if vllmHost.MatchString(c.host) {
			want["host"] = c.host
		} else {
			r.note(c.hostPath, "not carried: %q is not an address the vllm feature's host setting takes", c.host)
		}
	}
	if c.port != "" {
		if n, err := strconv.Atoi(c.port); err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == c.port {
			want["port"] = c.port
		} else {
			r.note(c.portPath, "not carried: %s is not a port, 1-65535", c.port)
		}
	}
	flags := slices.Clone(c.flags)
	rank := func(f serveFlag) int {
		if i := slices.Index(flagOrder, f.name); i >= 0 {
			return i
		}
		return len(flagOrder)
	}
	slices.SortStableFunc(flags, func(a, b serveFlag) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.name, b.name)
	})
	var words []string
	for _, f := range flags {
		words = append(words, f.name)
		if f.value != "" {
			words = append(words, f.value)
		}
	}
	want["args"] = strings.Join(words, " ")
	// What the template gives the clone, which the clone's featureConfig
	// overrides key by key.
	inherited := spec.Params{}
	var chain []*guest
	for p := im.byID[g.parentID]; p != nil; p = im.byID[p.parentID] {
		chain = append(chain, p)
	}
	for _, p := range slices.Backward(chain) {
		maps.Copy(inherited, p.g.Spec.FeatureConfig[spec.FeatureVLLM])
	}
	set := spec.Params{}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := inherited[k]; (ok && v != want[k]) || (!ok && want[k] != "") {
			set[k] = want[k]
		}
	}
	// Settings the template has and this config leaves at vLLM's default.
	for _, k := range []string{"host", "port"} {
		if _, ok := want[k]; !ok && inherited[k] != "" {
			r.note(c.paths[0], "the %s is not given: the container keeps its template's, %s", k, inherited[k])
		}
	}
	if len(set) == 0 {
		return
	}
	s := &g.g.Spec
	if s.FeatureConfig == nil {
		s.FeatureConfig = map[string]spec.Params{}
	}
	s.FeatureConfig[spec.FeatureVLLM] = set
}

// healthConf is a container's health_check, read.
type healthConf struct {
	path, command, commandPath string
	retries, interval          int
	hasRetries, hasInterval    bool
}

// originalBase is where the original installed itself on the Proxmox host.
const originalBase = "/usr/local/phoenix_hypervisor/"

func (im *importer) healthCheck(g *guest, o *object) {
	r := im.r
	ho := r.child(o, "health_check")
	if ho == nil {
		return
	}
	h := &healthConf{path: ho.path, commandPath: ho.at("command")}
	h.command, _ = r.str(ho, "command")
	h.retries, h.hasRetries = r.integer(ho, "retries")
	h.interval, h.hasInterval = r.integer(ho, "interval")
	r.rest(ho)
	if strings.TrimSpace(h.command) == "" {
		return
	}
	g.health = h
}

// carryHealth makes the original's health_check a command check of the
// container's. The original ran it with pct exec once the container was
// set up, retrying retries times interval seconds apart; phoenix runs it
// every interval and calls the container Unhealthy after retries failures
// in a row. A command that is a script of the original's own directory on
// the Proxmox host is not in the guest: with --scripts it goes into the
// guest as a file at the same path, else the check is not carried.
func (im *importer) carryHealth(g *guest) {
	h := g.health
	if h == nil {
		return
	}
	r := im.r
	if g.g.Kind == spec.KindTemplate {
		r.note(h.path, "not carried: %s is a Template in phoenix, which never runs; give the check to its clones", g.name)
		return
	}
	check := spec.HealthCheck{Name: "health-check", Command: h.command}
	var file *spec.File
	prog := strings.Fields(h.command)[0]
	if rel, ours := strings.CutPrefix(prog, originalBase+"bin/"); ours {
		name := userFeatureName(strings.TrimPrefix(strings.TrimSuffix(path.Base(rel), ".sh"), "check_"))
		if name != "" {
			check.Name = "check-" + name
		}
		_, content := (&featureSet{im: im}).script(rel)
		if content == nil {
			why := "no --scripts directory was given"
			if im.opt.Scripts != nil {
				why = rel + " is not in the --scripts directory"
			}
			r.note(h.commandPath, "not carried: %s is a file of the original's on the Proxmox host, not in the container, where phoenix runs its checks, and %s (with it, the script goes into the container at that path and the check runs it)", prog, why)
			return
		}
		file = &spec.File{Path: prog, Content: string(content), Verbatim: true, Mode: "0755"}
		r.note(h.commandPath, "carried over as it is: %s is written into the container from --scripts %s, and the check %s runs it there; review it: the original kept it on the Proxmox host", prog, rel, check.Name)
	}
	if h.hasRetries {
		if h.retries >= 1 && h.retries <= 100 {
			check.Retries = h.retries
		} else {
			r.note(h.path+".retries", "not carried: %d is outside 1..100; the default, %d, is kept", h.retries, spec.DefaultHealthRetries)
		}
	}
	if h.hasInterval {
		switch {
		case h.interval >= 1 && h.interval <= 86400:
			check.Interval = strconv.Itoa(h.interval) + "s"
			if int(spec.DefaultHealthTimeout.Seconds()) > h.interval {
				// A run may not outlast the interval.
				check.Timeout = check.Interval
			}
		default:
			r.note(h.path+".interval", "not carried: %d seconds is outside 1s..24h; the default, %v, is kept", h.interval, spec.DefaultHealthInterval)
		}
	}
	r.note(h.path, "carried as the health check %s: the original ran it once the container was set up, retrying; phoenix runs it on its interval for as long as the container runs, and reports it (status, metrics) after retries failures in a row", check.Name)
	s := &g.g.Spec
	s.Health = append(s.Health, check)
	if file != nil {
		s.Files = append(s.Files, *file)
	}
}

// snapshotConf is what a container says of snapshots.
type snapshotConf struct {
	lifecycle      bool
	lifecyclePath  string
	name, namePath string
}

// phoenix's own rules for a snapshot name (spec/snapshots.go), which
// follow Proxmox's pve-snapshot-name.
var snapshotName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{1,39}$`)

// carrySnapshots: enable_lifecycle_snapshots is a snapshot before the
// original changed the container and one once it was done (its
// pre-configured and final-form snapshots), phoenix's before and after; a
// template_snapshot_name is the after snapshot's name. A Template takes
// none: Proxmox takes no snapshot of a template, and phoenix's clones of one
// are clones of the template itself, which is what the original's snapshot
// was cloned for.
func (im *importer) carrySnapshots(g *guest) {
	c := g.snapshots
	r := im.r
	if !c.lifecycle && c.name == "" {
		return
	}
	if g.g.Kind == spec.KindTemplate {
		if c.lifecycle {
			r.note(c.lifecyclePath, "not carried: %s is a Template in phoenix, and Proxmox takes no snapshot of a template (\"you can't take a snapshot if it's a template\"); its clones may ask for snapshots", g.name)
		}
		if c.name != "" {
			r.note(c.namePath, "not carried: %s is a Template in phoenix, and its clones are made from the template itself, which is what the original's snapshot %s was for (Proxmox takes no snapshot of a template)", g.name, c.name)
		}
		return
	}
	sn := &spec.Snapshots{Before: c.lifecycle, After: c.lifecycle}
	if c.name != "" {
		switch {
		case !snapshotName.MatchString(c.name) || c.name == "current" || c.name == "vzdump" || strings.HasPrefix(c.name, spec.SnapshotBeforePrefix):
			r.note(c.namePath, "not carried: %q is not a snapshot name phoenix takes (a letter, then letters, digits, - and _, 2 to 40 characters; not current, vzdump or phoenix-before-...)", c.name)
		default:
			sn.After, sn.Name = true, c.name
		}
	}
	if sn.Before || sn.After {
		g.g.Spec.Snapshots = sn
	}
}
