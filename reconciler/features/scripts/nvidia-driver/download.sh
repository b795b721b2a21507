#!/bin/sh
# nvidia-driver/download, on the Proxmox node: fetch the userspace driver
# runfile for the host's exact driver version once per node, so that every
# container on it gets the same file by pct push, with or without internet.
#   NVIDIA_VERSION  the host kernel module's version
#   NVIDIA_URL      where to fetch it
#   NVIDIA_RUNFILE  where to keep it on the node
#   NVIDIA_SHA256   optional: the expected digest
set -eu
phase=${1:-apply}
: "${NVIDIA_VERSION:?}" "${NVIDIA_URL:?}" "${NVIDIA_RUNFILE:?}"

digest_ok() {
	[ -z "${NVIDIA_SHA256:-}" ] && return 0
	echo "$NVIDIA_SHA256  $NVIDIA_RUNFILE" | sha256sum -c --status -
}

case "$phase" in
check | verify)
	[ -s "$NVIDIA_RUNFILE" ] && digest_ok
	;;
apply)
	mkdir -p "$(dirname "$NVIDIA_RUNFILE")"
	tmp="$NVIDIA_RUNFILE.part"
	curl -fsSL --retry 3 -o "$tmp" "$NVIDIA_URL"
	if [ -n "${NVIDIA_SHA256:-}" ] && ! echo "$NVIDIA_SHA256  $tmp" | sha256sum -c --status -; then
		rm -f "$tmp"
		echo "sha256 of $NVIDIA_URL does not match $NVIDIA_SHA256" >&2
		exit 1
	fi
	chmod 0755 "$tmp"
	mv "$tmp" "$NVIDIA_RUNFILE"
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
