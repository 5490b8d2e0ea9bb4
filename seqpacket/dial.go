package seqpacket

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
)

// MaxInput is the largest stdin datagram a client sends: conmon reads client input into a
// 32 KiB buffer and would truncate a longer datagram.
const MaxInput = 32 << 10

// ErrNotAttachSocket means the path is a socket of another kind (not SOCK_SEQPACKET).
var ErrNotAttachSocket = errors.New("not an attach socket (not a SOCK_SEQPACKET socket)")

// Conn is the client side of an attach socket, the side engines implement: it reads the
// monitor's output frames and sends the container's stdin as datagrams. It works with any
// conmon-style monitor.
type Conn struct {
	f    *os.File // non-blocking, on the runtime poller
	rc   syscall.RawConn
	path string
	buf  [maxFrame]byte
}

// Dial connects to the attach socket at path. The connection goes through
// /proc/self/fd/<dirfd>/<name>, as podman's does, so paths longer than sun_path work.
func Dial(path string) (*Conn, error) {
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
	// Connected while blocking (a full backlog makes a non-blocking AF_UNIX connect fail
	// with EAGAIN), then handed to the poller.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	addr := &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + filepath.Base(path)}
	// Go installs its signal handlers with SA_RESTART: no EINTR here.
	err = unix.Connect(fd, addr)
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
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

// Path is the socket path given to Dial.
func (c *Conn) Path() string { return c.path }

// ReadFrame returns the next output frame: its stream (ptyio.Stdout or ptyio.Stderr; other
// ids are returned as they are) and its payload, valid until the next call. It returns
// io.EOF once the monitor closed the connection.
func (c *Conn) ReadFrame() (ptyio.Stream, []byte, error) {
	for {
		n, err := c.f.Read(c.buf[:])
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
