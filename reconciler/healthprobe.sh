#!/bin/sh
# health/NAME: an HTTP or TCP health probe, run inside the guest, so that
# 127.0.0.1 is the guest's own. PHOENIX_HEALTH_HTTP is a URL (a 2xx or 3xx
# answer is healthy) or PHOENIX_HEALTH_TCP is host:port (a connection that
# opens is healthy); PHOENIX_HEALTH_TIMEOUT is the bound in whole seconds.
# It uses what the guest has: curl, else wget, else bash's /dev/tcp (plain
# http only); for TCP bash's /dev/tcp, else nc. The last line says why a
# probe failed; exit 127 means the guest has no tool to probe with.
set -u
t=${PHOENIX_HEALTH_TIMEOUT:-5}
has() { command -v "$1" >/dev/null 2>&1; }

if [ -n "${PHOENIX_HEALTH_HTTP:-}" ]; then
	url=$PHOENIX_HEALTH_HTTP
	if has curl; then
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$t" "$url")
		rc=$?
		case $code in
		2?? | 3??)
			echo "HTTP $code from $url"
			exit 0
			;;
		000 | "") echo "no answer from $url (curl exit $rc)" ;;
		*) echo "HTTP $code from $url" ;;
		esac
		exit 1
	elif has wget; then
		# wget follows redirects; it exits 8 on a 4xx or 5xx answer.
		if wget -q -O /dev/null -T "$t" "$url"; then
			echo "answer from $url (wget)"
			exit 0
		else
			rc=$?
		fi
		if [ "$rc" -eq 8 ]; then
			echo "an error status from $url (wget exit 8)"
		else
			echo "no answer from $url (wget exit $rc)"
		fi
		exit 1
	elif has bash; then
		case $url in
		http://*) ;;
		*)
			echo "no curl or wget in the guest to request $url (bash's /dev/tcp speaks plain http only)"
			exit 127
			;;
		esac
		rest=${url#http://}
		hostport=${rest%%/*}
		path=${rest#"$hostport"}
		[ -n "$path" ] || path=/
		host=${hostport%:*}
		port=80
		[ "$host" = "$hostport" ] || port=${hostport##*:}
		# shellcheck disable=SC2016 # the body is bash's, expanded there
		line=$(bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
			printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
			IFS= read -r -t "$4" l <&3 && printf "%s\n" "$l"' probe "$host" "$port" "$path" "$t" 2>/dev/null)
		code=$(printf '%s\n' "$line" | cut -d' ' -f2)
		case $code in
		2?? | 3??)
			echo "HTTP $code from $url"
			exit 0
			;;
		"") echo "no answer from $url (bash /dev/tcp)" ;;
		*) echo "HTTP $code from $url" ;;
		esac
		exit 1
	fi
	echo "no probe tool in the guest: neither curl, wget nor bash to request $url (install curl)"
	exit 127
fi

if [ -n "${PHOENIX_HEALTH_TCP:-}" ]; then
	target=$PHOENIX_HEALTH_TCP
	host=${target%:*}
	port=${target##*:}
	host=${host#[}
	host=${host%]}
	if has bash; then
		# shellcheck disable=SC2016 # the body is bash's, expanded there
		if bash -c 'exec 3<>"/dev/tcp/$1/$2"' probe "$host" "$port" 2>/dev/null; then
			echo "connected to $target"
			exit 0
		fi
	elif has nc; then
		if nc -z -w "$t" "$host" "$port" 2>/dev/null; then
			echo "connected to $target"
			exit 0
		fi
	else
		echo "no probe tool in the guest: neither bash nor nc to connect to $target"
		exit 127
	fi
	echo "cannot connect to $target"
	exit 1
fi

echo "health probe: neither PHOENIX_HEALTH_HTTP nor PHOENIX_HEALTH_TCP is set"
exit 2
