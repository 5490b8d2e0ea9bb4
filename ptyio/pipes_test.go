package ptyio

import (
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPipesWithStdinAndStdout(t *testing.T) {
	p, err := NewPipes(true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.CloseChildEnds()
		p.Stdin.Close()
		p.Stdout.Close()
		p.Stderr.Close()
	}()
	for i, c := range p.Child {
		var st unix.Stat_t
		if err := unix.Fstat(int(c.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o777 {
			t.Errorf("child fd %d: mode %o, want a fifo with 0777", i, st.Mode)
		}
		checkFlags(t, int(c.Fd()), false)
	}
	for _, m := range []*os.File{p.Stdin, p.Stdout, p.Stderr} {
		withFd(t, m, func(fd int) { checkFlags(t, fd, true) })
	}
	if os.Geteuid() == 0 {
		withFd(t, p.Stdout, func(fd int) {
			if sz, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0); err != nil || sz < outputPipeSize {
				t.Errorf("stdout pipe size %d (%v), want %d", sz, err, outputPipeSize)
			}
		})
	}

	// child -> monitor on fds 1 and 2, monitor -> child on fd 0
	for _, c := range []struct {
		w, r *os.File
	}{{p.Child[1], p.Stdout}, {p.Child[2], p.Stderr}, {p.Stdin, p.Child[0]}} {
		if _, err := c.w.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		c.r.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c.r, buf); err != nil || string(buf) != "ping" {
			t.Errorf("%s -> %s: %q %v", c.w.Name(), c.r.Name(), buf, err)
		}
	}

	p.CloseChildEnds()
	if p.Child != [3]*os.File{} {
		t.Error("CloseChildEnds left files behind")
	}
	// The only writer of stdout is gone: the monitor sees EOF.
	p.Stdout.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := p.Stdout.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("stdout after CloseChildEnds: %d %v, want EOF", n, err)
	}
}

func TestPipesDevNull(t *testing.T) {
	p, err := NewPipes(false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stderr.Close()
	defer p.CloseChildEnds()
	if p.Stdin != nil || p.Stdout != nil || p.Stderr == nil {
		t.Fatalf("monitor ends: %v %v %v", p.Stdin, p.Stdout, p.Stderr)
	}
	for i := range 2 {
		var st unix.Stat_t
		if err := unix.Fstat(int(p.Child[i].Fd()), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
			t.Errorf("child fd %d is not /dev/null: mode %o rdev %d", i, st.Mode, st.Rdev)
		}
		checkFlags(t, int(p.Child[i].Fd()), false)
	}
}

func checkFlags(t *testing.T, fd int, nonblock bool) {
	t.Helper()
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d: no FD_CLOEXEC", fd)
	}
	fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if got := fl&unix.O_NONBLOCK != 0; got != nonblock {
		t.Errorf("fd %d: O_NONBLOCK %v, want %v", fd, got, nonblock)
	}
}
