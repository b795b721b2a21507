#!/bin/sh
# nvidia-container-toolkit/configure: the nvidia runtime for Docker. An
# unprivileged container cannot manage device cgroups, so there the toolkit
# must not try (no-cgroups = true), or every GPU container fails with
# "bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted".
#   NCT_NO_CGROUPS       true or false
#   NCT_DEFAULT_RUNTIME  true makes nvidia docker's default runtime
# PHOENIX_TEST_ROOT, set by tests only, is where the files below are.
set -eu
phase=${1:-apply}
: "${NCT_NO_CGROUPS:?}"
default_runtime=${NCT_DEFAULT_RUNTIME:-false}
root=${PHOENIX_TEST_ROOT:-}
config=$root/etc/nvidia-container-runtime/config.toml
daemon=$root/etc/docker/daemon.json

# no_cgroups prints the value no-cgroups has in the toolkit's config. The
# file is TOML: nvidia-ctk writes every key at its default as a comment
# ("#no-cgroups = false"), and a key that is absent has its default, false.
no_cgroups() {
	awk '
		/^[ \t]*\[/ { cli = ($0 ~ /^[ \t]*\[nvidia-container-cli\][ \t]*(#.*)?$/); next }
		cli && /^[ \t]*no-cgroups[ \t]*=/ {
			v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*(#.*)?$/, "", v); value = v
		}
		END { print (value == "" ? "false" : value) }
	' "$config"
}

runtime_configured() {
	grep -q '"nvidia"' "$daemon" 2>/dev/null || return 1
	# The default runtime is what the setting says: nvidia, or not nvidia.
	if grep -q '"default-runtime"[[:space:]]*:[[:space:]]*"nvidia"' "$daemon"; then
		[ "$default_runtime" = true ]
	else
		[ "$default_runtime" = false ]
	fi
}

configured() {
	[ -f "$config" ] && runtime_configured && [ "$(no_cgroups)" = "$NCT_NO_CGROUPS" ]
}

case "$phase" in
check)
	configured
	;;
apply)
	need nvidia-ctk nvidia-container-toolkit
	doing "nvidia-ctk runtime configure --runtime=docker --set-as-default=$default_runtime" "see the lines above"
	run nvidia-ctk runtime configure --runtime=docker "--set-as-default=$default_runtime"
	# nvidia-ctk adds a default but may leave one it made before: say so
	# rather than edit the user's daemon.json by hand.
	runtime_configured || fail "$daemon makes nvidia docker's default runtime and default-runtime is false: remove \"default-runtime\" from it, or set default-runtime: true"
	doing "setting no-cgroups = $NCT_NO_CGROUPS in $config" "see the lines above"
	run nvidia-ctk config --set "nvidia-container-cli.no-cgroups=$NCT_NO_CGROUPS" --in-place
	configured || fail "$config does not say no-cgroups = $NCT_NO_CGROUPS after nvidia-ctk set it: check the file"
	doing "restarting docker" "see journalctl -u docker in the container"
	# A docker restarted too often is refused by systemd until reset.
	systemctl reset-failed docker.service >/dev/null 2>&1 || true
	systemctl restart docker
	done_doing
	;;
verify)
	[ -f "$config" ] || fail "$config is missing: run the apply again"
	runtime_configured || fail "$daemon has no nvidia runtime, or its default runtime is not what default-runtime: $default_runtime says: run the apply again"
	got=$(no_cgroups)
	[ "$got" = "$NCT_NO_CGROUPS" ] || fail "$config says no-cgroups = $got, want $NCT_NO_CGROUPS: run the apply again"
	doing "nvidia-container-cli info" "the toolkit does not see the GPU: check the nvidia-driver feature and the device nodes"
	run nvidia-container-cli info >/dev/null
	use_tmp
	runtimes=$(tmp_dir)/runtimes
	doing "docker info" "the docker daemon does not answer: see journalctl -u docker in the container"
	run docker info --format '{{json .Runtimes}}' >"$runtimes"
	done_doing
	grep -q '"nvidia"' "$runtimes" ||
		fail "docker has not loaded the nvidia runtime: restart docker in the container"
	if [ "$default_runtime" = true ]; then
		got=$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null) || true
		[ "$got" = nvidia ] || fail "docker's default runtime is ${got:-unknown}, want nvidia: restart docker in the container"
	fi
	;;
uninstall)
	# The runtime entry in /etc/docker/daemon.json stays: docker only reads
	# it when a container asks for the nvidia runtime, and the file may hold
	# the user's own settings. What the toolkit configured goes with it.
	rm -f "$config"
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker; then
		systemctl restart docker
	fi
	;;
*)
	unknown_phase
	;;
esac
