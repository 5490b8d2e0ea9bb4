package stress

// The harness: groups of containers sharing an exit dir, runc root and socket dir; bundles
// written from the template; the CRI-O create sequence; the end of a container checked the
// way an engine sees it; and the /proc figures of monitors.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// group is the directories an engine shares between its containers.
type group struct {
	dir   string // per-container directories go below it
	exits string // --exit-dir
	root  string // runc --root
	sock  string // --socket-dir-path: short, so <sock>/<id>/attach fits into sun_path
	tmp   string // TMPDIR of the monitors: console sockets
}

func newGroup(t *testing.T) *group {
	t.Helper()
	dir := t.TempDir()
	sock, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	g := &group{dir: dir, exits: filepath.Join(dir, "exits"), root: filepath.Join(dir, "runc"), sock: sock, tmp: filepath.Join(dir, "tmp")}
	for _, d := range []string{g.exits, g.root, g.tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Whatever a failed test left running goes first, so that its monitor ends.
		if out, err := exec.Command(runcPath, "--root", g.root, "list", "-q").Output(); err == nil {
			for _, id := range strings.Fields(string(out)) {
				_ = exec.Command(runcPath, "--root", g.root, "delete", "--force", id).Run()
			}
		}
		_ = os.RemoveAll(sock)
	})
	return g
}

// checkEmpty fails the test if the group's shared directories hold anything: exit files are
// removed as they are read (as CRI-O does), links and console sockets by the monitors.
func (g *group) checkEmpty(t *testing.T) {
	t.Helper()
	for _, d := range []string{g.exits, g.sock, g.tmp} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, e := range entries {
			t.Errorf("left behind: %s", filepath.Join(d, e.Name()))
		}
	}
	if out, err := exec.Command(runcPath, "--root", g.root, "list", "-q").Output(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("runc list: %q (%v), want no container", out, err)
	}
	for _, p := range processesMentioning(g.dir) {
		t.Errorf("still running: %s", p)
	}
}

