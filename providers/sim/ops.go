package sim

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Operations on containers, one per API endpoint that changes something. Each
// runs with c.mu held, checks what Proxmox checks synchronously (answering at
// once with an error), and leaves the slow part to a task. Messages are
// Proxmox's own.

// propString splits a property string ("a=1,b=2", with an optional leading
// value for the default key) into its parts.
func propString(v, defaultKey string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(v, ",") {
		if part == "" {
			continue
		}
		if k, val, ok := strings.Cut(part, "="); ok {
			out[k] = val
		} else if defaultKey != "" {
			out[defaultKey] = part
		}
	}
	return out
}

// printPropString writes parts back, the default key's value first.
func printPropString(parts map[string]string, defaultKey string) string {
	var out []string
	if v, ok := parts[defaultKey]; ok && defaultKey != "" {
		out = append(out, v)
	}
	for _, k := range slices.Sorted(maps.Keys(parts)) {
		if k != defaultKey {
			out = append(out, k+"="+parts[k])
		}
	}
	return strings.Join(out, ",")
}

// configKey reports whether key is a container option at all.
func (c *cluster) configKey(key string) bool {
	if c.configMethod == nil {
		return true
	}
	switch key {
	case "node", "vmid", "delete", "digest", "revert":
		return false
	}
	_, ok := c.configMethod.Property(key)
	return ok
}

// checkModifyPerm is PVE's check_ct_modify_config_perm for the keys only
// root@pam may touch. Tokens never pass, not even root@pam's own.
func checkModifyPerm(who caller, oldConf map[string]string, set map[string]string, del []string) *apiError {
	if who.rootTicket() {
		return nil
	}
	keys := append(slices.Collect(maps.Keys(set)), del...)
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case isIndexed(k, "dev"):
			return permission("configuring device passthrough is only allowed for root@pam")
		case k == "hookscript":
			return permission("changing the hookscript is only allowed for root@pam")
		case k == "features":
			if featuresBeyondNesting(oldConf["features"], set["features"]) {
				return permission("changing feature flags (except nesting) is only allowed for root@pam")
			}
		case k == "rootfs" || isIndexed(k, "mp"):
			if v, ok := set[k]; ok && strings.HasPrefix(propString(v, "volume")["volume"], "/") {
				kind := "bind"
				if strings.HasPrefix(propString(v, "volume")["volume"], "/dev/") {
					kind = "device"
				}
				return permission("mount point type " + kind + " is only allowed for root@pam")
			}
		}
	}
	return nil
}

// featuresBeyondNesting reports whether a features change touches any flag
// other than nesting.
func featuresBeyondNesting(oldV, newV string) bool {
	o, n := propString(oldV, ""), propString(newV, "")
	for _, k := range slices.Concat(slices.Collect(maps.Keys(o)), slices.Collect(maps.Keys(n))) {
		if k != "nesting" && o[k] != n[k] {
			return true
		}
	}
	return false
}

// checkDevices refuses dev[n] entries whose path does not exist on the node:
// applying the change fails, and Proxmox collects that per key into a 400.
func checkDevices(n *node, set map[string]string, running bool) *apiError {
	errs := map[string]string{}
	for k, v := range set {
		if isIndexed(k, "dev") {
			if p := devPath(v); !n.hasDevice(p) {
				if running {
					errs[k] = fmt.Sprintf("unable to hotplug %s: Device %s does not exist", k, p)
				} else {
					errs[k] = fmt.Sprintf("unable to apply pending change %s : Device %s does not exist", k, p)
				}
			}
		}
	}
	if len(errs) > 0 {
		return paramError(errs)
	}
	return nil
}

// volumeName is the root disk a storage type gives a new container.
func volumeName(st WorldStorage, vmid int) string {
	switch st.Type {
	case "zfspool", "btrfs":
		return fmt.Sprintf("%s:subvol-%d-disk-0", st.Name, vmid)
	case "dir", "nfs", "cephfs":
		return fmt.Sprintf("%s:%d/vm-%d-disk-0.raw", st.Name, vmid, vmid)
	}
	return fmt.Sprintf("%s:vm-%d-disk-0", st.Name, vmid)
}

