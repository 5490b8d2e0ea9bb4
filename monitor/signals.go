package monitor

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

// The monitor's signals, taken away from Go's default actions in two steps, because each
// signal.Notify of a new signal is a round trip between two threads (the runtime's signal
// mask thread), and the first also starts three threads:
//   - stopSignals before the monitor creates anything: Go's default action would end it
//     (SIGHUP, SIGINT and SIGTERM exit, SIGQUIT dumps goroutines and exits 2), with files
//     or a half-created container left behind.
//   - quietSignals once the pid is reported, off the create path and away from the
//     runtime's CPUs: until then Go drops them. The runtime is waited for through its
//     pidfd, and SIGCHLD would only start a chain of wake-ups through four threads beside
//     it. SIGPIPE kills a Go program only for a write to a closed fd 1 or 2, which are
//     /dev/null once the runtime runs (before, the monitor writes there only messages).
//
// Go already ignores SIGUSR2 with a handler of its own, so children get the default action.
var (
	stopSignals  = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGHUP}
	quietSignals = []os.Signal{unix.SIGCHLD, unix.SIGUSR1, unix.SIGPIPE}
)

// The launcher that daemonises only needs SIGTERM, SIGINT and SIGQUIT to end it with
// status 1; it ignores SIGHUP and SIGPIPE outright, once the monitor that starts before
// the start byte has been started. A monitor started later inherits those two as ignored:
// Go installs its own handler for SIGPIPE as it starts, and the monitor catches SIGHUP
// before it starts the runtime, which then gets the default action for both. With --sync
// the launcher is the monitor and catches them all.
var (
	launcherSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT}
	launcherIgnored = []os.Signal{unix.SIGHUP, unix.SIGPIPE}
)

// catchStopSignals takes stopSignals from Go's default actions before the monitor creates
// anything. An early monitor does it while it waits for its release (daemonMain), off the
// create path unless the start byte came at once. Done again, it is cheap.
func (m *monitor) catchStopSignals() {
	signal.Notify(m.signals, stopSignals...)
}

// catchQuietSignals takes quietSignals once the pid is reported, or before that where the
// monitor waits for a child on SIGCHLD (a failure's exit command, a killed container, a
// runtime without a pidfd). A child that ended while SIGCHLD was dropped is reaped here.
func (m *monitor) catchQuietSignals() {
	m.quietOnce.Do(func() {
		signal.Notify(m.signals, quietSignals...)
		m.reaper.reap()
	})
}

// killGroup is the -T action (docs/lifecycle.md §15): SIGKILL to the process group, never to
// a group that contains the monitor itself.
func (m *monitor) killGroup(pid int) {
	pgid, err := unix.Getpgid(pid)
	own, _ := unix.Getpgid(0)
	if err == nil && pgid > 1 && pgid != own {
		unix.Kill(-pgid, unix.SIGKILL)
		return
	}
	m.signalContainer(unix.SIGKILL)
}

// signalContainer sends sig through the pidfd, so a recycled pid is never hit.
func (m *monitor) signalContainer(sig unix.Signal) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pidfd >= 0 {
		return unix.PidfdSendSignal(m.pidfd, sig, nil, 0) == nil
	}
	if m.containerPid > 0 {
		return unix.Kill(m.containerPid, sig) == nil
	}
	return false
}

// signalLoop owns every signal for the monitor's life (docs/lifecycle.md §9.1).
func (m *monitor) signalLoop() {
	// The signals must stay handled: after a panic the loop starts again.
	defer diag.Recover(m.log, "signal handling", func() { go m.signalLoop() })
	for sig := range m.signals {
		switch sig {
		case unix.SIGCHLD, unix.SIGUSR1:
			m.reaper.reap()
		case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
			m.forward(sig.(unix.Signal))
		default:
			m.log.Debugf("ignoring signal %v", sig)
		}
	}
}

func (m *monitor) forward(sig unix.Signal) {
	m.mu.Lock()
	started, runtimePid := m.runtimeStarted, m.runtimePid
	m.mu.Unlock()
	if !started {
		// Nothing runs yet: leave at once, removing what was already created.
		m.removeFiles()
		os.Exit(1)
	}
	if m.signalContainer(sig) {
		return
	}
	if runtimePid > 0 {
		unix.Kill(runtimePid, sig)
		return
	}
	m.reaper.reap()
}
