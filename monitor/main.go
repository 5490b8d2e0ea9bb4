// Package monitor is the life cycle of one container (or exec) monitor: the launcher that
// engines start, the daemon it re-executes, the runtime invocation, the sync protocol, the
// reaper, and the exit sequence. The contract it implements is written down in docs/, chiefly
// docs/lifecycle.md, docs/protocol.md and docs/exit.md.
package monitor

import (
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Commit identifies this build in the second line of --version; set with -ldflags -X.
var Commit = "conmon-go"

// Markers in the environment select the hidden modes of the binary; they are removed
// before anything else runs, so no child ever sees them.
const (
	envDaemon     = "_CONMON_GO_DAEMON"     // monitor started by the launcher; value: handshake fd
	envTrampoline = "_CONMON_GO_TRAMPOLINE" // value "1": --replace-listen-pid, "0" otherwise
	// envOwnMaxProcs says that GOMAXPROCS was set by the launcher for the monitor alone.
	envOwnMaxProcs = "_CONMON_GO_GOMAXPROCS"
)

func init() {
	// A monitor started through /proc/self/exe is named "exe"; engines and operators look
	// for "conmon". PR_SET_NAME names the calling thread only, and init runs on the main
	// thread, whose name is the process's comm.
	// runtime.main keeps the main goroutine on the main thread while init functions run.
	if _, ok := os.LookupEnv(envDaemon); !ok {
		return
	}
	name := filepath.Base(os.Args[0])
	if len(name) > 15 {
		name = name[:15]
	}
	if b, err := unix.BytePtrFromString(name); err == nil {
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(b)), 0, 0, 0)
	}
}

// Reexecuted reports whether this process is one of the binary's hidden modes, started by
// a monitor with an argv of its own making: the daemon (re-executed, or forked at the entry
// point with the launcher's argv) or the LISTEN_PID trampoline.
func Reexecuted() bool {
	_, daemon := os.LookupEnv(envDaemon)
	_, trampoline := os.LookupEnv(envTrampoline)
	return daemon || trampoline || forkedMonitor()
}

// Main runs the binary in the mode its environment selects and returns the exit status.
func Main(args []string) int {
	if v, ok := os.LookupEnv(envTrampoline); ok {
		os.Unsetenv(envTrampoline)
		return trampolineMain(args, v == "1")
	}
	if preforkOwnMaxProcs == 1 {
		os.Unsetenv("GOMAXPROCS") // preforkEntry's, not for the runtime or the exit command
	}
	signals := make(chan os.Signal, 32)
	if forkedMonitor() {
		status := launcherMain(args, signals)
		tellLauncher(status)
		return status
	}
	if v, ok := os.LookupEnv(envDaemon); ok {
		os.Unsetenv(envDaemon)
		if _, ok := os.LookupEnv(envOwnMaxProcs); ok {
			os.Unsetenv(envOwnMaxProcs)
			os.Unsetenv("GOMAXPROCS") // ours, not for the runtime or the exit command
		}
		return daemonMain(args, v, signals)
	}
	return launcherMain(args, signals)
}