// rootfsStorage returns the storage ID of a rootfs value.
func rootfsStorage(v string) string {
	vol := propString(v, "volume")["volume"]
	s, _, _ := strings.Cut(vol, ":")
	return s
}

// rootfsSizeGiB reads size=NG from a rootfs value.
func rootfsSizeGiB(v string) int {
	size := propString(v, "volume")["size"]
	n, _ := strconv.Atoi(strings.TrimSuffix(size, "G"))
	return n
}

func boolParam(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// createParams are the create parameters that are not config options.
var createOnly = []string{"vmid", "ostemplate", "storage", "start", "password", "ssh-public-keys",
	"pool", "restore", "force", "unique", "ignore-unpack-errors", "bwlimit", "node"}

func (c *cluster) create(who caller, nodeName string, p map[string]string) (any, *apiError) {
	n := c.node(nodeName)
	vmid, _ := strconv.Atoi(p["vmid"])
	if g := c.guests[vmid]; g != nil {
		return nil, die("CT %d already exists on node '%s'", vmid, g.node)
	}
	set := map[string]string{}
	for k, v := range p {
		if !slices.Contains(createOnly, k) {
			set[k] = v
		}
	}
	if err := checkModifyPerm(who, nil, set, nil); err != nil {
		return nil, err
	}
	// check_volume_access (pve-storage src/PVE/Storage.pm) parses the
	// template's volume ID against storage.cfg: a storage it does not know
	// dies here; whether the file is there shows only in the worker.
	templateStorage, _, _ := strings.Cut(p["ostemplate"], ":")
	if _, ok := c.storageDef(templateStorage); !ok && strings.Contains(p["ostemplate"], ":") {
		return nil, die("storage '%s' does not exist", templateStorage)
	}
	storageName := p["storage"]
	if storageName == "" {
		storageName = "local"
	}
	rootfs := set["rootfs"]
	if rootfs == "" {
		rootfs = storageName + ":4"
	}
	vol := propString(rootfs, "volume")["volume"]
	stName, sizeText, _ := strings.Cut(vol, ":")
	// create_vm's check_and_activate_storage (pve-container
	// src/PVE/API2/LXC.pm): enabled on this node, holding rootdir, then
	// activated, all before the worker starts.
	st, aerr := c.storageCheckEnabled(stName, nodeName)
	if aerr != nil {
		return nil, aerr
	}
	if !slices.Contains(st.Content, "rootdir") {
		return nil, paramError(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support container directories", stName)})
	}
	if err := activateStorage(st); err != nil {
		return nil, die("%v", err)
	}
	// Then update_pct_config checks the options, in key order.
	if err := checkDevices(n, set, false); err != nil {
		return nil, err
	}
	if err := netMTUError(n, set); err != nil {
		return nil, err
	}
	size, err := strconv.ParseFloat(sizeText, 64)
	if err != nil || size <= 0 {
		return nil, die("unable to parse volume ID '%s'", vol)
	}
	g := &guest{vmid: vmid, node: nodeName, conf: newConfig(), lock: "create", disk: newDisk(p["ostemplate"])}
	for k, v := range set {
		switch {
		case k == "tags":
			v = normalizeTags(v)
		case k == "description":
			v = storeDescription(v)
		}
		g.conf.vals[k] = v
	}
	for i := range 32 {
		k := fmt.Sprintf("net%d", i)
		if v, ok := g.conf.vals[k]; ok {
			g.conf.vals[k] = c.withMAC(v)
		}
	}
	g.conf.vals["rootfs"] = fmt.Sprintf("%s,size=%dG", volumeName(st, vmid), int(size))
	g.conf.vals["arch"] = "amd64"
	g.conf.vals["ostype"] = g.disk.osID
	for k, def := range map[string]string{"hostname": fmt.Sprintf("CT%d", vmid), "memory": "512", "swap": "512"} {
		if _, ok := g.conf.vals[k]; !ok {
			g.conf.vals[k] = def
		}
	}
	// PVE 9 creates unprivileged containers unless told otherwise; 8 does
	// the opposite. The key is written only when true.
	if _, ok := g.conf.vals["unprivileged"]; !ok && versionAtLeast(c.world.Spec.Version, 9) {
		g.conf.vals["unprivileged"] = "1"
	}
	if g.conf.vals["unprivileged"] == "0" {
		delete(g.conf.vals, "unprivileged")
	}
	c.guests[vmid] = g
	start := boolParam(p["start"])
	t := c.startTask(nodeName, "vzcreate", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Create), func(t *task) error {
		// The worker allocates the root disk, then restore_archive
		// (pve-container src/PVE/LXC/Create.pm) checks the template's
		// storage and activates it to find the file.
		fail := func(err error) error {
			delete(c.guests, vmid)
			return fmt.Errorf("unable to create CT %d - %v", vmid, err)
		}
		if err := allocError(st); err != nil {
			return fail(err)
		}
		if strings.Contains(p["ostemplate"], ":") {
			tst, aerr := c.storageCheckEnabled(templateStorage, nodeName)
			if aerr != nil {
				return fail(errors.New(aerr.Reason))
			}
			if err := activateStorage(tst); err != nil {
				return fail(err)
			}
		}
		if !slices.Contains(c.osTemplates(n), p["ostemplate"]) {
			return fail(fmt.Errorf("can't find file '%s'", p["ostemplate"]))
		}
		t.logf("extracting archive '%s'", p["ostemplate"])
		t.logf("Total bytes read: 527769600 (504MiB, 96MiB/s)")
		t.logf("Detected container architecture: amd64")
		g.lock = ""
		if start {
			// create_vm calls the start API, a worker of its own: the create
			// succeeded even when that start fails (a bridge is missing).
			if err := missingBridge(n, g.conf.vals); err != nil {
				c.startTask(nodeName, "vzstart", strconv.Itoa(vmid), who, 0, func(*task) error { return err })
			} else {
				g.run = c.startRuntime(g)
			}
		}
		return nil
	})
	return t.upid, nil
}

func versionAtLeast(v string, major int) bool {
	m, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(m)
	return n >= major
}

// withMAC gives a net[n] value a fresh MAC address, as create and clone do.
func (c *cluster) withMAC(v string) string {
	parts := propString(v, "")
	parts["hwaddr"] = fmt.Sprintf("BC:24:11:%02X:%02X:%02X", c.rng.IntN(256), c.rng.IntN(256), c.rng.IntN(256))
	if _, ok := parts["type"]; !ok {
		parts["type"] = "veth"
	}
	return printPropString(parts, "")
}

func (c *cluster) clone(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	src, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	n := c.node(nodeName)
	target := nodeName
	if t := p["target"]; t != "" {
		if c.node(t) == nil {
			return nil, die("no such cluster node '%s'", t)
		}
		target = t
	}
	destStorage, haveDest := WorldStorage{}, false
	if s := p["storage"]; s != "" {
		// clone_vm (pve-container src/PVE/API2/LXC.pm) checks the storage
		// is enabled here, then on the target node, then that it is shared.
		ds, aerr := c.storageCheckEnabled(s, nodeName)
		if aerr != nil {
			return nil, aerr
		}
		if target != nodeName {
			if ds, aerr = c.storageCheckEnabled(s, target); aerr != nil {
				return nil, aerr
			}
			if !ds.IsShared() {
				return nil, die("can't clone to non-shared storage '%s'", s)
			}
		}
		destStorage, haveDest = ds, true
	}
	// The source is locked synchronously, before the worker: a second clone
	// of the same source fails at once with the lock error.
	if err := src.checkLock(); err != nil {
		return nil, err
	}
	newid, _ := strconv.Atoi(p["newid"])
	if g := c.guests[newid]; g != nil {
		return nil, die("CT %d already exists on node '%s'", newid, g.node)
	}
	full := !src.isTemplate()
	if v, ok := p["full"]; ok {
		full = boolParam(v)
	}
	if haveDest && !full {
		return nil, die("parameter 'storage' not allowed for linked clones")
	}
	volume := propString(src.conf.vals["rootfs"], "volume")["volume"]
	srcStorage := rootfsStorage(src.conf.vals["rootfs"])
	st, _ := n.storage(srcStorage)
	if full && src.run != nil {
		return nil, die("Full clone of a running container is only possible from a snapshot")
	}
	if !full && (!src.isTemplate() || !st.LinkedClones()) {
		return nil, die("Linked clone feature for '%s' is not available", volume)
	}
	if target != nodeName && !st.IsShared() {
		return nil, die("can't clone CT to node '%s' (CT uses local storage)", target)
	}
	if !haveDest {
		destStorage = st
	}
	src.lock = "disk"
	conf := src.conf.clone()
	conf.pending, conf.pendingDel = map[string]string{}, nil
	for _, k := range []string{"template", "parent", "snaptime", "snapstate"} {
		delete(conf.vals, k)
	}
	for k, v := range conf.vals {
		if isIndexed(k, "net") {
			conf.vals[k] = c.withMAC(v)
		}
		if isIndexed(k, "unused") {
			delete(conf.vals, k)
		}
	}
	if h := p["hostname"]; h != "" {
		conf.vals["hostname"] = h
	}
	if d := p["description"]; d != "" {
		conf.vals["description"] = storeDescription(d)
	}
	size := rootfsSizeGiB(src.conf.vals["rootfs"])
	if full {
		conf.vals["rootfs"] = fmt.Sprintf("%s,size=%dG", volumeName(destStorage, newid), size)
	} else {
		base := strings.TrimPrefix(volume, srcStorage+":")
		conf.vals["rootfs"] = fmt.Sprintf("%s:%s/vm-%d-disk-0,size=%dG", srcStorage, base, newid, size)
	}
	dst := &guest{vmid: newid, node: target, conf: conf, lock: "create", disk: src.disk.clone()}
	c.guests[newid] = dst
	d := c.world.Spec.Durations.Clone
	if full {
		d = c.world.Spec.Durations.FullClone
	}
	fullClones := c.fullClones[destStorage.Name]
	if full {
		c.fullClones[destStorage.Name]++
	}
	t := c.startTask(nodeName, "vzclone", strconv.Itoa(vmid), who, c.world.Scaled(d), func(t *task) error {
		if full {
			c.fullClones[destStorage.Name]--
		}
		t.logf("creating a clone of container %d with ID %d", vmid, newid)
		// Full clones allocate under the storage's lock; several at once time
		// out on it. Retrying later works.
		if full && fullClones > 0 {
			src.lock = ""
			delete(c.guests, newid)
			return fmt.Errorf("clone failed: can't lock file '/var/lock/pve-manager/pve-storage-%s' - got timeout", destStorage.Name)
		}
		if full {
			t.logf("create full clone of mountpoint rootfs (%s)", volume)
		} else {
			t.logf("create linked clone of mount point rootfs (%s)", volume)
		}
		src.lock = ""
		dst.lock = ""
		return nil
	})
	return t.upid, nil
}

// changeable finds a container a config change may go to: it exists, holds
// no lock, and (when the request sends one) its digest still matches, which
// Proxmox checks in this order.
func (c *cluster) changeable(nodeName string, vmid int, p map[string]string) (*guest, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if err := g.checkLock(); err != nil {
		return nil, err
	}
	if d, ok := p["digest"]; ok && d != g.conf.digest() {
		return nil, die("detected modified configuration - file changed by other user? Try again.")
	}
	return g, nil
}

// setConfig is PUT .../config: synchronous, digest-checked, hot-plugged or
// pending on a running container.
func (c *cluster) setConfig(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	g, err := c.changeable(nodeName, vmid, p)
	if err != nil {
		return nil, err
	}
	options := 0
	for k := range p {
		if k != "node" && k != "vmid" && k != "digest" {
			options++
		}
	}
	if options == 0 {
		return nil, die("no options specified")
	}
	var del []string
	for k := range strings.SplitSeq(p["delete"], ",") {
		if k = strings.TrimSpace(k); k != "" {
			del = append(del, k)
		}
	}
	set := map[string]string{}
	for k, v := range p {
		if k != "delete" && k != "digest" && k != "revert" && k != "node" && k != "vmid" {
			set[k] = v
		}
	}
	if err := checkModifyPerm(who, g.conf.effective(), set, del); err != nil {
		return nil, err
	}
	for _, k := range del {
		if _, both := set[k]; both {
			return nil, paramError(map[string]string{"delete": "you can't use '-" + k + "' and -delete " + k + "' at the same time"})
		}
		if !c.configKey(k) {
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("unknown option '%s'", k)})
		}
		switch k {
		case "memory", "rootfs", "ostype":
			return nil, die("unable to delete required option '%s'", k)
		case "unprivileged":
			return nil, die("unable to delete read-only option: 'unprivileged'")
		}
	}
	if v, ok := set["unprivileged"]; ok && boolParam(v) != (g.conf.vals["unprivileged"] == "1") {
		return nil, die("unable to modify read-only option: 'unprivileged'")
	}
	running := g.run != nil
	n := c.node(nodeName)
	if err := checkDevices(n, set, running); err != nil {
		return nil, err
	}
	if err := netMTUError(n, set); err != nil {
		return nil, err
	}
	vals := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		v := set[k]
		switch {
		case k == "tags":
			v = normalizeTags(v)
		case k == "description":
			v = storeDescription(v)
		case isIndexed(k, "net"):
			if old, ok := g.conf.vals[k]; ok {
				if mac := propString(old, "")["hwaddr"]; mac != "" && propString(v, "")["hwaddr"] == "" {
					parts := propString(v, "")
					parts["hwaddr"] = mac
					if _, ok := parts["type"]; !ok {
						parts["type"] = "veth"
					}
					v = printPropString(parts, "")
				}
			} else {
				v = c.withMAC(v)
			}
		}
		vals[k] = v
	}
	// update_vm (pve-container src/PVE/API2/LXC/Config.pm) writes nothing
	// when a hot-plug failed, except what update_net wrote itself on the way.
	orig := g.conf.clone()
	var written *ctConfig
	for _, k := range del {
		if _, set := g.conf.effective()[k]; !set {
			continue // Proxmox only warns: "cannot delete 'k' - not set in current configuration!"
		}
		if running && !hotplug(k, true) {
			if !slices.Contains(g.conf.pendingDel, k) {
				g.conf.pendingDel = append(g.conf.pendingDel, k)
			}
			delete(g.conf.pending, k)
			continue
		}
		delete(g.conf.vals, k)
		delete(g.conf.pending, k)
	}
	errs := map[string]string{}
	keys := slices.Sorted(maps.Keys(vals))
	for i, k := range keys {
		v := vals[k]
		old, existing := g.conf.vals[k]
		if running && isIndexed(k, "net") {
			msg, recreated := hotplugNetError(n, old, existing, v)
			if recreated {
				delete(g.conf.vals, k)
				written = writtenMidHotplug(g.conf, keys[i+1:], vals)
			}
			if msg != "" {
				errs[k] = "unable to hotplug " + k + ": " + msg
				continue
			}
		}
		if running && !hotplug(k, existing) {
			g.conf.pending[k] = v
			g.conf.pendingDel = slices.DeleteFunc(g.conf.pendingDel, func(x string) bool { return x == k })
			continue
		}
		g.conf.vals[k] = v
	}
	if len(errs) > 0 {
		g.conf = orig
		if written != nil {
			g.conf = written
		}
		return nil, paramError(errs)
	}
	// After writing the config, update_vm regenerates the lxc config, which
	// reads every bridge's MTU: the change is saved, the answer a 500.
	if err := missingBridge(n, g.conf.vals); err != nil {
		return nil, die("%v", err)
	}
	return nil, nil
}

