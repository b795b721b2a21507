#!/bin/sh
# The helpers every built-in feature step runs ahead of its own body
# (sh -c 'PRELUDE BODY' feature/step phase): one line that says what failed
# and what to do when a step fails, temporary files removed however the step
# ends, downloads that never leave a half-written file in place, and apt that
# waits for another apt instead of failing.
set -eu
phoenix_phase=${1:-apply}
phoenix_doing=
phoenix_hint=
phoenix_tmp=
phoenix_last=
phoenix_remove=

# doing WHAT HINT: what the step does next, and what to do if it fails. A
# command that fails under set -e ends the step with the line
# "WHAT failed (exit N): LAST LINE IT PRINTED; HINT".
doing() {
	phoenix_doing=$1
	phoenix_hint=${2:-}
	phoenix_last=
}

# done_doing: what follows may fail quietly (a check).
done_doing() {
	phoenix_doing=
}

# fail MESSAGE: the one line that says what failed and what to do; exit 1.
fail() {
	phoenix_doing=
	printf '%s\n' "$*" >&2
	exit 1
}

phoenix_exit() {
	code=$?
	if [ "$code" -ne 0 ] && [ -n "$phoenix_doing" ]; then
		line="$phoenix_doing failed (exit $code)"
		[ -n "$phoenix_last" ] && line="$line: $phoenix_last"
		[ -n "$phoenix_hint" ] && line="$line; $phoenix_hint"
		printf '%s\n' "$line" >&2
	fi
	if [ -n "$phoenix_tmp" ]; then
		rm -rf "$phoenix_tmp"
	fi
	if [ -n "$phoenix_remove" ]; then
		rm -f "$phoenix_remove"
	fi
	exit "$code"
}
trap phoenix_exit EXIT
# A signal (timeout(1) sends TERM) ends the step through the EXIT trap too.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# use_tmp: a temporary directory of the step's own, removed when it ends;
# tmp_dir prints its path.
use_tmp() {
	if [ -z "$phoenix_tmp" ]; then
		phoenix_tmp=$(mktemp -d)
	fi
}
tmp_dir() {
	printf '%s\n' "$phoenix_tmp"
}

# remove_on_exit FILE: FILE is removed when the step ends (a partial
# download kept next to its destination, so that it moves in one rename).
remove_on_exit() {
	phoenix_remove=$1
}

# last_line FILE: the last line of FILE that is not empty.
last_line() {
	# shellcheck disable=SC2016 # sed's own commands
	sed -n '/[^[:space:]]/h; ${x;p;}' "$1" | tr -d '\r'
}

# run COMMAND...: runs it with its output shown; when it fails, the step's
# last line quotes the last line it printed (the error, for most tools).
run() {
	use_tmp
	if "$@" >"$phoenix_tmp/run.log" 2>&1; then
		cat "$phoenix_tmp/run.log"
		return 0
	else
		rc=$?
	fi
	tail -n 20 "$phoenix_tmp/run.log" >&2
	phoenix_last=$(last_line "$phoenix_tmp/run.log")
	return "$rc"
}

# need COMMAND FEATURE: the step needs COMMAND, which FEATURE installs.
need() {
	command -v "$1" >/dev/null 2>&1 ||
		fail "$1 is not installed: the $2 feature installs it, and must come first (add it to the guest's features)"
}

# fetch URL FILE: downloads URL into FILE, which is left absent unless the
# download completed and is not empty.
fetch() {
	need curl base
	rm -f "$2"
	if ! curl -fsSL --retry 3 --connect-timeout 30 -o "$2.part" "$1" 2>"$2.err"; then
		phoenix_doing=
		fail "downloading $1 failed: $(last_line "$2.err"); check the URL (a feature parameter) and that the guest reaches it"
	fi
	if [ ! -s "$2.part" ]; then
		phoenix_doing=
		fail "$1 is empty; check the URL (a feature parameter)"
	fi
	mv "$2.part" "$2"
	rm -f "$2.err"
}

# put SRC DEST MODE: replaces DEST with SRC in one rename, so that DEST is
# either the old file or the whole new one, never a part.
put() {
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2.phoenix-new"
	chmod "$3" "$2.phoenix-new"
	mv -f "$2.phoenix-new" "$2"
}

