#!/bin/sh
# Builds what BenchmarkVersusTerraform (e2e/terraform_bench_test.go) runs
# phoenix against: terraform 1.5.7 and the bpg Proxmox provider, into DIR.
#
#   hack/tfbench/build.sh DIR [PROVIDER_SOURCE]
#
# terraform comes from the Go module proxy. The provider's module is not
# served by the proxy, so it is built from a checkout of its source:
# PROVIDER_SOURCE when given, else a clone of its release tag
# $BPG_VERSION (default v0.111.1) from GitHub. Then:
#
#   PHOENIX_TERRAFORM_DIR=DIR go test ./e2e -run '^$' -bench BenchmarkVersusTerraform -benchtime 1x
set -eu

dir=${1:?usage: hack/tfbench/build.sh DIR [PROVIDER_SOURCE]}
src=${2:-}
version=${BPG_VERSION:-v0.111.1}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

GOBIN=$dir go install github.com/hashicorp/terraform@v1.5.7

if [ -z "$src" ]; then
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	git clone --quiet --depth 1 --branch "$version" https://github.com/bpg/terraform-provider-proxmox "$src"
fi
(cd "$src" && go build -o "$dir/terraform-provider-proxmox" .)
"$dir/terraform" version
