#!/bin/sh
# phoenix/initialized: exit 0 once the container can take installs: it has a
# default route, names resolve, and every device node in PHOENIX_DEVICES is
# visible. Right after a start none of this holds yet; checking once and
# giving up is the race this step exists to avoid, so phoenix polls it.
set -eu

if ! awk '$2 == "00000000" { found = 1 } END { exit !found }' /proc/net/route 2>/dev/null; then
	echo "network is not up yet (no default route)" >&2
	exit 1
fi
if ! getent hosts deb.debian.org >/dev/null 2>&1 && ! getent hosts archive.ubuntu.com >/dev/null 2>&1; then
	echo "names do not resolve yet" >&2
	exit 1
fi
for dev in ${PHOENIX_DEVICES:-}; do
	if [ ! -c "$dev" ]; then
		echo "$dev is not visible in the container yet" >&2
		exit 1
	fi
done
