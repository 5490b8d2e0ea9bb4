package journald

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// gateRefresh is how often the gate connects again, so that it follows a restarted
// journald (a socket connected to the old one stays writable for ever).
const gateRefresh = 10 * time.Second

// gate lets the sender wait, without spinning, until journald's socket queue has room.
//
// journal.Send writes from one unconnected socket. While journald's queue is full its
// sendmsg fails with EAGAIN, and the buffer of each failed attempt, charged to that
// socket, is freed at once: the kernel then reports the socket writable again, so the
// runtime poller retries at once, in a loop that lasts as long as journald does not read
// (0.4 to 0.8 s of CPU per second here with journald stopped). A datagram socket
// connected to journald's is reported writable only while journald's queue has room, and
// the kernel wakes it when journald reads; the sender waits on such a socket before each
// journal.Send, which then rarely meets a full queue.
type gate struct {
	f    *os.File
	rc   syscall.RawConn
	next time.Time // when to connect again; zero: not connected
}

func newGate() (*gate, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	g := &gate{f: os.NewFile(uintptr(fd), Socket)}
	if g.rc, err = g.f.SyscallConn(); err != nil {
		g.f.Close()
		return nil, &os.PathError{Op: "register", Path: Socket, Err: err}
	}
	return g, nil
}

// wait returns once journald's queue has room, or at once when journald cannot be
// reached (journal.Send then fails on its own); false when the gate was closed: the
// driver is closed and nothing more is sent (journal.Send would retry a full socket
// without pause until the process ends).
func (g *gate) wait(now time.Time) bool {
	if (g.next.IsZero() || now.After(g.next)) && g.dial(now) != nil {
		return !g.closed()
	}
	return g.rc.Write(writable) == nil
}

// closed reports whether close was called.
func (g *gate) closed() bool {
	return g.rc.Control(func(uintptr) {}) != nil
}

// dial connects the gate to journald's socket (again).
func (g *gate) dial(now time.Time) error {
	var err error
	if cerr := g.rc.Control(func(fd uintptr) {
		err = unix.Connect(int(fd), &unix.SockaddrUnix{Name: Socket})
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		g.next = time.Time{}
		return &os.PathError{Op: "connect", Path: Socket, Err: err}
	}
	g.next = now.Add(gateRefresh)
	return nil
}

// reset makes the next wait connect again (journald may have been restarted).
func (g *gate) reset() { g.next = time.Time{} }

// writable polls without waiting; false makes RawConn.Write wait for the poller.
func writable(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n > 0
}

// close ends a wait in progress.
func (g *gate) close() { g.f.Close() }
