package pveapi

import (
	"fmt"
	"sort"
	"strings"
)

// A format is what PVE::JSONSchema::register_format registers: a code validator (fn)
// or a hash of property-string keys (hash), optionally with a validator run on the
// parsed keys (hashCheck).
type formatEntry struct {
	fn        func(string) error
	hash      map[string]*Property
	hashCheck func(map[string]string) error
}

type formatRegistry struct {
	version Version
	entries map[string]*formatEntry
}

func (r *formatRegistry) get(name string) (*formatEntry, bool) {
	e, ok := r.entries[name]
	return e, ok
}

func (r *formatRegistry) code(name string, fn func(string) error) {
	r.entries[name] = &formatEntry{fn: fn}
}

func (r *formatRegistry) hashFormat(name string, hash map[string]*Property, check func(map[string]string) error) {
	for k, p := range hash {
		p.Name = k
		p.bind(r)
	}
	r.entries[name] = &formatEntry{hash: hash, hashCheck: check}
}

// splitFormatName is check_format's m/^(.*?)(?:-(list|opt))?$/.
func splitFormatName(format string) (string, string) {
	for _, kind := range []string{"list", "opt"} {
		if base, ok := strings.CutSuffix(format, "-"+kind); ok && base != "" {
			return base, kind
		}
	}
	return format, ""
}

// has reports whether a (possibly -list or -opt) format name can be checked.
func (r *formatRegistry) has(format string) bool {
	if format == "regex" {
		return true
	}
	base, kind := splitFormatName(format)
	e, ok := r.entries[base]
	return ok && (kind == "" || e.fn != nil)
}

// check is JSONSchema::check_format for a named format. An unknown name fails closed
// with PVE's own message for it.
func (r *formatRegistry) check(format, value, path string) error {
	if format == "regex" {
		return nil
	}
	base, kind := splitFormatName(format)
	e, ok := r.entries[base]
	if !ok {
		return die("undefined format '%s'\n", format)
	}
	if kind != "" && e.fn == nil {
		return die("'-%s' format must have code ref, not hash\n", kind)
	}
	switch kind {
	case "list":
		// Empty lists are allowed.
		for _, item := range splitList(value) {
			if err := e.fn(item); err != nil {
				return err
			}
		}
		return nil
	case "opt":
		if perlTrue(value) {
			return e.fn(value)
		}
		return nil
	}
	if e.hash != nil {
		_, err := parsePropertyString(r, e.hash, value, path, e.hashCheck)
		return err
	}
	return e.fn(value)
}

// HasFormat reports whether this package can check the named format (including its
// -list and -opt forms) for the schema's release.
func (s *Schema) HasFormat(name string) bool { return s.formats.has(name) }

// regexValidator returns a validator that dies with msg (a format with one %s for the
// value, or none) unless value matches the Perl regex.
func regexValidator(pattern, flags, msg string) func(string) error {
	re := mustPerl(pattern, flags)
	return func(v string) error {
		if re.match(v) {
			return nil
		}
		if strings.Contains(msg, "%s") {
			return die(msg, v)
		}
		return dieError(msg)
	}
}

// Address regexes from pve-common PVE::Tools / PVE::ParseUtils.
const (
	ipv4Octet = `(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])`
	ipv4RE    = `(?:(?:` + ipv4Octet + `\.){3}` + ipv4Octet + `)`
	ipv6H16   = `(?:[0-9a-fA-F]{1,4})`
	ipv6LS32  = `(?:(?:` + ipv4RE + `|` + ipv6H16 + `:` + ipv6H16 + `))`
	ipv6RE    = `(?:` +
		`(?:(?:(?:` + ipv6H16 + `:){6})` + ipv6LS32 + `)|` +
		`(?:(?:::(?:` + ipv6H16 + `:){5})` + ipv6LS32 + `)|` +
		`(?:(?:(?:` + ipv6H16 + `)?::(?:` + ipv6H16 + `:){4})` + ipv6LS32 + `)|` +
		`(?:(?:(?:(?:` + ipv6H16 + `:){0,1}` + ipv6H16 + `)?::(?:` + ipv6H16 + `:){3})` + ipv6LS32 + `)|` +
		`(?:(?:(?:(?:` + ipv6H16 + `:){0,2}` + ipv6H16 + `)?::(?:` + ipv6H16 + `:){2})` + ipv6LS32 + `)|` +
		`(?:(?:(?:(?:` + ipv6H16 + `:){0,3}` + ipv6H16 + `)?::(?:` + ipv6H16 + `:){1})` + ipv6LS32 + `)|` +
		`(?:(?:(?:(?:` + ipv6H16 + `:){0,4}` + ipv6H16 + `)?::)` + ipv6LS32 + `)|` +
		`(?:(?:(?:(?:` + ipv6H16 + `:){0,5}` + ipv6H16 + `)?::)` + ipv6H16 + `)|` +
		`(?:(?:(?:(?:` + ipv6H16 + `:){0,6}` + ipv6H16 + `)?::)))`
	emailUserRE = `[\w\+\-\~]+(\.[\w\+\-\~]+)*`
	emailRE     = emailUserRE + `@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*`
	dnsLabelRE  = `([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)`
	realmRE     = `[A-Za-z][A-Za-z0-9\.\-_]+`
	userRE      = `[^\s:/]+`
	tagRE       = `[a-z0-9_][a-z0-9_\-\+\.]*`
)

