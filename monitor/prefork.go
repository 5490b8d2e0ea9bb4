package monitor

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/cgroups"
	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/diag"
)

// The prefork (docs/lifecycle.md §3.3). On linux/amd64, `make build` links the binary with
// preforkEntry as its entry point (-ldflags -E). Before the Go runtime exists, while the
// process is still one thread that may fork, it looks at argv and the environment and,
// for an engine's launcher with a start pipe, forks there and then. The child becomes the
// monitor: it starts the Go runtime and does the launcher's work itself. The parent, the
// process the engine started and waits for, never starts Go: it waits for one byte from
// the monitor and exits with it. A create pays for one Go start-up, as conmon pays for one
// C start-up and a fork.
//
//	kernel ─exec─▶ preforkEntry ─ socketpair ─ fork ─┬─ launcher (no Go): ignore SIGHUP, SIGPIPE;
//	                                                 │   read one byte: 0..254 exit with it,
//	                                                 │   preforkFallback see below, EOF exit 1
//	                                                 └─ monitor: setsid, preforkMonitor = 1
//	                                                     ─▶ _rt0_amd64_linux ─▶ main
//
// The monitor validates and reports on the caller's stderr, writes the conmon pid file,
// waits for the start byte (or the launcher's end: EOF on its socket), moves itself into
// the launcher's cgroups, lets go of the caller's stdio and sends 0. If it cannot move
// itself it sends preforkFallback and ends; the launcher reaps it and goes on into Go with
// preforkStarted = 1: a launcher whose start byte has been read, which re-executes a new
// monitor where it stands (§3.2).
//
// It forks only when every condition holds; otherwise the process is an ordinary launcher:
//
//	argv[1] begins with '-'               the monitor's command line, not a command word
//	base name of argv[0] is not conmon-go-runtime
//	no argument begins with --sync        --sync has no second process
//	_OCI_STARTPIPE=... is in the environment
//	no variable begins with _CONMON_GO_   not one of the binary's own re-executions
//
// The process that becomes the monitor (the forked child, or a --sync monitor, which is not
// forked) also gets its read-only pages mapped at once (prefaulted, given back later by
// releasePrefaulted) and, unless the caller set GOMAXPROCS, GOMAXPROCS=1 in the environment
// the runtime starts with (preforkOwnMaxProcs; Main removes it again).
const preforkFallback = 255

// Written by preforkEntry before the Go runtime starts; read-only afterwards.
var (
	preforkMonitor int64 // 1 in the forked monitor
	// 1 in a monitor (forked, or --sync) whose GOMAXPROCS=1 preforkEntry added to the
	// environment
	preforkOwnMaxProcs int64
	preforkStarted     int64    // 1 in a launcher whose forked monitor fell back
	preforkSock        [2]int32 // launcher's end, monitor's end
	preforkWord        [8]byte  // the launcher's read buffer
	// address, length: the program's text, and its read-only data through the pc table,
	// which preforkEntry mapped in the monitor (MADV_POPULATE_READ)
	prefaulted [4]uintptr
)

// forkedMonitor reports whether this process is the monitor forked at the entry point.
func forkedMonitor() bool { return preforkMonitor == 1 }

// launcherWord is the forked monitor's end of the launcher's socket, -1 once the launcher
// has been told how to exit.
var launcherWord = -1

func init() {
	if forkedMonitor() {
		launcherWord = int(preforkSock[1])
	}
}

// tellLauncher sends the launcher the status to exit with (or preforkFallback), once; false
// when the launcher is gone.
func tellLauncher(status int) bool {
	if launcherWord < 0 {
		return true
	}
	fd := launcherWord
	launcherWord = -1
	defer unix.Close(fd)
	for {
		_, err := unix.Write(fd, []byte{byte(status)})
		if err != unix.EINTR {
			return err == nil
		}
	}
}

// awaitStart waits for the start byte (one read, as L6) or for the launcher's end; false
// for the latter.
func awaitStart(startFD int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(startFD), Events: unix.POLLIN}, {Fd: int32(launcherWord), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, os.NewSyscallError("poll", err)
		}
		if fds[0].Revents != 0 {
			return true, readStartPipe(startFD)
		}
		if fds[1].Revents != 0 {
			return false, nil
		}
	}
}

// startByteArrived reports, without waiting, whether the start pipe has something to read
// (or has ended).
func startByteArrived(startFD int) bool {
	fds := []unix.PollFd{{Fd: int32(startFD), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err != unix.EINTR {
			return err != nil || n > 0
		}
	}
}

// runForked is L5–L7 (docs/lifecycle.md §2) in the monitor forked at the entry point, once
// the launcher's checks have passed; it then runs as the monitor and returns its status.
func runForked(opts *cli.Options, log *diag.Printer, signals chan os.Signal, syncFD, startFD, attachFD int) int {
	pidFile := opts.ConmonPidfile
	if pidFile != "" {
		if err := exitfile.WritePid(pidFile, os.Getpid()); err != nil {
			log.Errorf("Failed to write conmon pidfile: %v", err)
			return 1
		}
	}
	removePidFile := func() {
		if pidFile != "" {
			os.Remove(pidFile)
		}
	}
	// Taken from their default actions before anything is created (as a re-executed
	// monitor does while it waits for its release): a signal is handled once it runs.
	signal.Notify(signals, stopSignals...)
	m := newMonitor(opts, log, signals, syncFD, startFD, attachFD)
	m.listenEarly(startFD)
	started, err := awaitStart(startFD)
	if !started || err != nil {
		m.discardEarly()
		removePidFile()
		if err != nil {
			log.Errorf("start-pipe read failed %s", diag.Strerror(err))
		}
		return 1 // without a launcher, nobody reads the status
	}
	if !opts.ExecAttach {
		unix.Close(startFD)
		m.startFD = -1
	}
	// §3.1 the other way round: the monitor moves itself into its parent's cgroups.
	if err := cgroups.Join(os.Getpid(), os.Getppid()); err != nil {
		logJoinFallback(log, err)
		m.discardEarly() // the monitor started instead makes them again
		removePidFile()
		tellLauncher(preforkFallback)
		return 1
	}
	if !opts.Logs.Passthrough {
		redirectStdio()
		log.SetStderr(nil)
	}
	prepared := m.prepare()
	if !tellLauncher(0) {
		m.discardEarly()
		removePidFile()
		return 1
	}
	if prepared != nil {
		return m.fail(prepared.Error())
	}
	return m.runGuarded()
}

// releasePrefaulted unmaps the pages preforkEntry mapped in advance (the page cache keeps
// them): they made the start-up quicker, but an idle monitor needs few of them, and every
// page a monitor maps adds to its share (PSS) of the binary that a node's monitors share.
// Those it uses again come back on demand.
func releasePrefaulted() {
	for i := 0; i < len(prefaulted); i += 2 {
		if prefaulted[i+1] > 0 {
			unix.Syscall(unix.SYS_MADVISE, prefaulted[i], prefaulted[i+1], unix.MADV_DONTNEED)
		}
	}
}
