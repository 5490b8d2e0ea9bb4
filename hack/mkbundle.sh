#!/bin/sh
# mkbundle.sh builds an OCI bundle around busybox-static for tests, benchmarks and the demo.
#
#   hack/mkbundle.sh [-t] [-w] DIR [CMD [ARG...]]
#
#   -t   process.terminal = true (the monitor must then be run with -t)
#   -w   writable root filesystem
#   CMD  the container's argv; default: sh -c 'echo hello from busybox'
#
# DIR/rootfs holds /bin/busybox and one symlink per applet. Set ROOTFS to an existing
# rootfs directory to share it (config.json then points at it) instead of copying busybox.
# The config comes from `runc spec`: RLIMIT_NOFILE stays 1024, below this machine's hard
# limit of 20000, and an RLIMIT_NPROC of 1024 is added.
set -eu

terminal=false
readonly_root=true
while [ $# -gt 0 ]; do
	case "$1" in
	-t) terminal=true; shift ;;
	-w) readonly_root=false; shift ;;
	--) shift; break ;;
	-*) echo "mkbundle.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "usage: mkbundle.sh [-t] [-w] DIR [CMD [ARG...]]" >&2; exit 2; }
dir=$1; shift
[ $# -gt 0 ] || set -- sh -c 'echo hello from busybox'

busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "mkbundle.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
runc=$(command -v runc || true)
[ -n "$runc" ] || { echo "mkbundle.sh: runc not found (apt-get install runc)" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -n "${ROOTFS:-}" ]; then
	rootfs=$ROOTFS
else
	rootfs=rootfs
	mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/dev" "$dir/rootfs/sys" "$dir/rootfs/tmp" "$dir/rootfs/etc"
	cp "$busybox" "$dir/rootfs/bin/busybox"
	for applet in $("$dir/rootfs/bin/busybox" --list); do
		[ -e "$dir/rootfs/bin/$applet" ] || ln -s busybox "$dir/rootfs/bin/$applet"
	done
	echo "root:x:0:0:root:/:/bin/sh" >"$dir/rootfs/etc/passwd"
	echo "root:x:0:" >"$dir/rootfs/etc/group"
fi

# JSON-encode the argv: escape backslashes and quotes, one string per argument.
args=""
for a in "$@"; do
	esc=$(printf '%s' "$a" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g')
	args="$args${args:+, }\"$esc\""
done

rm -f "$dir/config.json"
(cd "$dir" && "$runc" spec)
# runc spec writes a fixed layout: edit the few lines that differ.
sed -i \
	-e "s|\"terminal\": true|\"terminal\": $terminal|" \
	-e "s|\"readonly\": true|\"readonly\": $readonly_root|" \
	-e "s|\"path\": \"rootfs\"|\"path\": \"$rootfs\"|" \
	"$dir/config.json"
# Replace the args array (`"args": [` ... `],`) with ours, and add RLIMIT_NPROC.
ARGS_JSON="$args" awk '
	/"args": \[/ { print "\t\t\"args\": [" ENVIRON["ARGS_JSON"] "],"; skip = 1; next }
	skip && /\]/ { skip = 0; next }
	skip { next }
	/"rlimits": \[/ { print; print "\t\t\t{\"type\": \"RLIMIT_NPROC\", \"hard\": 1024, \"soft\": 1024},"; next }
	{ print }
' "$dir/config.json" >"$dir/config.json.tmp"
mv "$dir/config.json.tmp" "$dir/config.json"