var (
	reIPv4   = mustPerl(`^(?:`+ipv4RE+`)$`, "")
	reIPv6   = mustPerl(`^(?:`+ipv6RE+`)$`, "")
	reIP     = mustPerl(`^(?:(?:`+ipv4RE+`)|(?:`+ipv6RE+`))$`, "")
	reCIDRv4 = mustPerl(`^(?:`+ipv4RE+`)(?:/(\d+))$`, "")
	reCIDRv6 = mustPerl(`^(?:`+ipv6RE+`)(?:/(\d+))$`, "")
	reDNS    = mustPerl(`^(`+dnsLabelRE+`\.)*`+dnsLabelRE+`$`, "")
	reIface  = mustPerl(`^[a-z][a-z0-9_]{1,20}([:\.]\d+)?$`, "i")
)

func isIPv4(s string) bool { return reIPv4.match(s) }
func isIPv6(s string) bool { return reIPv6.match(s) }
func isIP(s string) bool   { return reIP.match(s) }
func isDNS(s string) bool  { return reDNS.match(s) }

func isCIDRv4(s string) bool {
	m := reCIDRv4.find(s)
	return m != nil && perlNumify(m[1]) > 7 && perlNumify(m[1]) <= 32
}

func isCIDRv6(s string) bool {
	m := reCIDRv6.find(s)
	return m != nil && perlNumify(m[1]) > 7 && perlNumify(m[1]) <= 128
}

// ipv4 netmasks pve_verify_ipv4mask accepts.
var ipv4Masks = func() map[string]bool {
	out := map[string]bool{}
	for bits := 0; bits <= 32; bits++ {
		m := uint32(0)
		if bits > 0 {
			m = ^uint32(0) << (32 - bits)
		}
		out[fmt.Sprintf("%d.%d.%d.%d", m>>24, m>>16&255, m>>8&255, m&255)] = true
	}
	return out
}()

func newFormatRegistry(v Version) *formatRegistry {
	r := &formatRegistry{version: v, entries: map[string]*formatEntry{}}
	registerCommonFormats(r)
	registerGuestFormats(r)
	registerAccessFormats(r, v)
	registerClusterFormats(r)
	registerFirewallFormats(r)
	return r
}

