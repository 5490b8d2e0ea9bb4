package monitor

import (
	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

// runGuarded is run with the panic policy applied to the monitor's own path: a panic
// there ends in afterPanic (docs/lifecycle.md §13.1).
func (m *monitor) runGuarded() (status int) {
	defer diag.Recover(m.log, "monitor", func() { status = m.afterPanic() })
	return m.run()
}

// afterPanic ends a monitor whose own path panicked (docs/lifecycle.md §13.1). Before the pid
// was reported the start-up fails like any other, and a container the runtime created is
// killed. After it the container keeps its monitor until it ends; then the exit files are
// written and the exit command runs, without the drain. The status is 1.
func (m *monitor) afterPanic() (status int) {
	status = 1
	defer diag.Recover(m.log, "monitor exit after an internal error", nil)
	msg := diag.Panicked()
	if m.exited == nil { // the pid was not reported
		m.mu.Lock()
		started := m.runtimeStarted
		m.mu.Unlock()
		if !started {
			return m.fail(msg)
		}
		if pid, err := readPidFile(m.opts.ContainerPidfile); err == nil {
			killChild(pid)
		}
		return m.finishFailed(msg)
	}
	code, timedOut := m.status, m.timedOut
	m.catchQuietSignals() // the panic may have come between the report and their catching
	if !m.statusKnown {
		m.mu.Lock()
		pid := m.containerPid
		m.mu.Unlock()
		m.log.Errorf("%s; waiting for container %d to end", msg, pid)
		if m.gone == nil {
			m.gone = watchExit(pid, -1, unix.ENOSYS, m.log) // probes
		}
		code, timedOut = m.awaitExit(pid, nil)
	}
	m.reportExit(code, timedOut)
	m.removeFiles()
	m.finishExit()
	return status
}
