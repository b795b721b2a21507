#!/bin/sh
# phoenix/host-probe: what a Proxmox node offers an LXC container in NVIDIA
# GPUs. Runs as root on the node through /bin/sh -c (dash on Proxmox VE), so
# it is POSIX sh. Output, one fact per line, parsed strictly by phoenix:
#
#   driver <version|none>
#   pci-gpus <count>
#   device <path> <major> <minor> <mode>   (numbers decimal, the mode octal as
#                                          stat prints it; one line per node)
#
# PHOENIX_PROBE_ROOT prefixes every path read, so tests can run the probe
# against a fake /proc, /sys and /dev; it is empty on a real node.
set -u
root=${PHOENIX_PROBE_ROOT:-}

# The loaded kernel module's version. Its first line is
#   NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.76.05  Release Build ...
# or, for the open modules,
#   NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.76.05  Release Build ...
# so take the first dotted number on the NVRM line, not a fixed column.
driver=
if [ -r "$root/proc/driver/nvidia/version" ]; then
	driver=$(awk '/^NVRM version:/ {
		for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+(\.[0-9]+)+$/) { print $i; exit }
	}' "$root/proc/driver/nvidia/version")
fi
if [ -z "$driver" ] && [ -r "$root/sys/module/nvidia/version" ]; then
	driver=$(awk 'NR == 1 && /^[0-9]+(\.[0-9]+)+$/ { print; exit }' "$root/sys/module/nvidia/version")
fi
echo "driver ${driver:-none}"

# GPUs on the PCI bus whether or not a driver claimed them: vendor 0x10de,
# class VGA (0x0300xx) or 3D controller (0x0302xx). The HDMI audio functions
# of the same cards (0x0403xx) are not GPUs.
gpus=0
for dev in "$root"/sys/bus/pci/devices/*; do
	[ -r "$dev/vendor" ] || continue
	[ -r "$dev/class" ] || continue
	[ "$(cat "$dev/vendor")" = 0x10de ] || continue
	case $(cat "$dev/class") in
	0x0300?? | 0x0302??) gpus=$((gpus + 1)) ;;
	esac
done
echo "pci-gpus $gpus"

# device prints one character device node with its real numbers and its
# mode. stat prints the numbers in hex; nvidia-uvm and nvidia-caps get dynamic
# majors that differ from host to host, so they are read, never assumed. The
# mode is what a container's node gets, so that its users reach the GPU as the
# host's do.
device() {
	[ -c "$root$1" ] || return 0
	nums=$(stat -c '%t %T %a' "$root$1") || return 0
	major=${nums%% *}
	rest=${nums#* }
	printf 'device %s %d %d %s\n' "$1" "0x$major" "0x${rest%% *}" "${rest#* }"
}

# A fixed order (GPUs by number, then the control nodes, then anything else),
# so the same host always yields the same list and the same devN numbering.
for f in "$root"/dev/nvidia[0-9]*; do
	[ -c "$f" ] && device "${f#"$root"}"
done | sort -n -k 4
for name in nvidiactl nvidia-modeset nvidia-uvm nvidia-uvm-tools; do
	device "/dev/$name"
done
for f in "$root"/dev/nvidia*; do
	name=${f#"$root"/dev/}
	case $name in
	nvidia[0-9]* | nvidiactl | nvidia-modeset | nvidia-uvm | nvidia-uvm-tools) continue ;;
	esac
	device "/dev/$name"
done
for f in "$root"/dev/nvidia-caps/*; do
	device "${f#"$root"}"
done
