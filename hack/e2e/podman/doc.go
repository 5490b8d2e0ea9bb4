// Package podman is the podman 4.3.1 end-to-end suite: real podman drives the monitor under
// test through `podman --conmon <binary>` (docs/engines.md §2, §4; docs/exit.md §6;
// docs/logging.md §9.2).
//
// The monitor is $CONMON_BINARY, or ./cmd/conmon-go built by TestMain when that is unset.
// Every podman call runs against a private --root/--runroot/--tmpdir and containers.conf in
// a temporary directory, with a busybox image imported locally (no pull, no network).
// Checks where conmon-go must do better than conmon 2.1.6 skip unless the binary reports
// conmon-go on the second line of --version. The suite needs root, podman, runc and
// busybox-static, and skips otherwise.
//
//	CONMON_BINARY=/usr/bin/conmon go test -count=1 ./hack/e2e/podman/
package podman