// fastplug are PVE::LXC::Config's LXC_FASTPLUG_OPTIONS: on a running
// container they move from pending into the config before anything is
// hot-plugged.
var fastplug = []string{"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"}

// writtenMidHotplug is the config update_net writes when it recreates an
// interface (pve-container src/PVE/LXC.pm): the options handled so far, the
// fast-plug ones, and everything still to be hot-plugged as pending, the
// interface itself gone.
func writtenMidHotplug(conf *ctConfig, rest []string, vals map[string]string) *ctConfig {
	w := conf.clone()
	for _, k := range rest {
		if slices.Contains(fastplug, k) {
			w.vals[k] = vals[k]
			continue
		}
		w.pending[k] = vals[k]
		w.pendingDel = slices.DeleteFunc(w.pendingDel, func(x string) bool { return x == k })
	}
	return w
}

func (c *cluster) start(who caller, nodeName string, vmid int) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.run != nil {
		return nil, die("CT %d already running", vmid)
	}
	t := c.startTask(nodeName, "vzstart", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Start), func(t *task) error {
		// Start checks the template flag and the lock inside the worker: a
		// failed task, not a 500.
		if g.isTemplate() {
			return errors.New("you can't start a CT if it's a template")
		}
		if err := g.checkLock(); err != nil {
			return errors.New(err.Reason)
		}
		if g.run != nil {
			return fmt.Errorf("CT %d already running", vmid)
		}
		g.conf.applyPending()
		// The pre-start hook reads each passed device's numbers on the node: a
		// device that is not there (nvidia-uvm not loaded after a host reboot)
		// fails the start.
		for _, k := range sortedDevKeys(g.conf.vals) {
			if p := devPath(g.conf.vals[k]); !c.node(g.node).hasDevice(p) {
				t.logf("Device %s does not exist", p)
				return fmt.Errorf("startup for container '%d' failed", vmid)
			}
		}
		// vm_start regenerates the lxc config before lxc-start runs, reading
		// every bridge's MTU (pve-container src/PVE/LXC.pm update_lxc_config).
		if err := missingBridge(c.node(g.node), g.conf.vals); err != nil {
			return err
		}
		g.run = c.startRuntime(g)
		return nil
	})
	return t.upid, nil
}

