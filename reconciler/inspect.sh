#!/bin/sh
# phoenix/inspect: what phoenix keeps inside a container, as it is now.
# PHOENIX_FILES holds the paths of its files, PHOENIX_SERVICES the names of its
# services, each separated by spaces (neither has spaces of its own). Prints
#   file PATH SHA256 MODE UID:GID USER:GROUP   (a regular file)
#   file PATH -                                (missing, or not a regular file)
#   service NAME ENABLED ACTIVE                (systemctl is-enabled, is-active)
# where ENABLED is not-found for a unit systemd does not know and ACTIVE is
# no-systemd where the container runs no systemd.
set -u
for path in ${PHOENIX_FILES:-}; do
	if [ -f "$path" ] && [ ! -L "$path" ]; then
		sum=$(sha256sum -- "$path") || exit 1
		printf 'file %s %s %s\n' "$path" "${sum%% *}" "$(stat -c '%a %u:%g %U:%G' -- "$path")"
	else
		printf 'file %s -\n' "$path"
	fi
done
for name in ${PHOENIX_SERVICES:-}; do
	if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
		printf 'service %s not-found no-systemd\n' "$name"
		continue
	fi
	enabled=$(systemctl is-enabled "$name.service" 2>/dev/null)
	active=$(systemctl is-active "$name.service" 2>/dev/null)
	printf 'service %s %s %s\n' "$name" "${enabled:-not-found}" "${active:-unknown}"
done
