package k8sfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// checkRotatable is conmon 2.2.x's path safety check before a rotation (docs/logging.md §6). It
// returns an O_PATH fd of the parent directory for the renames. The directory checks apply
// only when the log file does not exist, as in 2.2.x.
func checkRotatable(path string, allow []string, log diag.Logger) (int, error) {
	if strings.Contains(path, "../") || strings.Contains(path, "/..") {
		return -1, errors.New("log path " + path + " contains '..'")
	}
	dir := filepath.Dir(path)
	dfd, err := openDir(dir)
	if err != nil {
		return -1, err
	}
	if err := checkDir(dfd, dir, filepath.Base(path), allow, log); err != nil {
		unix.Close(dfd)
		return -1, err
	}
	return dfd, nil
}

func checkDir(dfd int, dir, base string, allow []string, log diag.Logger) error {
	var st unix.Stat_t
	err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return errors.New("log path " + filepath.Join(dir, base) + " is a symbolic link")
		}
		return nil
	}
	if err != unix.ENOENT {
		return &os.PathError{Op: "stat", Path: filepath.Join(dir, base), Err: err}
	}
	if err := unix.Fstat(dfd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Mode&0o002 != 0 {
		return errors.New("log directory " + dir + " is world-writable")
	}
	if st.Uid != 0 && int(st.Uid) != os.Getuid() && int(st.Uid) != os.Geteuid() {
		return errors.New("log directory " + dir + " is owned by another user")
	}
	canon, err := filepath.EvalSymlinks(dir)
	if err == nil {
		canon, err = filepath.Abs(canon)
	}
	if err != nil {
		return err
	}
	if len(allow) > 0 && !allowed(canon, allow, log) {
		return errors.New("log directory " + canon + " is not in --log-allowlist-dir")
	}
	for p := canon; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return errors.New("log directory component " + p + " is a symbolic link")
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// allowed reports whether dir is one of the allowlisted directories or below one (prefix
// match at a '/' boundary, both sides canonical).
func allowed(dir string, allow []string, log diag.Logger) bool {
	for _, a := range allow {
		c, err := filepath.EvalSymlinks(a)
		if err == nil {
			c, err = filepath.Abs(c)
		}
		if err != nil {
			log.Warnf("Invalid allowlist directory %s: %v", a, err)
			continue
		}
		if dir == c || strings.HasPrefix(dir, strings.TrimSuffix(c, "/")+"/") {
			return true
		}
	}
	return false
}
