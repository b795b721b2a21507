package sim

import (
	"crypto/sha1"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// ctConfig is a container's configuration as /etc/pve/lxc/N.conf holds it:
// key/value options, raw lxc.* lines in order, and pending changes that wait
// for the next restart.
type ctConfig struct {
	vals       map[string]string
	lxc        [][2]string
	pending    map[string]string
	pendingDel []string
}

func newConfig() *ctConfig {
	return &ctConfig{vals: map[string]string{}, pending: map[string]string{}}
}

func (c *ctConfig) clone() *ctConfig {
	return &ctConfig{
		vals: maps.Clone(c.vals), lxc: slices.Clone(c.lxc),
		pending: maps.Clone(c.pending), pendingDel: slices.Clone(c.pendingDel),
	}
}

// effective returns the options with pending changes applied: what GET config
// answers by default.
func (c *ctConfig) effective() map[string]string {
	out := maps.Clone(c.vals)
	for _, k := range c.pendingDel {
		delete(out, k)
	}
	maps.Copy(out, c.pending)
	return out
}

// applyPending makes pending changes current, as a restart does.
func (c *ctConfig) applyPending() {
	old := c.vals
	c.vals = c.effective()
	// vmconfig_apply_pending keeps the volume of a mount point deleted or
	// replaced as unusedN (pve-container src/PVE/LXC/Config.pm).
	for _, k := range mountPointKeys(old) {
		if c.vals[k] != old[k] {
			unuseVolume(c.vals, old[k])
		}
	}
	c.pending = map[string]string{}
	c.pendingDel = nil
}

// digest is the SHA-1 Proxmox reports for optimistic concurrency: it changes
// whenever the file would.
func (c *ctConfig) digest() string {
	h := sha1.New()
	write := func(prefix string, m map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			h.Write([]byte(prefix + k + ": " + m[k] + "\n"))
		}
	}
	write("", c.vals)
	for _, l := range c.lxc {
		h.Write([]byte(l[0] + ": " + l[1] + "\n"))
	}
	write("[pending] ", c.pending)
	h.Write([]byte("[pending] delete: " + strings.Join(c.pendingDel, ",")))
	return hex.EncodeToString(h.Sum(nil))
}

// intKeys are the options Proxmox answers as JSON numbers. Everything else is a
// string, cpulimit included (a trap for typed clients).
var intKeys = map[string]bool{
	"cores": true, "memory": true, "swap": true, "onboot": true, "protection": true,
	"unprivileged": true, "template": true, "cpuunits": true, "tty": true, "console": true,
	"debug": true,
}

// jsonValue renders one option the way the API answers it.
func jsonValue(key, v string) any {
	if intKeys[key] {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return v
}

// hotplug says whether an option changes at once on a running container or
// waits in pending for a restart (PVE::LXC::Config's hotplug handling).
func hotplug(key string, existing bool) bool {
	switch {
	case key == "cpulimit", key == "cpuunits", key == "memory", key == "swap", key == "description",
		key == "onboot", key == "startup", key == "protection", key == "hostname", key == "hookscript",
		key == "cores", key == "tags", key == "lock":
		return true
	case strings.HasPrefix(key, "net"):
		return true
	case strings.HasPrefix(key, "mp"), strings.HasPrefix(key, "dev"):
		// A new mount point or device is hot-plugged; changing one is not.
		return !existing
	}
	return false
}

// storeDescription keeps a description the way the config file does: as
// comment lines, which read back with a trailing newline.
func storeDescription(v string) string {
	return strings.TrimRight(v, "\n")
}

func readDescription(v string) string {
	if v == "" {
		return ""
	}
	return v + "\n"
}

// normalizeTags stores tags as Proxmox does by default: split on , ; and
// space, lower case, unique, sorted, joined with ;.
func normalizeTags(v string) string {
	var out []string
	for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		out = append(out, strings.ToLower(t))
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ";")
}
