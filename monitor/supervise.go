package monitor

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/oom"
	"github.com/conmon-go/conmon-go/monitor/sdnotify"
	"github.com/conmon-go/conmon-go/monitor/trust"
	"github.com/conmon-go/conmon-go/ptyio"
)

// superviseContainer runs from the moment the container (or exec) pid is known until the
// monitor exits (M15–M19, lifecycle.md §14). releaseRuntimeThread unlocks the thread that
// started the reaped runtime.
func (m *monitor) superviseContainer(pid int, releaseRuntimeThread func()) int {
	opts := m.opts
	exited := m.reaper.wait(pid)
	m.reaper.forget()
	pidfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		pidfd = -1 // already reaped: its status is in exited
	}
	m.mu.Lock()
	m.containerPid = pid
	m.pidfd = pidfd
	m.mu.Unlock()

	// Watch for OOM kills before the pid is reported: the engine starts the container as
	// soon as it has the pid, and a kill before the watch exists would go unseen.
	if opts.PersistDir != "" || (opts.Bundle != "" && !opts.Exec) {
		if w, err := oom.Watch(pid, m.markOOM, m.log); err != nil {
			m.log.Debugf("OOM monitoring disabled: %v", err)
		} else {
			m.oomw = w
		}
	}
	if !(opts.Exec && !opts.APIVersion) {
		m.sync.send(m.syncKey(), pid, "")
	}
	releaseRuntimeThread()
	// Spare threads go once the pid is out (off the create path): before the pumps start
	// and again once they run. An exec is short-lived and keeps them.
	retire := !opts.Exec
	if retire {
		retireSpareThreads()
	}
	pumps := m.startPumps()
	if err := sdnotify.NotifyReady(os.Getpid()); err != nil {
		m.log.Debugf("sd_notify: %v", err)
	}

	var timeout <-chan time.Time
	if opts.Timeout > 0 {
		t := time.NewTimer(time.Duration(opts.Timeout) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	gone := watchPidfd(pidfd)
	if retire {
		retireSpareThreads()
	}
	status := 0
	timedOut := false
	select {
	case ws := <-exited:
		status = statusCode(ws)
	case <-gone:
		// Readable pidfd: the process exited. A child's status is collected now; a
		// non-child (some systemd scope setups) has no status to collect.
		m.reaper.reap()
		select {
		case ws := <-exited:
			status = statusCode(ws)
		default:
			m.log.Warnf("container %d was not a child of the monitor; its exit status is unknown, reporting 0", pid)
		}
	case <-timeout:
		timedOut = true
		status = -1
		m.killGroup(pid)
		select {
		case <-exited:
		case <-time.After(timeoutReap):
			m.log.Warnf("timed out process %d not reaped within %v", pid, timeoutReap)
		}
	}
	m.mu.Lock()
	m.containerPid = 0
	if m.pidfd >= 0 {
		unix.Close(m.pidfd)
		m.pidfd = -1
	}
	m.mu.Unlock()
	return m.exitSequence(status, timedOut, pumps)
}

func (m *monitor) syncKey() string {
	switch {
	case m.opts.APIVersion:
		return "data"
	case m.opts.Exec:
		return "exit_code"
	}
	return "pid"
}

// markOOM creates the oom files where podman (bundle, persist dir) and CRI-O (bundle) look.
func (m *monitor) markOOM() {
	if m.opts.PersistDir != "" {
		if err := exitfile.Touch(filepath.Join(m.opts.PersistDir, "oom")); err != nil {
			m.log.Warnf("%v", err)
		}
	}
	if m.opts.Bundle != "" && !m.opts.Exec {
		if err := exitfile.Touch(filepath.Join(m.opts.Bundle, "oom")); err != nil {
			m.log.Warnf("%v", err)
		}
	}
}

func (m *monitor) startPumps() []*ptyio.Pump {
	if m.pipes == nil {
		return nil
	}
	out := &ptyio.Output{Drivers: m.drivers, Log: m.log}
	if m.attach != nil {
		out.Attach = m.attach
	}
	var pumps []*ptyio.Pump
	m.mu.Lock()
	term := m.term
	m.mu.Unlock()
	if term != nil {
		pumps = append(pumps, ptyio.StartPump(term.Master, ptyio.Stdout, true, out))
	} else if m.pipes.Stdout != nil {
		pumps = append(pumps, ptyio.StartPump(m.pipes.Stdout, ptyio.Stdout, false, out))
	}
	if m.pipes.Stderr != nil {
		pumps = append(pumps, ptyio.StartPump(m.pipes.Stderr, ptyio.Stderr, false, out))
	}
	return pumps
}

// watchPidfd returns a channel closed when the process behind pidfd has exited. The
// pidfd is non-blocking, so the runtime poller waits for it without a thread.
func watchPidfd(pidfd int) <-chan struct{} {
	ch := make(chan struct{})
	if pidfd < 0 {
		return ch
	}
	dup, err := unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return ch
	}
	f := os.NewFile(uintptr(dup), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return ch
	}
	go func() {
		defer f.Close()
		err := rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(fds, 0)
			return n > 0
		})
		if err == nil {
			close(ch)
		}
	}()
	return ch
}

