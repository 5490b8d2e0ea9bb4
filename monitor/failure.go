package monitor

import (
	"time"

	"golang.org/x/sys/unix"
)

// fail reports a failure that happened before the runtime was started: -1 and the reason
// on the sync pipe (and the attach pipe while podman still waits on it), no exit files,
// no exit command.
func (m *monitor) fail(message string) int {
	m.log.Errorf("%s", message)
	m.sync.send(m.syncKey(), -1, message)
	if m.attachPipe != nil {
		m.attachPipe.send("data", -1, message)
	}
	m.abandon()
	return 1
}

// finishFailed reports a failure after the runtime was started: as fail, but the exit
// command still runs (docs/exit.md §7).
func (m *monitor) finishFailed(message string) int {
	m.catchQuietSignals() // the exit command is reaped on SIGCHLD
	m.log.Errorf("%s", message)
	m.sync.send(m.syncKey(), -1, message)
	m.abandon()
	m.runExitCommand()
	m.reaper.reap()
	return 1
}

func (m *monitor) abandon() {
	if m.stdin != nil {
		m.stdin.open(nil) // releases attach clients waiting for a pty that will not come
	}
	if m.attachUsable() {
		m.attach.Shutdown(0)
	}
	m.removeFiles()
	m.sync.close()
}

// abortCreated reports a setup failure that happened while the runtime ran: conmon would
// have failed before starting it, so a container the runtime created is killed rather
// than left without a monitor, and the engine deletes it as after any failed create.
func (m *monitor) abortCreated(message string, termCh <-chan termResult) int {
	if termCh != nil {
		if tr := <-termCh; tr.err == nil {
			tr.t.Close()
		}
	}
	if pid, err := readPidFile(m.opts.ContainerPidfile); err == nil {
		// The container init is the monitor's child by now: reaped here, it does not
		// outlive the monitor as a zombie.
		exited := m.reaper.wait(pid)
		m.catchQuietSignals()
		if killChild(pid) {
			select {
			case <-exited:
			case <-time.After(timeoutReap):
				m.log.Warnf("killed container %d not reaped within %v", pid, timeoutReap)
			}
		}
	}
	return m.finishFailed(message)
}

// killChild sends SIGKILL to pid if it is a child of the monitor (a container init the
// runtime left to it, alive or not yet reaped), and reports whether it did. A pid file
// can be stale (podman keeps userdata/pidfile across starts), and its pid may by now
// name an unrelated process: only a child's pid cannot have been reused, as long as it
// is not reaped, and the pidfd taken first keeps naming it after that.
func killChild(pid int) bool {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(pidfd)
	var info unix.Siginfo
	if unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil) != nil {
		return false // ECHILD: not ours
	}
	return unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0) == nil
}
