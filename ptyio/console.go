package ptyio

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// ErrNoTerminal: the runtime exited without sending a pty master.
var ErrNoTerminal = errors.New("Runtime did not set up terminal")

const (
	consoleBacklog = 128
	// The runtime sends the terminal's name (<= 4096 bytes, unused) with the master attached
	// as SCM_RIGHTS; room for a few extra fds lets us close them instead of losing track.
	consoleNameMax = 4096
	consoleMaxFds  = 8
)

// ConsoleSocket is the listener passed to the runtime as --console-socket (protocol.md §7).
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

// Terminal is the container's pty master: stdin target and stdout source.
type Terminal struct {
	// Master is non-blocking on the runtime poller; the output pump and stdin use it.
	Master  *os.File
	rc      syscall.RawConn
	console console.Console // over Master; nil when the runtime's fd is not a terminal
	peer    *os.File        // our own slave, so the master never reports HUP; nil if unavailable
}

func newTerminal(fd int, log diag.Logger) (*Terminal, error) {
	// Non-blocking before os.NewFile: a File made from a non-blocking fd keeps it so even
	// when the console asks for its number (File.Fd switches only the fds NewFile itself
	// made non-blocking), and its reads and writes wait in the poller, not in a thread.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set O_NONBLOCK on the pty master: %w", err)
	}
	master := os.NewFile(uintptr(fd), "pty master")
	rc, err := master.SyscallConn()
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("pty master: %w", err)
	}
	t := &Terminal{Master: master, rc: rc}
	// Runtimes clear ONLCR; conmon sets it so container "\n" reaches logs as "\r\n". A fd
	// that is no terminal is still used, as conmon does, only without resizes.
	if c, err := console.ConsoleFromFile(master); err != nil {
		log.Warnf("Failed to get console terminal settings: %v", err)
	} else {
		t.console = c
		if err := console.SetONLCR(uintptr(fd)); err != nil {
			log.Warnf("Failed to set console terminal settings: %v", err)
		}
	}
	// O_NOCTTY is mandatory: the monitor is a session leader.
	peer, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER,
		unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		log.Debugf("Failed to open a peer pty slave, polling the master instead: %v", errno)
	} else {
		t.peer = os.NewFile(peer, "pty peer slave")
	}
	return t, nil
}

// Resize sets the terminal's window size.
func (t *Terminal) Resize(rows, cols int) error {
	err := console.ErrNotAConsole
	if t.console != nil {
		// The console ioctls the fd by number; Control keeps that number ours meanwhile
		// (a concurrent Close waits) and fails once the master is closed.
		ws := console.WinSize{Height: uint16(rows), Width: uint16(cols)}
		if cerr := t.rc.Control(func(uintptr) { err = t.console.Resize(ws) }); cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("Failed to set process pty terminal size: %w", err)
	}
	return nil
}

// Close closes the peer slave and the master. The console holds nothing else: its Close
// would close the same File.
func (t *Terminal) Close() error {
	if t.peer != nil {
		t.peer.Close()
	}
	return t.Master.Close()
}
