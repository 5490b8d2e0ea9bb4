package monitor

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitClosed fails the test unless ch is closed within d.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: no exit seen within %v", what, d)
	}
}

// goneProcess returns the pid of a process that has exited and been reaped.
func goneProcess(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}

func TestWatchExitOfVanishedProcess(t *testing.T) {
	// A non-child container that ended before its pidfd was asked for: pidfd_open fails
	// with ESRCH and the monitor must not wait forever.
	pid := goneProcess(t)
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err == nil {
		unix.Close(fd)
		t.Skip("pid was reused")
	}
	waitClosed(t, watchExit(pid, -1, err, nil), time.Second, "ESRCH")
	// Without pidfds the process is probed.
	waitClosed(t, watchExit(pid, -1, unix.ENOSYS, nil), 3*exitProbeInterval, "probe")
}

func TestWatchExitThroughPidfd(t *testing.T) {
	c := exec.Command("sleep", "0.2")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(c.Process.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ch := watchExit(c.Process.Pid, fd, nil, nil)
	select {
	case <-ch:
		t.Fatal("exit seen while the process runs")
	default:
	}
	c.Wait()
	waitClosed(t, ch, 5*time.Second, "pidfd")
}
