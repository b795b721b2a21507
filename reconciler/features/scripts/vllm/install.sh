#!/bin/sh
# vllm/install: vLLM at a pinned version in its own virtual environment
# (/opt/vllm), against the CUDA toolkit installed before it.
#   VLLM_VERSION  MAJOR.MINOR.PATCH
#   VLLM_INDEX    the Python package index (PyPI's, or a mirror's)
# PHOENIX_TEST_ROOT, set by tests only, is where the files below are.
set -eu
phase=${1:-apply}
: "${VLLM_VERSION:?}" "${VLLM_INDEX:?}"
root=${PHOENIX_TEST_ROOT:-}
venv=$root/opt/vllm
cas=$root/etc/ssl/certs/ca-certificates.crt

installed() {
	"$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm"))' 2>/dev/null
}

works() {
	[ "$(installed)" = "$VLLM_VERSION" ] && "$venv/bin/python" -c 'import vllm' >/dev/null 2>&1
}

case "$phase" in
check)
	works
	;;
apply)
	apt_update
	apt_install python3-venv python3-dev
	doing "making the virtual environment $venv" "see the lines above"
	if ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
		# A venv made by a killed run is made again.
		run python3 -m venv --clear "$venv"
	fi
	# pip trusts the system's CAs, as apt and curl do: a mirror's own CA
	# installed in the container serves it too.
	set -- --index-url "$VLLM_INDEX"
	[ -s "$cas" ] && set -- "$@" --cert "$cas"
	doing "pip install vllm==$VLLM_VERSION" "check the index parameter and that the guest reaches it"
	run "$venv/bin/pip" install --disable-pip-version-check "$@" "vllm==$VLLM_VERSION"
	done_doing
	;;
verify)
	got=$(installed) || true
	[ "$got" = "$VLLM_VERSION" ] || fail "vllm ${got:-is not installed}${got:+ is installed}, want $VLLM_VERSION: run the apply again"
	doing "import vllm" "see the lines above"
	run "$venv/bin/python" -c 'import vllm' >/dev/null
	done_doing
	"$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
		fail "torch in $venv sees no CUDA device: check the nvidia-driver and cuda-toolkit features"
	;;
uninstall)
	rm -rf "$venv"
	;;
*)
	unknown_phase
	;;
esac
