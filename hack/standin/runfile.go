package standin

import "strings"

// runfile is the stand-in for NVIDIA's driver runfile of version v, on a
// host whose kernel module is host: a shell script that takes the flags the
// userspace step passes, refuses to build a kernel module (there is none to
// build in a container) and installs a stand-in nvidia-smi.
func runfile(v, host string) string {
	return strings.NewReplacer("@VERSION@", v, "@SMI@", nvidiaSMI(v, host)).Replace(`#!/bin/sh
# NVIDIA-Linux-x86_64-@VERSION@.run: a stand-in made by phoenix's tests for
# NVIDIA's driver runfile. It is not NVIDIA's installer.
set -eu
echo "phoenix stand-in for NVIDIA's driver runfile @VERSION@ (not NVIDIA's installer)"
kernel_module=yes
for a in "$@"; do
	case "$a" in
	--silent | -s | --no-questions | -q | --ui=none | --no-nouveau-check | --no-x-check | --no-nvidia-modprobe | --no-dkms | --accept-license) ;;
	--no-kernel-module | --no-kernel-modules) kernel_module=no ;;
	*)
		echo "ERROR: Unrecognized option: '$a'"
		exit 1
		;;
	esac
done
if [ "$(id -u)" != 0 ]; then
	echo "ERROR: nvidia-installer must be run as root"
	exit 1
fi
if [ "$kernel_module" = yes ]; then
	echo "ERROR: Unable to find the kernel source tree for the currently running kernel (a container has none: pass --no-kernel-module; the host's module serves it)"
	exit 1
fi
mkdir -p /usr/bin /var/log
cat >/usr/bin/nvidia-smi.phoenix-new <<'SMI'
@SMI@SMI
chmod 0755 /usr/bin/nvidia-smi.phoenix-new
mv -f /usr/bin/nvidia-smi.phoenix-new /usr/bin/nvidia-smi
cat >/usr/bin/nvidia-uninstall <<'UNINSTALL'
#!/bin/sh
# nvidia-uninstall: phoenix stand-in; removes what the runfile stand-in installed.
rm -f /usr/bin/nvidia-smi /usr/bin/nvidia-uninstall
echo "phoenix stand-in: NVIDIA userspace @VERSION@ removed" >/var/log/nvidia-uninstall.log
UNINSTALL
chmod 0755 /usr/bin/nvidia-uninstall
echo "phoenix stand-in: NVIDIA userspace @VERSION@ installed (nvidia-smi only)" >/var/log/nvidia-installer.log
echo "phoenix stand-in: installed nvidia-smi @VERSION@"
`)
}

// nvidiaSMI is the stand-in nvidia-smi of userspace version v on a host
// whose kernel module is host. There is no GPU behind the device nodes on a
// test machine: opening one reaches no driver (ENXIO), which the stand-in
// takes for the GPU; a node that is missing, or that the container or the
// user may not open, fails as NVML does, on stdout.
func nvidiaSMI(v, host string) string {
	return strings.NewReplacer("@VERSION@", v, "@HOST@", host).Replace(`#!/bin/sh
# nvidia-smi: a stand-in installed by phoenix's runfile stand-in (userspace
# @VERSION@, host module @HOST@). It is not NVIDIA's nvidia-smi.
nvml_fail() {
	echo "Failed to initialize NVML: $1"
	exit "$2"
}
# NVML opens nvidiactl first, then each GPU's node. A real H200 (driver
# 580.159.04) answered a user who may not open nvidiactl with "Insufficient
# Permissions" and status 4, and one who may open nvidiactl but not
# /dev/nvidia0 with "No devices found." and status 0
# (hack/gpuprobe/testdata/h200, nvml-root-only and nvml-gpu-root-only).
for dev in /dev/nvidiactl /dev/nvidia0; do
	[ -c "$dev" ] || nvml_fail "Unknown Error" 255
	if ! err=$(LC_ALL=C dd if="$dev" of=/dev/null count=0 2>&1); then
		case "$err" in
		*"Operation not permitted"*) nvml_fail "Unknown Error" 255 ;;
		*"Permission denied"*)
			if [ "$dev" = /dev/nvidia0 ]; then
				echo "No devices found."
				exit 0
			fi
			nvml_fail "Insufficient Permissions" 4
			;;
		*"No such device or address"* | *"No such device"*) ;;
		*) nvml_fail "Unknown Error" 255 ;;
		esac
	fi
done
if [ "@VERSION@" != "@HOST@" ]; then
	echo "Failed to initialize NVML: Driver/library version mismatch"
	echo "NVML library version: @VERSION@"
	exit 18
fi
case "$*" in
*--query-gpu=driver_version*) echo "@VERSION@" ;;
*--query-gpu=*) echo "[N/A]" ;;
-L | --list-gpus) echo "GPU 0: phoenix stand-in GPU (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;
"")
	echo "+-----------------------------------------------------------------------------+"
	echo "| NVIDIA-SMI @VERSION@ (phoenix stand-in)   Driver Version: @HOST@            |"
	echo "|   0  phoenix stand-in GPU                                                   |"
	echo "+-----------------------------------------------------------------------------+"
	;;
*) echo "nvidia-smi (phoenix stand-in): $* is not modelled" >&2 ;;
esac
`)
}
