#!/bin/sh
# phoenix/set-raw-lxc: make a container's config file hold exactly the given
# lines for the raw lxc.* keys phoenix owns, which no API can set. Runs as
# root on the container's node, under the lock Proxmox VE itself takes for a
# container's config (/run/lock/lxc/pve-config-VMID.lock), so no API change
# is lost to it.
#   PHOENIX_VMID   the container
#   PHOENIX_KEYS   the keys phoenix owns, one per line
#   PHOENIX_LINES  the lines those keys must have, in order, one per line,
#                  as Proxmox writes them ("lxc.mount.auto: sys:rw"); empty:
#                  the keys have no line
# Only the container's current section is edited (not its snapshots' or
# pending sections): the owned keys' lines go, whether written "key: value"
# or "key = value", and the new ones follow the section's last line, where
# Proxmox writes raw lines. Every other line stays as it is, byte for byte.
# The new file replaces the old one by a rename, as Proxmox writes it, and
# is read back: exit 3 when it does not hold the lines.
# PHOENIX_PVE_ROOT prefixes /etc/pve and /run/lock, for tests.
set -eu
: "${PHOENIX_VMID:?}" "${PHOENIX_KEYS:?}"
PHOENIX_LINES=${PHOENIX_LINES:-}
root=${PHOENIX_PVE_ROOT:-}
conf="$root/etc/pve/lxc/$PHOENIX_VMID.conf"
lock="$root/run/lock/lxc/pve-config-$PHOENIX_VMID.lock"

if [ ! -f "$conf" ]; then
	echo "Configuration file '$conf' does not exist" >&2
	exit 2
fi
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
if ! flock -w 10 9; then
	echo "can't lock file '$lock' - got timeout" >&2
	exit 1
fi

# owned prints the current section's lines of the owned keys as
# "key: value", the way parse_pct_config reads them.
owned() {
	awk '
	BEGIN {
		n = split(ENVIRON["PHOENIX_KEYS"], k, "\n")
		for (i = 1; i <= n; i++) if (k[i] != "") key[k[i]] = 1
	}
	/^\[/ { exit }
	match($0, /^lxc\.[a-z0-9_.-]+/) {
		name = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
		if (!(name in key) || rest !~ /^(:|[ \t]*=)/) next
		sub(/^(:|[ \t]*=)[ \t]*/, "", rest); sub(/[ \t]+$/, "", rest)
		print name ": " rest
	}' "$1"
}

tmp="$conf.tmp.$$"
trap 'rm -f "$tmp"' EXIT
awk '
BEGIN {
	n = split(ENVIRON["PHOENIX_KEYS"], k, "\n")
	for (i = 1; i <= n; i++) if (k[i] != "") key[k[i]] = 1
	add = ENVIRON["PHOENIX_LINES"]
}
function flush() {
	if (done) return
	done = 1
	if (add != "") print add
	printf "%s", held
	held = ""
}
done { print; next }
/^\[/ { flush(); print; next }
/^[ \t]*$/ { held = held $0 "\n"; next }
{
	if (match($0, /^lxc\.[a-z0-9_.-]+/)) {
		name = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
		if ((name in key) && rest ~ /^(:|[ \t]*=)/) next
	}
	printf "%s", held; held = ""
	print
}
END { flush() }
' "$conf" >"$tmp"
mv "$tmp" "$conf"
trap - EXIT

if [ "$(owned "$conf")" != "$PHOENIX_LINES" ]; then
	echo "the raw lines of $conf did not read back as written (another writer?)" >&2
	exit 3
fi
