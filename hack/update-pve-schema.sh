#!/usr/bin/env bash
# Regenerate the Proxmox VE API schemas embedded in providers/pveapi
# (apidata-<version>.json.gz) from plain-JSON dumps of the API's schema
# (pvesh's apidata, one apidata-<version>.json per version).
#
# Usage: hack/update-pve-schema.sh SOURCE_DIR
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${1:?usage: hack/update-pve-schema.sh SOURCE_DIR (a directory with apidata-9.1.json and apidata-8.3.json)}"
dst="${repo_root}/providers/pveapi"
versions=(9.1 8.3)

if [[ ! -d "${src}" ]]; then
	echo "update-pve-schema: source directory ${src} not found" >&2
	exit 1
fi

for version in "${versions[@]}"; do
	in="${src}/apidata-${version}.json"
	out="${dst}/apidata-${version}.json.gz"
	if [[ ! -f "${in}" ]]; then
		echo "update-pve-schema: ${in} not found" >&2
		exit 1
	fi
	# The dump must be the bare JSON array, without the apidata.js "const apiSchema =" prefix.
	if [[ "$(head -c 1 "${in}")" != "[" ]]; then
		echo "update-pve-schema: ${in} is not a JSON array" >&2
		exit 1
	fi
	tmp="$(mktemp "${out}.XXXXXX")"
	# -n leaves out name and timestamp, so the same input gives the same bytes.
	gzip -9 -n -c "${in}" >"${tmp}"
	chmod 0644 "${tmp}"
	mv "${tmp}" "${out}"
	echo "update-pve-schema: wrote ${out#"${repo_root}"/}"
done