func (c *cluster) stop(who caller, nodeName string, vmid int, typ string) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.run == nil {
		return nil, die("CT %d not running", vmid)
	}
	d := c.world.Spec.Durations.Stop
	if typ == "vzshutdown" {
		d = c.world.Spec.Durations.Shutdown
	}
	t := c.startTask(nodeName, typ, strconv.Itoa(vmid), who, c.world.Scaled(d), func(t *task) error {
		if g.lock != "" && !(typ == "vzstop" && g.lock == "mounted") {
			return fmt.Errorf("CT is locked (%s)", g.lock)
		}
		g.run = nil
		return nil
	})
	return t.upid, nil
}

func (c *cluster) reboot(who caller, nodeName string, vmid int) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.run == nil {
		return nil, die("VM %d not running", vmid) // sic: reboot says VM
	}
	t := c.startTask(nodeName, "vzreboot", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Reboot), func(t *task) error {
		if g.run == nil {
			return fmt.Errorf("CT %d not running", vmid)
		}
		g.conf.applyPending()
		// vm_reboot stops the container, then vm_start fails like a start
		// does (pve-container src/PVE/LXC.pm): the container stays stopped.
		if err := missingBridge(c.node(g.node), g.conf.vals); err != nil {
			g.run = nil
			return err
		}
		g.run = c.startRuntime(g)
		return nil
	})
	return t.upid, nil
}