// processesMentioning lists the processes whose command line contains s: monitors and
// runtimes of a group name its directories.
func processesMentioning(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte(s)) {
			found = append(found, "pid "+e.Name()+": "+string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	return found
}

// ctr is one container and the paths its engine gives the monitor.
type ctr struct {
	e2eutil.CtrPaths
	g   *group
	dir string
	tty bool
	bin string       // the monitor that created it
	mon *monitorProc // nil until asked for
	// CPU time of its launcher and (once ended) its monitor, without their children.
	launcherCPU time.Duration
}

// strict: the monitor is conmon-go, which removes everything it created but the FIFOs.
func (c *ctr) strict() bool { return c.bin == monitorPath && conmonGo }

// newCtr writes a bundle running args (with a terminal when tty); edit, if given, changes
// its config.
func (g *group) newCtr(tty bool, edit func(cfg map[string]any), args ...string) (*ctr, error) {
	id := e2eutil.NewID()
	dir := filepath.Join(g.dir, id[:16])
	c := &ctr{g: g, dir: dir, tty: tty, CtrPaths: e2eutil.CtrPaths{ID: id, Bundle: filepath.Join(dir, "bundle"),
		RuncRoot: g.root, ExitDir: g.exits, PersistDir: filepath.Join(dir, "persist"), SockDir: g.sock,
		LogPath: filepath.Join(dir, "ctr.log"), PidFile: filepath.Join(dir, "pid"), ConmonPid: filepath.Join(dir, "conmon.pid")}}
	for _, d := range []string{c.Bundle, c.PersistDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	var cfg map[string]any
	if err := json.Unmarshal(template, &cfg); err != nil {
		return nil, err
	}
	process := cfg["process"].(map[string]any)
	process["args"] = args
	process["terminal"] = tty
	if edit != nil {
		edit(cfg)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return c, os.WriteFile(filepath.Join(c.Bundle, "config.json"), data, 0o644)
}

func (g *group) mustCtr(t *testing.T, tty bool, edit func(cfg map[string]any), args ...string) *ctr {
	t.Helper()
	c, err := g.newCtr(tty, edit, args...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hostPidNS shares the host's pid namespace: the container process is then an ordinary
// process that signals with default actions kill (a namespace's init ignores them).
func hostPidNS(cfg map[string]any) {
	linux := cfg["linux"].(map[string]any)
	linux["namespaces"] = slices.DeleteFunc(linux["namespaces"].([]any), func(ns any) bool {
		return ns.(map[string]any)["type"] == "pid"
	})
}

// spec is how the container's monitor is started: CRI-O's create argv plus extra.
func (c *ctr) spec(bin string, extra ...string) e2eutil.MonitorSpec {
	if c.tty {
		extra = append(extra, "-t")
	}
	return e2eutil.MonitorSpec{Bin: bin, Args: c.CRIOArgs(runcPath, extra...), Dir: c.Bundle,
		Env: []string{"TMPDIR=" + c.g.tmp}, Sync: e2eutil.StreamSock, Start: e2eutil.StreamSock}
}

// create runs CRI-O's create sequence (start byte, launcher exit 0, the pid on the sync
// pipe) and returns the container pid and the time from the launcher's fork to the pid.
// The engine's fds are closed on return.
func (c *ctr) create(s e2eutil.MonitorSpec) (int, time.Duration, error) {
	c.bin = s.Bin
	m, err := e2eutil.StartMonitor(s)
	if err != nil {
		return 0, 0, err
	}
	defer m.CloseFiles()
	if err := m.WriteStart(); err != nil {
		return 0, 0, err
	}
	if code, err := m.Wait(20 * time.Second); err != nil || code != 0 {
		return 0, 0, fmt.Errorf("launcher exit status %d (%v); stderr %q", code, err, m.Stderr.String())
	}
	c.launcherCPU = m.Cmd.ProcessState.UserTime() + m.Cmd.ProcessState.SystemTime()
	msg, err := m.ReadSync(60 * time.Second)
	took := time.Since(m.Started)
	if err != nil {
		return 0, took, fmt.Errorf("sync pipe: %w", err)
	}
	pid, ok := msg.Int("pid")
	if !ok || pid <= 0 {
		return 0, took, fmt.Errorf("create failed: sync message %q", msg.Raw)
	}
	return pid, took, nil
}

func (c *ctr) runc(args ...string) error {
	out, err := exec.Command(runcPath, append([]string{"--root", c.RuncRoot}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (c *ctr) mustRunc(t *testing.T, args ...string) {
	t.Helper()
	if err := c.runc(args...); err != nil {
		t.Fatal(err)
	}
}

// monitor returns c's daemonised monitor, named by the conmon pid file.
func (c *ctr) monitor() (*monitorProc, error) {
	if c.mon == nil {
		pid, err := e2eutil.ReadPidFile(c.ConmonPid)
		if err != nil {
			return nil, err
		}
		if c.mon, err = openMonitor(pid); err != nil {
			return nil, err
		}
	}
	return c.mon, nil
}

func (c *ctr) exitFile() string { return filepath.Join(c.ExitDir, c.ID) }

// finish is the engine's side of a container's end: both exit files hold want, the
// monitor ends (and is reaped), the container is deleted, and of what the monitor created
// only the ctl and winsz FIFOs are left in the bundle (the engine removes them, as it
// removes the exit file). It removes the container's directory when all is well.
func (c *ctr) finish(want string) error {
	var errs []error
	got, err := e2eutil.AwaitFile(c.exitFile(), 20*time.Second, e2eutil.NonEmpty)
	if err != nil || string(got) != want {
		errs = append(errs, fmt.Errorf("exit file %q (%v), want %q", got, err, want))
	}
	if p, err := os.ReadFile(filepath.Join(c.PersistDir, "exit")); err != nil || string(p) != want {
		errs = append(errs, fmt.Errorf("persist exit file %q (%v), want %q", p, err, want))
	}
	if err := c.endMonitor(); err != nil {
		errs = append(errs, err)
	}
	if err := c.runc("delete", "--force", c.ID); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(c.exitFile()); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	if err := c.bundleLeftovers(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// abandon cleans up after a failure: the container is deleted and its monitor, if it was
// started, reaped.
func (c *ctr) abandon(err error) error {
	_ = c.runc("delete", "--force", c.ID)
	if _, perr := os.Stat(c.ConmonPid); perr == nil {
		err = errors.Join(err, c.endMonitor())
	}
	return err
}

// endMonitor waits for c's monitor to end and reaps it.
func (c *ctr) endMonitor() error {
	m, err := c.monitor()
	if err != nil {
		return err
	}
	return m.end()
}

// monitorProc is a daemonised monitor, re-parented to this process, held by a pidfd so
// that a recycled pid is never waited for or signalled.
type monitorProc struct {
	pid int
	fd  int   // -1 once reaped
	cpu int64 // clock ticks it used (its children not included), known once reaped
}

func openMonitor(pid int) (*monitorProc, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open monitor %d: %w", pid, err)
	}
	return &monitorProc{pid: pid, fd: fd}, nil
}

// end waits for the monitor to exit and reaps it; one still running after 10 s is
// killed and reported. Later calls do nothing.
func (m *monitorProc) end() error {
	_, err := m.wait()
	return err
}

// wait is end returning the wait status (0 when the monitor was no child of ours).
func (m *monitorProc) wait() (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	if m.fd < 0 {
		return ws, nil
	}
	var err error
	if !pidfdReadable(m.fd, 10*time.Second) {
		err = fmt.Errorf("monitor %d still running after 10 s; killed", m.pid)
		_ = unix.PidfdSendSignal(m.fd, unix.SIGKILL, nil, 0)
		pidfdReadable(m.fd, 5*time.Second)
	}
	// The pid cannot have been reused: an exited child stays until reaped, and the
	// pidfd's process is gone only then. The zombie still shows its own CPU time.
	if st, err := readStat(m.pid); err == nil {
		m.cpu = st.ticks
	}
	if _, werr := unix.Wait4(m.pid, &ws, unix.WNOHANG, nil); werr != nil && werr != unix.ECHILD {
		err = errors.Join(err, fmt.Errorf("reap monitor %d: %w", m.pid, werr))
	}
	unix.Close(m.fd)
	m.fd = -1
	return ws, err
}

// alive reports whether the monitor has not exited.
func (m *monitorProc) alive() bool { return m.fd >= 0 && !pidfdReadable(m.fd, 0) }

// pidfdReadable waits up to timeout for the process behind fd to exit.
func pidfdReadable(fd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ms := max(int(time.Until(deadline).Milliseconds()), 0)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err != unix.EINTR {
			return err == nil && n > 0
		}
	}
}

// bundleLeftovers reports files in the bundle other than config.json and the FIFOs the
// monitor leaves for the engine, and a socket-dir link that was not removed.
func (c *ctr) bundleLeftovers() error {
	entries, err := os.ReadDir(c.Bundle)
	if err != nil {
		return err
	}
	var left []string
	for _, e := range entries {
		switch e.Name() {
		case "config.json", "ctl", "winsz":
		default:
			left = append(left, e.Name())
		}
	}
	link := filepath.Join(c.SockDir, c.ID)
	if !c.strict() {
		_ = os.Remove(link) // conmon 2.1 leaves it for the engine
	} else if _, err := os.Lstat(link); !os.IsNotExist(err) {
		left = append(left, "socket-dir link "+link)
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind in bundle %s: %v", c.Bundle, left)
	}
	return nil
}

// run creates and starts c with the monitor under test, and returns the monitor.
func (c *ctr) run(t *testing.T, extra ...string) *monitorProc {
	t.Helper()
	if _, _, err := c.create(c.spec(monitorPath, extra...)); err != nil {
		t.Fatal(err)
	}
	return c.startCreated(t)
}

// startCreated starts a created container and returns its monitor. Should the test end
// early, the container is deleted and the monitor reaped.
func (c *ctr) startCreated(t *testing.T) *monitorProc {
	t.Helper()
	mon, err := c.monitor()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.runc("delete", "--force", c.ID)
		if err := mon.end(); err != nil {
			t.Error(err)
		}
	})
	c.mustRunc(t, "start", c.ID)
	return mon
}

// waitLog waits until the container's stdout (or stderr), reassembled from the log,
// contains want, and returns it.
func (c *ctr) waitLog(t *testing.T, stream, want string, timeout time.Duration) string {
	t.Helper()
	var text string
	_, err := e2eutil.AwaitFile(c.LogPath, timeout, func(data []byte) bool {
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			if recs, err := e2eutil.ParseLog(data[:i+1]); err == nil {
				text = string(e2eutil.Joined(recs, stream))
			}
		}
		return strings.Contains(text, want)
	})
	if err != nil {
		t.Fatalf("waiting for %q on %s: %v", want, stream, err)
	}
	return text
}

// dialAttach connects like CRI-O: <socket dir>/<cuuid>/attach.
func (c *ctr) dialAttach() (*net.UnixConn, error) {
	path := filepath.Join(c.SockDir, c.ID, "attach")
	return net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
}

// ---- /proc ----

// clockTick is the unit of CPU times in /proc: USER_HZ, 100 on every Linux.
const clockTick = 10 * time.Millisecond

// procStat is what /proc/<pid>/stat says about a process.
type procStat struct {
	comm  string
	state byte
	ppid  int
	ticks int64 // utime + stime of all its threads, in clock ticks
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// pid (comm) state ppid ... ; comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	f := strings.Fields(string(data[end+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	s := procStat{comm: string(data[open+1 : end]), state: f[0][0]}
	s.ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	s.ticks = utime + stime
	return s, nil
}

func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	s, err := readStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return s.ticks
}

// footprint is a monitor's fd count and memory.
type footprint struct{ fds, rssKB, anonKB int }

func (f footprint) String() string {
	return fmt.Sprintf("%d fds, RSS %d kB, anonymous %d kB", f.fds, f.rssKB, f.anonKB)
}

func measure(t *testing.T, pid int) footprint {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	entries, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	f := footprint{fds: len(entries)}
	for _, kv := range []struct {
		key string
		v   *int
	}{{"VmRSS:", &f.rssKB}, {"RssAnon:", &f.anonKB}} {
		s, err := e2eutil.ProcValue(dir+"/status", kv.key)
		if err == nil {
			*kv.v, err = strconv.Atoi(s)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// strays lists the children of this process: every launcher and runc command has been
// waited for when it is called, so each child is a process a monitor left behind, or a
// monitor (re-parented here) that was left behind itself; zombies included.
func strays() []string {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	var left []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil && s.ppid == self {
			cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			left = append(left, fmt.Sprintf("pid %d (%s) state %c: %s", pid, s.comm, s.state, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	return left
}

// checkNoStrays fails the test if a process was left behind; only a test that runs alone
// (not parallel) may call it.
func checkNoStrays(t *testing.T) {
	t.Helper()
	for _, s := range strays() {
		t.Errorf("left behind: %s", s)
	}
}
