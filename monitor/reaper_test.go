package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStatusCode(t *testing.T) {
	for _, tc := range []struct {
		ws   unix.WaitStatus
		want int
	}{
		{unix.WaitStatus(3 << 8), 3},
		{unix.WaitStatus(uint32(unix.SIGKILL)), 137},
		{unix.WaitStatus(uint32(unix.SIGTERM)), 143},
	} {
		if got := statusCode(tc.ws); got != tc.want {
			t.Errorf("statusCode(%#x) = %d, want %d", uint32(tc.ws), got, tc.want)
		}
	}
}

// A status reaped before anybody waits for the pid (an exec that exits before its pid file
// is read) is found later; the cache never exceeds its bound.
func TestReaperCachesEarlyExits(t *testing.T) {
	r := newReaper()
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 5"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.reap()
		r.mu.Lock()
		_, cached := r.cache[pid]
		r.mu.Unlock()
		if cached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never reaped")
		}
		time.Sleep(5 * time.Millisecond) // polling a child that has not exited yet
	}
	if got := statusCode(<-r.wait(pid)); got != 5 {
		t.Fatalf("status %d, want 5", got)
	}
	for i := 0; i < maxCachedStatuses+10; i++ {
		r.deliver(1_000_000+i, 0)
	}
	if len(r.cache) > maxCachedStatuses {
		t.Fatalf("cache holds %d statuses", len(r.cache))
	}
}

func TestReadPidFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]int{"123": 123, " 42\n": 42, "": 0, "0": 0, "abc": 0, "-5": 0, "+7": 0} {
		path := filepath.Join(dir, "pid")
		os.WriteFile(path, []byte(content), 0o644)
		got, err := readPidFile(path)
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("readPidFile(%q) = %d, %v; want %d", content, got, err, want)
		}
	}
	if _, err := readPidFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing pid file accepted")
	}
}

// What a failed runtime may leave at the pid file's path is refused at once: a FIFO (no
// writer: reading would block), a link to an endless device, a file far longer than a pid.
func TestReadPidFileHostile(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "long"), []byte(strings.Repeat("0", 200)+"42"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("pid", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte("42"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"fifo": "not a regular file", "zero": "not a regular file", "long": "invalid content: longer than a pid"} {
		done := make(chan error, 1)
		go func() { _, err := readPidFile(filepath.Join(dir, name)); done <- err }()
		select {
		case err := <-done:
			if err == nil || err.Error() != want {
				t.Errorf("%s: %v, want %q", name, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: readPidFile blocked", name)
		}
	}
	if pid, err := readPidFile(filepath.Join(dir, "link")); pid != 42 || err != nil {
		t.Errorf("a link to a pid file: %d, %v", pid, err)
	}
}

// reapOne collects the runtime alone: another child that ended too stays for reap.
func TestReapOneLeavesOthers(t *testing.T) {
	r := newReaper()
	var pids [2]int
	for i := range pids {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		pids[i] = pid
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Skipf("no pidfd to tell the child's end: %v", err)
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, 5000); err != unix.EINTR {
				break
			}
		}
		unix.Close(pidfd)
		if fds[0].Revents == 0 {
			t.Fatalf("child %d did not end within 5 s", pid)
		}
	}
	first, second := r.wait(pids[0]), r.wait(pids[1])
	r.reapOne(pids[0])
	if got := statusCode(<-first); got != 0 {
		t.Fatalf("status %d, want 0", got)
	}
	select {
	case ws := <-second:
		t.Fatalf("reapOne(%d) also collected %d (status %#x)", pids[0], pids[1], uint32(ws))
	default:
	}
	r.reap()
	if got := statusCode(<-second); got != 0 {
		t.Fatalf("status %d, want 0", got)
	}
}