// pve-common src/PVE/JSONSchema.pm.
func registerCommonFormats(r *formatRegistry) {
	r.code("string", func(string) error { return nil })
	r.code("urlencoded", regexValidator(`^[-%a-zA-Z0-9_.!~*'()]*$`, "", "invalid urlencoded string: %s\n"))
	r.code("pve-configid", regexValidator(`^[a-z][a-z0-9_-]+$`, "i", "invalid configuration ID '%s'\n"))
	parseID := func(kind string) func(string) error {
		return regexValidator(`^[a-z][a-z0-9\-\_\.]*[a-z0-9]$`, "i", kind+" ID '%s' contains illegal characters\n")
	}
	r.code("pve-storage-id", parseID("storage"))
	r.code("acme-plugin-id", parseID("ACME plugin"))
	r.code("pve-bridge-id", regexValidator(`^[-_.\w\d]+$`, "", "invalid bridge ID '%s'\n"))
	r.code("pve-vmid", regexValidator(`^[1-9][0-9]{2,8}$`, "", "value does not look like a valid VM ID\n"))
	r.code("pve-node", regexValidator(`^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`, "", "value does not look like a valid node name\n"))
	r.code("storage-pair", idPairValidator(r, "pve-storage-id"))
	r.code("bridge-pair", idPairValidator(r, "pve-bridge-id"))
	// The I/G bit must not be set: a multicast MAC breaks guests.
	r.code("mac-addr", regexValidator(`^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$`, "i", "value does not look like a valid unicast MAC address\n"))
	r.code("ipv4", boolValidator(isIPv4, "value does not look like a valid IPv4 address\n"))
	r.code("ipv6", boolValidator(isIPv6, "value does not look like a valid IPv6 address\n"))
	r.code("ip", boolValidator(isIP, "value does not look like a valid IP address\n"))
	r.code("ldap-simple-attr", regexValidator(`^[a-zA-Z0-9]+$`, "", "value '%s' does not look like a simple ldap attribute name\n"))
	r.code("ipv4mask", boolValidator(func(s string) bool { return ipv4Masks[s] }, "value does not look like a valid IP netmask\n"))
	r.code("CIDRv6", boolValidator(isCIDRv6, "value does not look like a valid IPv6 CIDR network\n"))
	r.code("CIDRv4", boolValidator(isCIDRv4, "value does not look like a valid IPv4 CIDR network\n"))
	r.code("CIDR", boolValidator(func(s string) bool { return isCIDRv4(s) || isCIDRv6(s) }, "value does not look like a valid CIDR network\n"))
	reV4Conf := mustPerl(`^(?:dhcp|manual)$`, "")
	r.code("pve-ipv4-config", boolValidator(func(s string) bool { return reV4Conf.match(s) || isCIDRv4(s) },
		"value does not look like a valid ipv4 network configuration\n"))
	reV6Conf := mustPerl(`^(?:auto|dhcp|manual)$`, "")
	r.code("pve-ipv6-config", boolValidator(func(s string) bool { return reV6Conf.match(s) || isCIDRv6(s) },
		"value does not look like a valid ipv6 network configuration\n"))
	reEmail := mustPerl(`^`+emailRE+`$`, "")
	reEmailUser := mustPerl(`^`+emailUserRE+`$`, "")
	r.code("email", boolValidator(reEmail.match, "value does not look like a valid email address\n"))
	r.code("email-or-username", boolValidator(func(s string) bool { return reEmail.match(s) || reEmailUser.match(s) },
		"value does not look like a valid email address or user name\n"))
	r.code("dns-name", boolValidator(isDNS, "value does not look like a valid DNS name\n"))
	r.code("timezone", verifyTimezone)
	r.code("pve-iface", func(s string) error {
		if reIface.match(s) {
			return nil
		}
		return die("invalid network interface name '%s'\n", s)
	})
	r.code("pve-vlan-id-or-range", verifyVlanIDOrRange)
	r.code("address", func(s string) error {
		if isIP(s) || isDNS(s) {
			return nil
		}
		return die("value does not look like a valid address: %s\n", s)
	})
	r.code("disk-size", regexValidator(`^(\d+(\.\d+)?)([KMGT])?$`, "", "value does not look like a valid disk size: %s\n"))
	r.code("pve-startup-order", verifyStartupOrder)
	r.code("pve-tag", regexValidator(`^`+tagRE+`$`, "i", "invalid characters in tag\n"))
	r.code("pve-tfa-secret", verifyTFASecret)
	r.code("pve-task-status-type", regexValidator(`^(ok|error|warning|unknown)$`, "i", "invalid status '%s'\n"))
	r.code("pve-calendar-event", verifyCalendarEvent)

	bw := func() *Property { return sp("number", true).withMin("0") }
	r.hashFormat("bwlimit", map[string]*Property{
		"default": bw(), "restore": bw(), "migration": bw(), "clone": bw(), "move": bw(),
	}, nil)
	r.hashFormat("proxmox-remote", map[string]*Property{
		"host":        sp("string", false),
		"port":        sp("integer", true),
		"apitoken":    sp("string", false),
		"fingerprint": sp("string", true).withPattern(`([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}`),
	}, nil)
}

func boolValidator(ok func(string) bool, msg string) func(string) error {
	return func(s string) error {
		if ok(s) {
			return nil
		}
		return dieError(msg)
	}
}

