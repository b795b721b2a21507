#!/bin/sh
# docker/engine: Docker Engine, from Docker's apt repository (docker-ce) or
# from the distribution (docker.io). In an LXC container it needs features
# nesting=1 (and keyctl=1), which phoenix sets on the container before this
# step and which take effect at its next start.
#   DOCKER_SOURCE      docker (Docker's repository) or distribution
#   DOCKER_REPOSITORY  Docker's repository, or a mirror of it: the key is
#                      <repository>/<distribution id>/gpg
# PHOENIX_TEST_ROOT, set by tests only, is where the files below are.
set -eu
phase=${1:-apply}
: "${DOCKER_SOURCE:?}" "${DOCKER_REPOSITORY:?}"
root=${PHOENIX_TEST_ROOT:-}
key=$root/etc/apt/keyrings/docker.asc
list=$root/etc/apt/sources.list.d/docker.list

case "$DOCKER_SOURCE" in
docker) packages="docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin" ;;
distribution) packages="docker.io" ;;
*) fail "DOCKER_SOURCE is $DOCKER_SOURCE: want docker or distribution" ;;
esac

# os FIELD: a field of /etc/os-release (ID: debian, ubuntu; VERSION_CODENAME).
os() {
	# shellcheck disable=SC1091 # every supported container has it
	(. "$root/etc/os-release" && eval "printf '%s\n' \"\${$1:-}\"")
}

# sources_line: Docker's repository for this distribution release.
sources_line() {
	echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] ${DOCKER_REPOSITORY%/}/$(os ID) $(os VERSION_CODENAME) stable"
}

installed() {
	# shellcheck disable=SC2086 # the package list is meant to split
	has_packages $packages || return 1
	if [ "$DOCKER_SOURCE" = docker ]; then
		[ -s "$key" ] && [ "$(cat "$list" 2>/dev/null)" = "$(sources_line)" ] || return 1
	fi
	systemctl is-enabled --quiet docker 2>/dev/null
}

# runs_a_container: the engine starts a container, from an image made here
# of the container's own static ldconfig (no registry needed).
runs_a_container() {
	use_tmp
	img=$(tmp_dir)/image
	mkdir -p "$img"
	cp /sbin/ldconfig "$img/ldconfig"
	doing "docker import of a one-file image" "see the lines above: the engine does not work"
	tar -C "$img" -c . | docker import - phoenix-verify:latest >/dev/null
	doing "docker run of a container" "the engine cannot start containers: an LXC container needs nesting=1 (and keyctl=1) and, with runc 1.2.8 or later, a Proxmox VE host with lxc-pve 6.0.5-2 (PVE 9) or 6.0.0-2 (PVE 8) or later"
	run docker run --rm --network none phoenix-verify:latest /ldconfig --version >/dev/null
	done_doing
	docker image rm phoenix-verify:latest >/dev/null 2>&1 || true
}

case "$phase" in
check)
	installed && docker info >/dev/null 2>&1
	;;
apply)
	if [ "$DOCKER_SOURCE" = docker ]; then
		use_tmp
		tmp=$(tmp_dir)
		doing "adding Docker's repository" "check the repository parameter"
		fetch "${DOCKER_REPOSITORY%/}/$(os ID)/gpg" "$tmp/docker.asc"
		grep -q 'BEGIN PGP PUBLIC KEY BLOCK' "$tmp/docker.asc" ||
			fail "the key from ${DOCKER_REPOSITORY%/} is not an OpenPGP key; check the repository parameter"
		sources_line >"$tmp/docker.list"
		put "$tmp/docker.asc" "$key" 0644
		put "$tmp/docker.list" "$list" 0644
	fi
	apt_update
	if [ "$DOCKER_SOURCE" = docker ] && ! apt_source_fetched "${DOCKER_REPOSITORY%/}/"; then
		fail "apt cannot read Docker's repository at ${DOCKER_REPOSITORY%/}; check the repository parameter"
	fi
	# shellcheck disable=SC2086 # the package list is meant to split
	apt_install $packages
	doing "starting docker" "see journalctl -u docker in the container"
	systemctl enable --now docker
	done_doing
	;;
verify)
	doing "docker info" "the docker daemon does not answer: see journalctl -u docker in the container"
	run docker info >/dev/null
	runs_a_container
	;;
uninstall)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now docker.socket docker >/dev/null 2>&1 || true
	fi
	doing "removing docker" "see the lines above"
	# shellcheck disable=SC2086 # the package list is meant to split
	apt_get purge -y $packages
	done_doing
	# Images, containers and volumes in /var/lib/docker are data: they stay.
	rm -f "$list" "$key"
	;;
*)
	unknown_phase
	;;
esac
