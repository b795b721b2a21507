#!/bin/sh
# cuda-toolkit/toolkit: the CUDA toolkit package only. cuda, cuda-X-Y,
# cuda-runtime-X-Y and cuda-drivers pull the driver packages and a kernel
# module build, which must never happen inside a container.
#   CUDA_VERSION  MAJOR.MINOR
#   CUDA_PACKAGE  cuda-toolkit-MAJOR-MINOR
set -eu
phase=${1:-apply}
: "${CUDA_VERSION:?}" "${CUDA_PACKAGE:?}"

release() {
	/usr/local/cuda/bin/nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\),.*/\1/p'
}

case "$phase" in
check)
	[ "$(release)" = "$CUDA_VERSION" ]
	;;
apply)
	case "$CUDA_PACKAGE" in
	cuda-toolkit-[0-9]*-[0-9]*) ;;
	*)
		echo "refusing to install $CUDA_PACKAGE in a container: only cuda-toolkit-X-Y" >&2
		exit 1
		;;
	esac
	nvidia-smi >/dev/null
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "$CUDA_PACKAGE"
	;;
verify)
	got=$(release)
	if [ "$got" != "$CUDA_VERSION" ]; then
		echo "nvcc reports release ${got:-none}, want $CUDA_VERSION" >&2
		exit 1
	fi
	;;
uninstall)
	export DEBIAN_FRONTEND=noninteractive
	apt-get purge -y -q "$CUDA_PACKAGE"
	apt-get autoremove -y -q
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
