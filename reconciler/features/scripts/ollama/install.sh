#!/bin/sh
# ollama/install: ollama with its service, at OLLAMA_VERSION when set.
#   OLLAMA_VERSION  MAJOR.MINOR.PATCH, or empty for the current release
set -eu
phase=${1:-apply}

version() {
	ollama --version 2>/dev/null | sed -n 's/.*version is \([0-9.]*\).*/\1/p'
}

case "$phase" in
check)
	command -v ollama >/dev/null 2>&1 || exit 1
	[ -z "${OLLAMA_VERSION:-}" ] || [ "$(version)" = "$OLLAMA_VERSION" ]
	;;
apply)
	tmp=$(mktemp)
	curl -fsSL --retry 3 -o "$tmp" https://ollama.com/install.sh
	OLLAMA_VERSION="${OLLAMA_VERSION:-}" sh "$tmp"
	rm -f "$tmp"
	;;
verify)
	ollama --version >/dev/null
	# ollama's service runs as user ollama: with a GPU passed through, that
	# user must reach it, or ollama runs on the CPU without a word.
	if [ -e /dev/nvidiactl ] && command -v nvidia-smi >/dev/null 2>&1 && id ollama >/dev/null 2>&1; then
		if ! out=$(runuser -u ollama -- nvidia-smi -L 2>&1); then
			echo "ollama's service user cannot use the GPU ($out): pass the device nodes with a mode or a group ollama is in" >&2
			exit 1
		fi
	fi
	;;
uninstall)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now ollama >/dev/null 2>&1 || true
	fi
	rm -f /etc/systemd/system/ollama.service /usr/local/bin/ollama /usr/bin/ollama
	rm -rf /usr/local/lib/ollama
	# The models in /usr/share/ollama are data: they stay, and so does the
	# ollama user that owns them.
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