# apt_get ARGS...: apt-get that waits up to ten minutes for the dpkg lock
# (apt-daily and unattended-upgrades hold it for minutes). apt 1.9.11 and
# later wait by themselves (DPkg::Lock::Timeout); older apt ignores the
# option and fails at once with "Could not get lock", so that is retried.
apt_get() {
	use_tmp
	tries=0
	while :; do
		if DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 "$@" >"$phoenix_tmp/apt.log" 2>&1; then
			cat "$phoenix_tmp/apt.log"
			return 0
		else
			rc=$?
		fi
		if grep -Eq 'Could not get lock|Unable to lock|Unable to acquire the dpkg' "$phoenix_tmp/apt.log" && [ "$tries" -lt 60 ]; then
			tries=$((tries + 1))
			sleep 10
			continue
		fi
		tail -n 20 "$phoenix_tmp/apt.log" >&2
		phoenix_last=$(grep -E '^(E|W): ' "$phoenix_tmp/apt.log" | tail -n 1 | tr -d '\r')
		[ -n "$phoenix_last" ] || phoenix_last=$(last_line "$phoenix_tmp/apt.log")
		return "$rc"
	done
}

# apt_update: reads the package lists. Every apply that installs runs it
# first: a clone's lists are its template's, and a repository a step has just
# added has none yet.
apt_update() {
	doing "apt-get update" "check the guest's apt sources and that it reaches them"
	apt_get update
	done_doing
}

# apt_install PACKAGE...: finishes what a killed dpkg left, then installs.
apt_install() {
	doing "dpkg --configure -a" "a package left half-configured fails to configure: see the lines above"
	run env DEBIAN_FRONTEND=noninteractive dpkg --force-confold --configure -a
	doing "installing $*" "check that the guest's apt sources have these packages"
	apt_get install -y --no-install-recommends -o Dpkg::Options::=--force-confold "$@"
	done_doing
}

# has_packages PACKAGE...: every one of them is installed.
has_packages() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
}

# apt_source_fetched URL: apt has read the package list of a repository at
# URL. apt-get update only warns about a repository it could not read; the
# install that follows fails as "Unable to locate package".
apt_source_fetched() {
	# apt-cache policy names a flat repository's URL without its last slash.
	apt-cache policy 2>/dev/null | grep -Fq " ${1%/}"
}

# version_at_least HAVE WANT: HAVE >= WANT, as version numbers.
version_at_least() {
	[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

# nvidia_works: nvidia-smi runs; when it does not, the step fails with the
# line it printed (NVML prints its errors on stdout).
nvidia_works() {
	need nvidia-smi nvidia-driver
	use_tmp
	if ! nvidia-smi >"$phoenix_tmp/nvidia-smi.log" 2>&1; then
		phoenix_doing=
		fail "nvidia-smi fails: $(last_line "$phoenix_tmp/nvidia-smi.log"); the NVIDIA driver must work in the container first (nvidia-driver feature, device nodes passed through)"
	fi
}

# gpu_problem USER: nothing, and success, when USER is listed a GPU by
# nvidia-smi -L; otherwise the last line nvidia-smi printed, and failure.
# The exit status alone does not say: NVML opens nvidiactl first, and a user
# who may open it but not the GPU's node is told "No devices found." with
# status 0 (as a real H200 with driver 580 answers).
gpu_problem() {
	if phoenix_gpu=$(runuser -u "$1" -- nvidia-smi -L 2>&1) &&
		printf '%s\n' "$phoenix_gpu" | grep -q '^GPU [0-9][0-9]*: '; then
		return 0
	fi
	printf '%s\n' "$phoenix_gpu" | grep -v '^[[:space:]]*$' | tail -n 1
	return 1
}

# unknown_phase: the step was asked for a phase it does not have.
unknown_phase() {
	phoenix_doing=
	echo "unknown phase $phoenix_phase" >&2
	exit 2
}

# One phoenix step at a time in a container. A step that an earlier phoenix
# run stopped may still run here: pct exec's command outlives its SSH
# session. This one waits for it (under its own time bound), so that a check
# never looks at the other's half-done work and an apply never runs beside
# it. The lock goes with the step's shell; a daemon the step started keeps
# a copy of it, so a lock whose step (step.pid) is gone is not waited for.
phoenix_step_lock() {
	# PHOENIX_TEST_ROOT, set by tests only, is where /run is.
	lock_dir=${PHOENIX_TEST_ROOT:-}/run/phoenix
	command -v flock >/dev/null 2>&1 && mkdir -p "$lock_dir" 2>/dev/null || return 0
	exec 9>>"$lock_dir/step.lock"
	if ! flock -n 9; then
		echo "waiting for a phoenix step of an earlier run that still runs in this container"
		while ! flock -n 9; do
			holder=$(cat "$lock_dir/step.pid" 2>/dev/null) || holder=
			if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then
				break
			fi
			sleep 1
		done
	fi
	echo "$$" >"$lock_dir/step.pid"
}
phoenix_step_lock
