#!/bin/sh
# phoenix/file: the container's side of writing a file. prepare makes the
# file's directory; apply moves the copy pct push left beside it over the
# file, in one rename, so that nothing ever reads half a file; clean removes
# a copy a failed write left behind.
#   PHOENIX_FILE  the file's path; the copy is PHOENIX_FILE.phoenix-new
set -eu
phase=${1:-apply}
new=$PHOENIX_FILE.phoenix-new
case $phase in
prepare)
	mkdir -p -- "$(dirname -- "$PHOENIX_FILE")"
	;;
apply)
	[ -f "$new" ] || {
		echo "phoenix: $new is missing: pct push did not copy it" >&2
		exit 1
	}
	mv -f -- "$new" "$PHOENIX_FILE"
	;;
clean)
	rm -f -- "$new"
	;;
*)
	echo "phoenix/file: unknown phase $phase" >&2
	exit 2
	;;
esac
