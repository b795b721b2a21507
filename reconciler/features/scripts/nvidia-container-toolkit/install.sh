#!/bin/sh
# nvidia-container-toolkit/install: NVIDIA's container toolkit, from its
# repository, for GPUs in Docker containers.
#   NCT_REPOSITORY  NVIDIA's libnvidia-container repository, or a mirror of
#                   it: its key is <repository>/gpgkey, its packages are
#                   under <repository>/stable/deb/<architecture>/
# PHOENIX_TEST_ROOT, set by tests only, is where the files below are.
set -eu
phase=${1:-apply}
: "${NCT_REPOSITORY:?}"
root=${PHOENIX_TEST_ROOT:-}
keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
list=$root/etc/apt/sources.list.d/nvidia-container-toolkit.list
repo=${NCT_REPOSITORY%/}

# The list NVIDIA publishes holds this line ($(ARCH) is apt's): phoenix
# writes it with the repository the feature is given.
sources_line() {
	# shellcheck disable=SC2016 # $(ARCH) is for apt to expand
	printf 'deb [signed-by=%s] %s/stable/deb/$(ARCH) /\n' "$keyring" "$repo"
}

installed() {
	has_packages nvidia-container-toolkit && [ -s "$root$keyring" ] &&
		[ "$(cat "$list" 2>/dev/null)" = "$(sources_line)" ] &&
		nvidia-ctk --version >/dev/null 2>&1
}

case "$phase" in
check)
	installed
	;;
apply)
	need docker docker
	need gpg base
	use_tmp
	tmp=$(tmp_dir)
	doing "adding NVIDIA's container toolkit repository $repo" "check the repository parameter"
	fetch "$repo/gpgkey" "$tmp/gpgkey"
	run gpg --batch --yes --dearmor -o "$tmp/keyring.gpg" "$tmp/gpgkey"
	[ -s "$tmp/keyring.gpg" ] || fail "$repo/gpgkey holds no OpenPGP key; check the repository parameter"
	sources_line >"$tmp/nvidia-container-toolkit.list"
	put "$tmp/keyring.gpg" "$root$keyring" 0644
	put "$tmp/nvidia-container-toolkit.list" "$list" 0644
	apt_update
	apt_source_fetched "$repo/stable/deb/" ||
		fail "apt cannot read NVIDIA's container toolkit repository at $repo; check the repository parameter"
	apt_install nvidia-container-toolkit
	;;
verify)
	has_packages nvidia-container-toolkit || fail "nvidia-container-toolkit is not installed: run the apply again"
	doing "nvidia-ctk --version" "the toolkit's nvidia-ctk does not run: reinstall nvidia-container-toolkit"
	run nvidia-ctk --version >/dev/null
	done_doing
	;;
uninstall)
	doing "removing nvidia-container-toolkit" "see the lines above"
	apt_get purge -y nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1
	done_doing
	rm -f "$list" "$root$keyring"
	;;
*)
	unknown_phase
	;;
esac