// idPairValidator is JSONSchema's verify_storagepair / verify_bridgepair: one entry of
// a -list, parsed with parse_idmap; its error gets one more newline on the way out.
func idPairValidator(r *formatRegistry, idFormat string) func(string) error {
	reSrcDst := mustPerl(`^([^:]+):([^:]+)$`, "")
	return func(input string) error {
		err := func() error {
			identity, hasDefault := false, false
			entries := map[string]bool{}
			for _, entry := range splitList(input) {
				switch m := reSrcDst.find(entry); {
				case entry == "1":
					identity = true
				case m != nil:
					for _, id := range m[1:3] {
						if err := r.check(idFormat, id, ""); err != nil {
							return die("entry '%s' contains invalid ID - %s\n", entry, err)
						}
					}
					if entries[m[1]] {
						return die("duplicate mapping for source '%s'\n", m[1])
					}
					entries[m[1]] = true
				default:
					if err := r.check(idFormat, entry, ""); err != nil {
						return die("entry '%s' contains invalid ID - %s\n", entry, err)
					}
					if hasDefault {
						return die("default target ID can only be provided once\n")
					}
					hasDefault = true
				}
			}
			if identity && (hasDefault || len(entries) > 0) {
				return die("identity mapping cannot be combined with other mappings\n")
			}
			return nil
		}()
		if err != nil {
			return dieError(err.Error() + "\n")
		}
		return nil
	}
}

var zoneTab = func() map[string]bool {
	out := map[string]bool{}
	for _, z := range strings.Fields(zoneTabNames) {
		out[z] = true
	}
	return out
}()

// pve_verify_timezone: UTC or a zone listed in zone.tab.
func verifyTimezone(tz string) error {
	if tz == "UTC" || zoneTab[tz] {
		return nil
	}
	return die("invalid time zone '%s'\n", tz)
}

var reVlanRange = mustPerl(`^(\d+)(?:-(\d+))?$`, "")

func verifyVlanIDOrRange(vlan string) error {
	m := reVlanRange.find(vlan)
	if m == nil {
		return die("invalid VLAN configuration '%s'\n", vlan)
	}
	for _, tag := range []string{m[1], m[2]} {
		if tag == "" {
			continue
		}
		if n := perlNumify(tag); n < 2 || n > 4094 {
			return die("invalid VLAN tag '%s'\n", tag)
		}
	}
	if perlTrue(m[2]) && perlNumify(m[1]) >= perlNumify(m[2]) {
		return die("VLAN range must go from lower to higher tag '%s'\n", vlan)
	}
	return nil
}

var (
	reOrder = mustPerl(`^(order=)?(\d+)$`, "")
	reUp    = mustPerl(`^up=(\d+)$`, "")
	reDown  = mustPerl(`^down=(\d+)$`, "")
)

// pve_parse_startup_order; note "0" and "" are rejected, Perl's !$value.
func verifyStartupOrder(value string) error {
	fail := dieError("unable to parse startup options\n")
	if !perlTrue(value) {
		return fail
	}
	for _, p := range perlSplit(strings.Split(value, ",")) {
		if reBlankPart.match(p) {
			continue
		}
		if !reOrder.match(p) && !reUp.match(p) && !reDown.match(p) {
			return fail
		}
	}
	return nil
}

// The old format used 16 base32 chars or 40 hex digits; v2 allows arbitrary lengths.
var reTFASecrets = []*perlRegexp{
	mustPerl(`^v2-0x[0-9a-fA-F]{16,128}$`, ""),
	mustPerl(`^v2-[A-Z2-7=]{16,128}$`, ""),
	mustPerl(`^(?:[A-Z2-7=]{16}|[A-Fa-f0-9]{40})$`, ""),
}

func verifyTFASecret(key string) error {
	for _, re := range reTFASecrets {
		if re.match(key) {
			return nil
		}
	}
	return dieError("unable to decode TFA secret\n")
}

