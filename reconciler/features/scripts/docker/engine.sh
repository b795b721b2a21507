#!/bin/sh
# docker/engine: Docker Engine from Docker's repository. In an LXC container
# it needs features nesting=1 (and keyctl=1), which phoenix sets on the
# container before this step and which take effect at its next start.
set -eu
phase=${1:-apply}

case "$phase" in
check)
	command -v docker >/dev/null 2>&1 && systemctl is-enabled --quiet docker
	;;
apply)
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC1091
	. /etc/os-release
	install -m 0755 -d /etc/apt/keyrings
	curl -fsSL --retry 3 "https://download.docker.com/linux/${ID}/gpg" -o /etc/apt/keyrings/docker.asc
	echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/${ID} ${VERSION_CODENAME} stable" \
		>/etc/apt/sources.list.d/docker.list
	apt-get update -q
	apt-get install -y -q docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
	systemctl enable --now docker
	;;
verify)
	docker info >/dev/null
	;;
uninstall)
	export DEBIAN_FRONTEND=noninteractive
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now docker.socket docker >/dev/null 2>&1 || true
	fi
	apt-get purge -y -q docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
	# Images, containers and volumes in /var/lib/docker are data: they stay.
	rm -f /etc/apt/sources.list.d/docker.list /etc/apt/keyrings/docker.asc
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
