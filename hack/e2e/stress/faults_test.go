package stress

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// faulty is a container whose monitor runs with its own /dev, so that its --syslog
// messages (CRI-O passes --syslog) reach the test.
type faulty struct {
	*ctr
	syslog *os.File
	spec   e2eutil.MonitorSpec
}

// gated runs `echo before; read x; echo after; exit 5` with -i: it waits for a line from an
// attach client, so faults can be arranged while it runs.
const gated = "echo before; read x; echo after; exit 5"

func newFaulty(t *testing.T, args ...string) *faulty {
	t.Helper()
	c := newGroup(t).mustCtr(t, false, nil, args...)
	dev, sock := e2eutil.DevDir(t)
	f := &faulty{ctr: c, syslog: sock, spec: c.spec(monitorPath, "-i")}
	f.spec.DevDir = dev
	return f
}

// start creates and starts the container (with the paths as they are now: a test may
// have moved the log or the exit dir).
func (f *faulty) start(t *testing.T) *monitorProc {
	t.Helper()
	f.spec.Args = f.CRIOArgs(runcPath, "-i")
	if _, _, err := f.create(f.spec); err != nil {
		t.Fatal(err)
	}
	return f.startCreated(t)
}

// startGated starts a gated container and connects the client that will release it.
func (f *faulty) startGated(t *testing.T) (*monitorProc, *net.UnixConn) {
	t.Helper()
	mon := f.start(t)
	conn, err := f.dialAttach()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.waitLog(t, "stdout", "before\n", 10*time.Second)
	return mon, conn
}

// expectSyslog waits for a message of the monitor containing all of want.
func (f *faulty) expectSyslog(t *testing.T, want ...string) {
	t.Helper()
	msgs := e2eutil.SyslogUntil(t, f.syslog, want[0], 10*time.Second)
	last := msgs[len(msgs)-1]
	for _, w := range want[1:] {
		if !strings.Contains(last, w) {
			t.Errorf("syslog message %q: want %q in it", last, w)
		}
	}
	if !strings.Contains(last, "conmon "+f.ID[:20]+" ") {
		t.Errorf("syslog message %q does not name the container", last)
	}
}

// writeCtl writes one line to <bundle>/ctl as engines do.
func (f *faulty) writeCtl(t *testing.T, line string) {
	t.Helper()
	ctl, err := os.OpenFile(filepath.Join(f.Bundle, "ctl"), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if _, err := ctl.WriteString(line); err != nil {
		t.Fatal(err)
	}
}

// smallTmpfs mounts a tmpfs of size at dir (created) and unmounts it at cleanup.
func smallTmpfs(t *testing.T, dir, size string, flags uintptr) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size="+size+",mode=0755"); err != nil {
		t.Skipf("needs tmpfs mounts: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
}

// The log's file system fills up: the container writes all its output and exits, the
// monitor says why output is missing, the log holds whole records of what fitted, and the
// exit file (elsewhere) appears.
func TestFaultLogDiskFull(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon leaves torn records and logs nowhere we can read
	t.Parallel()
	const line = "0123456789012345678901234567890123456789012345678"
	f := newFaulty(t, "sh", "-c", "yes "+line+" | head -c 2097152; echo done >&2; exit 7")
	dir := filepath.Join(t.TempDir(), "full")
	smallTmpfs(t, dir, "256k", 0)
	f.LogPath = filepath.Join(dir, "ctr.log")
	f.start(t)
	f.expectSyslog(t, "Failed to write to log file "+f.LogPath, "no space left on device")
	if _, err := e2eutil.AwaitFile(f.exitFile(), 30*time.Second, e2eutil.NonEmpty); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.LogPath)
	recs, perr := e2eutil.ParseLog(data)
	if err != nil || perr != nil || len(data) == 0 {
		t.Fatalf("log: %v %v (%d bytes)", err, perr, len(data))
	}
	whole := 0
	for i, l := range strings.Split(string(e2eutil.Joined(recs, "stdout")), "\n") {
		if !strings.HasPrefix(line, l) {
			t.Fatalf("logged line %d is %q, not (the beginning of) %q", i, l, line)
		}
		if l == line {
			whole++
		}
	}
	report(t, "logged", "%d of 2 MiB in a 256 KiB file system: %d whole lines", len(data), whole)
	if err := f.finish("7"); err != nil {
		t.Error(err)
	}
}

