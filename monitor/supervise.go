package monitor

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/oom"
	"github.com/conmon-go/conmon-go/monitor/sdnotify"
	"github.com/conmon-go/conmon-go/monitor/trust"
	"github.com/conmon-go/conmon-go/ptyio"
)

// exitProbeInterval is how often a container without a pidfd is checked for its exit.
const exitProbeInterval = time.Second

// superviseContainer runs from the moment the container (or exec) pid is known until the
// monitor exits (M15–M19, lifecycle.md §14). releaseRuntimeThread unlocks the thread that
// started the reaped runtime.
func (m *monitor) superviseContainer(pid int, releaseRuntimeThread func()) int {
	diag.PanicPoint("start")
	opts := m.opts
	exited := m.reaper.wait(pid)
	m.reaper.forget()
	pidfd, pidfdErr := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if pidfdErr != nil {
		pidfd = -1
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
	if msg := diag.Panicked(); msg != "" {
		// A part failed during start-up: the create fails like any set-up failure.
		m.signalContainer(unix.SIGKILL)
		return m.finishFailed(msg)
	}
	m.exited = exited
	m.reported.Store(true)
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
	if os.Getenv("NOTIFY_SOCKET") != "" {
		// Most monitors have no unit of their own: no goroutine (and no kept stack) for them.
		go m.notifyUnit(m.notify != nil)
	}

	var timeout <-chan time.Time
	if opts.Timeout > 0 {
		t := time.NewTimer(time.Duration(opts.Timeout) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	m.gone = watchExit(pid, pidfd, pidfdErr, m.log)
	if retire {
		retireSpareThreads()
	}
	status, timedOut := m.awaitExit(pid, timeout)
	m.mu.Lock()
	m.containerPid = 0
	if m.pidfd >= 0 {
		unix.Close(m.pidfd)
		m.pidfd = -1
	}
	m.mu.Unlock()
	return m.exitSequence(status, timedOut, pumps)
}

// awaitExit waits until the container ends or the -T timer fires, and records the status
// for the exit sequence (and for afterPanic).
func (m *monitor) awaitExit(pid int, timeout <-chan time.Time) (status int, timedOut bool) {
	select {
	case ws := <-m.exited:
		status = statusCode(ws)
	case <-m.gone:
		// Readable pidfd: the process exited. A child's status is collected now; a
		// non-child (some systemd scope setups) has no status to collect.
		m.reaper.reap()
		select {
		case ws := <-m.exited:
			status = statusCode(ws)
		default:
			m.log.Warnf("container %d was not a child of the monitor; its exit status is unknown, reporting 0", pid)
		}
	case <-timeout:
		timedOut = true
		status = -1
		m.killGroup(pid)
		select {
		case <-m.exited:
		case <-time.After(timeoutReap):
			m.log.Warnf("timed out process %d not reaped within %v", pid, timeoutReap)
		}
	}
	m.mu.Lock()
	m.status, m.statusKnown, m.timedOut = status, true, timedOut
	m.mu.Unlock()
	return status, timedOut
}

// notifyUnit tells the monitor's own systemd unit, if NOTIFY_SOCKET names one, that the
// container runs and the monitor is its main process, then feeds the unit's watchdog while
// the monitor lives. It runs on its own: sd_notify waits without bound while the unit's
// socket is full, and a stuck service manager must not hold up supervision. A container
// whose notifications are relayed (relaying) feeds the watchdog itself: pings from the
// monitor would hide a hung container.
func (m *monitor) notifyUnit(relaying bool) {
	defer diag.Recover(m.log, "sd_notify", nil)
	sent, err := sdnotify.NotifyReady(os.Getpid())
	if err != nil {
		m.log.Debugf("sd_notify: %v", err)
	}
	if !sent || relaying {
		return
	}
	interval, err := sdnotify.Watchdog()
	if err != nil {
		m.log.Warnf("sd_notify watchdog: %v", err)
	}
	if interval > 0 {
		sdnotify.KeepAlive(interval, nil, m.log)
	}
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
	out := m.output
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

// watchExit returns a channel closed when process pid has exited. With a pidfd (non-
// blocking) the runtime poller waits for it without a thread. Without one the process was
// already gone when the pidfd was asked for (a child's status is then with the reaper; a
// non-child is simply gone), or pidfds are unavailable and the process is probed instead.
func watchExit(pid, pidfd int, pidfdErr error, log *diag.Printer) <-chan struct{} {
	ch := make(chan struct{})
	if pidfd < 0 {
		if pidfdErr == unix.ESRCH {
			close(ch)
		} else {
			go probeExit(pid, ch, log)
		}
		return ch
	}
	dup, err := unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		go probeExit(pid, ch, log)
		return ch
	}
	f := os.NewFile(uintptr(dup), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		go probeExit(pid, ch, log)
		return ch
	}
	go func() {
		defer f.Close()
		defer diag.Recover(log, "exit watch", func() { go probeExit(pid, ch, log) })
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

// probeExit closes ch once pid no longer exists, checking every exitProbeInterval: the
// fallback where a pidfd cannot be had (kernels before 5.3).
func probeExit(pid int, ch chan struct{}, log *diag.Printer) {
	defer diag.Recover(log, "exit probe", nil) // the reaper still sees a child's end
	t := time.NewTicker(exitProbeInterval)
	defer t.Stop()
	for range t.C {
		if unix.Kill(pid, 0) == unix.ESRCH {
			close(ch)
			return
		}
	}
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

// exitSequence reports the exit (lifecycle.md §14, conmon-go order).
func (m *monitor) exitSequence(status int, timedOut bool, pumps []*ptyio.Pump) int {
	diag.PanicPoint("exit")
	opts := m.opts
	if m.oomw != nil {
		m.oomw.Final()
		m.oomw.Close()
	}
	m.drain(pumps, timedOut)
	for i, d := range m.drivers {
		if m.driverOff(i) {
			continue
		}
		d.Flush()
		if !opts.NoSyncLog {
			if err := d.Sync(); err != nil {
				m.log.Warnf("Failed to sync log file before exit: %v", err)
			}
		}
	}
	if m.attachUsable() {
		m.attach.Shutdown(attachFlush)
	}
	for _, fd := range m.inherited {
		unix.Close(fd)
	}
	if m.startFD >= 0 {
		unix.Close(m.startFD)
		m.startFD = -1
	}
	exitStatus := m.reportExit(status, timedOut)
	m.removeFiles()
	for i, d := range m.drivers {
		if !m.driverOff(i) {
			d.Close()
		}
	}
	if m.fifos != nil {
		m.fifos.Close()
	}
	if m.notify != nil {
		m.notify.Close()
	}
	m.finishExit()
	return exitStatus
}

// drain lets the pumps read what is left (docs/lifecycle.md §14 step 2). The wait is bounded
// beyond the pumps' own bounds: a consumer stuck after a panic elsewhere must not keep
// the exit files from being written.
func (m *monitor) drain(pumps []*ptyio.Pump, timedOut bool) {
	var wg sync.WaitGroup
	for _, p := range pumps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer diag.Recover(m.log, "output drain", nil)
			if timedOut {
				p.Stop()
			} else {
				p.Drain(drainIdle, drainTotal)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer diag.Recover(m.log, "output drain", nil)
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainBound):
		m.log.Warnf("container output not drained within %v", drainBound)
	}
}

// Exit steps done, for afterPanic.
const (
	stepNone = iota
	stepExitFiles
	stepReported
	stepFinished
)

// reportExit writes the exit files and sends an exec's final message (docs/lifecycle.md §14
// steps 7 and 8), and returns the monitor's exit status.
func (m *monitor) reportExit(status int, timedOut bool) int {
	opts := m.opts
	exitStatus := status & 0xff
	if m.step.Load() < stepExitFiles {
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
		m.step.Store(stepExitFiles)
	}
	if m.step.Load() < stepReported {
		m.step.Store(stepReported) // once, even if the send panics
		if opts.Exec {
			msg := ""
			if timedOut {
				msg = "command timed out"
			}
			m.sync.send(m.syncKey(), status, msg)
		}
		m.sync.close()
	}
	return exitStatus
}

// finishExit runs the exit command and reaps what is left (steps 10 and 11).
func (m *monitor) finishExit() {
	if m.step.Swap(stepFinished) == stepFinished {
		return
	}
	m.runExitCommand()
	m.reaper.reap()
}

// afterPanic ends a monitor whose own path panicked (docs/lifecycle.md §13.1). Before the pid
// was reported the start-up fails like any other, and a container the runtime created is
// killed. After it the container keeps its monitor until it ends; then the exit files are
// written and the exit command runs, without the drain. The status is 1.
func (m *monitor) afterPanic() (status int) {
	status = 1
	defer diag.Recover(m.log, "monitor exit after an internal error", nil)
	msg := diag.Panicked()
	if !m.reported.Load() {
		m.mu.Lock()
		started := m.runtimeStarted
		m.mu.Unlock()
		if !started {
			return m.fail(msg)
		}
		if pid, err := readPidFile(m.opts.ContainerPidfile); err == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
		return m.finishFailed(msg)
	}
	m.mu.Lock()
	known, code, timedOut, pid := m.statusKnown, m.status, m.timedOut, m.containerPid
	m.mu.Unlock()
	if !known {
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
	if m.attachUsable() {
		m.attach.Shutdown(0)
	}
	m.removeFiles()
	m.sync.close()
}

// attachUsable: an attach server exists and no panic switched it off (a server that
// panicked may be stopped holding a lock: only its files are removed).
func (m *monitor) attachUsable() bool {
	return m.attach != nil && !m.attach.Failed() && (m.output == nil || !m.output.AttachOff())
}

// driverOff reports that log driver i panicked in the pumps and is no longer called.
func (m *monitor) driverOff(i int) bool { return m.output != nil && m.output.DriverOff(i) }

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
