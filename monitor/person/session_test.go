package person

import (
	"context"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/seqpacket"
)

// testMonitor is the listening side of an attach socket, played by the test: it accepts
// the session's connections and reads what the session forwards from stdin.
type testMonitor struct {
	t    *testing.T
	path string
	fd   int
	open map[int]bool // accepted connections not closed yet
}

// ioLimit bounds each wait of the test monitor, so that a session that never comes fails
// the test instead of hanging it.
const ioLimit = 10 * time.Second

func listenAttach(t *testing.T) *testMonitor {
	t.Helper()
	m := &testMonitor{t: t, path: filepath.Join(t.TempDir(), "attach")}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.fd = fd
	m.open = map[int]bool{fd: true}
	t.Cleanup(func() {
		for fd := range m.open {
			unix.Close(fd)
		}
	})
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: m.path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(ioLimit.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return m
}

// accept returns the next session connection.
func (m *testMonitor) accept() int {
	m.t.Helper()
	fd, _, err := unix.Accept4(m.fd, unix.SOCK_CLOEXEC)
	if err != nil {
		m.t.Fatalf("no connection to %s: %v", m.path, err)
	}
	tv := unix.NsecToTimeval(ioLimit.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	m.open[fd] = true
	return fd
}

// close closes a connection, or with m.fd the listening socket: the monitor is gone.
func (m *testMonitor) close(fd int) {
	if m.open[fd] {
		delete(m.open, fd)
		unix.Close(fd)
	}
}

// read returns the next stdin datagram on conn.
func (m *testMonitor) read(conn int) string {
	m.t.Helper()
	buf := make([]byte, seqpacket.MaxInput)
	n, err := unix.Read(conn, buf)
	if err != nil {
		m.t.Fatalf("no input: %v", err)
	}
	return string(buf[:max(n, 0)])
}

// testSession is a session on the test monitor whose stdin the test feeds: typ returns
// once the session took the chunk; endInput ends stdin. outcomes gets how it ended.
type testSession struct {
	*session
	chunks   chan []byte
	outcomes chan outcome
}

func startSession(t *testing.T, m *testMonitor, keys string) *testSession {
	t.Helper()
	conn, err := seqpacket.Dial(context.Background(), m.path)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testSession{chunks: make(chan []byte), outcomes: make(chan outcome, 1)}
	ts.session = &session{conn: conn, in: &input{chunks: ts.chunks}, keys: detacher{keys: []byte(keys)}, mute: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.outcomes <- ts.stay(m.path, nil, func(syscall.Signal) bool { return false }, io.Discard)
	}()
	t.Cleanup(func() {
		// Without the monitor the session ends, and cannot attach again.
		for fd := range m.open {
			m.close(fd)
		}
		select {
		case <-done:
			ts.conn.Close()
		case <-time.After(ioLimit):
			t.Error("the session did not end without its monitor")
		}
	})
	return ts
}

func (ts *testSession) typ(p string) { ts.chunks <- []byte(p) }

func (ts *testSession) endInput() { close(ts.chunks) }

// dropFirst accepts the session's first connection, checks that typed arrives on it as
// forwarded, and drops it as a monitor drops a slow client.
func (m *testMonitor) dropFirst(s *testSession, typed, forwarded string) {
	m.t.Helper()
	first := m.accept()
	s.typ(typed)
	if got := m.read(first); got != forwarded {
		m.t.Fatalf("first connection got %q; want %q", got, forwarded)
	}
	m.close(first)
}

// A detach sequence typed half before and half after the monitor dropped the session still
// detaches: the second half is not forwarded to the container.
func TestSessionKeepsDetachKeysAcrossReattach(t *testing.T) {
	m := listenAttach(t)
	s := startSession(t, m, "\x10\x11")
	m.dropFirst(s, "ls\x10", "ls")
	second := m.accept()
	s.typ("\x11")
	select {
	case o := <-s.outcomes:
		if o != detached {
			t.Fatalf("session ended with %v; want detached", o)
		}
	case <-time.After(ioLimit):
		unix.SetsockoptTimeval(second, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 1})
		buf := make([]byte, 16)
		n, _ := unix.Read(second, buf)
		t.Fatalf("the session did not detach; the new connection got %q", buf[:max(n, 0)])
	}
}

// Keys typed while the monitor drops the session go to the new connection, each once: no
// input copy of the old connection takes them.
func TestSessionForwardsEveryKeyAcrossReattach(t *testing.T) {
	m := listenAttach(t)
	s := startSession(t, m, "")
	m.dropFirst(s, "a", "a")
	s.typ("b") // taken by whichever copy reads stdin while the session reattaches
	second := m.accept()
	s.typ("c")
	var got string
	for len(got) < 2 {
		got += m.read(second)
	}
	if got != "bc" {
		t.Fatalf("the new connection got %q; want %q", got, "bc")
	}
	select {
	case o := <-s.outcomes:
		t.Fatalf("the session ended (%v) while connected", o)
	default:
	}
}

// The end of stdin reaches the monitor after a reattach too, preceded by the bytes held
// back as a possible start of the detach sequence.
func TestSessionEndOfInputAfterReattach(t *testing.T) {
	m := listenAttach(t)
	s := startSession(t, m, "\x10\x11")
	m.dropFirst(s, "x\x10", "x")
	second := m.accept()
	s.endInput()
	if got := m.read(second); got != "\x10" {
		t.Fatalf("the new connection got %q; want the held key", got)
	}
	buf := make([]byte, 16)
	if n, err := unix.Read(second, buf); n != 0 || err != nil {
		t.Fatalf("after the end of stdin the connection gave %q, %v; want its end", buf[:max(n, 0)], err)
	}
	m.close(m.fd)
	m.close(second)
	select {
	case o := <-s.outcomes:
		if o != ended {
			t.Fatalf("session ended with %v; want ended", o)
		}
	case <-time.After(ioLimit):
		t.Fatal("the session did not end with its connection")
	}
}
