#!/bin/sh
# base/packages: the packages every guest is expected to have; the steps of
# the other features download with curl and gpg from here.
# PHOENIX_TEST_ROOT, set by tests only, is where the files below are.
set -eu
phase=${1:-apply}
packages="ca-certificates curl gnupg locales lsb-release pciutils sudo"
root=${PHOENIX_TEST_ROOT:-}

works() {
	# shellcheck disable=SC2086 # the package list is meant to split
	has_packages $packages && curl --version >/dev/null 2>&1 &&
		[ -s "$root/etc/ssl/certs/ca-certificates.crt" ] &&
		locale -a 2>/dev/null | grep -qix 'en_US.utf-\{0,1\}8'
}

case "$phase" in
check)
	works
	;;
apply)
	apt_update
	# shellcheck disable=SC2086 # the package list is meant to split
	apt_install $packages
	doing "generating the en_US.UTF-8 locale" "see the lines above"
	sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$root/etc/locale.gen"
	run locale-gen >/dev/null
	done_doing
	;;
verify)
	works || fail "base packages are not all installed and working ($packages, the en_US.UTF-8 locale): run the apply again"
	;;
*)
	unknown_phase
	;;
esac
