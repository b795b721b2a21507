#!/bin/sh
# phoenix/host-dirs: the node's directories that bind mount points show in
# containers. PHOENIX_DIRS holds one "UID:GID PATH" line per directory ("-"
# for no owner). check prints "dir UID:GID PATH", "other - PATH" or
# "missing - PATH" for each; apply makes each directory and gives it its owner.
set -eu
phase=${1:-check}
printf '%s\n' "$PHOENIX_DIRS" | while read -r owner path; do
	[ -n "$path" ] || continue
	case $phase in
	check)
		if [ -d "$path" ]; then
			printf 'dir %s %s\n' "$(stat -c %u:%g "$path")" "$path"
		elif [ -e "$path" ] || [ -L "$path" ]; then
			printf 'other - %s\n' "$path"
		else
			printf 'missing - %s\n' "$path"
		fi
		;;
	apply)
		mkdir -p -- "$path"
		if [ "$owner" != "-" ]; then
			chown -- "$owner" "$path"
		fi
		;;
	*)
		echo "phoenix/host-dirs: unknown phase $phase" >&2
		exit 2
		;;
	esac
done
