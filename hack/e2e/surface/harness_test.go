package surface

// A small harness: builds (or takes) the monitor, makes busybox bundles, starts the
// monitor as podman does (sync socketpair, start pipe, extra fds), runs `runc start` and
// waits for the exit file.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const runcPath = e2eutil.RuncPath

var (
	monitorPath  string
	moduleDir    string
	mkbundlePath string
	sharedRootfs string
	tmpRoot      string
	skipReason   string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root: the tests run runc containers"
	default:
		for _, tool := range []string{runcPath, "busybox", "go"} {
			if _, err := exec.LookPath(tool); err != nil {
				skipReason = "needs " + tool + ": " + err.Error()
			}
		}
	}
	if skipReason != "" {
		return m.Run()
	}
	wd, _ := os.Getwd()
	moduleDir = filepath.Join(wd, "..", "..", "..")
	mkbundlePath = filepath.Join(moduleDir, "hack", "mkbundle.sh")
	var err error
	if tmpRoot, err = os.MkdirTemp("", "e2e-surface-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	tmpl := filepath.Join(tmpRoot, "template")
	if err := e2eutil.MakeBundle(mkbundlePath, "", tmpl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sharedRootfs = filepath.Join(tmpl, "rootfs")
	if monitorPath, err = e2eutil.MonitorBinary(moduleDir, tmpRoot); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	podmanTeardown()
	return code
}

func setup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// ctr is one container and the paths an engine gives its monitor.
type ctr struct {
	t                           *testing.T
	id                          string
	dir, bundle, root           string
	exitDir, persistDir         string
	pidFile, conmonPid, logPath string
	runtime                     string // -r
	daemonPid                   int
}

// newCtr makes a bundle running args. ownRootfs copies busybox into the bundle (so files
// can be added); otherwise the read-only template rootfs is shared.
func newCtr(t *testing.T, ownRootfs bool, args ...string) *ctr {
	t.Helper()
	setup(t)
	dir := t.TempDir()
	b := make([]byte, 32)
	rand.Read(b)
	c := &ctr{t: t, id: hex.EncodeToString(b), dir: dir, bundle: filepath.Join(dir, "bundle"),
		root: filepath.Join(dir, "runc"), exitDir: filepath.Join(dir, "exits"),
		persistDir: filepath.Join(dir, "persist"), pidFile: filepath.Join(dir, "pidfile"),
		conmonPid: filepath.Join(dir, "conmon.pid"), logPath: filepath.Join(dir, "ctr.log"),
		runtime: runcPath}
	for _, d := range []string{c.root, c.exitDir, c.persistDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := sharedRootfs
	if ownRootfs {
		rootfs = ""
	}
	if err := e2eutil.MakeBundle(mkbundlePath, rootfs, append([]string{c.bundle}, args...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.cleanup)
	return c
}

// cleanup deletes the container; the monitor then ends by itself, or is killed.
func (c *ctr) cleanup() {
	exec.Command(runcPath, "--root", c.root, "delete", "--force", c.id).Run()
	if c.daemonPid > 0 && !waitGone(c.daemonPid, 5*time.Second) {
		c.t.Errorf("monitor %d still running after the container was deleted; killed", c.daemonPid)
		unix.Kill(c.daemonPid, unix.SIGKILL)
	}
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		// A zombie counts as gone: its reaper (init here) is not ours to hurry.
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); err != nil || (i > 0 && i+2 < len(stat) && stat[i+2] == 'Z') {
			return true
		}
		time.Sleep(20 * time.Millisecond) // no event for a non-child's death without pidfd polling
	}
	return false
}

func (c *ctr) editConfig(edit func(cfg map[string]any)) {
	c.t.Helper()
	if err := e2eutil.EditConfig(c.bundle, edit); err != nil {
		c.t.Fatal(err)
	}
}

// args is podman 4.3.1's create argv with a private runc root.
func (c *ctr) args(extra ...string) []string {
	return append([]string{"--api-version", "1", "-c", c.id, "-u", c.id, "-r", c.runtime,
		"-b", c.bundle, "-p", c.pidFile, "-n", "surface", "--exit-dir", c.exitDir,
		"--persist-dir", c.persistDir, "--full-attach", "-l", "k8s-file:" + c.logPath,
		"--log-level", "warning", "--runtime-arg", "--root=" + c.root,
		"--conmon-pidfile", c.conmonPid}, extra...)
}

// launch says how the monitor is started.
type launch struct {
	args      []string
	preserved []*os.File // fds 3, 4, ...: before the _OCI_* fds
	after     []*os.File // after the _OCI_* fds (podman's port reservations)
	env       []string   // added to a minimal environment
	shell     string     // run through `sh -c '<shell>; exec "$@"'` (to set up its own process)
	sync      bool       // --sync: the started process is the monitor
}

type mon struct {
	t      *testing.T
	cmd    *exec.Cmd
	syncF  *os.File
	stderr bytes.Buffer
	done   chan struct{}
}

// startMonitor starts the monitor like podman: fds, start byte, and (without --sync)
// waits for the launcher to exit 0.
func (c *ctr) startMonitor(l launch) *mon {
	c.t.Helper()
	m := &mon{t: c.t, done: make(chan struct{})}
	argv := append([]string{monitorPath}, l.args...)
	if l.shell != "" {
		argv = append([]string{"/bin/sh", "-c", l.shell + `; exec "$@"`, "sh"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = &m.stderr
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, l.env...)
	cmd.ExtraFiles = append(cmd.ExtraFiles, l.preserved...)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	m.syncF = os.NewFile(uintptr(fds[0]), "sync")
	syncChild := os.NewFile(uintptr(fds[1]), "sync-child")
	startR, startW, err := os.Pipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, syncChild, startR)
	n := len(cmd.ExtraFiles)
	cmd.Env = append(cmd.Env, "_OCI_SYNCPIPE="+strconv.Itoa(n+1), "_OCI_STARTPIPE="+strconv.Itoa(n+2))
	cmd.ExtraFiles = append(cmd.ExtraFiles, l.after...)
	err = cmd.Start()
	syncChild.Close()
	startR.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	m.cmd = cmd
	go func() { cmd.Wait(); close(m.done) }()
	c.t.Cleanup(func() {
		m.syncF.Close()
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			c.t.Errorf("monitor process %d still running; killed", cmd.Process.Pid)
			cmd.Process.Kill()
			<-m.done
		}
	})
	startW.Write([]byte{0})
	startW.Close()
	if l.sync {
		c.daemonPid = cmd.Process.Pid
		return m
	}
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("launcher did not exit; stderr: %s", m.stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		c.t.Fatalf("launcher exited %d; stderr: %s", code, m.stderr.String())
	}
	data, err := os.ReadFile(c.conmonPid)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.daemonPid, err = strconv.Atoi(string(data)); err != nil {
		c.t.Fatalf("conmon pid file %q: %v", data, err)
	}
	return m
}

// readSync returns the next sync message: {"data": N, "message": "..."}.
func (m *mon) readSync(timeout time.Duration) (int, string) {
	m.t.Helper()
	buf := make([]byte, 65536)
	m.syncF.SetReadDeadline(time.Now().Add(timeout))
	n, err := m.syncF.Read(buf)
	if err != nil {
		m.t.Fatalf("sync pipe: %v (monitor stderr: %s)", err, m.stderr.String())
	}
	var msg struct {
		Data    int    `json:"data"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(buf[:n], &msg); err != nil {
		m.t.Fatalf("sync message %q: %v", buf[:n], err)
	}
	return msg.Data, msg.Message
}

// run starts the monitor, expects the pid, runs `runc start` and returns the exit status.
func (c *ctr) run(l launch) int {
	c.t.Helper()
	m := c.startMonitor(l)
	if pid, msg := m.readSync(10 * time.Second); pid <= 0 {
		c.t.Fatalf("sync: %d %q", pid, msg)
	}
	c.start()
	return c.waitExit(20 * time.Second)
}

func (c *ctr) start() {
	c.t.Helper()
	if out, err := exec.Command(runcPath, "--root", c.root, "start", c.id).CombinedOutput(); err != nil {
		c.t.Fatalf("runc start: %v: %s", err, out)
	}
}

// waitExit waits (bounded poll) for <exit-dir>/<cid> and returns its status.
func (c *ctr) waitExit(timeout time.Duration) int {
	c.t.Helper()
	data := e2eutil.WaitFile(c.t, filepath.Join(c.exitDir, c.id), timeout, e2eutil.NonEmpty)
	n, err := strconv.Atoi(string(data))
	if err != nil {
		c.t.Fatalf("exit file %q: %v", data, err)
	}
	return n
}

// recorder writes a runtime wrapper that records its argv (one per line), its pid,
// LISTEN_PID and oom_score_adj into <dir>/rec.*, then execs runc.
func recorder(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "recording-runtime")
	script := "#!/bin/sh\n" +
		"printf '%s\\n' \"$@\" > " + dir + "/rec.argv\n" +
		"echo \"pid=$$ listen_pid=${LISTEN_PID-unset} oom=$(cat /proc/$$/oom_score_adj)\" > " + dir + "/rec.env\n" +
		"exec " + runcPath + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// unixgram binds a datagram socket at path (removed at cleanup).
func unixgram(t *testing.T, path string) *os.File {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind %s: %v", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	t.Cleanup(func() { f.Close(); os.Remove(path) })
	return f
}

// recvUntil reads datagrams until one satisfies ok; it returns all read so far.
func recvUntil(t *testing.T, f *os.File, timeout time.Duration, ok func(string) bool) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 65536)
	f.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("%s: %v; received so far: %q", f.Name(), err, got)
		}
		got = append(got, string(buf[:n]))
		if ok(got[len(got)-1]) {
			return got
		}
	}
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }
