#!/bin/sh
# nvidia-container-toolkit/install: NVIDIA's container toolkit, from its
# repository, for GPUs in Docker containers.
set -eu
phase=${1:-apply}

case "$phase" in
check | verify)
	command -v nvidia-ctk >/dev/null 2>&1
	;;
apply)
	command -v docker >/dev/null 2>&1
	export DEBIAN_FRONTEND=noninteractive
	curl -fsSL --retry 3 https://nvidia.github.io/libnvidia-container/gpgkey |
		gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
	curl -fsSL --retry 3 https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list |
		sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \
			>/etc/apt/sources.list.d/nvidia-container-toolkit.list
	apt-get update -q
	apt-get install -y -q nvidia-container-toolkit
	;;
uninstall)
	export DEBIAN_FRONTEND=noninteractive
	apt-get purge -y -q nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1
	rm -f /etc/apt/sources.list.d/nvidia-container-toolkit.list /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
