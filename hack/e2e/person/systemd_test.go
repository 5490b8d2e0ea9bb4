package person

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// notifyListener is a service manager's NOTIFY_SOCKET: it collects every datagram.
type notifyListener struct {
	path string
	fd   int
	got  chan []string
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	dir, err := os.MkdirTemp(tmpRoot, "nt-")
	if err != nil {
		t.Fatal(err)
	}
	l := &notifyListener{path: filepath.Join(dir, "notify"), got: make(chan []string, 1)}
	if l.fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(l.fd, &unix.SockaddrUnix{Name: l.path}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(l.fd); os.RemoveAll(dir) })
	return l
}

// next returns the next datagram, "" when none came within the deadline.
func (l *notifyListener) next(within time.Duration) string {
	tv := unix.NsecToTimeval(within.Nanoseconds())
	unix.SetsockoptTimeval(l.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(l.fd, buf, 0)
		switch err {
		case nil:
			return string(buf[:n])
		case unix.EINTR:
			continue
		}
		return ""
	}
}

// Type=notify with WatchdogSec=: READY=1 with run's own pid once the container runs,
// watchdog pings while it runs, STOPPING=1 at the end; the monitor and the runtime do not
// get NOTIFY_SOCKET (runc would pass a notify socket into the container). WATCHDOG_PID
// names run, as systemd names the process it started: run stays in the foreground, so the
// watchdog is its own.
func TestNotifyForeground(t *testing.T) {
	setup(t)
	t.Parallel()
	l := listenNotify(t)
	dir := stateDir(t)
	cmd := exec.Command("sh", "-c", `WATCHDOG_PID=$$ exec "$0" "$@"`,
		bin, "run", "-q", "--state-dir", dir, "--rootfs", rootfs, "--", "sh", "-c", "env; sleep 1")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+l.path, "WATCHDOG_USEC=200000")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var msgs []string
	for {
		m := l.next(deadline)
		if m == "" {
			t.Fatalf("no STOPPING=1; got %q", msgs)
		}
		msgs = append(msgs, m)
		if m == "STOPPING=1" {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	ready := "READY=1\nMAINPID=" + strconv.Itoa(cmd.Process.Pid)
	if msgs[0] != ready {
		t.Fatalf("first notification %q; want %q (all: %q)", msgs[0], ready, msgs)
	}
	pings := 0
	for _, m := range msgs[1 : len(msgs)-1] {
		if m != "WATCHDOG=1" {
			t.Fatalf("unexpected notification %q (all: %q)", m, msgs)
		}
		pings++
	}
	if pings < 2 {
		t.Fatalf("%d watchdog pings in a second at WATCHDOG_USEC=200000 (all: %q)", pings, msgs)
	}
	if m := l.next(200 * time.Millisecond); m != "" {
		t.Fatalf("notification after STOPPING=1: %q", m)
	}
	if strings.Contains(out.String(), "NOTIFY_SOCKET") || strings.Contains(out.String(), "WATCHDOG_") {
		t.Fatalf("the container got NOTIFY_SOCKET or WATCHDOG_*:\n%s", out.String())
	}
}

// With --detach the monitor stays with the container: it becomes the main pid.
func TestNotifyDetached(t *testing.T) {
	setup(t)
	t.Parallel()
	l := listenNotify(t)
	dir := stateDir(t)
	r := conmonGo(t, []string{"NOTIFY_SOCKET=" + l.path}, "", "run", "-d", "-q", "--state-dir", dir, "--rootfs", rootfs, "--", "sleep", "0.2")
	if r.code != 0 {
		t.Fatalf("run -d: %v", r)
	}
	pid, err := os.ReadFile(filepath.Join(dir, "conmon.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if m := l.next(deadline); m != "READY=1\nMAINPID="+string(pid) {
		t.Fatalf("notification %q; want READY=1 with the monitor's pid %s", m, pid)
	}
}

// Under systemd stderr is the journal: the container's output goes to journald, not to a
// file in the state directory.
func TestJournaldWhenStderrIsTheJournal(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := stateDir(t)
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(stderr.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--state-dir", dir, "--rootfs", rootfs, "--", "true")
	cmd.Env = append(os.Environ(), fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	report, _ := os.ReadFile(stderr.Name())
	if !strings.Contains(string(report), "log:    journald") {
		t.Fatalf("report %q; want the journald log", report)
	}
	entries, _ := os.ReadDir(dir)
	if slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "ctr.log" }) {
		t.Fatal("a k8s-file log was written as well")
	}
}
