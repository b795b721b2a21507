#!/bin/sh
# vllm/install: vLLM at a pinned version in its own virtual environment
# (/opt/vllm), against the CUDA toolkit installed before it.
#   VLLM_VERSION  MAJOR.MINOR.PATCH
set -eu
phase=${1:-apply}
: "${VLLM_VERSION:?}"
venv=/opt/vllm

installed() {
	"$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm"))' 2>/dev/null
}

case "$phase" in
check)
	[ "$(installed)" = "$VLLM_VERSION" ]
	;;
apply)
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends python3-venv python3-dev
	python3 -m venv "$venv"
	"$venv/bin/pip" install --upgrade pip
	"$venv/bin/pip" install "vllm==$VLLM_VERSION"
	;;
verify)
	[ "$(installed)" = "$VLLM_VERSION" ]
	"$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'
	;;
uninstall)
	rm -rf "$venv"
	;;
*)
	echo "unknown phase $phase" >&2
	exit 2
	;;
esac