// pve-container, pve-storage, pve-guest-common: formats of guest configuration.
func registerGuestFormats(r *formatRegistry) {
	// pve-container src/PVE/LXC/Config.pm.
	reMPBad := []*perlRegexp{mustPerl(`/\.\.?/`, ""), mustPerl(`/\.\.?$`, ""), mustPerl(`^\.\./`, "")}
	r.code("pve-lxc-mp-string", func(mp string) error {
		for _, re := range reMPBad {
			if re.match(mp) {
				return die("%s contains illegal character sequences\n", mp)
			}
		}
		return nil
	})
	reDevDots, reDevPrefix := mustPerl(`/\.\.?(?:/|$)`, ""), mustPerl(`^/dev/`, "")
	r.code("pve-lxc-dev-string", func(dev string) error {
		if reDevDots.match(dev) || !reDevPrefix.match(dev) {
			return die("%s is not a valid device path\n", dev)
		}
		return nil
	})
	r.code("pve-ct-timezone", func(tz string) error {
		if tz == "host" {
			return nil
		}
		return verifyTimezone(tz)
	})
	reLL := mustPerl(`^(fe80:[^%]+)%(.*)$`, "")
	r.code("lxc-ip-with-ll-iface", func(addr string) error {
		if m := reLL.find(addr); m != nil && isIP(m[1]) && reIface.match(m[2]) {
			return nil
		}
		if isIP(addr) {
			return nil
		}
		return dieError("value does not look like a valid IP address\n")
	})

	// pve-storage src/PVE/Storage/Plugin.pm.
	r.code("pve-volume-id", regexValidator(`^([a-z][a-z0-9\-\_\.]*[a-z0-9]):(.+)$`, "i", "unable to parse volume ID '%s'\n"))
	r.code("pve-storage-content", func(ct string) error {
		if storageContentTypes[ct] {
			return nil
		}
		return die("invalid content type '%s'\n", ct)
	})
	r.code("pve-storage-path", regexValidator(`^/[^;\(\)]+`, "", "value does not look like a valid absolute path\n"))
	r.code("pve-storage-server", boolValidator(func(s string) bool { return isIP(s) || isDNS(s) },
		"value does not look like a valid server name or IP address\n"))
	r.code("pve-storage-vgname", regexValidator(`^[a-z0-9][a-z0-9\-\_\.]*[a-z0-9]$`, "i", "lvm name '%s' contains illegal characters\n"))
	r.code("pve-storage-options", regexValidator(`^\S+$`, "", "invalid options '%s'\n"))
	r.code("pve-storage-format", regexValidator(`^(raw|qcow2|vmdk|subvol)$`, "", "invalid format '%s'\n"))
	reOverride := mustPerl(`^([a-z]+)=([^.]*(?:\.?[^.]+)+)$`, "")
	r.code("pve-dir-override", func(value string) error {
		if m := reOverride.find(value); m != nil && storageContentTypes[m[1]] {
			long := false
			for _, c := range strings.Split(m[2], "/") {
				long = long || perlLength(c) >= 255
			}
			if perlLength(m[2]) < 1023 && !long {
				return nil
			}
		}
		return die("invalid override '%s'\n", value)
	})
	prune := func() *Property { return sp("integer", true).withMin("0") }
	r.hashFormat("prune-backups", map[string]*Property{
		"keep-all":     sp("boolean", true),
		"keep-last":    prune(),
		"keep-hourly":  prune(),
		"keep-daily":   prune(),
		"keep-weekly":  prune(),
		"keep-monthly": prune(),
		"keep-yearly":  prune(),
	}, func(res map[string]string) error {
		anyKeep := false
		for k, v := range res {
			if k != "keep-all" && perlNumify(v) > 0 {
				anyKeep = true
			}
		}
		if anyKeep && perlTrue(res["keep-all"]) {
			return dieError("keep-all cannot be set together with other options.\n")
		}
		return nil
	})

	// pve-guest-common src/PVE/ReplicationConfig.pm and VZDump/Common.pm.
	reJob := mustPerl(`^(\d+)-(\d+)$`, "")
	r.code("pve-replication-job-id", func(id string) error {
		m := reJob.find(id)
		if m == nil {
			return die("invalid replication job id '%s'\n", id)
		}
		if perlNumify(m[1]) < 100 {
			return die("invalid replication job id '%s' (guest IDs < 100 are reseved)\n", id)
		}
		return nil
	})
	r.hashFormat("backup-fleecing", map[string]*Property{
		"enabled": sp("boolean", true).asDefaultKey(),
		"storage": sp("string", true).withFormat("pve-storage-id"),
	}, nil)
	r.hashFormat("backup-performance", map[string]*Property{
		"max-workers":     sp("integer", true).withMin("1").withMax("256"),
		"pbs-entries-max": sp("integer", true).withMin("1"),
	}, nil)
	// pve-manager PVE/API2/Backup.pm.
	r.code("pve-day-of-week", regexValidator(`^(mon|tue|wed|thu|fri|sat|sun)$`, "", "invalid day '%s'\n"))
}

