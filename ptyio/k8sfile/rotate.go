package k8sfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// switchFile puts a new file at the path: by rotation with --log-rotate, falling back to
// truncation if rotation fails, else by truncation (docs/logging.md §5, §6, §8). On failure
// the current file stays in use; requested (ctl) reopens are retried at later records.
func (w *Writer) switchFile(requested bool) {
	var err error
	if w.cfg.Rotate {
		if err = w.rotate(); err != nil {
			w.log.Warnf("log rotation of %s failed, truncating instead: %v", w.cfg.Path, err)
			err = w.truncate()
		}
	} else {
		err = w.truncate()
	}
	if err != nil {
		w.reopenDue = w.reopenDue || requested
		w.retryAt = time.Now().Add(retryGap)
		w.log.Warnf("Failed to reopen log file %s, still writing to the old file: %v", w.cfg.Path, err)
		return
	}
	w.reopenDue = false
	w.retryAt = time.Time{}
}

// use makes fd the log file with an empty file counter.
func (w *Writer) use(fd int) {
	unix.Close(w.fd)
	w.fd = fd
	w.file = 0
	w.lineCost = [2]int64{}
	w.fileMid = [2]bool{}
	w.cut = [2]bool{}
}

// truncate replaces the path by a new empty file: <log>.tmp created anew, renamed over
// <log> (the rename is the Create event CRI-O waits for after a reopen).
func (w *Writer) truncate() error {
	dfd, err := openDir(w.dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	tmp := w.base + ".tmp"
	fd, err := createNew(dfd, tmp)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Join(w.dir, tmp), Err: err}
	}
	if err := unix.Renameat(dfd, tmp, dfd, w.base); err != nil {
		unix.Close(fd)
		unix.Unlinkat(dfd, tmp, 0)
		return &os.LinkError{Op: "rename", Old: filepath.Join(w.dir, tmp), New: w.cfg.Path, Err: err}
	}
	w.use(fd)
	return nil
}

// rotate shifts <log> to <log>.1 and older backups up to <log>.N (exactly N kept) and puts
// a new file at the path, all renames relative to a directory fd (docs/logging.md §6). If
// the path no longer names the open file (renamed by the caller), it only creates a new
// file there.
func (w *Writer) rotate() error {
	dfd, err := checkRotatable(w.cfg.Path, w.cfg.AllowlistDirs, w.log)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(uintptr(w.fd), unix.F_SETLK, &lk); err != nil {
		return errors.New("Log file locked by another process, skipping rotation")
	}
	if err := w.rotateLocked(dfd); err != nil {
		lk.Type = unix.F_UNLCK
		unix.FcntlFlock(uintptr(w.fd), unix.F_SETLK, &lk)
		return err
	}
	return nil
}

func (w *Writer) rotateLocked(dfd int) error {
	var cur, at unix.Stat_t
	if err := unix.Fstat(w.fd, &cur); err != nil {
		return &os.PathError{Op: "fstat", Path: w.cfg.Path, Err: err}
	}
	if err := unix.Fstatat(dfd, w.base, &at, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		at.Dev != cur.Dev || at.Ino != cur.Ino {
		return w.truncate() // nothing to rotate: the open file is no longer at the path
	}
	name := w.base + ".new"
	fd, err := createNew(dfd, name)
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(w.dir, name), Err: err}
	}
	fail := func(op, from, to string, err error) error {
		unix.Close(fd)
		unix.Unlinkat(dfd, name, 0)
		return &os.LinkError{Op: op, Old: filepath.Join(w.dir, from), New: filepath.Join(w.dir, to), Err: err}
	}
	for i := max(w.cfg.MaxFiles, 1); i >= 2; i-- {
		from, to := w.backup(i-1), w.backup(i)
		if err := unix.Renameat(dfd, from, dfd, to); err != nil && err != unix.ENOENT {
			return fail("rename", from, to, err)
		}
	}
	if err := unix.Renameat(dfd, w.base, dfd, w.backup(1)); err != nil {
		return fail("rename", w.base, w.backup(1), err)
	}
	if err := unix.Renameat(dfd, name, dfd, w.base); err != nil {
		unix.Renameat(dfd, w.backup(1), dfd, w.base)
		return fail("rename", name, w.base, err)
	}
	w.use(fd)
	return nil
}

func (w *Writer) backup(i int) string { return w.base + "." + strconv.Itoa(i) }

func openDir(dir string) (int, error) {
	fd, err := openRetry(func() (int, error) {
		return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// createNew creates the file name in the directory dfd, replacing what an interrupted
// reopen or rotation (or anyone) left there: O_EXCL never follows a link at the name.
func createNew(dfd int, name string) (int, error) {
	create := func() (int, error) { return unix.Openat(dfd, name, unix.O_EXCL|openFlags, 0o640) }
	fd, err := openRetry(create)
	if err == unix.EEXIST {
		unix.Unlinkat(dfd, name, 0)
		fd, err = openRetry(create)
	}
	return fd, err
}

func openRetry(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
