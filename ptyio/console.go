package ptyio

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// ErrNoTerminal: the runtime exited without sending a pty master.
var ErrNoTerminal = errors.New("Runtime did not set up terminal")

const (
	consoleBacklog = 128
	// The runtime sends the terminal's name (<= 4096 bytes, unused) with the master attached
	// as SCM_RIGHTS. Of any further fds, those that fit the control buffer are installed
	// and closed at once; the kernel discards the others (MSG_CTRUNC).
	consoleNameMax = 4096
	consoleMaxFds  = 8
)

// ConsoleSocket is the listener passed to the runtime as --console-socket (docs/protocol.md §7).
type ConsoleSocket struct {
	Path string
	Log  diag.Logger // may be nil; receives the ONLCR and peer-slave warnings

	mu      sync.Mutex
	l       *os.File // listener; nil once closed
	removed bool
}

// NewConsoleSocket listens on <tmpdir>/conmon-term.XXXXXX (os.TempDir when tmpdir is "").
func NewConsoleSocket(tmpdir string) (*ConsoleSocket, error) {
	if tmpdir == "" {
		tmpdir = os.TempDir()
	}
	path, err := reserveName(tmpdir, "conmon-term.")
	if err != nil {
		return nil, err
	}
	// The name only had to be unique; the socket takes its place.
	if err := os.Remove(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("create console socket: %w", err)
	}
	fail := func(op string, err error) (*ConsoleSocket, error) {
		unix.Close(fd)
		return nil, &os.PathError{Op: op, Path: path, Err: err}
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fail("fchmod console socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail("bind console socket", err)
	}
	if err := unix.Listen(fd, consoleBacklog); err != nil {
		unix.Unlink(path)
		return fail("listen on console socket", err)
	}
	return &ConsoleSocket{Path: path, l: os.NewFile(uintptr(fd), path)}, nil
}

// reserveName creates dir/prefix plus six random alphanumerics exclusively, like mkstemp.
func reserveName(dir, prefix string) (string, error) {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var suffix [6]byte
	for try := 0; ; try++ {
		for i := range suffix {
			suffix[i] = chars[rand.N(len(chars))]
		}
		path := filepath.Join(dir, prefix+string(suffix[:]))
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err == nil {
			unix.Close(fd)
			return path, nil
		}
		if err != unix.EEXIST || try == 100 {
			return "", &os.PathError{Op: "create", Path: path, Err: err}
		}
	}
}

// Close unlinks the path if still there and closes the listener. Idempotent.
func (c *ConsoleSocket) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.removed {
		c.removed = true
		if err := unix.Unlink(c.Path); err != nil && err != unix.ENOENT {
			diag.OrDiscard(c.Log).Warnf("Failed to remove console socket %s: %v", c.Path, err)
		}
	}
	if c.l != nil {
		c.l.Close()
		c.l = nil
	}
}

// Receive accepts one connection and returns the pty master (ONLCR set, non-blocking, peer
// slave opened with TIOCGPTPEER and kept). When done is closed (runtime exited) it makes one
// last non-blocking accept and returns ErrNoTerminal if nothing is there. The listener is
// closed and the path unlinked on return.
func (c *ConsoleSocket) Receive(done <-chan struct{}) (*Terminal, error) {
	c.mu.Lock()
	l := c.l
	c.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("Failed to accept console-socket connection: %w", os.ErrClosed)
	}
	connFd := -1
	ok, err := pollRead(l, done, func(fd int) error {
		for {
			nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			if err != unix.EINTR && err != unix.ECONNABORTED {
				connFd = nfd
				return err
			}
		}
	})
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("Failed to accept console-socket connection: %w", err)
	}
	if !ok {
		return nil, ErrNoTerminal
	}
	conn := os.NewFile(uintptr(connFd), c.Path+" (connection)")
	defer conn.Close()

	master, err := recvMaster(conn, done)
	if err != nil {
		return nil, fmt.Errorf("Failed to receive console file descriptor: %w", err)
	}
	return newTerminal(master, diag.OrDiscard(c.Log))
}

// recvMaster reads the runtime's one message and returns the first fd it carries.
func recvMaster(conn *os.File, done <-chan struct{}) (int, error) {
	buf := make([]byte, consoleNameMax)
	oob := make([]byte, unix.CmsgSpace(4*consoleMaxFds))
	var n, oobn int
	ok, err := pollRead(conn, done, func(fd int) error {
		for {
			var err error
			n, oobn, _, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
			if err != unix.EINTR {
				return err
			}
		}
	})
	if err != nil {
		return -1, err
	}
	if !ok {
		return -1, errors.New("runtime exited before sending it")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return -1, err
	}
	master := -1
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if master < 0 {
				master = fd
			} else {
				unix.Close(fd)
			}
		}
	}
	if master < 0 {
		if n == 0 {
			return -1, errors.New("connection closed without a message")
		}
		return -1, errors.New("message carries no file descriptor")
	}
	return master, nil
}

// pollRead runs op, a non-blocking syscall on f's fd that returns EAGAIN while not ready,
// through the runtime poller. Once done is closed it stops waiting and tries op one last
// time (the runtime may have connected and sent before exiting). ok is false when op was
// still not ready then.
func pollRead(f *os.File, done <-chan struct{}, op func(fd int) error) (ok bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
			f.SetReadDeadline(time.Unix(1, 0)) // wakes the poller wait below
		case <-stop:
		}
	}()
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		opErr = op(int(fd))
		return opErr != unix.EAGAIN
	})
	close(stop)
	<-stopped
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = rc.Control(func(fd uintptr) { opErr = op(int(fd)) })
	}
	if err != nil {
		return false, err
	}
	if opErr == unix.EAGAIN {
		return false, nil
	}
	return opErr == nil, opErr
}
