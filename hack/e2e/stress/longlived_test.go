package stress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// Memory bounds of a monitor serving attach sessions, in kB of anonymous memory. A few
// sessions cost little (client buffers are reused); many leave garbage that the monitor
// collects every 256 KiB, so the total stays bounded; a leak grows with the cycles and
// shows in the second half.
const (
	warmSlackKB  = 512  // after 20 sessions, over the never-attached monitor
	totalSlackKB = 2048 // after all sessions, over the never-attached monitor
	halfSlackKB  = 768  // growth over the second half of the sessions (one collection costs ~400)
)

// One container's monitor serves many attach connections (each a round trip through the
// container's stdin and stdout) while many execs, each with its own monitor, run in the
// container: its fd count must not grow and its memory must stay flat; every exec ends
// with its code, and leaves no process, socket or fd behind.
func TestLongLivedMonitor(t *testing.T) {
	setup(t)
	t.Cleanup(func() { checkNoStrays(t) })
	attaches, execs := size(100, 1000), size(20, 200)
	g := newGroup(t)
	c := g.mustCtr(t, false, nil, "sh", "-c", `echo ready; while read l; do echo "got $l"; done`)
	mon := c.run(t, "-i", "--leave-stdin-open")
	c.waitLog(t, "stdout", "ready\n", 10*time.Second)
	initPid, err := e2eutil.ReadPidFile(c.PidFile)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	idle := measure(t, mon.pid)
	for i := range 20 {
		if err := c.attachRoundTrip(i, buf); err != nil {
			t.Fatal(err)
		}
	}
	warm := settle(t, mon.pid, idle.fds)
	initFDs := countDir(t, fmt.Sprintf("/proc/%d/fd", initPid))
	var half footprint
	began := time.Now()
	for i := range attaches {
		if err := c.attachRoundTrip(i, buf); err != nil {
			t.Fatalf("attach %d: %v", i, err)
		}
		if i == attaches/2 {
			half = settle(t, mon.pid, idle.fds)
		}
	}
	attachTime := time.Since(began)
	afterAttach := settle(t, mon.pid, idle.fds)
	began = time.Now()
	for i := range execs {
		exec := c.execSync
		if i%2 == 1 {
			exec = c.podmanExec
		}
		if err := exec(i); err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
	}
	execTime := time.Since(began)
	afterExec := settle(t, mon.pid, idle.fds)
	report(t, "attach cycles", "%d in %v", attaches, attachTime.Round(time.Millisecond))
	report(t, "exec cycles", "%d (CRI-O ExecSync and podman exec alternately) in %v", execs, execTime.Round(time.Millisecond))
	report(t, "monitor, never attached", "%v", idle)
	report(t, "monitor after 20 attaches", "%v", warm)
	report(t, "monitor after half the attaches", "%v", half)
	report(t, "monitor after the attaches", "%v", afterAttach)
	report(t, "monitor after the execs", "%v", afterExec)
	if warm.anonKB > idle.anonKB+warmSlackKB {
		t.Errorf("20 attach sessions took the monitor from %v to %v", idle, warm)
	}
	if afterAttach.anonKB > half.anonKB+halfSlackKB || afterExec.anonKB > idle.anonKB+totalSlackKB {
		t.Errorf("attach sessions took the monitor from %v to %v (half-way %v), then %v after the execs", idle, afterAttach, half, afterExec)
	}
	for _, f := range []footprint{warm, half, afterAttach, afterExec} {
		if f.fds > idle.fds {
			t.Errorf("monitor fds: %d before the attaches, then %v", idle.fds, f)
		}
	}
	if n := countDir(t, fmt.Sprintf("/proc/%d/fd", initPid)); n != initFDs {
		t.Errorf("container init has %d fds after the execs, %d before", n, initFDs)
	}
	out, err := exec.Command(runcPath, "--root", c.RuncRoot, "ps", "--format", "json", c.ID).Output()
	var pids []int
	if err == nil {
		err = json.Unmarshal(out, &pids)
	}
	if err != nil || len(pids) != 1 || pids[0] != initPid {
		t.Errorf("container processes after the execs: %s (%v), want only the init %d", out, err, initPid)
	}
	c.mustRunc(t, "kill", c.ID, "KILL")
	if err := c.finish("137"); err != nil {
		t.Error(err)
	}
}

