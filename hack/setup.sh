#!/bin/sh
# setup.sh installs, on Debian, the packages `make demo` or `make test` need, and does
# nothing (quickly) when they are all there. As another user than root it only says what
# is missing and how to install it; the tests that need it then skip.
#
#   hack/setup.sh [demo|test]     (default: test)
#
# Go is not installed here: the build wants Go 1.26 (go.mod), newer than Debian's, from
# https://go.dev/dl/ into /usr/local/go.
set -eu

# demo: runc runs the busybox container (busybox-static) that the monitor watches.
demo="runc busybox-static"
# test, besides: podman for the podman suites and the systemd suite's container (uidmap,
# iptables, fuse-overlayfs are what podman expects around it); conmon, the reference
# monitor; systemd: journald for the journald tests, and PID 1 of the systemd suite; tmux
# for real terminals; git and make for the build.
test="$demo podman conmon systemd uidmap iptables fuse-overlayfs tmux ca-certificates git make"

case "${1:-test}" in
demo) want=$demo ;;
test) want=$test ;;
*) echo "usage: hack/setup.sh [demo|test]" >&2; exit 2 ;;
esac

missing=
for pkg in $want; do
	status=$(dpkg-query -W -f '${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	case $status in ii*) ;; *) missing="$missing $pkg" ;; esac
done

if ! command -v go >/dev/null 2>&1 && ! [ -x /usr/local/go/bin/go ]; then
	echo "setup.sh: Go is missing: install Go 1.26 from https://go.dev/dl/ into /usr/local/go" >&2
fi

[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "setup.sh: missing Debian packages:$missing" >&2
	echo "setup.sh: install them as root (sudo hack/setup.sh ${1:-test}, or apt-get install$missing);" \
		"until then the tests that need them skip" >&2
	exit 0
fi
echo "setup.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q --no-install-recommends $missing
