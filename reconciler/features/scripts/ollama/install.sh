#!/bin/sh
# ollama/install: ollama with its service, at OLLAMA_VERSION when set, from
# ollama's install script.
#   OLLAMA_VERSION    MAJOR.MINOR.PATCH, or empty for the current release
#   OLLAMA_INSTALLER  the install script's URL (ollama's, or a mirror's)
# The install script needs zstd. When it finds an NVIDIA GPU on the PCI bus
# (a container sees the host's) and no nvidia-smi, it installs NVIDIA's
# cuda-drivers, kernel headers and a DKMS module build: never in a
# container. On a guest with GPUs phoenix requires the nvidia-driver feature
# first; anywhere else the script is kept from seeing an NVIDIA GPU to
# install for.
# PHOENIX_TEST_ROOT, set by tests only, is where the files below are.
set -eu
phase=${1:-apply}
: "${OLLAMA_INSTALLER:?}"
root=${PHOENIX_TEST_ROOT:-}
api=http://127.0.0.1:11434/api/version

version() {
	ollama --version 2>/dev/null | sed -n 's/.*version is \([0-9.]*\).*/\1/p' | head -n 1
}

answers() {
	curl -fsS --max-time 5 "$api" >/dev/null 2>&1
}

# serving: the server answers within a minute of its (re)start.
serving() {
	n=0
	until answers; do
		n=$((n + 1))
		[ "$n" -lt 60 ] || return 1
		sleep 1
	done
}

case "$phase" in
check)
	command -v ollama >/dev/null 2>&1 || exit 1
	[ -z "${OLLAMA_VERSION:-}" ] || [ "$(version)" = "$OLLAMA_VERSION" ] || exit 1
	systemctl is-enabled --quiet ollama 2>/dev/null && answers
	;;
apply)
	need curl base
	# The install script unpacks with zstd; it stops without it.
	apt_update
	apt_install zstd
	use_tmp
	tmp=$(tmp_dir)
	doing "downloading ollama's install script" "check the installer parameter"
	fetch "$OLLAMA_INSTALLER" "$tmp/install.sh"
	head -n 1 "$tmp/install.sh" | grep -q '^#!.*sh' ||
		fail "$OLLAMA_INSTALLER is not a shell script; check the installer parameter"
	mkdir "$tmp/bin"
	if ! command -v nvidia-smi >/dev/null 2>&1; then
		# The install script skips its driver installation when it finds an
		# nvidia-smi command: give it one that only says why.
		cat >"$tmp/bin/nvidia-smi" <<'SHIM'
#!/bin/sh
echo "phoenix: no NVIDIA driver in this container, and ollama's installer may not install one"
exit 1
SHIM
		chmod 0755 "$tmp/bin/nvidia-smi"
		echo "no NVIDIA driver here: ollama's installer is kept from installing one (it would install cuda-drivers and a kernel module)"
	fi
	doing "ollama's install script" "see the lines above"
	run env PATH="$tmp/bin:$PATH" OLLAMA_VERSION="${OLLAMA_VERSION:-}" sh "$tmp/install.sh"
	done_doing
	;;
verify)
	doing "ollama --version" "ollama is not installed: run the apply again"
	run ollama --version >/dev/null
	done_doing
	got=$(version)
	if [ -n "${OLLAMA_VERSION:-}" ] && [ "$got" != "$OLLAMA_VERSION" ]; then
		fail "ollama reports version ${got:-none}, want $OLLAMA_VERSION: run the apply again"
	fi
	serving || fail "ollama's server does not answer on $api: see journalctl -u ollama in the container"
	# ollama's service runs as user ollama: with a GPU passed through, that
	# user must reach it, or ollama runs on the CPU without a word.
	if [ -e "$root/dev/nvidiactl" ]; then
		need nvidia-smi nvidia-driver
		if ! why=$(gpu_problem ollama); then
			fail "ollama's service user cannot use the GPU ($why): pass the device nodes with a mode or a group ollama is in"
		fi
	fi
	;;
uninstall)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now ollama >/dev/null 2>&1 || true
	fi
	rm -f "$root/etc/systemd/system/ollama.service" "$root/usr/local/bin/ollama" "$root/usr/bin/ollama"
	rm -rf "$root/usr/local/lib/ollama"
	# The models in /usr/share/ollama are data: they stay, and so does the
	# ollama user that owns them.
	;;
*)
	unknown_phase
	;;
esac
