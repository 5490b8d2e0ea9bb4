// Package e2eutil holds what the integration suites under hack/e2e share: the monitor
// binary under test, busybox bundles, a podman configuration that fits this machine, and
// a wait for a process that is not the caller's child.
package e2eutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RuncPath is Debian's runc.
const RuncPath = "/usr/sbin/runc"

// MonitorBinary returns the absolute path of the monitor under test: $CONMON_BINARY, or
// the module at root built into dir by its Makefile (whose link flags give the binary its
// entry point, docs/lifecycle.md §3.3).
func MonitorBinary(root, dir string) (string, error) {
	if bin := os.Getenv("CONMON_BINARY"); bin != "" {
		return filepath.Abs(bin)
	}
	bin := filepath.Join(dir, "conmon-go")
	cmd := exec.Command("make", "-s", "BIN="+bin, "build")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make build (set CONMON_BINARY to test another monitor): %v\n%s", err, out)
	}
	return bin, nil
}

// MakeBundle runs hack/mkbundle.sh (at script) with args ([-t] DIR [COMMAND...]). A
// non-empty rootfs is shared by the bundle instead of a rootfs of its own.
func MakeBundle(script, rootfs string, args ...string) error {
	cmd := exec.Command("sh", append([]string{script}, args...)...)
	if rootfs != "" {
		cmd.Env = append(os.Environ(), "ROOTFS="+rootfs)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkbundle.sh %v: %v\n%s", args, err, out)
	}
	return nil
}

// WaitPidGone waits on a pidfd, which also works for processes that are not our
// children, until pid has exited; false when timeout passed first.
func WaitPidGone(pid int, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return false
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err != unix.EINTR {
			return err == nil && n > 0
		}
	}
}

// ContainersConf isolates podman from the machine's configuration: runc, cgroupfs (PID 1
// is not systemd), file events, no network, and ulimits under this machine's hard
// RLIMIT_NOFILE of 20000. conmon_path makes the exit command (`podman container cleanup`,
// which gets no --conmon) use the same monitor. engineExtra is appended to [engine].
func ContainersConf(monitor, engineExtra string) string {
	return `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
conmon_path = [` + strconv.Quote(monitor) + `]
` + engineExtra + `
[engine.runtimes]
runc = [` + strconv.Quote(RuncPath) + `]
`
}

// ModuleRoot is the directory of go.mod above the working directory (a test's package).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

// WaitFile waits until path exists and its content satisfies ready (nil: any content,
// even empty), and returns the content; the test fails after timeout (AwaitFile).
func WaitFile(t testing.TB, path string, timeout time.Duration, ready func([]byte) bool) []byte {
	t.Helper()
	data, err := AwaitFile(path, timeout, ready)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// AwaitFile is WaitFile returning an error. Events in path's directory wake it (inotify),
// so it neither polls nor sleeps; monitors create their files by rename or by writing in
// place, and both are seen.
func AwaitFile(path string, timeout time.Duration, ready func([]byte) bool) ([]byte, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	dir := filepath.Dir(path)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_MODIFY); err != nil {
		return nil, fmt.Errorf("inotify_add_watch %s: %w", dir, err)
	}
	if err := f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	for {
		if data, err := os.ReadFile(path); err == nil && (ready == nil || ready(data)) {
			return data, nil
		}
		if _, err := f.Read(buf); err != nil {
			data, _ := os.ReadFile(path)
			return data, fmt.Errorf("waiting for %s: %v (gave up after %v; content %q)", path, err, timeout, Trunc(data))
		}
	}
}

// NonEmpty accepts a file with content: exit files are renamed into place complete.
func NonEmpty(data []byte) bool { return len(data) > 0 }

// EditConfig rewrites the bundle's config.json through edit.
func EditConfig(bundle string, edit func(cfg map[string]any)) error {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	edit(cfg)
	if data, err = json.MarshalIndent(cfg, "", "\t"); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
