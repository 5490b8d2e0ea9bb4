package monitor

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

// idleThreads is what an idle monitor needs: one thread to run goroutines, sysmon, and the
// three os/signal keeps (its signal-mask thread, the template thread, the receiver).
const idleThreads = 5

// retireAgainAfter is when a monitor that still has spare threads after the retirement
// at its start tries again (superviseContainer).
const retireAgainAfter = 10 * time.Millisecond

// retireSpareThreads ends the threads setup left idle. Go never ends an idle thread, only
// the thread of a goroutine that exits while locked to it; setup's blocking calls and the
// runtime-start thread leave one or two spares. A retirement gains only when
// an idle thread can take over; otherwise Go starts a new one, hence the bound. The main
// thread is never retired: Go parks it for good instead of ending it, and another thread
// would then have to run the goroutines.
func retireSpareThreads() {
	for range 3 {
		if n, err := threadCount(); err != nil || n <= idleThreads {
			return
		}
		onMain := make(chan bool)
		go func() {
			defer diag.Recover(nil, "thread retirement", nil)
			if unix.Gettid() == unix.Getpid() {
				onMain <- true
				return
			}
			runtime.LockOSThread()
			onMain <- false
		}()
		if <-onMain {
			return
		}
	}
}

// threadCount reads the number of threads in /proc/self/stat.
func threadCount() (int, error) {
	var buf [512]byte
	fd, err := unix.Open("/proc/self/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return 0, err
	}
	return parseThreadCount(string(buf[:n]))
}

// parseThreadCount returns num_threads, field 20 of a /proc/<pid>/stat line. The command
// name (field 2) may hold spaces and parentheses; it ends with the line's last ')'.
func parseThreadCount(stat string) (int, error) {
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(fields) < 18 {
		return 0, errors.New("short stat line")
	}
	return strconv.Atoi(fields[17]) // fields[0] is field 3, the state
}
