package monitor

import (
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

// exitProbeInterval is how often a container without a pidfd is checked for its exit.
const exitProbeInterval = time.Second

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
		err := rc.Read(func(fd uintptr) bool { return readable(int(fd)) })
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
