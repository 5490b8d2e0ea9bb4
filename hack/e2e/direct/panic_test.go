package direct

// The panic policy (docs/lifecycle.md §13.1), checked by injecting panics into the real
// monitor through CONMON_GO_TEST_PANIC: a part that panics is switched off and reported,
// the container keeps its monitor, and the exit files are written. Every other test fails
// when its monitor reports a panic (the harness's CONMON_GO_PANIC_FILE).

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// injectPanic starts c's monitor in CRI-O style (with extra flags) set to panic at point.
func injectPanic(t *testing.T, c *container, point string, extra ...string) (*monitor, syncMsg) {
	t.Helper()
	m := startMonitor(t, monitorSpec{args: c.crioArgs(extra...), sync: streamSock, start: streamSock, dir: c.bundle,
		pidCue: c.conmonPid, ctr: c, env: []string{"CONMON_GO_TEST_PANIC=" + point}})
	return m, m.launch()
}

// startAttached creates c with -i and a monitor set to panic at point, attaches like CRI-O
// and starts the container.
func startAttached(t *testing.T, c *container, point string) (*monitor, *net.UnixConn) {
	t.Helper()
	m, msg := injectPanic(t, c, point, "-i")
	if msg.mustInt(t, "pid") <= 0 {
		t.Fatalf("create failed: %q", msg.raw)
	}
	client := dialCRIO(t, filepath.Join(c.sockDir, c.id, "attach"))
	c.start()
	return m, client
}

// waitPanic waits for the monitor's report of the injected panic and takes it.
func waitPanic(t *testing.T, m *monitor, want string) {
	t.Helper()
	e2eutil.WaitFile(t, m.panics, 10*time.Second, func(b []byte) bool { return strings.Contains(string(b), "\n") })
	if report := m.takePanics(); !strings.HasPrefix(report, want+"\n") || !strings.Contains(report, "goroutine ") {
		t.Errorf("panic report %q, want %q and a stack", trunc([]byte(report)), want)
	}
}

// exitCommand makes the monitor touch a file when it runs the exit command.
func exitCommand(c *container) (marker string, args []string) {
	marker = filepath.Join(c.dir, "exit-command-ran")
	return marker, []string{"--exit-command", "/usr/bin/touch", "--exit-command-arg", marker}
}

// A panic in the ctl reader switches that reader off; the container and its log go on.
func TestPanicInCtlReader(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "read x; echo got $x; exit 4")
	m, client := startAttached(t, c, "ctl")
	writeCtl(t, c.bundle, "1 10 10\n")
	waitPanic(t, m, "internal error in reader of "+c.bundle+"/ctl: injected panic at ctl")
	if _, err := client.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "4" {
		t.Fatalf("exit file %q, want 4", got)
	}
	if out := joined(readLog(t, c.logPath), "stdout"); string(out) != "got x\n" {
		t.Errorf("log %q", out)
	}
}

// A panic in the k8s-file driver switches it off in the output pump: the attach client
// still gets all the output, the container never blocks, the exit files are written.
func TestPanicInLogDriver(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "echo one; read x; echo two; exit 5")
	m, client := startAttached(t, c, "k8s-file")
	r := newAttachReader(t, client)
	r.readUntil(func() bool { return r.out.String() == "one\n" }, 10*time.Second)
	waitPanic(t, m, "internal error in output pump: injected panic at k8s-file")
	if _, err := client.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	r.readToEOF(10 * time.Second)
	if got := r.out.String(); got != "one\ntwo\n" {
		t.Errorf("attach client got %q, want both lines", got)
	}
	for _, f := range []string{c.exitFile(), filepath.Join(c.persistDir, "exit")} {
		if got := e2eutil.WaitFile(t, f, 10*time.Second, e2eutil.NonEmpty); string(got) != "5" {
			t.Errorf("%s: %q, want 5", f, got)
		}
	}
	if data, err := os.ReadFile(c.logPath); err != nil || len(data) != 0 {
		t.Errorf("the switched-off driver wrote %q (%v)", data, err)
	}
}

// A panic on the monitor's own path after the pid was reported, right after the report
// (before SIGCHLD is caught, docs/lifecycle.md §9.1) or in the exit sequence: the exit files
// are still written with the container's status, the socket is removed and the exit
// command runs.
func TestPanicAfterPid(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	for _, point := range []string{"reported", "exit"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "sh", "-c", "exit 6")
			marker, args := exitCommand(c)
			m, msg := injectPanic(t, c, point, args...)
			if msg.mustInt(t, "pid") <= 0 {
				t.Fatalf("create failed: %q", msg.raw)
			}
			c.start()
			for _, f := range []string{filepath.Join(c.persistDir, "exit"), c.exitFile()} {
				if got := e2eutil.WaitFile(t, f, 10*time.Second, e2eutil.NonEmpty); string(got) != "6" {
					t.Errorf("%s: %q, want 6", f, got)
				}
			}
			e2eutil.WaitFile(t, marker, 10*time.Second, nil)
			waitPanic(t, m, "internal error in monitor: injected panic at "+point)
			if _, err := os.Lstat(filepath.Join(c.bundle, "attach")); !os.IsNotExist(err) {
				t.Errorf("attach socket left behind: %v", err)
			}
		})
	}
}

// A panic before the pid is reported fails the create like any set-up failure: -1 and
// the report on the sync pipe, the created container killed, no exit files, the exit
// command run.
func TestPanicBeforePid(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sleep", "100")
	marker, args := exitCommand(c)
	m, msg := injectPanic(t, c, "start", args...)
	if pid := msg.mustInt(t, "pid"); pid != -1 || msg.message() != "internal error in monitor: injected panic at start" {
		t.Fatalf("sync message %q, want -1 and the report", msg.raw)
	}
	e2eutil.WaitFile(t, marker, 10*time.Second, nil)
	waitPanic(t, m, "internal error in monitor: injected panic at start")
	if out, err := c.runc("state", c.id); err == nil && !strings.Contains(string(out), `"status": "stopped"`) {
		t.Errorf("container not killed: %s", out)
	}
	for _, f := range []string{filepath.Join(c.persistDir, "exit"), c.exitFile()} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed create: %v", f, err)
		}
	}
}
