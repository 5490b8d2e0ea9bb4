#!/bin/sh
# demo.sh runs one busybox container with `conmon-go run` (the full monitor, driven the
# way an engine drives it) and shows its output, its log and its exit status.
# Usage: hack/demo.sh [path/to/conmon-go]
set -eu
bin=${1:-$(pwd)/bin/conmon-go}
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (runc needs it)" >&2; exit 1; }
command -v runc >/dev/null || { echo "demo.sh: runc missing: apt-get install runc busybox-static" >&2; exit 1; }

work=$(mktemp -d /tmp/conmon-go-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$here/mkbundle.sh" "$work/bundle" >/dev/null

echo "== $("$bin" --version | sed -n 2p | sed 's/^commit: //')"
echo "== conmon-go run --bundle $work/bundle --state-dir $work/state -- sh -c '...'"
status=0
"$bin" run --bundle "$work/bundle" --state-dir "$work/state" -- sh -c \
	'echo "hello from a container under conmon-go"; echo "this line goes to stderr" >&2; exit 7' || status=$?
echo "== exit status of conmon-go run: $status"
echo "== the container's log, $work/state/ctr.log:"
cat "$work/state/ctr.log"
echo "== the exit file, $(ls "$work"/state/exits/*): $(cat "$work"/state/exits/*)"