// The content types of the 'dir' plugin, which PVE uses as "all types", plus 'import'.
var storageContentTypes = map[string]bool{
	"images": true, "rootdir": true, "vztmpl": true, "iso": true, "backup": true,
	"snippets": true, "none": true, "import": true,
}

// pve-access-control src/PVE/Auth/Plugin.pm and src/PVE/AccessControl.pm.
func registerAccessFormats(r *formatRegistry, v Version) {
	reRealm := mustPerl(`^`+realmRE+`$`, "")
	r.code("pve-realm", boolValidator(reRealm.match, "value does not look like a valid realm\n"))
	reUser := mustPerl(`^(`+userRE+`)\@(`+realmRE+`)$`, "")
	r.code("pve-userid", func(u string) error {
		if n := perlLength(u); n < 3 {
			return die("user name '%s' is too short\n", u)
		} else if n > 64 {
			return die("user name '%s' is too long (%d > 64)\n", u, n)
		}
		if reUser.match(u) {
			return nil
		}
		return die("value '%s' does not look like a valid user name\n", u)
	})
	for _, kind := range []string{"group", "role", "pool"} {
		r.code("pve-"+kind+"id", regexValidator(`^[A-Za-z0-9\.\-_]+$`, "", kind+" name '%s' contains invalid characters\n"))
	}
	privs := privileges(v)
	r.code("pve-priv", func(p string) error {
		if privs[p] {
			return nil
		}
		return die("invalid privilege '%s'\n", p)
	})
	removeOpts := `(?:acl|properties|entry)`
	r.hashFormat("realm-sync-options", map[string]*Property{
		"scope":           sp("string", true).withEnum("users", "groups", "both"),
		"remove-vanished": sp("string", true).withPattern(`(?:(?:` + removeOpts + `\;)*` + removeOpts + `)|none`),
		"full":            sp("boolean", true),
		"enable-new":      sp("boolean", true),
		"purge":           sp("boolean", true),
	}, nil)
	r.hashFormat("pve-tfa-config", map[string]*Property{
		"type":   sp("string", false).withEnum("yubico", "oath"),
		"id":     sp("string", true),
		"key":    sp("string", true),
		"url":    sp("string", true),
		"digits": sp("integer", true).withMin("6").withMax("8"),
		"step":   sp("integer", true).withMin("10"),
	}, nil)
}

