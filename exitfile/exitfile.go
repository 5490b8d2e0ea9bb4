// Package exitfile writes the small files engines read to learn about a container:
// exit files, the conmon pid file, OOM markers, and the trust records of conmon-go-runtime.
//
// Engines watch the exit directory with inotify and read a file as soon as it appears
// (CRI-O reacts to the IN_MOVED_TO of the final name), so every file is written under a
// temporary name in the same directory, synced, and renamed into place: a reader never sees
// an empty or partial file.
package exitfile

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Write atomically replaces path with data: <path>.XXXXXX is created with O_EXCL and mode
// 0666 (the umask applies, as for conmon's files), written, fsynced and renamed over path.
// The temporary file never outlives a failure.
func Write(path string, data []byte) error { return write(path, data, true, umaskMode) }

// WriteMode is Write with the file's permission bits set to perm whatever the umask: for
// files whose readers trust their content (the dispatcher's trust records).
func WriteMode(path string, data []byte, perm uint32) error {
	return write(path, data, true, int(perm))
}

// umaskMode leaves the permission bits to the umask (0666 &^ umask).
const umaskMode = -1

// WritePid writes the conmon pid file: atomically like Write, but without the fsync. It
// sits on the create path (the monitor starts once it exists), and a pid is meaningless
// after a crash of the machine anyway.
func WritePid(path string, pid int) error {
	var buf [24]byte
	return write(path, strconv.AppendInt(buf[:0], int64(pid), 10), false, umaskMode)
}

func write(path string, data []byte, sync bool, perm int) error {
	create := uint32(0o666)
	if perm != umaskMode {
		create = uint32(perm) // the umask can only take bits away until the fchmod
	}
	tmp, fd, err := createTemp(path, create)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if perm != umaskMode {
		err = unix.Fchmod(fd, uint32(perm))
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, data)
		switch {
		case err == unix.EINTR:
			err = nil
		case err != nil:
		case n == 0:
			err = unix.EIO
		default:
			data = data[n:]
		}
	}
	if err == nil && sync {
		err = unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Rename(tmp, path)
	}
	if err != nil {
		unix.Unlink(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// createTemp opens a new <path>.XXXXXX exclusively; the suffix comes from the clock and
// a counter, and a collision simply moves on to the next name.
func createTemp(path string, mode uint32) (string, int, error) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	seed := uint64(ts.Nano()) ^ uint64(unix.Getpid())<<32
	for i := uint64(0); i < 100; i++ {
		tmp := path + "." + suffix(seed+i*0x9e3779b97f4a7c15)
		fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode)
		if err == unix.EEXIST {
			continue
		}
		return tmp, fd, err
	}
	return "", -1, unix.EEXIST
}

func suffix(v uint64) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [6]byte
	for i := range b {
		b[i] = chars[v%uint64(len(chars))]
		v /= uint64(len(chars))
	}
	return string(b[:])
}

// WriteInt writes n in decimal, without a newline: podman parses it with strconv.Atoi and
// CRI-O with strconv.ParseInt, neither of which accepts whitespace.
func WriteInt(path string, n int) error {
	var buf [24]byte
	return Write(path, strconv.AppendInt(buf[:0], int64(n), 10))
}

// Touch creates path as an empty regular file (mode 0666, umask applied) if nothing exists
// there, as conmon does for the oom files. An existing entry of any kind is left as it is:
// mknod, unlike open, never follows a symbolic link planted there and never blocks on a
// FIFO, and engines only test whether the name exists.
func Touch(path string) error {
	err := unix.Mknod(path, unix.S_IFREG|0o666, 0)
	if err != nil && err != unix.EEXIST {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
