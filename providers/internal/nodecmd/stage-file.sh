#!/bin/sh
# phoenix/stage-file: a file on its way into a container, kept on the node
# for pct push. apply writes standard input to PHOENIX_STAGE, readable by root
# only; clean removes it.
set -eu
phase=${1:-apply}
# One file right in the stage directory: a name with a slash (../) could
# reach any file root may write.
case ${PHOENIX_STAGE#/var/lib/phoenix/stage/} in
"$PHOENIX_STAGE" | "" | */* | . | ..)
	echo "phoenix/stage-file: $PHOENIX_STAGE is not a file in /var/lib/phoenix/stage" >&2
	exit 2
	;;
esac
case $phase in
apply)
	umask 077
	mkdir -p /var/lib/phoenix/stage
	cat >"$PHOENIX_STAGE"
	;;
clean)
	rm -f -- "$PHOENIX_STAGE"
	;;
*)
	echo "phoenix/stage-file: unknown phase $phase" >&2
	exit 2
	;;
esac
