// Package journaldtest makes a real systemd-journald available to tests.
//
// Ensure (Acquire outside tests) uses a running journald when its socket accepts a
// connection. Otherwise, as root, it starts /usr/lib/systemd/systemd-journald itself
// (creating /run/systemd/journal) in its own session and waits for its
// sd_notify READY=1. Test binaries of several packages may run at once, so:
//   - every caller holds a shared flock on LockPath until its stop runs, and
//     the check-and-start step runs under the exclusive lock;
//   - a journald started here records its pid in PidPath;
//   - stop terminates that journald (SIGTERM, then waits for it to exit) only
//     when it can take the lock exclusively, i.e. from the last user; the
//     starter may have exited by then, the pid file still names the process.
//
// A journald that Ensure did not start is never stopped (Pause only suspends it briefly).
// To exercise the start path on a host where journald already runs, run the test binary
// in a private mount namespace with its own /run, e.g.
//
//	unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /run && ./journald.test'
package journaldtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// Socket is journald's native protocol socket.
	Socket = "/run/systemd/journal/socket"
	// LockPath and PidPath coordinate concurrent test binaries.
	LockPath = "/run/conmon-go-journald-test.lock"
	PidPath  = "/run/conmon-go-journald-test.pid"

	binary = "/usr/lib/systemd/systemd-journald"
	// comm of systemd-journald (truncated to 15 bytes by the kernel).
	comm = "systemd-journal"
)

// ErrUnavailable is why Acquire fails where journald can neither be reached nor started;
// tests skip then.
var ErrUnavailable = errors.New("journald unavailable")

// Ensure makes journald accept entries on Socket, or skips the test. Call the
// returned stop when done, e.g. t.Cleanup(stop).
func Ensure(t testing.TB) (stop func()) {
	t.Helper()
	release, err := Acquire()
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatalf("journaldtest: %v", err)
	}
	return func() {
		if err := release(); err != nil {
			t.Errorf("journaldtest: stop journald: %v", err)
		}
	}
}

// Acquire is Ensure for programs that are not tests (the bench): it makes journald accept
// entries on Socket and returns release, to be called when done.
func Acquire() (release func() error, err error) {
	lock, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if reachable() {
			return func() error { return nil }, nil // e.g. unprivileged, with the system's journald
		}
		return nil, fmt.Errorf("%w: needs root or a running journald: %s not reachable", ErrUnavailable, Socket)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock %s: %w", LockPath, err)
	}
	if !reachable() {
		if _, err := os.Stat(binary); err != nil {
			lock.Close()
			return nil, fmt.Errorf("%w: needs a running journald or %s", ErrUnavailable, binary)
		}
		if err := start(); err != nil {
			lock.Close()
			return nil, fmt.Errorf("start journald: %w", err)
		}
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock %s: %w", LockPath, err)
	}
	return func() error {
		defer lock.Close()
		if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return nil // another test binary still uses journald
		}
		return terminate()
	}, nil
}

func reachable() bool {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: Socket}) == nil
}

// start runs journald in its own session and waits for READY=1 on a
// private notify socket.
func start() error {
	if err := os.MkdirAll(filepath.Dir(Socket), 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "journald-notify.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	notifyPath := filepath.Join(dir, "notify")
	nfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := unix.Bind(nfd, &unix.SockaddrUnix{Name: notifyPath}); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(int64(10 * time.Second))
	if err := unix.SetsockoptTimeval(nfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}

	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	// Reap it whoever stops it, so it never lingers as a zombie of ours.
	go cmd.Wait()
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(nfd, buf, 0)
		if err != nil {
			cmd.Process.Kill()
			return err
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if l == "READY=1" {
				return os.WriteFile(PidPath, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
			}
		}
	}
}

// terminate stops the journald named by PidPath, if it is still that process.
func terminate() error {
	data, err := os.ReadFile(PidPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer os.Remove(PidPath)
	pid, err := strconv.Atoi(string(data))
	if err != nil {
		return nil
	}
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil // already gone
	}
	defer unix.Close(pfd)
	if c, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(c)) != comm {
		return nil // pid reused by another process
	}
	if err := unix.PidfdSendSignal(pfd, unix.SIGTERM, nil, 0); err != nil {
		return err
	}
	// A pidfd becomes readable when the process exits.
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return os.ErrDeadlineExceeded
		}
		return nil
	}
}

