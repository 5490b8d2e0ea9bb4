package seqpacket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
)

// MaxInput is the largest stdin datagram a client sends: conmon reads client input into a
// 32 KiB buffer and would truncate a longer datagram.
const MaxInput = 32 << 10

var (
	// ErrNotAttachSocket means the path is a socket of another kind (not SOCK_SEQPACKET).
	ErrNotAttachSocket = errors.New("not an attach socket (not a SOCK_SEQPACKET socket)")
	// ErrNotAccepting means the monitor listens but takes no connection: its listen
	// backlog stayed full (the monitor is stopped or hung).
	ErrNotAccepting = errors.New("the monitor accepts no connections (its listen backlog is full)")
)

// Conn is the client side of an attach socket, the side engines implement: it reads the
// monitor's output frames and sends the container's stdin as datagrams. It works with any
// conmon-style monitor.
type Conn struct {
	f    *os.File // non-blocking, on the runtime poller
	rc   syscall.RawConn
	path string
	buf  [maxFrame]byte
}

// connectRetry is the pause between connects to a monitor whose listen backlog is full
// (a monitor that is stopped or hung accepts nobody). The kernel has no event for room in
// the backlog: poll reports an unconnected socket writable at once. A blocking connect
// would wait without bound and deaf to signals, so the connect is non-blocking and tried
// again until the caller's context ends.
const connectRetry = 10 * time.Millisecond

// Dial connects to the attach socket at path, waiting while the monitor's listen backlog
// is full until ctx ends (the error then wraps ErrNotAccepting and ctx's error). The
// connection goes through /proc/self/fd/<dirfd>/<name>, as podman's does, so paths longer
// than sun_path work.
func Dial(ctx context.Context, path string) (*Conn, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "connect to", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, &os.PathError{Op: "connect to", Path: path, Err: errors.New("not a socket")}
	}
	dfd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open socket directory", Path: filepath.Dir(path), Err: err}
	}
	defer unix.Close(dfd)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	addr := &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + filepath.Base(path)}
	if err = connectUntil(ctx, fd, addr); err != nil {
		unix.Close(fd)
		if err == unix.EPROTOTYPE {
			err = ErrNotAttachSocket
		}
		return nil, &os.PathError{Op: "connect to", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "connect to", Path: path, Err: err}
	}
	return &Conn{f: f, rc: rc, path: path}, nil
}

// connectUntil connects the non-blocking socket fd to addr, trying again while ctx lasts:
// an AF_UNIX connect completes at once or fails with EAGAIN while the backlog is full.
func connectUntil(ctx context.Context, fd int, addr *unix.SockaddrUnix) error {
	var retry *time.Timer
	for {
		err := unix.Connect(fd, addr)
		if err != unix.EAGAIN {
			return err
		}
		if retry == nil {
			retry = time.NewTimer(connectRetry)
			defer retry.Stop()
		} else {
			retry.Reset(connectRetry)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotAccepting, ctx.Err())
		case <-retry.C:
		}
	}
}

// Path is the socket path given to Dial.
func (c *Conn) Path() string { return c.path }

// ReadPacket reads one datagram from r, a non-blocking SOCK_SEQPACKET socket (an *os.File
// or a net.Conn on the runtime poller), without losing the last datagrams to how Linux
// reports the peer's close to a non-blocking read:
//   - EOF (0 bytes): a read that finds the queue empty tests for the peer's shutdown
//     afterwards without looking at the queue again, so a last datagram written just before
//     the close, in between, is still queued;
//   - ECONNRESET (the peer closed with data of ours unread): reported, once, before the
//     queue is looked at.
//
// Nothing is queued after the peer's close, so one more read settles it: it returns a
// datagram that was still there, or else the first error stands. (An empty datagram, which
// reads as EOF too, is skipped: the second read waits for the next one.)
func ReadPacket(r io.Reader, p []byte) (int, error) {
	n, err := r.Read(p)
	if n == 0 && (err == io.EOF || errors.Is(err, unix.ECONNRESET)) {
		if m, merr := r.Read(p); m > 0 {
			return m, merr
		}
	}
	return n, err
}

// ReadFrame returns the next output frame: its stream (ptyio.Stdout or ptyio.Stderr; other
// ids are returned as they are) and its payload, valid until the next call. It returns
// io.EOF once the monitor closed the connection.
func (c *Conn) ReadFrame() (ptyio.Stream, []byte, error) {
	for {
		n, err := ReadPacket(c.f, c.buf[:])
		switch {
		case err == io.EOF || errors.Is(err, unix.ECONNRESET):
			return 0, nil, io.EOF
		case err != nil:
			return 0, nil, fmt.Errorf("read %s: %w", c.path, err)
		case n == 0:
			return 0, nil, io.EOF
		case n == 1:
			continue // a frame without payload carries nothing
		}
		return ptyio.Stream(c.buf[0]), c.buf[1:n], nil
	}
}

// Write sends p to the container's stdin, as datagrams of at most MaxInput bytes.
func (c *Conn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := c.f.Write(p[done:min(len(p), done+MaxInput)])
		done += n
		if err != nil {
			return done, fmt.Errorf("write %s: %w", c.path, err)
		}
	}
	return done, nil
}

// CloseWrite ends the client's input (shutdown SHUT_WR). A monitor started with -i and
// without --leave-stdin-open then closes the container's stdin.
func (c *Conn) CloseWrite() error {
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("shutdown %s: %w", c.path, serr)
	}
	return nil
}

// PeerPid is the pid of the process that listens on the socket: the monitor.
func (c *Conn) PeerPid() (int, error) {
	var cred *unix.Ucred
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("peer of %s: %w", c.path, serr)
	}
	return int(cred.Pid), nil
}

// Close closes the connection; a ReadFrame waiting in another goroutine returns an error.
func (c *Conn) Close() error { return c.f.Close() }
