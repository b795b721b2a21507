#!/bin/sh
# cuda-toolkit/toolkit: the CUDA toolkit package only. cuda, cuda-X-Y,
# cuda-runtime-X-Y and cuda-drivers pull the driver packages and a kernel
# module build, which must never happen inside a container.
#   CUDA_VERSION     MAJOR.MINOR
#   CUDA_PACKAGE     cuda-toolkit-MAJOR-MINOR
#   CUDA_MIN_DRIVER  the oldest NVIDIA driver this CUDA release runs on;
#                    empty where phoenix knows none
set -eu
phase=${1:-apply}
: "${CUDA_VERSION:?}" "${CUDA_PACKAGE:?}"
root=${PHOENIX_TEST_ROOT:-}

release() {
	"$root/usr/local/cuda/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\),.*/\1/p'
}

driver() {
	nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1
}

driver_ok() {
	[ -z "${CUDA_MIN_DRIVER:-}" ] || version_at_least "$(driver)" "$CUDA_MIN_DRIVER"
}

case "$phase" in
check)
	[ "$(release)" = "$CUDA_VERSION" ] && driver_ok
	;;
apply)
	case "$CUDA_PACKAGE" in
	cuda-toolkit-[0-9]*-[0-9]*) ;;
	*) fail "refusing to install $CUDA_PACKAGE in a container: only cuda-toolkit-X-Y" ;;
	esac
	nvidia_works
	apt_update
	apt_install "$CUDA_PACKAGE"
	;;
verify)
	nvidia_works
	got=$(release)
	if [ "$got" != "$CUDA_VERSION" ]; then
		fail "nvcc reports release ${got:-none}, want $CUDA_VERSION: run the apply again"
	fi
	if ! driver_ok; then
		fail "CUDA $CUDA_VERSION needs NVIDIA driver $CUDA_MIN_DRIVER or later, the host has $(driver): upgrade the host's driver or choose an older cuda-toolkit version"
	fi
	if [ -z "${CUDA_MIN_DRIVER:-}" ]; then
		echo "phoenix knows no minimum driver for CUDA $CUDA_VERSION: not checked against driver $(driver)" >&2
	fi
	;;
uninstall)
	doing "removing $CUDA_PACKAGE" "see the lines above"
	apt_get purge -y "$CUDA_PACKAGE"
	apt_get autoremove -y
	done_doing
	;;
*)
	unknown_phase
	;;
esac
