package direct

// Engine-style sequences on top of the harness: create in podman/CRI-O style, podman exec
// sessions with stdin or a terminal, and CRI-O ExecSync.

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// createOK starts a monitor for c in the engine's style and checks that the first sync
// message carries a pid.
func (e engineStyle) createOK(t *testing.T, c *container, extra ...string) *monitor {
	t.Helper()
	m, msg := e.create(t, c, extra...)
	if msg.mustInt(t, e.key()) <= 0 {
		t.Fatalf("create failed: %q", msg.raw)
	}
	return m
}

// runToExit creates and starts c in CRI-O style with bin and returns the exit file content.
func runToExit(t *testing.T, c *container, bin string, timeout time.Duration, extra ...string) string {
	t.Helper()
	m := startMonitor(t, monitorSpec{args: c.crioArgs(extra...), sync: streamSock, start: streamSock, dir: c.bundle, pidCue: c.conmonPid, bin: bin, ctr: c})
	if msg := m.launch(); msg.mustInt(t, "pid") <= 0 {
		t.Fatalf("sync %q", msg.raw)
	}
	c.start()
	return string(e2eutil.WaitFile(t, c.exitFile(), timeout, e2eutil.NonEmpty))
}

type execOpts struct {
	tty   bool
	stdin []byte // -i: written through the attach socket, then SHUT_WR
}

type execResult struct {
	pid, status int
	out, err    string
	monitorPid  int // the daemonised exec monitor (from its -P file)
}

// podmanExec runs one podman 4.3.1 exec session (docs/lifecycle.md §12.1) and returns its
// result.
func podmanExec(t *testing.T, c *container, session string, o execOpts, args ...string) execResult {
	t.Helper()
	dir := filepath.Join(c.bundle, session)
	if err := os.MkdirAll(filepath.Join(dir, "exit"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "exec-process-1")
	writeProcessSpec(t, spec, o.tty, args...)
	conmonPid := filepath.Join(dir, "conmon.pid")
	argv := e2eutil.PodmanExecArgs(runcPath, c.root, c.id, session, dir, spec)
	if o.tty {
		argv = append(argv, "-t")
	}
	if o.stdin != nil {
		argv = append(argv, "-i")
	}
	m := startMonitor(t, monitorSpec{args: argv, sync: seqPacket, start: seqPacket, attach: true, dir: dir, pidCue: conmonPid})
	m.writeStart()
	if code := m.wait(10 * time.Second); code != 0 {
		t.Fatalf("launcher exit %d; stderr %q", code, m.stderr.String())
	}
	if am, err := m.readAttachPipe(10 * time.Second); err != nil || am.raw != "{\"data\": 0}\n" {
		t.Fatalf("attach pipe message %q (%v), want {\"data\": 0}", am.raw, err)
	}
	conn := dialPodman(t, dir)
	r := newAttachReader(t, conn)
	if m.attachPipeClosed() {
		t.Fatal("the monitor closed the attach pipe before the second start byte (docs/protocol.md §4)")
	}
	m.writeStart() // second byte: the runtime may run now
	if am, err := m.readAttachPipe(10 * time.Second); err != io.EOF {
		t.Fatalf("attach pipe after the second start byte: %q (%v), want EOF", am.raw, err)
	}
	msg, err := m.readSync(10 * time.Second)
	if err != nil {
		t.Fatalf("sync pipe: %v", err)
	}
	res := execResult{pid: msg.mustInt(t, "data")}
	if res.pid <= 0 {
		t.Fatalf("exec failed: %q", msg.raw)
	}
	if want, err := readPidFile(filepath.Join(dir, "exec_pid")); err != nil || want != res.pid {
		t.Errorf("exec pid %d, exec_pid file %d (%v)", res.pid, want, err)
	}
	if o.stdin != nil {
		if _, err := conn.Write(o.stdin); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.readToEOF(10 * time.Second)
	res.out, res.err = r.out.String(), r.err.String()
	got := string(e2eutil.WaitFile(t, filepath.Join(dir, "exit", c.id), 5*time.Second, e2eutil.NonEmpty))
	if res.status, err = strconv.Atoi(got); err != nil {
		t.Fatalf("exec exit file %q", got)
	}
	if msg, err = m.readSync(10 * time.Second); err != nil || msg.mustInt(t, "data") != res.status {
		t.Errorf("final sync %q (%v), exit file %d", msg.raw, err, res.status)
	}
	if res.monitorPid, err = readPidFile(conmonPid); err != nil {
		t.Fatal(err)
	}
	return res
}

// execSyncLog runs one CRI-O ExecSync (docs/lifecycle.md §12.2): a plain sync pipe, a
// stream start pipe unless legacy (CRI-O < 1.21 started the --sync monitor without one),
// extra options before the process spec. It returns the result message, the monitor's exit
// status, the log path and the time until the monitor ended.
func execSyncLog(t *testing.T, c *container, legacy bool, extra []string, args ...string) (syncMsg, int, string, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	spec := filepath.Join(dir, "exec-process-1")
	writeProcessSpec(t, spec, false, args...)
	logPath := filepath.Join(dir, "crio-log-"+c.id)
	argv := e2eutil.ExecSyncArgs(runcPath, c.root, c.id, c.sockDir, dir, logPath, spec, extra...)
	start := streamSock
	if legacy {
		start = noPipe
	}
	m := startMonitor(t, monitorSpec{args: argv, sync: plainPipe, start: start, dir: dir})
	if !legacy {
		m.writeStart()
	}
	code := m.wait(60 * time.Second)
	elapsed := time.Since(m.started)
	msg, err := m.readSync(5 * time.Second)
	if err != nil {
		t.Fatalf("ExecSync result: %v; monitor stderr %q", err, m.stderr.String())
	}
	return msg, code, logPath, elapsed
}
