// Package direct holds integration tests that drive a monitor binary (conmon-go, or the
// reference conmon selected with CONMON_BINARY) exactly the way podman and CRI-O do: the
// same argv, environment, inherited sync/start/attach fds, attach socket clients, ctl
// FIFO lines and result files: the life cycle, execs, the output path (drain at exit,
// terminals, full disks, size limits and rotation, reopen, journald, line assembly, slow
// attach clients) and the idle budget. Everything is in the _test.go files; run with
//
//	go test -count=1 ./hack/e2e/direct/
//	CONMON_BINARY=/usr/bin/conmon go test -count=1 ./hack/e2e/direct/
//
// The tests need root, runc and busybox; they skip otherwise.
package direct