// The log file is deleted under the monitor: writes go on (to the unlinked file), and a
// reopen request puts a new file at the path that gets the rest of the output.
func TestFaultLogDeleted(t *testing.T) {
	setup(t)
	t.Parallel()
	f := newFaulty(t, "sh", "-c", gated)
	_, conn := f.startGated(t)
	if err := os.Remove(f.LogPath); err != nil {
		t.Fatal(err)
	}
	f.writeCtl(t, "2 0 0\n")
	if _, err := e2eutil.AwaitFile(f.LogPath, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := e2eutil.AwaitFile(f.exitFile(), 10*time.Second, e2eutil.NonEmpty); err != nil {
		t.Fatal(err)
	}
	if text := f.waitLog(t, "stdout", "after\n", time.Second); text != "after\n" {
		t.Errorf("new log holds %q, want after\\n", text)
	}
	if err := f.finish("5"); err != nil {
		t.Error(err)
	}
}

// The log's directory is removed under the monitor: a reopen request fails with a message,
// the container goes on and ends, and its exit file appears.
func TestFaultLogDirRemoved(t *testing.T) {
	setup(t)
	requireConmonGo(t) // a failed reopen ends conmon
	t.Parallel()
	f := newFaulty(t, "sh", "-c", gated)
	logDir := filepath.Join(f.dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.LogPath = filepath.Join(logDir, "ctr.log")
	_, conn := f.startGated(t)
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	f.writeCtl(t, "2 0 0\n")
	f.expectSyslog(t, "Failed to reopen log file "+f.LogPath, "no such file or directory")
	if _, err := conn.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.finish("5"); err != nil {
		t.Error(err)
	}
}

// The log's directory is removed after the launcher created the log and before the
// monitor opens it for writing: the engine learns why on the sync pipe, and no container
// is left running.
func TestFaultLogDirRemovedBeforePid(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon opens the log once, before it forks
	t.Parallel()
	f := newFaulty(t, "sleep", "1000")
	logDir := filepath.Join(f.dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.LogPath = filepath.Join(logDir, "ctr.log")
	f.spec.Args = f.CRIOArgs(runcPath)
	f.bin = monitorPath
	m, err := e2eutil.StartMonitor(f.spec)
	if err != nil {
		t.Fatal(err)
	}
	defer m.CloseFiles()
	// The launcher creates the log, then waits for the start byte.
	if _, err := e2eutil.AwaitFile(f.LogPath, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteStart(); err != nil {
		t.Fatal(err)
	}
	if code, err := m.Wait(20 * time.Second); err != nil || code != 0 {
		t.Fatalf("launcher: %d, %v: %s", code, err, m.Stderr.String())
	}
	msg, err := m.ReadSync(30 * time.Second)
	if n, _ := msg.Int("pid"); err != nil || n != -1 || msg.Message() != "Failed to open log file No such file or directory" {
		t.Fatalf("sync message %q (%v), want -1 and the log error", msg.Raw, err)
	}
	if err := f.cleanFailed(); err != nil {
		t.Error(err)
	}
}

// The exit dir is gone or read-only when the container ends: the monitor says so, still
// writes <persist-dir>/exit, and exits 1.
func TestFaultExitDir(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon exits before the persist file
	for _, tc := range []struct {
		name, errText string
		arrange       func(t *testing.T, dir string)
	}{
		{"missing", "no such file or directory", func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"read-only", "read-only file system", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFaulty(t, "sh", "-c", gated)
			f.ExitDir = filepath.Join(t.TempDir(), "exits")
			if tc.arrange == nil {
				smallTmpfs(t, f.ExitDir, "16k", unix.MS_RDONLY)
			} else if err := os.Mkdir(f.ExitDir, 0o755); err != nil {
				t.Fatal(err)
			}
			mon, conn := f.startGated(t)
			if tc.arrange != nil {
				tc.arrange(t, f.ExitDir)
			}
			if _, err := conn.Write([]byte("go\n")); err != nil {
				t.Fatal(err)
			}
			f.expectSyslog(t, "Failed to write 5 to exit file", tc.errText)
			if got, err := os.ReadFile(filepath.Join(f.PersistDir, "exit")); err != nil || string(got) != "5" {
				t.Errorf("persist exit file %q (%v), want 5", got, err)
			}
			ws, err := mon.wait()
			if err != nil || !ws.Exited() || ws.ExitStatus() != 1 {
				t.Errorf("monitor wait status %#x (%v), want exit status 1", ws, err)
			}
			if err := f.bundleLeftovers(); err != nil {
				t.Error(err)
			}
			report(t, "exit dir "+tc.name, "persist exit file written, monitor exit status %d", ws.ExitStatus())
		})
	}
}
