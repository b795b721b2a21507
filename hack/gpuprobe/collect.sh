#!/bin/sh
# shellcheck disable=SC2016 # the sh -c bodies expand in their own shell
# collect.sh OUT: on a machine with a real NVIDIA GPU and driver, capture
# what phoenix reads there (the host probe, /proc/driver/nvidia/version, the
# device nodes, nvidia-smi as the feature steps call it, and how NVML fails
# when a node is missing or may not be opened), then run gpuprobe (built
# beforehand at ./bin/gpuprobe.bin) for the local provider's probe and the
# NVIDIA verify steps. Everything lands in OUT; nothing on the machine is
# changed outside private mount namespaces and OUT.
set -u
out=${1:?usage: collect.sh OUT}
mkdir -p "$out"

# capture NAME CMD...: stdout, stderr and the exit status of CMD.
capture() {
	name=$1
	shift
	"$@" >"$out/$name.out" 2>"$out/$name.err"
	echo $? >"$out/$name.rc"
}

capture uname uname -a
capture os-release cat /etc/os-release
capture proc-driver-nvidia-version cat /proc/driver/nvidia/version
capture sys-module-nvidia-version cat /sys/module/nvidia/version
capture probe sh providers/internal/nodecmd/host-probe.sh
capture dev-nodes sh -c 'for f in /dev/nvidia* /dev/nvidia-caps/*; do [ -e "$f" ] && stat -c "%n %F %t %T %a %U %G" "$f"; done'
capture pci sh -c 'for d in /sys/bus/pci/devices/*; do [ "$(cat "$d/vendor")" = 0x10de ] && echo "${d##*/} $(cat "$d/vendor") $(cat "$d/device") $(cat "$d/class")"; done'
capture proc-devices cat /proc/devices
capture nvidia-smi nvidia-smi
capture nvidia-smi-L nvidia-smi -L
capture nvidia-smi-driver nvidia-smi --query-gpu=driver_version --format=csv,noheader
capture nvidia-smi-query nvidia-smi --query-gpu=index,name,uuid,driver_version,pci.bus_id,memory.total,compute_cap --format=csv
capture nvidia-smi-bogus nvidia-smi --query-gpu=no_such_field --format=csv,noheader
capture which sh -c 'for c in nvidia-smi nvidia-modprobe nvidia-ctk nvidia-container-cli nvcc unshare runuser; do printf "%s " "$c"; command -v "$c" || echo none; done'
capture nvidia-ctk nvidia-ctk --version
capture nvidia-container-cli-info nvidia-container-cli info
capture nvcc sh -c 'nvcc --version || /usr/local/cuda/bin/nvcc --version'
capture nobody-L runuser -u nobody -- nvidia-smi -L

# NVML's failures, each in a private mount namespace: the real nodes stay as
# they are for everything else on the machine.
nodes='mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/urandom c 1 9'
capture nvml-no-nodes unshare -m sh -c "mount -t tmpfs tmpfs /dev && $nodes && nvidia-smi -L"
capture nvml-no-gpu-node unshare -m sh -c "mount -t tmpfs tmpfs /dev && $nodes && mknod -m 666 /dev/nvidiactl c 195 255 && nvidia-smi -L"
capture nvml-root-only unshare -m sh -c "mount -t tmpfs tmpfs /dev && $nodes && mknod -m 600 /dev/nvidiactl c 195 255 && mknod -m 600 /dev/nvidia0 c 195 0 && runuser -u nobody -- nvidia-smi -L"
capture nvml-gpu-root-only unshare -m sh -c "mount -t tmpfs tmpfs /dev && $nodes && mknod -m 666 /dev/nvidiactl c 195 255 && mknod -m 600 /dev/nvidia0 c 195 0 && runuser -u nobody -- nvidia-smi -L"
# As in a container, where the userspace is installed without
# nvidia-modprobe: NVML cannot create a missing node itself.
nomodprobe='m=$(command -v nvidia-modprobe) && mount --bind /bin/false "$m"; true'
capture nvml-no-nodes-no-modprobe unshare -m sh -c "$nomodprobe; mount -t tmpfs tmpfs /dev && $nodes && nvidia-smi -L"
capture nvml-no-gpu-node-no-modprobe unshare -m sh -c "$nomodprobe; mount -t tmpfs tmpfs /dev && $nodes && mknod -m 666 /dev/nvidiactl c 195 255 && nvidia-smi -L"
capture nvml-no-ctl-no-modprobe unshare -m sh -c "$nomodprobe; mount -t tmpfs tmpfs /dev && $nodes && mknod -m 666 /dev/nvidia0 c 195 0 && nvidia-smi -L"
capture nvml-after-tmpfs-dev sh -c 'ls /dev/nvidia*'

if [ -x ./bin/gpuprobe.bin ]; then
	capture gpuprobe ./bin/gpuprobe.bin -examples examples/homelab -out "$out"
	# The same steps where the GPU's node is root's only (mode 0600) while
	# nvidiactl is open to all: what a user other than root then sees.
	mkdir -p "$out/gpu-root-only"
	capture gpuprobe-gpu-root-only unshare -m sh -c "mount -t tmpfs tmpfs /dev && $nodes && mknod -m 666 /dev/nvidiactl c 195 255 && mknod -m 600 /dev/nvidia0 c 195 0 && ./bin/gpuprobe.bin -examples examples/homelab -out $out/gpu-root-only"
fi
ls -l "$out"
