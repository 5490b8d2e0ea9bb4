package person

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// notifySocket binds a NOTIFY_SOCKET like systemd's and names it in the environment.
type notifySocket struct {
	t    *testing.T
	path string
	fd   int
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	l := &notifySocket{t: t, path: filepath.Join(t.TempDir(), "notify")}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: l.path}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 20})
	l.fd = fd
	t.Setenv("NOTIFY_SOCKET", l.path)
	return l
}

// recv returns the next datagram.
func (l *notifySocket) recv() string {
	l.t.Helper()
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(l.fd, buf, 0)
	if err != nil {
		l.t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// empty fails the test when a datagram is queued.
func (l *notifySocket) empty() {
	l.t.Helper()
	buf := make([]byte, 4096)
	if n, _, err := unix.Recvfrom(l.fd, buf, unix.MSG_DONTWAIT); err != unix.EAGAIN {
		l.t.Fatalf("unexpected notification %q, %v", buf[:max(n, 0)], err)
	}
}

func TestUnitNotifications(t *testing.T) {
	l := listenNotify(t)
	u := &unit{}
	u.ready(4242)
	if got := l.recv(); got != "READY=1\nMAINPID=4242" {
		t.Fatalf("ready sent %q", got)
	}
	u.stopping()
	u.stopping()
	if got := l.recv(); got != "STOPPING=1" {
		t.Fatalf("stopping sent %q", got)
	}
	l.empty() // STOPPING=1 was sent once
}

// The watchdog pings until it is stopped, and not after.
func TestUnitWatchdog(t *testing.T) {
	l := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	u := &unit{}
	u.watchdog()
	u.watchdog() // one pinger
	for range 2 {
		if got := l.recv(); got != "WATCHDOG=1" {
			t.Fatalf("watchdog sent %q", got)
		}
	}
	u.stopWatchdog()
	u.ready(7) // a marker after the last ping
	for got := l.recv(); got != "READY=1\nMAINPID=7"; got = l.recv() {
		if got != "WATCHDOG=1" {
			t.Fatalf("unexpected %q", got)
		}
	}
	l.empty()
	u.stopWatchdog()
}

// Outside a Type=notify service (no NOTIFY_SOCKET, no WATCHDOG_USEC) nothing is sent.
func TestUnitWithoutSystemd(t *testing.T) {
	l := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	u := &unit{}
	u.ready(1)
	u.stopping()
	u.watchdog()
	if u.stop != nil {
		t.Fatal("watchdog pings started without WATCHDOG_USEC")
	}
	t.Setenv("NOTIFY_SOCKET", l.path)
	u.ready(2) // a marker: anything sent before it would be queued first
	if got := l.recv(); got != "READY=1\nMAINPID=2" {
		t.Fatalf("sent without NOTIFY_SOCKET: %q", got)
	}
}

// STOPPING=1 ends the pings: nothing follows it.
func TestUnitStoppingEndsWatchdog(t *testing.T) {
	l := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	u := &unit{}
	u.watchdog()
	if got := l.recv(); got != "WATCHDOG=1" {
		t.Fatalf("watchdog sent %q", got)
	}
	u.stopping()
	for got := l.recv(); got != "STOPPING=1"; got = l.recv() {
		if got != "WATCHDOG=1" {
			t.Fatalf("unexpected %q", got)
		}
	}
	// Pings come every 50 ms: three intervals without one, then a marker that a ping
	// after STOPPING=1 would precede. (An absence has no event to wait for.)
	time.Sleep(150 * time.Millisecond)
	u.ready(7)
	if got := l.recv(); got != "READY=1\nMAINPID=7" {
		t.Fatalf("after STOPPING=1: %q", got)
	}
}