// template converts a container in the background and answers null: the
// worker's UPID is not returned, so clients poll the config for template: 1.
func (c *cluster) template(who caller, nodeName string, vmid int) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if err := g.checkLock(); err != nil {
		return nil, err
	}
	if g.isTemplate() {
		return nil, die("you can't convert a template to a template")
	}
	if g.run != nil {
		return nil, die("you can't convert a CT to template if the CT is running")
	}
	c.startTask(nodeName, "vztemplate", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Template), func(t *task) error {
		root := propString(g.conf.vals["rootfs"], "volume")
		root["volume"] = strings.Replace(root["volume"], fmt.Sprintf("vm-%d-disk", vmid), fmt.Sprintf("base-%d-disk", vmid), 1)
		g.conf.vals["rootfs"] = printPropString(root, "volume")
		g.conf.vals["template"] = "1"
		return nil
	})
	return nil, nil
}

func (c *cluster) destroy(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	g, err := c.lookup(nodeName, vmid)
	if err != nil {
		return nil, err
	}
	if g.conf.vals["protection"] == "1" {
		return nil, die("can't remove CT %d - protection mode enabled", vmid)
	}
	if err := g.checkLock(); err != nil {
		return nil, err
	}
	if g.run != nil && !boolParam(p["force"]) {
		return nil, die("unable to destroy CT %d - container is running", vmid)
	}
	g.lock = "destroyed"
	t := c.startTask(nodeName, "vzdestroy", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Destroy), func(t *task) error {
		base := propString(g.conf.vals["rootfs"], "volume")["volume"]
		for _, other := range c.guests {
			if other != g && strings.Contains(other.conf.vals["rootfs"], base+"/") {
				g.lock = ""
				return fmt.Errorf("base volume '%s' is still in use by linked clone", base)
			}
		}
		if g.run != nil {
			t.logf("forced to stop CT %d before destroying!", vmid)
			g.run = nil
		}
		delete(c.guests, vmid)
		t.logf("Logical volume \"%s\" successfully removed.", strings.TrimPrefix(base, rootfsStorage(g.conf.vals["rootfs"])+":"))
		return nil
	})
	return t.upid, nil
}

