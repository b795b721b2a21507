#!/bin/sh
# phoenix/identity: give a cloned container an identity of its own. A clone
# is a copy of its source's disk: every clone of a template with an SSH
# server has the template's host keys, so one leaked clone could pass for any
# of them. Proxmox's clone clears /etc/machine-id only (systemd makes a new
# one at boot). phoenix runs this once per clone, right after its first
# start, and records it.
set -eu
phase=${1:-apply}

case "$phase" in
check)
	exit 1 # phoenix's record says whether it ran
	;;
apply)
	if [ -d /etc/ssh ]; then
		rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
		if command -v ssh-keygen >/dev/null 2>&1; then
			ssh-keygen -A
		fi
		if command -v systemctl >/dev/null 2>&1; then
			systemctl try-restart ssh.service sshd.service 2>/dev/null || true
		fi
	fi
	if [ ! -s /etc/machine-id ] && command -v systemd-machine-id-setup >/dev/null 2>&1; then
		systemd-machine-id-setup
	fi
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
