#!/bin/sh
# cuda-toolkit/repository: NVIDIA's CUDA repository for the container's own
# distribution, read from /etc/os-release. Runs only after the driver is
# verified: installing CUDA first is what broke the hand-written scripts.
set -eu
phase=${1:-apply}

distro() {
	# shellcheck disable=SC1091 # present in every supported container
	. /etc/os-release
	echo "${ID}$(echo "${VERSION_ID}" | tr -d .)"
}

case "$phase" in
check | verify)
	dpkg-query -W -f='${Status}' cuda-keyring 2>/dev/null | grep -q 'install ok installed' &&
		grep -rqs "compute/cuda/repos/$(distro)/" /etc/apt/sources.list.d/
	;;
apply)
	nvidia-smi >/dev/null
	d=$(distro)
	tmp=$(mktemp -d)
	curl -fsSL --retry 3 -o "$tmp/cuda-keyring.deb" \
		"https://developer.download.nvidia.com/compute/cuda/repos/$d/x86_64/cuda-keyring_1.1-1_all.deb"
	dpkg -i "$tmp/cuda-keyring.deb"
	rm -rf "$tmp"
	apt-get update -q
	;;
uninstall)
	export DEBIAN_FRONTEND=noninteractive
	if dpkg-query -W -f='${Status}' cuda-keyring 2>/dev/null | grep -q 'install ok installed'; then
		dpkg --purge cuda-keyring
	fi
	rm -f /etc/apt/sources.list.d/cuda-*.list
	apt-get update -q
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
