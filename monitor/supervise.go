package monitor

import (
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/oom"
	"github.com/conmon-go/conmon-go/monitor/sdnotify"
	"github.com/conmon-go/conmon-go/ptyio"
)

// superviseContainer runs from the moment the container (or exec) pid is known until the
// monitor exits (docs/lifecycle.md §2 M15–M19 and §14). releaseRuntimeThread unlocks the
// thread that started the reaped runtime.
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

	if msg := diag.Panicked(); msg != "" {
		// A part failed during start-up: the create fails like any set-up failure.
		m.signalContainer(unix.SIGKILL)
		return m.finishFailed(msg)
	}
	m.exited = exited
	if !(opts.Exec && !opts.APIVersion) {
		m.sync.send(m.syncKey(), pid, "")
	}
	diag.PanicPoint("reported")
	m.catchQuietSignals()
	// Off the create path: a created container runs only once the engine has started it
	// (the runtime's start takes milliseconds), and an exec's process ran before its pid
	// was known either way (docs/lifecycle.md §16).
	if opts.PersistDir != "" || (opts.Bundle != "" && !opts.Exec) {
		m.watchOOM(pid)
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
		// Unmapping takes long enough for the runtime to hand the P to another thread,
		// which it may start: first, so that the retirement ends such a thread too.
		releasePrefaulted()
		retireSpareThreads()
		if n, err := threadCount(); err == nil && n > idleThreads {
			// With one P the retiring goroutine runs on this goroutine's thread; on the
			// main thread that retires nothing. A timer's goroutine runs on the thread
			// that waits in the poller once the monitor is idle.
			time.AfterFunc(retireAgainAfter, retireSpareThreads)
		}
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
	m.status, m.statusKnown, m.timedOut = status, true, timedOut
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

// watchOOM takes the baseline of the container's OOM kill counters and watches them.
func (m *monitor) watchOOM(pid int) {
	w, err := oom.Prepare(pid, m.markOOM, m.log)
	if err == nil {
		m.oomw = w
		err = w.Start()
	}
	if err != nil {
		m.log.Debugf("OOM monitoring disabled: %v", err)
	}
}
