package ptyio

import (
	"fmt"
	"os"
	"syscall"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

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
