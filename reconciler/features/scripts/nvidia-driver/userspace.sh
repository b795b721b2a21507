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
	[ -s "$NVIDIA_RUNFILE" ] || fail "$NVIDIA_RUNFILE is missing or empty: phoenix pushes it from the node before this step; run the apply again"
	apt_update
	apt_install kmod pkg-config libglvnd-dev
	doing "installing NVIDIA's userspace driver $NVIDIA_VERSION" "see /var/log/nvidia-installer.log in the container"
	run sh "$NVIDIA_RUNFILE" --silent --no-kernel-module --no-questions --ui=none \
		--no-nouveau-check --no-x-check --no-nvidia-modprobe --no-dkms
	done_doing
	rm -f "$NVIDIA_RUNFILE"
	;;
verify)
	# nvidia-smi must work and report the host's version: a mismatch shows as
	# "Failed to initialize NVML: Driver/library version mismatch", printed
	# on stdout.
	nvidia_works
	got=$(reported)
	if [ "$got" != "$NVIDIA_VERSION" ]; then
		fail "nvidia-smi reports driver $got, want the host's $NVIDIA_VERSION: run the apply again"
	fi
	if [ -n "${NVIDIA_CHECK_USER:-}" ] && ! why=$(gpu_problem "$NVIDIA_CHECK_USER"); then
		fail "as $NVIDIA_CHECK_USER, nvidia-smi lists no GPU ($why): the GPU's device nodes are usable by root only; pass them with a mode or gpuGroup"
	fi
	;;
uninstall)
	# The runfile's own uninstaller removes what it installed; the host's
	# kernel module is not the container's to touch.
	doing "removing NVIDIA's userspace driver" "see /var/log/nvidia-uninstall.log in the container"
	if command -v nvidia-uninstall >/dev/null 2>&1; then
		run nvidia-uninstall --silent --no-questions --ui=none
	elif command -v nvidia-installer >/dev/null 2>&1; then
		run nvidia-installer --uninstall --silent --no-questions --ui=none
	fi
	done_doing
	;;
*)
	unknown_phase
	;;
esac
