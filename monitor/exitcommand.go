package monitor

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// exitCommandBound bounds the wait for the exit command; it is left running after that.
const exitCommandBound = 300 * time.Second

// runExitCommand starts --exit-command after --exit-delay with fds 0-2 only, the
// original oom score, and no subreaper role (docs/exit.md §6), and waits for it, bounded.
func (m *monitor) runExitCommand() {
	opts := m.opts
	if opts.ExitCommand == "" {
		return
	}
	if opts.ExitDelay > 0 {
		time.Sleep(time.Duration(opts.ExitDelay) * time.Second)
	}
	markAllCloexec()
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	argv := append([]string{opts.ExitCommand}, opts.ExitCommandArgs...)
	pid, err := m.spawner.start(child{argv: argv, env: os.Environ(), files: []uintptr{0, 1, 2}})
	if err != nil {
		m.log.Warnf("Failed to start exit command %s: %v", opts.ExitCommand, err)
		return
	}
	select {
	case <-m.reaper.wait(pid):
	case <-time.After(exitCommandBound):
		m.log.Warnf("exit command %s still running after %v; leaving it", opts.ExitCommand, exitCommandBound)
	}
}
