package ptyio

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendMaster acts as the runtime: connect, send the master (and any further fds) with
// SCM_RIGHTS, close.
func sendMaster(t *testing.T, path string, master int, more ...int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(fd, []byte("/dev/pts/x"), unix.UnixRights(append([]int{master}, more...)...), nil, 0); err != nil {
		t.Fatal(err)
	}
}

func newSocket(t *testing.T) *ConsoleSocket {
	t.Helper()
	c, err := NewConsoleSocket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func assertGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there: %v", path, err)
	}
}

// receiveTerminal runs a fake runtime against a fresh console socket.
func receiveTerminal(t *testing.T) (*Terminal, *os.File) {
	t.Helper()
	master, slave := openPty(t)
	term := receiveFd(t, newSocket(t), master)
	unix.Close(master)
	return term, slave
}

// receiveFd has c receive fd from a fake runtime.
func receiveFd(t *testing.T, c *ConsoleSocket, fd int) *Terminal {
	t.Helper()
	got := make(chan error, 1)
	var term *Terminal
	go func() {
		var err error
		term, err = c.Receive(nil)
		got <- err
	}()
	sendMaster(t, c.Path, fd)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	assertGone(t, c.Path)
	return term
}

// A runtime that sends more fds than the master keeps none of them in the monitor: those
// that fit the control buffer are closed, the kernel discards the rest.
func TestExtraFdsNotKept(t *testing.T) {
	c := newSocket(t)
	master, _ := openPty(t)
	defer unix.Close(master)
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	var extra []int
	for range 2 * consoleMaxFds {
		extra = append(extra, pipe[1])
	}
	got := make(chan error, 1)
	go func() {
		term, err := c.Receive(nil)
		if err == nil {
			term.Close()
		}
		got <- err
	}()
	sendMaster(t, c.Path, master, extra...)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	unix.Close(pipe[1])
	if n, err := unix.Read(pipe[0], make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("a passed fd is still open in the monitor: read = %d, %v", n, err)
	}
}

func TestConsoleSocketFile(t *testing.T) {
	dir := t.TempDir()
	c, err := NewConsoleSocket(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o700 {
		t.Errorf("mode %v, want a socket with 0700", st.Mode())
	}
	if want := dir + "/conmon-term."; len(c.Path) != len(want)+6 || c.Path[:len(want)] != want {
		t.Errorf("path %q, want %sXXXXXX", c.Path, want)
	}
	c.Close()
	c.Close()
	assertGone(t, c.Path)
	if _, err := c.Receive(nil); err == nil {
		t.Error("Receive after Close succeeded")
	}
}

func TestConsoleReceive(t *testing.T) {
	term, slave := receiveTerminal(t)
	withFd(t, slave, func(fd int) {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil || tio.Oflag&unix.ONLCR == 0 {
			t.Errorf("ONLCR not set: %v", err)
		}
	})
	withFd(t, term.Master, func(fd int) { checkFlags(t, fd, true) })
	if term.peer == nil {
		t.Fatal("no peer slave")
	}
	if _, err := slave.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	if got := readLen(t, term.Master, len("hi\r\n"), 5*time.Second); got != "hi\r\n" {
		t.Errorf("master read %q, want %q", got, "hi\r\n")
	}

	// With every other slave closed the held peer keeps the master from HUP/EIO.
	slave.Close()
	term.Master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := term.Master.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("master read without slave: %v, want a timeout", err)
	}
}

func TestConsoleConnectSendExitBeforeReceive(t *testing.T) {
	c := newSocket(t)
	master, slave := openPty(t)
	sendMaster(t, c.Path, master)
	unix.Close(master)
	done := make(chan struct{})
	close(done) // the runtime exited before we got to accept
	term, err := c.Receive(done)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	assertGone(t, c.Path)
	slave.Write([]byte("x\n"))
	if got := readLen(t, term.Master, len("x\r\n"), 5*time.Second); got != "x\r\n" {
		t.Errorf("got %q", got)
	}
}

func TestConsoleNoTerminal(t *testing.T) {
	c := newSocket(t)
	done := make(chan struct{})
	time.AfterFunc(20*time.Millisecond, func() { close(done) })
	start := time.Now()
	if _, err := c.Receive(done); err != ErrNoTerminal {
		t.Fatalf("got %v, want ErrNoTerminal", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Receive took %v after done", d)
	}
	assertGone(t, c.Path)
}

func TestConsoleConnectWithoutFd(t *testing.T) {
	c := newSocket(t)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: c.Path}); err != nil {
		t.Fatal(err)
	}
	unix.Write(fd, []byte("no fd"))
	unix.Close(fd)
	_, err = c.Receive(nil)
	if err == nil || err.Error() != "Failed to receive console file descriptor: message carries no file descriptor" {
		t.Errorf("got %v", err)
	}
}

func TestTerminalResize(t *testing.T) {
	term, slave := receiveTerminal(t)
	if err := term.Resize(30, 100); err != nil {
		t.Fatal(err)
	}
	withFd(t, slave, func(fd int) {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err != nil || ws.Row != 30 || ws.Col != 100 {
			t.Errorf("winsize %+v %v, want 30x100", ws, err)
		}
	})
	// The console asks for the fd's number; the master must stay on the poller.
	withFd(t, term.Master, func(fd int) { checkFlags(t, fd, true) })
	term.Close()
	if err := term.Resize(1, 1); err == nil {
		t.Error("Resize on a closed terminal succeeded")
	}
}

// The runtime's connection can arrive between our last poller wait and done: after done,
// one more attempt must be made.
func TestPollReadLastAttemptAfterDone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	done := make(chan struct{})
	calls := 0
	time.AfterFunc(20*time.Millisecond, func() { close(done) })
	ok, err := pollRead(r, done, func(int) error {
		calls++
		if calls == 1 {
			return unix.EAGAIN // not ready while waiting
		}
		return nil
	})
	if !ok || err != nil || calls != 2 {
		t.Errorf("ok %v err %v calls %d, want a successful second attempt", ok, err, calls)
	}
}

// A runtime that sends a fd which is no terminal: used anyway with a warning, as conmon
// does; resizes fail.
func TestConsoleReceiveNotATerminal(t *testing.T) {
	c := newSocket(t)
	log := &testLogger{}
	c.Log = log
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var term *Terminal
	withFd(t, r, func(fd int) { term = receiveFd(t, c, fd) })
	r.Close()
	if len(log.warns) != 1 || !strings.HasPrefix(log.warns[0], "Failed to get console terminal settings: ") {
		t.Errorf("warnings %q, want one about the terminal settings", log.warns)
	}
	if err := term.Resize(30, 100); err == nil {
		t.Error("Resize of a pipe succeeded")
	}
	w.Write([]byte("x"))
	if got := readWithin(t, term.Master, 5*time.Second); got != "x" {
		t.Errorf("got %q", got)
	}
}