func (c *cluster) resize(who caller, nodeName string, vmid int, p map[string]string) (any, *apiError) {
	g, err := c.changeable(nodeName, vmid, p)
	if err != nil {
		return nil, err
	}
	if p["disk"] != "rootfs" {
		if _, ok := g.conf.vals[p["disk"]]; !ok {
			return nil, die("unable to parse volume ID '%s'", p["disk"])
		}
	}
	cur := rootfsSizeGiB(g.conf.vals["rootfs"])
	spec := p["size"]
	rel := strings.HasPrefix(spec, "+")
	num, err2 := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(spec, "+"), "G"), 64)
	if err2 != nil {
		return nil, paramError(map[string]string{"size": "value does not match the regex pattern"})
	}
	want := int(num)
	if rel {
		want = cur + int(num)
	}
	if want < cur {
		return nil, die("unable to shrink disk size")
	}
	if want == cur {
		return nil, die("disk is already at specified size")
	}
	t := c.startTask(nodeName, "resize", strconv.Itoa(vmid), who, c.world.Scaled(c.world.Spec.Durations.Resize), func(t *task) error {
		root := propString(g.conf.vals["rootfs"], "volume")
		root["size"] = fmt.Sprintf("%dG", want)
		g.conf.vals["rootfs"] = printPropString(root, "volume")
		t.logf("Size of logical volume changed from %d.00 GiB to %d.00 GiB.", cur, want)
		return nil
	})
	return t.upid, nil
}
