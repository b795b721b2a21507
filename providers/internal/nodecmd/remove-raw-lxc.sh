#!/bin/sh
# phoenix/remove-raw-lxc: remove raw lxc.* lines from a container's config
# file, which no API can do. Runs as root on the container's node, under the
# lock Proxmox VE itself takes for a container's config
# (/run/lock/lxc/pve-config-VMID.lock), so no API change is lost to it.
#   PHOENIX_VMID   the container
#   PHOENIX_LINES  the lines to remove, one per line, as the file has them
#                  ("lxc.cgroup2.devices.allow: c 195:* rwm")
# Only the container's current section is edited (not its snapshots' or
# pending sections); every other line stays as it is, byte for byte. A line
# listed but not there is not an error: another run removed it. The new file
# replaces the old one by a rename, as Proxmox writes it.
# PHOENIX_PVE_ROOT prefixes /etc/pve and /run/lock, for tests.
set -eu
: "${PHOENIX_VMID:?}" "${PHOENIX_LINES:?}"
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
tmp="$conf.tmp.$$"
trap 'rm -f "$tmp"' EXIT
PHOENIX_LINES=$PHOENIX_LINES awk '
BEGIN {
	n = split(ENVIRON["PHOENIX_LINES"], want, "\n")
	for (i = 1; i <= n; i++) if (want[i] != "") drop[want[i]] = 1
}
/^\[/ { section = 1 }
!section && ($0 in drop) { next }
{ print }
' "$conf" >"$tmp"
mv "$tmp" "$conf"
trap - EXIT
