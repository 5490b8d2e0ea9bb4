// Package output holds integration tests of the monitor's output path and of execs:
// the drain at exit, terminal records, full disks, size limits and rotation, reopen,
// journald, line assembly, exec stdin/tty/ExecSync and slow attach clients. They drive
// the monitor binary (conmon-go, or the reference conmon selected with CONMON_BINARY)
// the way podman and CRI-O do. Everything is in the _test.go files; run with
//
//	go test -count=1 ./hack/e2e/output/
//	CONMON_BINARY=/usr/bin/conmon go test -count=1 ./hack/e2e/output/
//
// The tests need root, runc and busybox; they skip otherwise.
package output
