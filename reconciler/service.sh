#!/bin/sh
# phoenix/service: one systemd service brought to its wanted state.
#   SERVICE  the unit's name without .service
#   ENABLE   true or false: started at boot
#   RUN      true or false: running now
#   RESTART  restart or reload after a file it reads changed; empty: start
# A service that does not come up prints its last journal lines and fails.
set -u
unit=$SERVICE.service
fail() {
	echo "phoenix: $unit: $1" >&2
	exit 1
}
if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
	fail "the container runs no systemd: phoenix keeps services with systemd"
fi
systemctl daemon-reload || fail "systemctl daemon-reload failed"
systemctl cat "$unit" >/dev/null 2>&1 ||
	fail "systemd has no such unit: the feature that provides it is not installed, or its unit file is missing"
if [ "$ENABLE" = true ]; then
	systemctl enable "$unit" 2>&1 || fail "systemctl enable failed"
else
	systemctl disable "$unit" 2>&1 || fail "systemctl disable failed"
fi
if [ "$RUN" != true ]; then
	systemctl stop "$unit" || fail "systemctl stop failed"
	exit 0
fi
# A unit that failed too often is refused until reset.
systemctl reset-failed "$unit" >/dev/null 2>&1 || true
case ${RESTART:-} in
restart) systemctl restart "$unit" ;;
reload) systemctl reload-or-restart "$unit" ;;
*) systemctl start "$unit" ;;
esac
started=$?
# A service that exits right after it started is not running: watch it for
# a few seconds.
tries=0
while :; do
	state=$(systemctl is-active "$unit" 2>/dev/null)
	case $state in
	active) [ "$tries" -ge 4 ] && break ;;
	activating | reloading) ;;
	*) break ;;
	esac
	tries=$((tries + 1))
	[ "$tries" -le 20 ] || break
	sleep 0.5
done
if [ "$started" -ne 0 ] || [ "$state" != active ]; then
	journalctl -u "$unit" -n 10 --no-pager 2>/dev/null | sed 's/^/  /' >&2
	fail "is ${state:-unknown} after it was started: see journalctl -u $unit in the container"
fi
