package person

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/cli"
)

// exitWatch waits for the exit file of a container. The monitor writes it right after it
// closed its attach clients, and an engine's exit command may delete it soon after
// (podman's cleanup does), so the watch is set up while attached and the file is read as
// soon as it appears.
type exitWatch struct {
	paths []string // candidate exit files, best first
	ino   int      // inotify on their directories; -1 when unavailable
	pidfd int      // the monitor; -1 when unknown
}

// errNoExitFile means the monitor ended without writing any of the exit files.
var errNoExitFile = errors.New("the monitor ended without writing an exit file")

func newExitWatch(paths []string, monitorPid int) *exitWatch {
	w := &exitWatch{paths: paths, ino: -1, pidfd: -1}
	if monitorPid > 0 {
		if fd, err := unix.PidfdOpen(monitorPid, 0); err == nil {
			w.pidfd = fd
		}
	}
	if fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err == nil {
		w.ino = fd
		for _, p := range paths {
			unix.InotifyAddWatch(fd, filepath.Dir(p), unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE)
		}
	}
	return w
}

// exitFilesOf returns where the monitor with pid writes the container's exit status.
func exitFilesOf(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(data) == 0 {
		return nil
	}
	return exitFiles(strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00"))
}

// exitFiles reads a monitor's command line (conmon's options) for where it writes the
// container's exit status: <exit-dir>/<cid>, then <persist-dir>/exit.
func exitFiles(argv []string) []string {
	if len(argv) < 2 {
		return nil
	}
	opts, err := cli.Parse(argv[1:])
	if err != nil {
		return nil
	}
	var paths []string
	if opts.ExitDir != "" && opts.CID != "" {
		paths = append(paths, filepath.Join(opts.ExitDir, opts.CID))
	}
	if opts.PersistDir != "" {
		paths = append(paths, filepath.Join(opts.PersistDir, "exit"))
	}
	return paths
}

// wait returns the container's exit status once one of the files holds it. It gives up
// after timeout, or when the monitor has ended and no file appeared.
func (w *exitWatch) wait(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	gone := false
	for {
		if status, ok := w.read(); ok {
			return status, nil
		}
		if len(w.paths) == 0 || gone {
			return 0, errNoExitFile
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, errors.New("no exit file after " + timeout.String())
		}
		fds := make([]unix.PollFd, 0, 2)
		if w.ino >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(w.ino), Events: unix.POLLIN})
		}
		if w.pidfd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(w.pidfd), Events: unix.POLLIN})
		}
		// Without inotify the files are looked at every 100 ms.
		ms := int(min(left, 100*time.Millisecond).Milliseconds())
		if w.ino >= 0 {
			ms = int(left.Milliseconds()) + 1
		}
		if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
			return 0, os.NewSyscallError("poll", err)
		}
		for _, fd := range fds {
			switch {
			case fd.Revents == 0:
			case int(fd.Fd) == w.ino:
				w.drain()
			default:
				gone = true // one more look at the files, then give up
			}
		}
	}
}

// read returns the status in the first candidate file that holds one.
func (w *exitWatch) read() (int, bool) {
	for _, p := range w.paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return n, true
		}
	}
	return 0, false
}

func (w *exitWatch) drain() {
	var buf [4096]byte
	for {
		if n, err := unix.Read(w.ino, buf[:]); n <= 0 || err != nil {
			return
		}
	}
}

// waitMonitor waits up to timeout for the monitor to end.
func (w *exitWatch) waitMonitor(timeout time.Duration) bool {
	if w.pidfd < 0 {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}}
	n, _ := unix.Poll(fds, int(timeout.Milliseconds()))
	return n > 0
}

func (w *exitWatch) close() {
	if w.ino >= 0 {
		unix.Close(w.ino)
	}
	if w.pidfd >= 0 {
		unix.Close(w.pidfd)
	}
}
