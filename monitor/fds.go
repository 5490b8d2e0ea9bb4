package monitor

import (
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// inheritedFDs lists every fd ≥ 3 open without FD_CLOEXEC, except those in skip: the fds
// the engine passed on purpose (preserved fds, podman's port reservations, rootless sync
// pipes). Everything the Go runtime opens is close-on-exec, so these are exactly the
// engine's (docs/lifecycle.md §8).
func inheritedFDs(skip ...int) []int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 || slices.Contains(skip, fd) {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		fds = append(fds, fd)
	}
	return fds
}

// markAllCloexec makes every fd ≥ 3 close-on-exec, so the exit command starts with fds
// 0-2 only (Go cannot close descriptors between fork and exec).
func markAllCloexec() {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= 3 {
			unix.CloseOnExec(fd)
		}
	}
}

// parseFDEnv reads an _OCI_* variable: the whole value must be a decimal number.
func parseFDEnv(name string) (fd int, present bool, err error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return -1, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || v[0] == '+' {
		return -1, true, errUnparsable
	}
	return n, true, nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errUnparsable = constError("unparsable fd number")

// redirectStdio points fds 0-2 at /dev/null (docs/lifecycle.md §2 M6).
func redirectStdio() {
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	for fd := 0; fd <= 2; fd++ {
		unix.Dup2(null, fd)
	}
	unix.Close(null)
}

// readable reports whether a read of fd would not block, without changing the flags of
// the engine's fd.
func readable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err != unix.EINTR {
			return err == nil && n > 0
		}
	}
}