// pve-cluster, pve-manager, pve-ha-manager and pve-network.
func registerClusterFormats(r *formatRegistry) {
	// pve-cluster PVE/DataCenterConfig.pm.
	r.code("mac-prefix", regexValidator(`^[a-f0-9][02468ace](?::[a-f0-9]{2}){0,2}:?$`, "i", "value is not a valid unicast MAC address prefix\n"))
	// pve-cluster PVE/Mapping/Dir.pm: commas and '=' would break the property string.
	r.code("pve-storage-path-in-property-string", regexValidator(`^/[^;,=\(\)]+`, "",
		"Value does not look like a valid absolute path. These symbols are currently not allowed in path: ;,=()\n"))
	// pve-manager PVE/Status/Graphite.pm.
	r.code("graphite-path", regexValidator(`^(`+dnsLabelRE+`\.)*`+dnsLabelRE+`$`, "", "value does not look like a valid graphite path\n"))

	// pve-ha-manager src/PVE/HA/Tools.pm.
	r.code("pve-ha-resource-id", regexValidator(`^[a-z]+:\S+$`, "", "value does not look like a valid ha resource id\n"))
	r.code("pve-ha-resource-or-vm-id", regexValidator(`^([a-z]+:\S+|\d+)$`, "", "value does not look like a valid ha resource id\n"))
	haNode := `^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)(:\d+)?$`
	r.code("pve-ha-group-node", regexValidator(haNode, "", "value does not look like a valid ha group node\n"))
	// PVE 9 renamed the group node list to 'pve-ha-node' for HA rules; same syntax.
	r.code("pve-ha-node", regexValidator(haNode, "", "value does not look like a valid ha node\n"))

	// pve-network src/PVE/Network/SDN/*.pm.
	sdnID := func(kind string, maxLen int) func(string) error {
		re := mustPerl(`^[a-z][a-z0-9]*[a-z0-9]$`, "i")
		return func(id string) error {
			if !re.match(id) {
				return die("%s ID '%s' contains illegal characters\n", kind, id)
			}
			if maxLen > 0 && perlLength(id) > maxLen {
				return die("%s ID '%s' can't be more length than %d characters\n", kind, id, maxLen)
			}
			return nil
		}
	}
	r.code("pve-sdn-zone-id", sdnID("zone", 8))
	r.code("pve-sdn-vnet-id", sdnID("vnet", 8))
	r.code("pve-sdn-ipam-id", sdnID("ipam", 0))
	r.code("pve-sdn-dns-id", sdnID("dns", 0))
	reController := mustPerl(`^[a-z][a-z0-9_-]*[a-z0-9]$`, "i")
	r.code("pve-sdn-controller-id", func(id string) error {
		if !reController.match(id) {
			return die("controller ID '%s' contains illegal characters\n", id)
		}
		if perlLength(id) > 64 {
			return die("controller ID '%s' can't be more length than 64 characters\n", id)
		}
		return nil
	})
	r.code("pve-sdn-subnet-id", func(id string) error {
		// The subnet ID is the CIDR with '/' written as '-', prefixed by the zone.
		cidr := id
		if !strings.Contains(id, "/") {
			parts := strings.Split(id, "-")
			ip, mask := "", ""
			if len(parts) > 1 {
				ip = parts[1]
			}
			if len(parts) > 2 {
				mask = parts[2]
			}
			cidr = ip + "/" + mask
		}
		if isCIDRv4(cidr) || isCIDRv6(cidr) {
			return nil
		}
		return dieError("value does not look like a valid CIDR network\n")
	})
	r.code("pve-sdn-fabric-id", regexValidator(`^[a-zA-Z0-9][a-zA-Z0-9-]{0,6}[a-zA-Z0-9]?$`, "i", "Fabric ID '%s' contains illegal characters\n"))
	r.code("pve-sdn-isis-net", regexValidator(`^[a-fA-F0-9]{2}(\.[a-fA-F0-9]{4}){3,9}\.[a-fA-F0-9]{2}$`, "", "value does not look like a valid isis net\n"))
	reRT := mustPerl(`^(\d+):(\d+)$`, "")
	r.code("pve-sdn-bgp-rt", func(rt string) error {
		m := reRT.find(rt)
		if m == nil || perlNumify(m[1]) > 4294967295 || perlNumify(m[2]) > 4294967295 {
			return dieError("value does not look like a valid bgp route-target\n")
		}
		return nil
	})
	// Sub-keys are typed 'ip', a type check_type does not know and so lets through.
	r.hashFormat("pve-sdn-dhcp-range", map[string]*Property{
		"start-address": sp("ip", false),
		"end-address":   sp("ip", false),
	}, nil)
}

// sp builds a property-string key for formats PVE registers by name, whose keys the
// API dump does not spell out.
func sp(typ string, optional bool) *Property {
	return &Property{Type: typ, Optional: optional, MinLength: -1, MaxLength: -1}
}

func (p *Property) withMin(s string) *Property {
	p.Minimum, p.minimum = s, numeric{true, perlNumify(s)}
	return p
}

func (p *Property) withMax(s string) *Property {
	p.Maximum, p.maximum = s, numeric{true, perlNumify(s)}
	return p
}

func (p *Property) withFormat(name string) *Property { p.Format = name; return p }
func (p *Property) asDefaultKey() *Property          { p.DefaultKey = true; return p }

func (p *Property) withEnum(vals ...string) *Property { p.Enum = vals; return p }

func (p *Property) withPattern(pattern string) *Property {
	p.Pattern = pattern
	p.pattern, p.patternErr = compilePerlPattern(pattern)
	return p
}

// FormatNames lists the formats this package implements for the schema's release.
func (s *Schema) FormatNames() []string {
	out := make([]string, 0, len(s.formats.entries))
	for k := range s.formats.entries {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
