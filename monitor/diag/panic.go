package diag

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The panic policy (docs/lifecycle.md §13.1) lives here. Every goroutine of the monitor defers
// Recover first, naming its part and how to switch that part off:
//
//	defer diag.Recover(log, "ctl reader", nil)
//
// A panic is reported once with its stack: on the monitor's error log (stderr while it is
// the caller's, and syslog whether or not --syslog was given) and, when CONMON_GO_PANIC_FILE
// names a file, appended there (the e2e suites set it and fail on any report). Under go
// test the panic is then raised again, so the test fails. Otherwise stop switches the part
// off and the monitor goes on without it; Panicked tells the monitor that a part failed.
const (
	EnvPanicFile = "CONMON_GO_PANIC_FILE"
	// EnvTestPanic names a PanicPoint at which the monitor panics once: the e2e suites
	// inject panics with it to check the policy.
	EnvTestPanic = "CONMON_GO_TEST_PANIC"
)

var (
	firstPanic atomic.Pointer[string]
	// keepGoing makes Recover act as in production under go test (ProductionPanics).
	keepGoing atomic.Bool
	// injectAt is the PanicPoint of EnvTestPanic, cleared when it fires.
	injectAt atomic.Pointer[string]
)

func init() {
	if v := os.Getenv(EnvTestPanic); v != "" {
		injectAt.Store(&v)
	}
}

// Recover must be deferred directly. It reports a panic of the calling goroutine, raises
// it again under go test, and otherwise calls stop (nil: nothing to switch off).
func Recover(log Logger, part string, stop func()) {
	v := recover()
	if v == nil {
		return
	}
	ReportPanic(log, part, v, debug.Stack())
	if underGoTest() && !keepGoing.Load() {
		panic(v)
	}
	if stop != nil {
		stop()
	}
}

// underGoTest reports whether this is a test binary: the testing package registers its
// -test.* flags before any test runs. (testing.Testing would link the testing package,
// and its start-up cost, into the monitor.)
func underGoTest() bool { return flag.Lookup("test.v") != nil }

// maxStack bounds the stack sent to syslog with a report.
const maxStack = 8 << 10

// ReportPanic reports v, a panic in part, with its stack (see Recover).
func ReportPanic(log Logger, part string, v any, stack []byte) {
	summary := fmt.Sprintf("internal error in %s: %v", part, v)
	firstPanic.CompareAndSwap(nil, &summary)
	if len(stack) > maxStack {
		stack = stack[:maxStack]
	}
	msg := summary + "\n" + string(stack)
	if r, ok := log.(interface{ Record(Level, string) }); ok {
		r.Record(Error, msg)
	} else {
		OrDiscard(log).Warnf("%s", msg)
	}
	if path := os.Getenv(EnvPanicFile); path != "" {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			_, _ = unix.Write(fd, []byte(msg+"\n"))
			unix.Close(fd)
		}
	}
}

// Panicked returns the summary of the first panic reported ("internal error in <part>:
// <value>"), or "" when there was none.
func Panicked() string {
	if s := firstPanic.Load(); s != nil {
		return *s
	}
	return ""
}

// PanicPoint panics, once, when EnvTestPanic names point; otherwise it costs one load.
func PanicPoint(point string) {
	if p := injectAt.Load(); p != nil && *p == point && injectAt.CompareAndSwap(p, nil) {
		panic("injected panic at " + point)
	}
}

// ProductionPanics makes Recover switch parts off as in production until the test ends,
// for tests of what a part does after a panic; cleanup is the test's Cleanup. Tests using
// it must not run in parallel.
func ProductionPanics(cleanup func(func())) {
	keepGoing.Store(true)
	cleanup(func() {
		keepGoing.Store(false)
		firstPanic.Store(nil)
	})
}

// InjectPanic makes PanicPoint(point) panic once, until the test ends (cleanup is the
// test's Cleanup).
func InjectPanic(cleanup func(func()), point string) {
	injectAt.Store(&point)
	cleanup(func() { injectAt.Store(nil) })
}
