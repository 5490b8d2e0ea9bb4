package direct

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// waitPidFile waits until the conmon pid file names pid.
func waitPidFile(t *testing.T, path string, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got, _ := readPidFile(path); got != pid; got, _ = readPidFile(path) {
		if time.Now().After(deadline) {
			t.Fatalf("no conmon pid file naming %d within 10 s", pid)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// The launcher an engine starts never starts the Go runtime (docs/lifecycle.md §3.3): it
// forks the monitor at its entry point and waits for the monitor's word with its one
// thread. The monitor is that child, not a re-execution, and the launcher exits with the
// status the monitor sends. The GOMAXPROCS=1 the entry point gave the monitor's runtime
// does not reach the runtime it starts.
func TestPreforkedMonitor(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	c := newContainer(t, bundleOpts{}, "true")
	runtime, record := recordingRuntime(t, c.dir, "env")
	spec := podmanStyle.spec(c)
	spec.args = setOption(t, spec.args, "-r", runtime)
	m := startMonitor(t, spec)
	launcher := m.cmd.Process.Pid
	forked := waitChild(t, launcher)
	waitPidFile(t, c.conmonPid, forked)
	if tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(launcher) + "/task/*"); len(tasks) != 1 {
		t.Errorf("launcher %d has %d threads while it waits, want 1 (no Go runtime)", launcher, len(tasks))
	}
	if !forkedAtEntry(forked) {
		t.Errorf("monitor %d was re-executed (its environment has _CONMON_GO_ markers), want forked", forked)
	}
	if pid := m.launch().mustInt(t, "data"); pid <= 0 {
		t.Fatalf("create failed: pid %d", pid)
	}
	if monitorPid, err := readPidFile(c.conmonPid); err != nil || monitorPid != forked {
		t.Errorf("conmon pid file names %d (%v), want the forked monitor %d", monitorPid, err, forked)
	}
	if env, err := os.ReadFile(record); err != nil || strings.Contains(string(env), "GOMAXPROCS") {
		t.Errorf("runtime environment %q (%v), want it read and without GOMAXPROCS", env, err)
	}
	// The monitor mapped its whole program at start and gives those pages back once the
	// pid is out: its file-backed resident set falls to what it touches again, well below
	// the binary's size. (A value in /proc, no event to wait for: sampled with a deadline.)
	st, err := os.Stat(monitorPath)
	if err != nil {
		t.Fatal(err)
	}
	limit := int(st.Size() / 2 / 1024)
	var fileKB int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		kb, ok := statusKB(forked, "RssFile:")
		if !ok {
			t.Fatalf("monitor %d gone", forked)
		}
		if fileKB = kb; fileKB < limit || time.Now().After(deadline) {
			break
		}
	}
	if fileKB >= limit {
		t.Errorf("monitor %d keeps %d kB of file pages mapped, want less than half the binary (%d kB)", forked, fileKB, limit)
	}
	c.start()
	e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty)
}

// A check that fails in the forked monitor reaches the engine as the launcher's: its
// message on the launcher's stderr, exit status 1; nothing is left behind. (The monitor
// may be gone before the test could see it: it is looked for by its command line.)
func TestPreforkedMonitorInvalid(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	c := newContainer(t, bundleOpts{}, "true")
	spec := podmanStyle.spec(c)
	spec.args = setOption(t, spec.args, "-r", "/nonexistent/runc")
	m := startMonitor(t, spec)
	if code := m.wait(10 * time.Second); code != 1 {
		t.Errorf("launcher exit status %d, want 1", code)
	}
	if !strings.Contains(m.stderr.String(), "/nonexistent/runc") {
		t.Errorf("launcher stderr %q does not name the runtime", m.stderr.String())
	}
	for _, pid := range monitorsOf(c.id) {
		if !e2eutil.WaitPidGone(pid, 5*time.Second) {
			t.Errorf("monitor %d still running", pid)
		}
	}
	if _, err := os.Stat(c.conmonPid); !os.IsNotExist(err) {
		t.Errorf("conmon pid file: %v, want none", err)
	}
}

// monitorsOf lists the running processes of the binary under test whose command line
// names the container id.
func monitorsOf(id string) []int {
	var pids []int
	for _, p := range e2eutil.Processes(func(argv []string) bool { return slices.Contains(argv, id) }) {
		if isProcessOf(p.Pid, monitorPath) {
			pids = append(pids, p.Pid)
		}
	}
	return pids
}
