// Package journaldtest makes a real systemd-journald available to tests.
//
// Ensure uses a running journald when its socket accepts a connection.
// Otherwise, as root, it starts /usr/lib/systemd/systemd-journald itself
// (creating /run/systemd/journal) in its own session and waits for its
// sd_notify READY=1. Test binaries of several packages may run at once, so:
//   - every caller holds a shared flock on LockPath until its stop runs, and
//     the check-and-start step runs under the exclusive lock;
//   - a journald started here records its pid in PidPath;
//   - stop terminates that journald (SIGTERM, then waits for it to exit) only
//     when it can take the lock exclusively, i.e. from the last user; the
//     starter may have exited by then, the pid file still names the process.
//
// A journald that Ensure did not start is never stopped. To exercise the
// start path on a host where journald already runs, run the test binary in a
// private mount namespace with its own /run, e.g.
//
//	unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /run && ./journald.test'
package journaldtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// Ensure makes journald accept entries on Socket, or skips the test. Call the
// returned stop when done, e.g. t.Cleanup(stop).
func Ensure(t testing.TB) (stop func()) {
	t.Helper()
	lock, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if reachable() {
			return func() {} // e.g. unprivileged, with the system's journald
		}
		t.Skip("needs root or a running journald: " + Socket + " not reachable")
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("journaldtest: lock %s: %v", LockPath, err)
	}
	if !reachable() {
		if _, err := os.Stat(binary); err != nil {
			lock.Close()
			t.Skip("needs a running journald or " + binary)
		}
		if err := start(t); err != nil {
			lock.Close()
			t.Fatalf("journaldtest: start journald: %v", err)
		}
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		lock.Close()
		t.Fatalf("journaldtest: lock %s: %v", LockPath, err)
	}
	return func() {
		defer lock.Close()
		if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return // another test binary still uses journald
		}
		if err := terminate(); err != nil {
			t.Errorf("journaldtest: stop journald: %v", err)
		}
	}
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
func start(t testing.TB) error {
	if err := os.MkdirAll(filepath.Dir(Socket), 0o755); err != nil {
		return err
	}
	notifyPath := filepath.Join(t.TempDir(), "notify")
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
		if len(entries) >= want || time.Now().After(deadline) {
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
