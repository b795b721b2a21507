#!/bin/sh
# nvidia-driver/download, on the Proxmox node: fetch the userspace driver
# runfile for the host's exact driver version once per node, so that every
# container on it gets the same file by pct push, with or without internet.
#   NVIDIA_VERSION  the host kernel module's version
#   NVIDIA_URLS     where to fetch it: URLs tried in order, one per line
#                   (NVIDIA publishes consumer drivers under XFree86/ and
#                   datacenter ones under tesla/); NVIDIA_URL alone works too
#   NVIDIA_RUNFILE  where to keep it on the node
#   NVIDIA_SHA256   optional: the expected digest, enforced when given
# The runfile runs as root in every GPU container: a source is used over
# https, or over plain http only with NVIDIA_SHA256 to check what came.
set -eu
phase=${1:-apply}
: "${NVIDIA_VERSION:?}" "${NVIDIA_RUNFILE:?}"
urls=${NVIDIA_URLS:-${NVIDIA_URL:?}}

digest_ok() {
	[ -z "${NVIDIA_SHA256:-}" ] && return 0
	echo "$NVIDIA_SHA256  $1" | sha256sum -c --status -
}

case "$phase" in
check | verify)
	[ -s "$NVIDIA_RUNFILE" ] && digest_ok "$NVIDIA_RUNFILE"
	;;
apply)
	doing "making $(dirname "$NVIDIA_RUNFILE")" "check the node's disk"
	mkdir -p "$(dirname "$NVIDIA_RUNFILE")"
	done_doing
	tmp="$NVIDIA_RUNFILE.part"
	remove_on_exit "$tmp"
	tried=
	# Without a digest, a redirect may not lead to plain http either.
	redirects='=https'
	[ -n "${NVIDIA_SHA256:-}" ] && redirects='=https,http'
	for url in $urls; do
		case "$url" in
		[Hh][Tt][Tt][Pp][Ss]://*) ;;
		[Hh][Tt][Tt][Pp]://*)
			if [ -z "${NVIDIA_SHA256:-}" ]; then
				tried="$tried${tried:+, }$url (plain http, and no NVIDIA_SHA256 to check it with: not used)"
				continue
			fi
			;;
		*)
			tried="$tried${tried:+, }$url (neither https nor http: not used)"
			continue
			;;
		esac
		if curl -fsSL --proto =https,http --proto-redir "$redirects" --retry 3 -o "$tmp" "$url" 2>"$tmp.err"; then
			if ! digest_ok "$tmp"; then
				fail "sha256 of $url does not match $NVIDIA_SHA256: not installing it; check nvidia.sha256 and the source"
			fi
			chmod 0755 "$tmp"
			mv "$tmp" "$NVIDIA_RUNFILE"
			rm -f "$tmp.err"
			exit 0
		fi
		tried="$tried${tried:+, }$url ($(tail -n 1 "$tmp.err"))"
		rm -f "$tmp.err"
	done
	fail "no source has the runfile of NVIDIA driver $NVIDIA_VERSION: tried $tried; give one in nvidia.runfileURLs"
	;;
*)
	unknown_phase
	;;
esac
