package ptyio

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// withFd runs fn on f's descriptor without f.Fd(), which would make a poller file blocking.
func withFd(t *testing.T, f *os.File, fn func(fd int)) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
}

// recorder is a LogDriver and Broadcaster that keeps what it got (bounded by the tests).
type recorder struct {
	mu   sync.Mutex
	data map[Stream][]byte
	got  chan struct{} // signalled (non-blocking) per Write
}

func newRecorder() *recorder {
	return &recorder{data: map[Stream][]byte{}, got: make(chan struct{}, 1)}
}

func (r *recorder) Write(s Stream, p []byte, now time.Time) {
	r.mu.Lock()
	r.data[s] = append(r.data[s], p...)
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default:
	}
}

// Broadcast records attach output after the driver's, in the same stream.
func (r *recorder) Broadcast(s Stream, p []byte) { r.Write(s, p, time.Time{}) }
func (r *recorder) Flush()                       {}
func (r *recorder) Reopen()                      {}
func (r *recorder) Sync() error                  { return nil }
func (r *recorder) Close() error                 { return nil }

func (r *recorder) bytes(s Stream) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.data[s])
}

// waitFor waits until stream s holds want (or fails after a generous timeout).
func (r *recorder) waitFor(t *testing.T, s Stream, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for r.bytes(s) != want {
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("stream %d: got %q, want %q", s, r.bytes(s), want)
		}
	}
}

type testLogger struct {
	mu    sync.Mutex
	warns []string
}

func (l *testLogger) Warnf(format string, args ...any) {
	l.mu.Lock()
	l.warns = append(l.warns, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}
func (l *testLogger) Debugf(string, ...any) {}

// openPty returns a raw pty master fd and its slave as a poller file, as a runtime would
// set it up (unlocked, ONLCR cleared like runc does).
func openPty(t *testing.T) (master int, slave *os.File) {
	t.Helper()
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("needs /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave = openSlave(t, n)
	tio, err := unix.IoctlGetTermios(master, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Oflag &^= unix.ONLCR
	if err := unix.IoctlSetTermios(master, unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return master, slave
}

func openSlave(t *testing.T, n uint32) *os.File {
	t.Helper()
	name := fmt.Sprintf("/dev/pts/%d", n)
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { f.Close() })
	return f
}

// readWithin reads once from a poller file, failing after d.
func readWithin(t *testing.T, f *os.File, d time.Duration) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err != nil {
		t.Fatalf("read %s: %v", f.Name(), err)
	}
	return string(buf[:n])
}

// readLen reads from a poller file until it has n bytes, failing after d. A tty hands the
// master what the slave wrote in pieces (ONLCR's "\r\n" can come apart from the text).
func readLen(t *testing.T, f *os.File, n int, d time.Duration) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		t.Fatalf("read %s: %v", f.Name(), err)
	}
	return string(buf)
}
