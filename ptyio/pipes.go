package ptyio

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// outputPipeSize is requested for the stdout/stderr pipes so that one read moves more data
// and a burst from the container blocks it later. Failure (e.g. above an unprivileged
// pipe-max-size) only keeps the default.
const outputPipeSize = 1 << 20

// Pipes holds the container's stdio (docs/lifecycle.md §6.1).
type Pipes struct {
	Child  [3]*os.File // what the runtime gets as fds 0, 1, 2 (blocking ends or /dev/null)
	Stdin  *os.File    // monitor's non-blocking write end, nil without stdin
	Stdout *os.File    // monitor's non-blocking read end, nil without stdout
	Stderr *os.File    // monitor's non-blocking read end
}

// NewPipes creates the container's stdio pipes (O_CLOEXEC; child ends fchmod 0777, EINVAL
// ignored). withStdin: fd 0 is a pipe (else /dev/null); withStdout false (terminal case):
// fd 1 is /dev/null. fd 2 is always a pipe (it also carries the runtime's own errors).
func NewPipes(withStdin, withStdout bool) (_ *Pipes, err error) {
	p := &Pipes{}
	defer func() {
		if err != nil {
			p.CloseChildEnds()
			for _, f := range []*os.File{p.Stdin, p.Stdout, p.Stderr} {
				if f != nil {
					f.Close()
				}
			}
		}
	}()
	if withStdin {
		p.Child[0], p.Stdin, err = newPipe("stdin", true)
	} else {
		p.Child[0], err = openDevNull()
	}
	if err != nil {
		return nil, err
	}
	if withStdout {
		p.Child[1], p.Stdout, err = newPipe("stdout", false)
	} else {
		p.Child[1], err = openDevNull()
	}
	if err != nil {
		return nil, err
	}
	if p.Child[2], p.Stderr, err = newPipe("stderr", false); err != nil {
		return nil, err
	}
	return p, nil
}

// CloseChildEnds closes the runtime's copies; call it after the runtime has started so that
// the monitor sees EOF once every container process has closed its end.
func (p *Pipes) CloseChildEnds() {
	for i, f := range p.Child {
		if f != nil {
			f.Close()
			p.Child[i] = nil
		}
	}
}

// newPipe returns the child's blocking end and the monitor's non-blocking end (on the Go
// poller). childReads selects the direction: true for stdin.
func newPipe(name string, childReads bool) (child, mon *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("create %s pipe: %w", name, err)
	}
	c, m := fds[1], fds[0]
	if childReads {
		c, m = fds[0], fds[1]
	}
	fail := func(op string, err error) (*os.File, *os.File, error) {
		unix.Close(c)
		unix.Close(m)
		return nil, nil, fmt.Errorf("%s %s pipe: %w", op, name, err)
	}
	if err := unix.SetNonblock(m, true); err != nil {
		return fail("set O_NONBLOCK on", err)
	}
	// Both ends share one inode: 0777 lets a non-root container user reopen /dev/stdout.
	if err := unix.Fchmod(c, 0o777); err != nil && err != unix.EINVAL {
		return fail("fchmod", err)
	}
	if !childReads {
		unix.FcntlInt(uintptr(m), unix.F_SETPIPE_SZ, outputPipeSize)
	}
	return os.NewFile(uintptr(c), name+" pipe (container end)"), os.NewFile(uintptr(m), name+" pipe"), nil
}

func openDevNull() (*os.File, error) {
	fd, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	return os.NewFile(uintptr(fd), os.DevNull), nil
}
