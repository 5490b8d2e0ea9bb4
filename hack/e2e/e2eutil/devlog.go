package e2eutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// DevDir builds a minimal /dev (device nodes, /dev/pts mount point) with a datagram socket
// as /dev/log, and returns the directory and the socket. A monitor started in it (see
// PrivateDevArgs, MonitorSpec.DevDir) sends its --syslog messages to the test instead of
// the host's syslog daemon. It skips the test where device nodes cannot be made.
func DevDir(t testing.TB) (string, *os.File) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dev")
	if err := os.MkdirAll(filepath.Join(dir, "pts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, dev := range map[string][2]uint32{"null": {1, 3}, "zero": {1, 5}, "full": {1, 7},
		"random": {1, 8}, "urandom": {1, 9}, "tty": {5, 0}} {
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR|0o666, int(unix.Mkdev(dev[0], dev[1]))); err != nil {
			t.Skipf("cannot make device nodes in %s: %v", dir, err)
		}
	}
	for name, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd",
		"stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, "log")}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(fd), "syslog")
	t.Cleanup(func() { sock.Close() })
	return dir, sock
}

// PrivateDevArgs is the argv of unshare(1) that runs bin with args in a private mount
// namespace with devDir over /dev (and the host's /dev/pts kept), so that /dev/log can be
// the test's socket without touching the host. bin keeps the process id.
func PrivateDevArgs(devDir, bin string, args []string) []string {
	script := `mount --rbind /dev/pts "$1/pts" && mount --rbind "$1" /dev && shift && exec "$@"`
	return append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", devDir, bin}, args...)
}

// SyslogMessages returns the datagrams queued on sock, waiting at most 50 ms for each: all
// a launcher sent once it has been reaped.
func SyslogMessages(t testing.TB, sock *os.File) []string {
	t.Helper()
	var msgs []string
	buf := make([]byte, 8192)
	for {
		if err := sock.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := sock.Read(buf)
		if err != nil {
			return msgs
		}
		msgs = append(msgs, string(buf[:n]))
	}
}

// SyslogUntil reads datagrams from sock until one contains want and returns all read; the
// test fails after timeout. A daemonised monitor sends asynchronously.
func SyslogUntil(t testing.TB, sock *os.File, want string, timeout time.Duration) []string {
	t.Helper()
	var msgs []string
	buf := make([]byte, 8192)
	if err := sock.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("syslog: waiting for %q: %v; received %q", want, err, msgs)
		}
		msgs = append(msgs, string(buf[:n]))
		if strings.Contains(msgs[len(msgs)-1], want) {
			return msgs
		}
	}
}