// Entries returns the journal entries of one container (CONTAINER_ID_FULL=cid), oldest
// first, with every value as a string. It polls journalctl, bounded, until want entries
// are there: journald offers no event for "entry written". Skips without journalctl.
func Entries(t testing.TB, cid string, want int) []map[string]string {
	t.Helper()
	return EntriesUntil(t, cid, func(e []map[string]string) bool { return len(e) >= want })
}

// EntriesUntil is Entries polling until done accepts the entries, for at most 10 s; it
// then returns what it read last.
func EntriesUntil(t testing.TB, cid string, done func([]map[string]string) bool) []map[string]string {
	t.Helper()
	jc, err := exec.LookPath("journalctl")
	if err != nil {
		t.Skip("needs journalctl")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(jc, "--no-pager", "-a", "-o", "json", "CONTAINER_ID_FULL="+cid).Output()
		if err != nil {
			t.Fatalf("journalctl: %v", err)
		}
		var entries []map[string]string
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var raw map[string]json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("journalctl output: %v", err)
			}
			e := make(map[string]string, len(raw))
			for k, v := range raw {
				e[k] = jsonValue(v)
			}
			entries = append(entries, e)
		}
		if done(entries) || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jsonValue decodes a journalctl -o json value: a string, or an array of bytes for values
// journalctl does not consider printable (a MESSAGE ending in \n).
func jsonValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var ints []int
	if json.Unmarshal(raw, &ints) != nil {
		return ""
	}
	b := make([]byte, len(ints))
	for i, v := range ints {
		b[i] = byte(v)
	}
	return string(b)
}

// Pause suspends (SIGSTOP) the journald serving Socket, so that its socket queue fills and
// senders wait, and returns resume, which continues it (SIGCONT). t.Cleanup resumes it on
// every path; a detached watchdog process resumes it after limit even if the test binary
// dies first. Other tests share this journald: keep limit to a few seconds.
func Pause(t testing.TB, limit time.Duration) (resume func()) {
	t.Helper()
	pid, err := servingPid()
	if err != nil {
		t.Fatalf("journaldtest: find journald: %v", err)
	}
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("journaldtest: pidfd of journald %d: %v", pid, err)
	}
	watchdog := exec.Command("sh", "-c", fmt.Sprintf("sleep %.3f; kill -CONT %d", limit.Seconds(), pid))
	watchdog.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := watchdog.Start(); err != nil {
		unix.Close(pfd)
		t.Fatalf("journaldtest: start the resume watchdog: %v", err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := unix.PidfdSendSignal(pfd, unix.SIGCONT, nil, 0); err != nil && err != unix.ESRCH {
				t.Errorf("journaldtest: resume journald %d: %v", pid, err)
			}
			unix.Close(pfd)
			watchdog.Process.Kill()
			watchdog.Wait()
		})
	}
	t.Cleanup(resume)
	if err := unix.PidfdSendSignal(pfd, unix.SIGSTOP, nil, 0); err != nil {
		t.Fatalf("journaldtest: stop journald %d: %v", pid, err)
	}
	return resume
}

// servingPid finds the systemd-journald process that holds Socket's listening socket:
// the inode bound to Socket in /proc/net/unix, among the fds of processes named comm
// (systemd itself holds the socket too when it activated journald).
func servingPid() (int, error) {
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return 0, err
	}
	inode := ""
	for _, l := range strings.Split(string(data), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path
		if f := strings.Fields(l); len(f) == 8 && f[7] == Socket {
			inode = f[6]
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("%s is bound by no socket", Socket)
	}
	target := "socket:[" + inode + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if c, _ := os.ReadFile("/proc/" + p.Name() + "/comm"); strings.TrimSpace(string(c)) != comm {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); l == target {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no %s process holds %s (%s)", comm, Socket, target)
}
