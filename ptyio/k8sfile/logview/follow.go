package logview

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// A follower waits for the log to change and for its writers, the container's monitor, to
// exit. Changes are inotify events: on the directory, a file appearing at the path or leaving
// it (reopen, rotation, truncation by rename); on the file being read, a write or truncation.
type follower struct {
	path   string
	in     int // inotify
	fileWd int // watch of the file being read; -1 if none
	pidfds []int
	found  bool // writers were found
	blind  bool // some processes could not be inspected: if no writer was found, follow until interrupted
}

const (
	dirEvents  = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_ONLYDIR
	fileEvents = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_MOVE_SELF | unix.IN_DELETE_SELF
)

func newFollower(path string, f *os.File) (*follower, error) {
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	fl := &follower{path: path, in: in, fileWd: -1}
	dir := filepath.Dir(path)
	if _, err := unix.InotifyAddWatch(in, dir, dirEvents); err != nil {
		unix.Close(in)
		return nil, &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	if err := fl.follow(f); err != nil {
		fl.close()
		return nil, err
	}
	return fl, nil
}

// follow moves the file watch to f, the file now read, and looks for its writers if those
// of the previous file are gone (a monitor may have been between closing one file and
// opening the next when they were looked for).
func (fl *follower) follow(f *os.File) error {
	if fl.fileWd >= 0 {
		unix.InotifyRmWatch(fl.in, uint32(fl.fileWd)) // fails if the file is gone: nothing to remove
	}
	// The file itself, not the path, which may name another file by now.
	wd, err := unix.InotifyAddWatch(fl.in, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), fileEvents)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: f.Name(), Err: err}
	}
	fl.fileWd = wd
	if len(fl.pidfds) == 0 {
		return fl.findWriters(f)
	}
	return nil
}

// findWriters opens a pidfd for every process that has f open for writing.
func (fl *follower) findWriters(f *os.File) error {
	var want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &want); err != nil {
		return &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	self := os.Getpid()
	fl.blind = false
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fdDir := "/proc/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			fl.blind = fl.blind || errors.Is(err, fs.ErrPermission)
			continue
		}
		for _, fd := range fds {
			var st unix.Stat_t
			if unix.Stat(fdDir+fd.Name(), &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino ||
				!openForWriting(pid, fd.Name()) {
				continue
			}
			if pfd, err := unix.PidfdOpen(pid, 0); err == nil {
				fl.pidfds = append(fl.pidfds, pfd)
				fl.found = true
			}
			break
		}
	}
	return nil
}

// openForWriting reads the access mode of fd of pid from /proc/<pid>/fdinfo/<fd>, whose
// second line is "flags:\t<octal open flags>".
func openForWriting(pid int, fd string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + fd)
	if err != nil {
		return false
	}
	_, after, ok := bytes.Cut(data, []byte("flags:\t"))
	if !ok {
		return false
	}
	flags, _, _ := bytes.Cut(after, []byte("\n"))
	n, err := strconv.ParseUint(string(flags), 8, 32)
	return err == nil && n&unix.O_ACCMODE != unix.O_RDONLY
}

// gone reports that no writer is left: those found have exited, or none was found and
// every process could be inspected.
func (fl *follower) gone() bool { return len(fl.pidfds) == 0 && (fl.found || !fl.blind) }

// wait blocks until the log may have changed or a writer exited; it reports whether all
// writers are gone.
func (fl *follower) wait() (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fl.in), Events: unix.POLLIN}}
	for _, pfd := range fl.pidfds {
		fds = append(fds, unix.PollFd{Fd: int32(pfd), Events: unix.POLLIN})
	}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return false, os.NewSyscallError("poll", err)
		}
	}
	if fds[0].Revents != 0 {
		// The events only say "look again"; reading them empties the queue.
		var buf [4096]byte
		for {
			if _, err := unix.Read(fl.in, buf[:]); err != nil {
				break
			}
		}
	}
	alive := fl.pidfds[:0]
	for i, pfd := range fl.pidfds {
		if fds[i+1].Revents != 0 {
			unix.Close(pfd)
		} else {
			alive = append(alive, pfd)
		}
	}
	fl.pidfds = alive
	return fl.gone(), nil
}

func (fl *follower) close() {
	for _, pfd := range fl.pidfds {
		unix.Close(pfd)
	}
	unix.Close(fl.in)
}
