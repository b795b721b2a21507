#!/bin/sh
# phoenix/lease PHASE, on any Proxmox VE node: phoenix's cluster-wide lease,
# one writer at a time, built on the cluster file system's own locks, the
# ones PVE::Cluster's cfs_lock takes (pve-cluster src/PVE/Cluster.pm). What
# pmxcfs does with them (pve-cluster src/pmxcfs/memdb.c, cfs-plug-memdb.c,
# dcdb.c and src/README):
#   - a lock is a directory under /etc/pve/priv/lock/; mkdir is atomic
#     cluster-wide and fails with EEXIST while the lock is there;
#   - every node notes, by its own clock, when it last saw the directory
#     change (memdb_lock_expired's ltime; not the directory's mtime, as the
#     nodes' clocks may differ); 120 s later (CFS_LOCK_TIMEOUT) the lock has
#     expired;
#   - utime(0, 0) on the directory is an "unlock request": the member with
#     the lowest node id removes the lock if by its clock it has expired,
#     and otherwise nothing happens (the mtime itself is refused, EACCES);
#   - a new mtime not older than the current one, set from the node that
#     made the lock (its writer), renews it: every node restarts the
#     timeout; from another node it is refused with EACCES. pmxcfs reads the
#     seconds of the new mtime only, and a touch without an explicit time
#     can reach it as 0 (UTIME_NOW), an unlock request: the time is given
#     explicitly, as PVE's own renewal does (utime 0, time());
#   - rmdir removes it from any node (no writer check), and files may be
#     written inside a lock directory, but then neither rmdir nor the
#     removal of an expired lock works any more (ENOTEMPTY): the holder's
#     name is kept beside it, in a file of /etc/pve/priv/, which pmxcfs
#     replicates like the rest;
#   - without quorum /etc/pve is read-only: mkdir and utime fail.
#
#   PHASE                 take, renew or release
#   PHOENIX_LEASE_TOKEN   the holder's token: only it renews and releases
#   PHOENIX_LEASE_HOLDER  (take) who takes it, lines key=value: host, pid,
#                         command, since, specs
#
# Output: a verdict line, then the key=value lines of the holder file (never
# its token):
#   acquired   taken; the lines name the previous holder (released=...)
#   held       another holds it; the lines name it (none, or a released
#              one: its holder is taking it this moment)
#   renewed    kept another timeout
#   lost       not this holder's any more; the lines name who has it
#   released   let go
# A failure to read or write the cluster file system exits 1, its reason on
# stderr. PHOENIX_PVE_ROOT prefixes /etc/pve, for tests.
set -u
: "${PHOENIX_LEASE_TOKEN:?}"
root=${PHOENIX_PVE_ROOT:-}
locks="$root/etc/pve/priv/lock"
lock="$locks/phoenix"
holder="$root/etc/pve/priv/phoenix-lease"

# show prints the holder file without its token.
show() {
	if [ -f "$holder" ]; then
		grep -v '^token=' "$holder"
	fi
	return 0
}

mine() {
	[ -f "$holder" ] && grep -qx "token=$PHOENIX_LEASE_TOKEN" "$holder"
}

# stamp is now for touch -t, in UTC.
stamp() {
	date -u +%Y%m%d%H%M.%S
}

# write replaces the holder file by a rename, as Proxmox VE writes its
# files, so that a reader never sees half of it.
write() {
	tmp="$holder.tmp.$$"
	cat >"$tmp" && mv "$tmp" "$holder"
}

take() {
	: "${PHOENIX_LEASE_HOLDER:?}"
	mkdir "$locks" 2>/dev/null
	if [ ! -d "$locks" ]; then
		echo "pve cluster filesystem not online: no $locks" >&2
		exit 1
	fi
	tries=0
	while ! err=$(mkdir "$lock" 2>&1); do
		if [ ! -d "$lock" ]; then
			echo "$err" >&2
			exit 1
		fi
		tries=$((tries + 1))
		if [ "$tries" -gt 5 ]; then
			echo held
			show
			exit 0
		fi
		# The unlock request: pmxcfs removes the lock if it has expired
		# (its holder died), and refuses the time itself either way.
		TZ=UTC0 touch -m -t 197001010000.00 "$lock" 2>/dev/null
		sleep 0.2
	done
	echo acquired
	show
	if ! { echo "token=$PHOENIX_LEASE_TOKEN" && printf '%s\n' "$PHOENIX_LEASE_HOLDER"; } | write; then
		rmdir "$lock"
		exit 1
	fi
}

renew() {
	if [ ! -d "$lock" ] || ! mine; then
		echo lost
		show
		exit 0
	fi
	TZ=UTC0 touch -m -t "$(stamp)" "$lock" || exit 1
	echo renewed
}

release() {
	if ! mine; then
		echo lost
		show
		exit 0
	fi
	# The file stays, naming the last holder for the next one: a loop on
	# other specs is worth a warning.
	released=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	{ grep -v -e '^token=' -e '^released=' "$holder"; echo "released=$released"; } | write || exit 1
	if [ ! -d "$lock" ]; then
		echo lost
		exit 0
	fi
	rmdir "$lock" || exit 1
	echo released
}

case "${1:-}" in
take) take ;;
renew) renew ;;
release) release ;;
*)
	echo "phoenix/lease: unknown phase '${1:-}' (take, renew or release)" >&2
	exit 2
	;;
esac
