#!/bin/sh
# phoenix/subids: which host ids root may map, from /etc/subuid and
# /etc/subgid ("root:FIRST:COUNT" lines; a uid may name root too), as
# "u FIRST COUNT" and "g FIRST COUNT" lines. LXC maps a container's ids
# with newuidmap and newgidmap, which refuse any range not listed there.
set -eu
for t in u g; do
	file=/etc/sub${t}id
	[ -r "$file" ] || continue
	awk -F: -v t="$t" '($1 == "root" || $1 == "0") && NF == 3 { print t, $2, $3 }' "$file"
done
