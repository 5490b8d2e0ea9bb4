// Package cgroups gives a process the cgroup placement of another: the monitor is started
// before the engine has moved the launcher into its cgroups, and moved after it once the
// start byte says the engine is done.
//
// A line of /proc/<pid>/cgroup is "<hierarchy id>:<controllers>:<path>"; the path is
// relative to the hierarchy's mount, which is found by the layout every init system and
// container runtime uses:
//
//	0::/p                  (the only line)  /sys/fs/cgroup/p            cgroup v2
//	0::/p                  (among others)   /sys/fs/cgroup/unified/p    hybrid
//	N:name=systemd:/p                       /sys/fs/cgroup/systemd/p    named v1 hierarchy
//	N:cpu,cpuacct:/p                        /sys/fs/cgroup/cpu,cpuacct/p
//
// Writing a pid to <dir>/cgroup.procs moves the whole process (every thread). A mount
// elsewhere is not looked for: the move fails, or it lands in another cgroup and the
// final comparison of both /proc files reports it, and the caller falls back.
package cgroups

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountRoot is where the hierarchies are mounted.
const mountRoot = "/sys/fs/cgroup"

// Join moves pid into each cgroup of process like that pid is not in, in every hierarchy,
// and then checks that both processes list the same cgroups.
func Join(pid, like int) error {
	theirs := "/proc/" + strconv.Itoa(pid) + "/cgroup"
	model := "/proc/" + strconv.Itoa(like) + "/cgroup"
	want, err := os.ReadFile(model)
	if err != nil {
		return err
	}
	current, err := os.ReadFile(theirs)
	if err != nil {
		return err
	}
	if string(want) == string(current) {
		return nil
	}
	placed := make(map[string]string) // "<id>:<controllers>" -> path, of pid
	for _, line := range lines(string(current)) {
		if h, path, ok := split(line); ok {
			placed[h] = path
		}
	}
	wantLines := lines(string(want))
	for _, line := range wantLines {
		h, path, ok := split(line)
		if !ok {
			return errors.New(model + ": malformed line " + strconv.Quote(line))
		}
		if p, ok := placed[h]; ok && p == path {
			continue
		}
		procs := hierarchyDir(h, len(wantLines) == 1) + path + "/cgroup.procs"
		if err := writePid(procs, pid); err != nil {
			return err
		}
	}
	after, err := os.ReadFile(theirs)
	if err != nil {
		return err
	}
	if string(want) != string(after) {
		return errors.New(theirs + " still differs from " + model + " after the move: " +
			strconv.Quote(string(after)))
	}
	return nil
}

// lines splits a /proc/<pid>/cgroup file into its lines.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// split returns the hierarchy ("<id>:<controllers>") and the path of one line.
func split(line string) (hierarchy, path string, ok bool) {
	i := strings.IndexByte(line, ':')
	if i < 0 {
		return "", "", false
	}
	j := strings.IndexByte(line[i+1:], ':')
	if j < 0 {
		return "", "", false
	}
	j += i + 1
	return line[:j], line[j+1:], strings.HasPrefix(line[j+1:], "/")
}

// hierarchyDir returns the mount directory of a hierarchy ("<id>:<controllers>");
// onlyV2 says that the unified hierarchy is the only one (no v1 hierarchies).
func hierarchyDir(hierarchy string, onlyV2 bool) string {
	controllers := hierarchy[strings.IndexByte(hierarchy, ':')+1:]
	switch {
	case controllers == "" && onlyV2:
		return mountRoot
	case controllers == "":
		return mountRoot + "/unified"
	default:
		return mountRoot + "/" + strings.TrimPrefix(controllers, "name=")
	}
}

// writePid writes pid to a cgroup.procs file in one write(2), as the kernel requires.
func writePid(path string, pid int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, strconv.AppendInt(nil, int64(pid), 10))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}
