#!/bin/sh
# base/packages: the packages every guest is expected to have.
set -eu
phase=${1:-apply}
packages="ca-certificates curl gnupg locales lsb-release pciutils sudo"

installed() {
	for p in $packages; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
}

case "$phase" in
check | verify)
	installed
	;;
apply)
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086 # the package list is meant to split
	apt-get install -y -q --no-install-recommends $packages
	sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen
	locale-gen >/dev/null
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
