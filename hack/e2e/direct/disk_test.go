package direct

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"

	"golang.org/x/sys/unix"
)

// smallTmpfs mounts a 256 KiB tmpfs in a temp dir and unmounts it at cleanup.
func smallTmpfs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0755"); err != nil {
		t.Skipf("needs tmpfs mounts: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v; detaching", dir, err)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// A full log file system must not stop the container or the monitor: the exit file in
// another directory carries the status, and the write errors are reported, rate-limited.
// The monitor runs with --sync, so its own exit status shows it did not die. (Its
// warnings go to syslog only, and this host has no /dev/log: they are not checked.)
func TestLogDiskFull(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon's write errors leave torn records (docs/differences.md §2)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "yes 0123456789012345678901234567890123456789012345678 | head -c 2097152; echo done >&2; exit 7")
	c.logPath = filepath.Join(smallTmpfs(t), "ctr.log")
	m := startMonitor(t, monitorSpec{args: c.crioArgs("--sync"), sync: streamSock, start: streamSock, dir: c.bundle, ctr: c})
	m.writeStart()
	msg, err := m.readSync(30 * time.Second)
	if err != nil || msg.mustInt(t, "pid") <= 0 {
		t.Fatalf("sync %q (%v); stderr %q", msg.raw, err, m.stderr.String())
	}
	c.start()
	if got := e2eutil.WaitFile(t, c.exitFile(), 20*time.Second, e2eutil.NonEmpty); string(got) != "7" {
		t.Fatalf("exit file %q, want 7", got)
	}
	if code := m.wait(10 * time.Second); code != 7 {
		t.Errorf("--sync monitor exit status %d, want 7 (it must not die of the write errors); stderr %q", code, m.stderr.String())
	}
	// Failed batches are cut off again: the file holds whole records (parseLog checks
	// each). Output is lost, not garbled: every logged line is the container's line or,
	// where a failed write took its end, the beginning of it.
	data, err := os.ReadFile(c.logPath)
	if err != nil || len(data) == 0 || len(data) > 256<<10 {
		t.Fatalf("log file: %v, %d bytes: want the part that fitted", err, len(data))
	}
	const line = "0123456789012345678901234567890123456789012345678"
	whole := 0
	for i, l := range strings.Split(string(joined(parseLog(t, data), "stdout")), "\n") {
		if !strings.HasPrefix(line, l) {
			t.Fatalf("logged line %d is %q, not (the beginning of) %q", i, l, line)
		}
		if l == line {
			whole++
		}
	}
	if whole == 0 {
		t.Errorf("no whole line logged")
	}
}

// The log is opened before daemonising, so a missing directory reaches the caller.
func TestLogDirMissing(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "true")
	c.logPath = filepath.Join(c.dir, "no-such-dir", "ctr.log")
	m := startMonitor(t, monitorSpec{args: c.crioArgs(), sync: streamSock, start: streamSock, dir: c.bundle, pidCue: c.conmonPid, ctr: c})
	_, _ = m.startF.Write([]byte{0}) // conmon fails before it reads the start pipe
	if code := m.wait(10 * time.Second); code != 1 {
		t.Errorf("launcher exit status %d, want 1", code)
	}
	if s := m.stderr.String(); !strings.Contains(s, "Failed to open log file No such file or directory") {
		t.Errorf("stderr %q, want Failed to open log file No such file or directory", s)
	}
	if _, err := c.runc("state", c.id); err == nil {
		t.Errorf("container %s was created despite the error", c.id)
	}
	if _, err := os.Stat(c.exitFile()); !os.IsNotExist(err) {
		t.Errorf("exit file: %v, want none", err)
	}
}
