#!/bin/sh
# demo.sh runs one busybox container under conmon-go, the way an engine would, and shows
# its log and exit status.  Usage: hack/demo.sh [path/to/conmon-go]
set -eu
bin=${1:-$(pwd)/bin/conmon-go}
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (runc needs it)" >&2; exit 1; }
command -v runc >/dev/null || { echo "demo.sh: runc missing: apt-get install runc busybox-static" >&2; exit 1; }
runc=$(command -v runc)

work=$(mktemp -d /tmp/conmon-go-demo.XXXXXX)
cid=demo-$(basename "$work" | tr 'A-Z.' 'a-z-')
trap 'runc --root "$work/runc" delete --force "$cid" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$work/exits" "$work/runc"
"$here/mkbundle.sh" "$work/bundle" sh -c 'echo "hello from a container under conmon-go"; echo "this line goes to stderr" >&2; exit 7' >/dev/null

echo "== conmon-go $("$bin" --version | sed -n 2p)"
"$bin" -c "$cid" -u "$cid" -r "$runc" --runtime-arg --root="$work/runc" -b "$work/bundle" \
	-p "$work/pidfile" -P "$work/conmon.pid" -l "k8s-file:$work/ctr.log" \
	--exit-dir "$work/exits" --full-attach
echo "== monitor pid $(cat "$work/conmon.pid"), container created"
# The engine would learn the pid on the sync pipe; here the runtime's pid file says it.
i=0
while [ ! -s "$work/pidfile" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "container was not created" >&2; exit 1; }
	sleep 0.05
done
runc --root "$work/runc" start "$cid"
i=0
while [ ! -e "$work/exits/$cid" ]; do
	i=$((i + 1)); [ $i -lt 200 ] || { echo "no exit file" >&2; exit 1; }
	sleep 0.05
done
echo "== log ($work/ctr.log):"
cat "$work/ctr.log"
echo "== exit status: $(cat "$work/exits/$cid")"
