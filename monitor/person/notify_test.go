package person

import (
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen binds a NOTIFY_SOCKET like systemd's and returns a receiver of its datagrams.
func listen(t *testing.T) func() string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 20})
	t.Setenv("NOTIFY_SOCKET", path)
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestUnitNotifications(t *testing.T) {
	recv := listen(t)
	u := newUnit()
	u.ready(4242)
	if got := recv(); got != "READY=1\nMAINPID=4242" {
		t.Fatalf("ready sent %q", got)
	}
	u.stopping()
	u.stopping()
	u.ready(1) // a marker: STOPPING=1 was sent once
	if got := recv(); got != "STOPPING=1" {
		t.Fatalf("stopping sent %q", got)
	}
	if got := recv(); got != "READY=1\nMAINPID=1" {
		t.Fatalf("STOPPING=1 was sent twice: then %q", got)
	}
}

// The watchdog pings while the monitor lives, and stops when it does not.
func TestUnitWatchdog(t *testing.T) {
	recv := listen(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	var alive atomic.Bool
	alive.Store(true)
	stopped := make(chan struct{})
	u := newUnit()
	defer u.stopWatchdog()
	u.watchdog(func() bool {
		a := alive.Load()
		if !a {
			close(stopped)
		}
		return a
	})
	for range 2 {
		if got := recv(); got != "WATCHDOG=1" {
			t.Fatalf("watchdog sent %q", got)
		}
	}
	alive.Store(false)
	<-stopped
	u.ready(7) // a marker after the last ping
	for got := recv(); got != "READY=1\nMAINPID=7"; got = recv() {
		if got != "WATCHDOG=1" {
			t.Fatalf("unexpected %q", got)
		}
	}
	// Three intervals without a ping: nothing can be waited on for an absence.
	u.ready(8)
	time.Sleep(300 * time.Millisecond)
	u.ready(9)
	if got := recv(); got != "READY=1\nMAINPID=8" {
		t.Fatalf("got %q", got)
	}
	if got := recv(); got != "READY=1\nMAINPID=9" {
		t.Fatalf("the watchdog pinged for a dead monitor: %q", got)
	}
}

func TestUnitWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	u := newUnit()
	u.ready(1)
	u.stopping()
	u.watchdog(func() bool { t.Error("watchdog ran without WATCHDOG_USEC"); return false })
}
