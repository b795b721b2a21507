#!/bin/sh
# cuda-toolkit/repository: NVIDIA's CUDA repository for the container's own
# distribution, read from /etc/os-release. Runs only after the driver is
# verified: installing CUDA first is what broke the hand-written scripts.
#   CUDA_REPOSITORY  NVIDIA's CUDA repositories, or a mirror of them: the
#                    keyring package and the packages of a distribution are
#                    under <repository>/<distro>/x86_64/ (distro: debian12,
#                    ubuntu2404, ...)
# PHOENIX_TEST_ROOT, set by tests only, is where the files below are.
set -eu
phase=${1:-apply}
: "${CUDA_REPOSITORY:?}"
root=${PHOENIX_TEST_ROOT:-}
keyring=/usr/share/keyrings/cuda-archive-keyring.gpg

distro() {
	# shellcheck disable=SC1091 # present in every supported container
	. "$root/etc/os-release"
	echo "${ID}$(echo "${VERSION_ID}" | tr -d .)"
}

repo() {
	echo "${CUDA_REPOSITORY%/}/$(distro)/x86_64/"
}

# The list the keyring package installs names NVIDIA's own server; phoenix
# writes it with the repository the feature is given, under the same name.
list() {
	echo "$root/etc/apt/sources.list.d/cuda-$(distro)-x86_64.list"
}

sources_line() {
	echo "deb [signed-by=$keyring] $(repo) /"
}

configured() {
	has_packages cuda-keyring && [ -s "$root$keyring" ] &&
		[ "$(cat "$(list)" 2>/dev/null)" = "$(sources_line)" ]
}

case "$phase" in
check)
	configured && apt_source_fetched "$(repo)"
	;;
apply)
	nvidia_works
	use_tmp
	tmp=$(tmp_dir)
	doing "adding NVIDIA's CUDA repository $(repo)" "check the repository parameter"
	fetch "$(repo)cuda-keyring_1.1-1_all.deb" "$tmp/cuda-keyring.deb"
	run dpkg-deb --info "$tmp/cuda-keyring.deb" >/dev/null
	run env DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i "$tmp/cuda-keyring.deb"
	sources_line >"$tmp/cuda.list"
	put "$tmp/cuda.list" "$(list)" 0644
	apt_update
	apt_source_fetched "$(repo)" ||
		fail "apt cannot read the CUDA repository $(repo); check the repository parameter"
	;;
verify)
	configured || fail "the CUDA repository $(repo) is not configured: run the apply again"
	apt_source_fetched "$(repo)" ||
		fail "apt cannot read the CUDA repository $(repo); check the repository parameter and run apt-get update in the container"
	;;
uninstall)
	if has_packages cuda-keyring; then
		doing "removing cuda-keyring" "see the lines above"
		run env DEBIAN_FRONTEND=noninteractive dpkg --purge cuda-keyring
	fi
	rm -f "$(list)"
	apt_update
	;;
*)
	unknown_phase
	;;
esac
