#!/bin/sh
# nvidia-container-toolkit/configure: the nvidia runtime for Docker. An
# unprivileged container cannot manage device cgroups, so there the toolkit
# must not try (no-cgroups = true), or every GPU container fails with
# "bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted".
#   NCT_NO_CGROUPS  true or false
set -eu
phase=${1:-apply}
: "${NCT_NO_CGROUPS:?}"
config=/etc/nvidia-container-runtime/config.toml

configured() {
	grep -q '"nvidia"' /etc/docker/daemon.json 2>/dev/null &&
		grep -Eq "^no-cgroups *= *$NCT_NO_CGROUPS\$" "$config" 2>/dev/null
}

case "$phase" in
check)
	configured
	;;
apply)
	nvidia-ctk runtime configure --runtime=docker
	nvidia-ctk config --set "nvidia-container-cli.no-cgroups=$NCT_NO_CGROUPS" --in-place
	systemctl restart docker
	;;
verify)
	configured
	nvidia-container-cli info >/dev/null
	;;
uninstall)
	# The runtime entry in /etc/docker/daemon.json stays: docker only reads
	# it when a container asks for the nvidia runtime, and the file may hold
	# the user's own settings. What the toolkit configured goes with it.
	rm -f "$config"
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker; then
		systemctl restart docker
	fi
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
