#!/bin/sh
# nvidia-driver/userspace: the NVIDIA userspace at exactly the host's driver
# version, without a kernel module (the host's module serves the container).
#   NVIDIA_VERSION     the host kernel module's version
#   NVIDIA_RUNFILE     the runfile pushed into the container
#   NVIDIA_CHECK_USER  optional: a user other than root that must reach the
#                      GPU too (the device nodes are 0660 and root's inside a
#                      container unless phoenix passes them with a mode)
set -eu
phase=${1:-apply}
: "${NVIDIA_VERSION:?}" "${NVIDIA_RUNFILE:?}"

reported() {
	nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1
}

case "$phase" in
check)
	[ "$(reported)" = "$NVIDIA_VERSION" ]
	;;
apply)
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends kmod pkg-config libglvnd-dev
	sh "$NVIDIA_RUNFILE" --silent --no-kernel-module --no-questions --ui=none \
		--no-nouveau-check --no-x-check --no-nvidia-modprobe --no-dkms
	rm -f "$NVIDIA_RUNFILE"
	;;
verify)
	# nvidia-smi must work and report the host's version: a mismatch shows as
	# "Failed to initialize NVML: Driver/library version mismatch".
	nvidia-smi >/dev/null
	got=$(reported)
	if [ "$got" != "$NVIDIA_VERSION" ]; then
		echo "nvidia-smi reports driver $got, want $NVIDIA_VERSION" >&2
		exit 1
	fi
	if [ -n "${NVIDIA_CHECK_USER:-}" ] && ! out=$(runuser -u "$NVIDIA_CHECK_USER" -- nvidia-smi -L 2>&1); then
		echo "as $NVIDIA_CHECK_USER, nvidia-smi fails ($out): the GPU's device nodes are usable by root only" >&2
		exit 1
	fi
	;;
uninstall)
	# The runfile's own uninstaller removes what it installed; the host's
	# kernel module is not the container's to touch.
	if command -v nvidia-uninstall >/dev/null 2>&1; then
		nvidia-uninstall --silent --no-questions --ui=none
	elif command -v nvidia-installer >/dev/null 2>&1; then
		nvidia-installer --uninstall --silent --no-questions --ui=none
	fi
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
