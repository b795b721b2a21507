#!/bin/sh
# phoenix/runfile-source, on the Proxmox node: where the userspace runfile of
# the host's NVIDIA driver will come from, before any container needs it. A
# runfile the node keeps already is used; otherwise the URLs are asked, in
# order, for the file's headers only. Output, one fact per line:
#
#   cached                 the node has the runfile
#   tried <url> <status>   a source asked, with its HTTP status (000: no answer)
#   found <url>            the first source that has it
#   none                   no source has it
#
#   NVIDIA_VERSION  the driver version (named in the output of a failure)
#   NVIDIA_RUNFILE  where the node keeps the runfile
#   NVIDIA_URLS     the sources, one URL per line; none when the spec lists
#                   none phoenix may use (then only a kept runfile counts)
set -u
: "${NVIDIA_VERSION:?}" "${NVIDIA_RUNFILE:?}" "${NVIDIA_URLS?}"
if [ -s "$NVIDIA_RUNFILE" ]; then
	echo cached
	exit 0
fi
for url in $NVIDIA_URLS; do
	status=$(curl -sS -o /dev/null -I -L --max-time 20 -w '%{http_code}' "$url" 2>/dev/null) || status=000
	echo "tried $url $status"
	if [ "$status" = 200 ]; then
		echo "found $url"
		exit 0
	fi
done
echo none
