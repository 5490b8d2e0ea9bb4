package stress

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// maxIdleTicks is the CPU time (utime + stime, in clockTicks) a monitor may use over
// idleWindow while nothing happens: a busy loop uses the whole window, a timer waking the
// monitor every 100 ms a few ticks a minute.
var (
	idleWindow   = size(5*time.Second, 60*time.Second)
	maxIdleTicks = int64(size(3, 10))
)

// The monitor of an idle container uses no CPU, also when the container closed its
// output early, when a terminal's slave side has been closed (the master would report a
// hang-up forever), and when an attach client half-closed its connection and stays.
func TestIdleCPU(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		name  string
		tty   bool
		stdin bool
		cmd   string
		ready func(t *testing.T, c *ctr)
	}{
		{name: "idle", cmd: "echo ready; exec sleep 100000", ready: logged("stdout", "ready\n")},
		{name: "idle-tty", tty: true, cmd: "echo ready; exec sleep 100000", ready: logged("stdout", "ready\r\n")},
		{name: "stdout-closed", cmd: "echo ready; exec >&-; echo closed >&2; exec sleep 100000", ready: logged("stderr", "closed\n")},
		{name: "stdout-stderr-closed", cmd: "echo ready; exec >&- 2>&-; exec sleep 100000", ready: fdsGone(1, 2)},
		{name: "tty-slave-closed", tty: true, cmd: "echo ready; exec </dev/null >/dev/null 2>&1; exec sleep 100000", ready: fdsNull(0, 1, 2)},
		{name: "client-half-closed", stdin: true, cmd: "echo ready; exec sleep 100000", ready: halfClosedClient},
		{name: "client-half-closed-no-stdin", cmd: "echo ready; exec sleep 100000", ready: halfClosedClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newGroup(t).mustCtr(t, tc.tty, nil, "sh", "-c", tc.cmd)
			var extra []string
			if tc.stdin {
				extra = append(extra, "-i")
			}
			mon := c.run(t, extra...)
			tc.ready(t, c)
			before, beforeNs := cpuTicks(t, mon.pid), cpuNanos(t, mon.pid)
			time.Sleep(idleWindow) // the measurement window, not a wait for an event
			used, usedNs := cpuTicks(t, mon.pid)-before, cpuNanos(t, mon.pid)-beforeNs
			report(t, "monitor CPU", "%d ticks (%v on CPU) in %v", used, time.Duration(usedNs).Round(time.Microsecond), idleWindow)
			if used > maxIdleTicks {
				t.Errorf("monitor used %d ticks of CPU in %v, want at most %d", used, idleWindow, maxIdleTicks)
			}
			if !mon.alive() {
				t.Fatal("monitor gone")
			}
			c.mustRunc(t, "kill", c.ID, "KILL")
			if err := c.finish("137"); err != nil {
				t.Error(err)
			}
		})
	}
}

func logged(stream, want string) func(t *testing.T, c *ctr) {
	return func(t *testing.T, c *ctr) { c.waitLog(t, stream, want, 10*time.Second) }
}

// fdsGone waits until the container process has closed fds.
func fdsGone(fds ...int) func(t *testing.T, c *ctr) {
	return func(t *testing.T, c *ctr) {
		waitFDs(t, c, fds, func(target string, err error) bool { return os.IsNotExist(err) })
	}
}

// fdsNull waits until the container process has pointed fds at /dev/null.
func fdsNull(fds ...int) func(t *testing.T, c *ctr) {
	return func(t *testing.T, c *ctr) {
		waitFDs(t, c, fds, func(target string, err error) bool { return err == nil && target == "/dev/null" })
	}
}

// waitFDs waits until ok holds for each of the container process's fds: nothing outside
// the process shows when it redirected them, so /proc is read until then (at most 10 s).
func waitFDs(t *testing.T, c *ctr, fds []int, ok func(target string, err error) bool) {
	t.Helper()
	c.waitLog(t, "stdout", "ready", 10*time.Second)
	pid, err := e2eutil.ReadPidFile(c.PidFile)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, fd := range fds {
		for {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
			if ok(target, err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("container fd %d: %q, %v", fd, target, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// halfClosedClient connects an attach client that shuts down its sending side and stays.
func halfClosedClient(t *testing.T, c *ctr) {
	c.waitLog(t, "stdout", "ready\n", 10*time.Second)
	conn, err := c.dialAttach()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// cpuNanos is the time the process's threads have spent on a CPU (schedstat), in ns.
func cpuNanos(t *testing.T, pid int) int64 {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("schedstat of %d: %v", pid, err)
	}
	var sum int64
	for _, p := range tasks {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		var ns int64
		if _, err := fmt.Sscan(string(data), &ns); err == nil {
			sum += ns
		}
	}
	return sum
}