// settle measures the monitor once its fd count is at most fds, waiting at most 2 s: a
// client's hang-up is handled after the client has gone, and nothing outside the monitor
// shows when.
func settle(t *testing.T, pid, fds int) footprint {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		f := measure(t, pid)
		if f.fds <= fds || time.Now().After(deadline) {
			return f
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countDir(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// attachRoundTrip connects like CRI-O, writes a line to the container's stdin and reads
// frames until the container's answer arrived, then hangs up.
func (c *ctr) attachRoundTrip(i int, buf []byte) error {
	conn, err := c.dialAttach()
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "ping %d\n", i); err != nil {
		return err
	}
	want := []byte(fmt.Sprintf("got ping %d\n", i))
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	var out []byte
	for !bytes.Contains(out, want) {
		n, err := conn.Read(buf)
		if n == 0 || err != nil {
			return fmt.Errorf("attach read (%d bytes): %v; stdout so far %q", n, err, out)
		}
		if buf[0] == 2 {
			out = append(out, buf[1:n]...)
		}
	}
	return nil
}

// execCmd is exec i's command: a line on stdout and a code of its own.
func execCmd(i int) []string {
	return []string{"sh", "-c", fmt.Sprintf("echo exec %d; exit %d", i, i%7)}
}

// execSync runs exec i as CRI-O's ExecSync: a --sync monitor (this process's child) whose
// result is the one sync message and the log.
func (c *ctr) execSync(i int) error {
	dir := filepath.Join(c.dir, "exec"+strconv.Itoa(i))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	spec, logPath := filepath.Join(dir, "exec-process-1"), filepath.Join(dir, "exec.log")
	if err := e2eutil.WriteProcessSpec(spec, false, execCmd(i)...); err != nil {
		return err
	}
	m, err := e2eutil.StartMonitor(e2eutil.MonitorSpec{Bin: monitorPath, Dir: dir,
		Args: e2eutil.ExecSyncArgs(runcPath, c.RuncRoot, c.ID, c.SockDir, dir, logPath, spec),
		Sync: e2eutil.PlainPipe, Start: e2eutil.StreamSock})
	if err != nil {
		return err
	}
	defer m.CloseFiles()
	if err := m.WriteStart(); err != nil {
		return err
	}
	code, err := m.Wait(60 * time.Second)
	if err != nil {
		return err
	}
	msg, err := m.ReadSync(5 * time.Second)
	if n, ok := msg.Int("exit_code"); err != nil || !ok || n != i%7 || code != i%7 {
		return fmt.Errorf("ExecSync result %q (%v), monitor status %d, want %d", msg.Raw, err, code, i%7)
	}
	data, err := os.ReadFile(logPath)
	recs, perr := e2eutil.ParseLog(data)
	if want := fmt.Sprintf("exec %d\n", i); err != nil || perr != nil || string(e2eutil.Joined(recs, "stdout")) != want {
		return fmt.Errorf("ExecSync log %q (%v, %v), want stdout %q", data, err, perr, want)
	}
	return os.RemoveAll(dir)
}

// podmanExec runs exec i as a detached podman exec (a daemonised monitor with the attach
// pipe, nobody attached): the exit file and the final sync message carry its code, and the
// session directory keeps no attach socket.
func (c *ctr) podmanExec(i int) error {
	session := "exec" + strconv.Itoa(i)
	dir := filepath.Join(c.dir, session)
	if err := os.MkdirAll(filepath.Join(dir, "exit"), 0o755); err != nil {
		return err
	}
	spec := filepath.Join(dir, "exec-process-1")
	if err := e2eutil.WriteProcessSpec(spec, false, execCmd(i)...); err != nil {
		return err
	}
	m, err := e2eutil.StartMonitor(e2eutil.MonitorSpec{Bin: monitorPath, Dir: dir,
		Args: e2eutil.PodmanExecArgs(runcPath, c.RuncRoot, c.ID, session, dir, spec),
		Sync: e2eutil.SeqPacket, Start: e2eutil.SeqPacket, Attach: true})
	if err != nil {
		return err
	}
	defer m.CloseFiles()
	if err := m.WriteStart(); err != nil {
		return err
	}
	if code, err := m.Wait(20 * time.Second); err != nil || code != 0 {
		return fmt.Errorf("launcher exit status %d (%v): %s", code, err, m.Stderr.String())
	}
	pidPath := filepath.Join(dir, "conmon.pid")
	pid, err := e2eutil.ReadPidFile(pidPath)
	if err != nil {
		return err
	}
	mon, err := openMonitor(pid)
	if err != nil {
		return err
	}
	defer mon.end()
	if msg, err := m.ReadAttachPipe(10 * time.Second); err != nil || msg.Raw != "{\"data\": 0}\n" {
		return fmt.Errorf("attach pipe %q (%v), want {\"data\": 0}", msg.Raw, err)
	}
	if err := m.WriteStart(); err != nil {
		return err
	}
	if msg, err := m.ReadSync(20 * time.Second); err != nil {
		return err
	} else if n, _ := msg.Int("data"); n <= 0 {
		return fmt.Errorf("exec failed: %q", msg.Raw)
	}
	want := strconv.Itoa(i % 7)
	if got, err := e2eutil.AwaitFile(filepath.Join(dir, "exit", c.ID), 20*time.Second, e2eutil.NonEmpty); err != nil || string(got) != want {
		return fmt.Errorf("exec exit file %q (%v), want %s", got, err, want)
	}
	if msg, err := m.ReadSync(10 * time.Second); err != nil || msg.Raw != "{\"data\": "+want+"}\n" {
		return fmt.Errorf("final sync message %q (%v), want {\"data\": %s}", msg.Raw, err, want)
	}
	if err := mon.end(); err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(dir, "attach")); !os.IsNotExist(err) {
		return fmt.Errorf("exec attach socket left behind: %v", err)
	}
	return os.RemoveAll(dir)
}
