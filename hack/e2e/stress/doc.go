// Package stress holds the monitor's fault and load tests: thousands of start/exit cycles
// in parallel, one monitor across many attach and exec cycles, a burst of simultaneous
// creates against conmon, the engine killed mid-run, signals to the monitor, full and
// vanishing log and exit directories, and idle CPU with closed pipes, hung-up ptys and
// half-closed clients. Everything is driven the way CRI-O drives a monitor (argv, inherited
// sync and start fds, attach socket, ctl FIFO, exit files) with runc and busybox bundles.
//
// `go test` (and `make test`) runs short versions; CONMON_STRESS=1 (`make stress`) runs the
// long ones. Each test logs its figures and TestMain prints them as one table at the end:
//
//	go test -count=1 -v ./hack/e2e/stress/
//	CONMON_STRESS=1 go test -count=1 -v -timeout 3h ./hack/e2e/stress/
//
// The tests need root, runc and busybox; they skip otherwise. Timing figures are reported,
// never asserted.
package stress