// killGroup is the -T action (lifecycle.md §15): SIGKILL to the process group, never to
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

// signalLoop owns every signal for the monitor's life (lifecycle.md §9.1).
func (m *monitor) signalLoop() {
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

// exitSequence reports the exit (lifecycle.md §14, conmon-go order).
func (m *monitor) exitSequence(status int, timedOut bool, pumps []*ptyio.Pump) int {
	opts := m.opts
	if m.oomw != nil {
		m.oomw.Final()
		m.oomw.Close()
	}
	var wg sync.WaitGroup
	for _, p := range pumps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if timedOut {
				p.Stop()
			} else {
				p.Drain(drainIdle, drainTotal)
			}
		}()
	}
	wg.Wait()
	for _, d := range m.drivers {
		d.Flush()
		if !opts.NoSyncLog {
			if err := d.Sync(); err != nil {
				m.log.Warnf("Failed to sync log file before exit: %v", err)
			}
		}
	}
	if m.attach != nil {
		m.attach.Shutdown(attachFlush)
	}
	for _, fd := range m.inherited {
		unix.Close(fd)
	}
	if m.startFD >= 0 {
		unix.Close(m.startFD)
		m.startFD = -1
	}
	exitStatus := status & 0xff
	if opts.PersistDir != "" {
		if err := writeExitFile(filepath.Join(opts.PersistDir, "exit"), status); err != nil {
			m.log.Warnf("Failed to write %d to container exit file: %v", status, err)
			exitStatus = 1
		}
	}
	if opts.ExitDir != "" {
		if err := writeExitFile(filepath.Join(opts.ExitDir, opts.CID), status); err != nil {
			m.log.Warnf("Failed to write %d to exit file: %v", status, err)
			exitStatus = 1
		}
	}
	if opts.Exec {
		msg := ""
		if timedOut {
			msg = "command timed out"
		}
		m.sync.send(m.syncKey(), status, msg)
	}
	m.sync.close()
	m.removeFiles()
	for _, d := range m.drivers {
		d.Close()
	}
	if m.fifos != nil {
		m.fifos.Close()
	}
	if m.notify != nil {
		m.notify.Close()
	}
	m.runExitCommand()
	m.reaper.reap()
	return exitStatus
}

// writeExitFile retries once: a transient failure must not lose the exit status.
func writeExitFile(path string, status int) error {
	err := exitfile.WriteInt(path, status)
	if err != nil {
		err = exitfile.WriteInt(path, status)
	}
	return err
}

// removeFiles removes what the monitor created and nobody else cleans up: the attach
// socket, the socket-dir symlink, the console socket and the trust record.
func (m *monitor) removeFiles() {
	if m.attach != nil {
		m.attach.Remove()
	}
	if m.console != nil {
		m.console.Close()
	}
	if m.trustRecord != "" {
		if err := trust.RemoveRecord(m.trustRecord, m.opts.CID); err != nil {
			m.log.Debugf("%v", err)
		}
	}
}

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
// command still runs (exit.md §7).
func (m *monitor) finishFailed(message string) int {
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
	if m.attach != nil {
		m.attach.Shutdown(0)
	}
	m.removeFiles()
	m.sync.close()
}

// runExitCommand starts --exit-command after --exit-delay with fds 0-2 only, the
// original oom score, and no subreaper role (exit.md §6), and waits for it, bounded.
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
