package direct

// The harness: finds or builds the monitor, makes bundles, starts the monitor with the
// fds and environment an engine passes, reads the pipes, waits for files, parses k8s-file
// logs and talks to the attach socket and the ctl FIFO.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/seqpacket"
)

const refConmon = "/usr/bin/conmon"

var (
	monitorPath  string // binary under test
	runcPath     string // absolute, as engines pass it
	mkbundlePath string
	sharedRootfs string // one read-only busybox rootfs for every bundle
	skipReason   string // non-empty: every test skips with it
	conmonGo     bool   // the binary's --version second line names conmon-go
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	suite, err := e2eutil.SetUp("e2e-direct-", 4)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(suite.Tmp)
	if skipReason = suite.Skip; skipReason != "" {
		return m.Run()
	}
	runcPath, mkbundlePath, monitorPath, conmonGo = suite.Runc, suite.Mkbundle, suite.Monitor, suite.ConmonGo
	sharedRootfs = filepath.Join(suite.Template, "rootfs")
	fmt.Fprintf(os.Stderr, "monitor under test: %s (%s)\n", monitorPath, suite.Version)
	return m.Run()
}

// setup skips when the machine cannot run the tests; every test calls it first.
func setup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// requireConmonGo skips tests of behaviour that conmon 2.1.6, the reference, does not have:
// conmon-go's own (docs/differences.md) or that of later conmon releases.
func requireConmonGo(t *testing.T) {
	t.Helper()
	if !conmonGo {
		t.Skipf("conmon-go behaviour: %s --version does not name conmon-go", monitorPath)
	}
}

// ---- bundles and containers ----

type bundleOpts struct {
	tty     bool
	noPidNS bool // share the host pid namespace: the init process then dies from SIGTERM/SIGKILL it sends itself
}

// makeBundle runs hack/mkbundle.sh into dir (sharing the read-only rootfs) and applies opts.
func makeBundle(t *testing.T, dir string, o bundleOpts, args ...string) {
	t.Helper()
	var cmdArgs []string
	if o.tty {
		cmdArgs = append(cmdArgs, "-t")
	}
	cmdArgs = append(append(cmdArgs, dir), args...)
	if err := e2eutil.MakeBundle(mkbundlePath, sharedRootfs, cmdArgs...); err != nil {
		t.Fatal(err)
	}
	if o.noPidNS {
		editConfig(t, dir, func(cfg map[string]any) {
			linux := cfg["linux"].(map[string]any)
			var kept []any
			for _, ns := range linux["namespaces"].([]any) {
				if ns.(map[string]any)["type"] != "pid" {
					kept = append(kept, ns)
				}
			}
			linux["namespaces"] = kept
		})
	}
}

func editConfig(t *testing.T, bundle string, edit func(map[string]any)) {
	t.Helper()
	if err := e2eutil.EditConfig(bundle, edit); err != nil {
		t.Fatal(err)
	}
}

// container is one test container and the paths an engine would give its monitor.
type container struct {
	t          *testing.T
	id         string
	dir        string // per-test temp dir
	bundle     string
	root       string // runc --root: tests never see each other's containers
	exitDir    string
	persistDir string
	sockDir    string // short, so <sockDir>/<id>/attach fits into sun_path
	logPath    string
	pidFile    string
	conmonPid  string
}

func newContainer(t *testing.T, o bundleOpts, args ...string) *container {
	t.Helper()
	dir := t.TempDir()
	return newContainerIn(t, dir, filepath.Join(dir, "bundle"), o, args...)
}

func newContainerIn(t *testing.T, dir, bundle string, o bundleOpts, args ...string) *container {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	c := &container{
		t: t, id: e2eutil.NewID(), dir: dir, bundle: bundle,
		root:       filepath.Join(dir, "runc"),
		exitDir:    filepath.Join(dir, "exits"),
		persistDir: filepath.Join(dir, "persist"),
		sockDir:    sockDir,
		logPath:    filepath.Join(dir, "ctr.log"),
		pidFile:    filepath.Join(dir, "pidfile"),
		conmonPid:  filepath.Join(dir, "conmon.pid"),
	}
	for _, d := range []string{c.root, c.exitDir, c.persistDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeBundle(t, bundle, o, args...)
	t.Cleanup(func() {
		_, _ = c.runc("delete", "--force", c.id)
		_ = os.RemoveAll(sockDir)
	})
	return c
}

func (c *container) runc(args ...string) ([]byte, error) {
	cmd := exec.Command(runcPath, append([]string{"--root", c.root}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("runc %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

func (c *container) mustRunc(args ...string) {
	c.t.Helper()
	if _, err := c.runc(args...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *container) start() { c.t.Helper(); c.mustRunc("start", c.id) }

func (c *container) exitFile() string { return filepath.Join(c.exitDir, c.id) }

// podmanArgs is podman 4.3.1's create argv (API 1), with a private runc root; an empty
// logPath selects podman's journald driver.
func (c *container) podmanArgs(extra ...string) []string {
	logArg := "journald"
	if c.logPath != "" {
		logArg = "k8s-file:" + c.logPath
	}
	return append([]string{"--api-version", "1", "-c", c.id, "-u", c.id, "-r", runcPath,
		"-b", c.bundle, "-p", c.pidFile, "-n", "e2e-" + c.id[:8], "--exit-dir", c.exitDir,
		"--full-attach", "-l", logArg, "--log-level", "warning",
		"--runtime-arg", "--root=" + c.root, "--conmon-pidfile", c.conmonPid}, extra...)
}

// crioArgs is CRI-O 1.36's CreateContainer argv (API 0), with a private runc root and socket dir.
func (c *container) crioArgs(extra ...string) []string {
	p := e2eutil.CtrPaths{ID: c.id, Bundle: c.bundle, RuncRoot: c.root, ExitDir: c.exitDir, PersistDir: c.persistDir,
		SockDir: c.sockDir, LogPath: c.logPath, PidFile: c.pidFile, ConmonPid: c.conmonPid}
	return p.CRIOArgs(runcPath, extra...)
}

// ---- the monitor process ----

type transport = e2eutil.Transport

const (
	noPipe     = e2eutil.NoPipe
	seqPacket  = e2eutil.SeqPacket  // podman: AF_UNIX SOCK_SEQPACKET socketpair
	streamSock = e2eutil.StreamSock // CRI-O create: AF_UNIX SOCK_STREAM socketpair
	plainPipe  = e2eutil.PlainPipe  // CRI-O ExecSync sync pipe: pipe(2)
)

type monitorSpec struct {
	args   []string
	sync   transport
	start  transport
	attach bool       // --exec-attach: SOCK_SEQPACKET attach pipe
	dir    string     // cwd
	pidCue string     // -P / --conmon-pidfile path, to find and clean up the daemon
	bin    string     // "" = the monitor under test
	ctr    *container // create monitors: deleted first at cleanup, so the monitor can end
	env    []string   // added to the environment
}

type monitor struct {
	t       *testing.T
	spec    monitorSpec
	em      *e2eutil.Monitor
	cmd     *exec.Cmd
	stdout  *bytes.Buffer
	stderr  *bytes.Buffer
	syncF   *os.File
	startF  *os.File
	attachF *os.File
	done    chan struct{} // closed when the launcher (or the --sync monitor) was reaped
	started time.Time
	// panics is the monitor's CONMON_GO_PANIC_FILE: a report there fails the test
	// at cleanup unless the test took it (takePanics).
	panics string
}

func startMonitor(t *testing.T, s monitorSpec) *monitor {
	t.Helper()
	if s.bin == "" {
		s.bin = monitorPath
	}
	panics := filepath.Join(t.TempDir(), "panics")
	em, err := e2eutil.StartMonitor(e2eutil.MonitorSpec{Bin: s.bin, Args: s.args, Dir: s.dir,
		Env: append([]string{diag.EnvPanicFile + "=" + panics}, s.env...), Sync: s.sync, Start: s.start, Attach: s.attach})
	if err != nil {
		t.Fatal(err)
	}
	m := &monitor{t: t, spec: s, em: em, cmd: em.Cmd, stdout: em.Stdout, stderr: em.Stderr,
		syncF: em.SyncF, startF: em.StartF, attachF: em.AttachF, done: em.Done, started: em.Started,
		panics: panics}
	t.Cleanup(m.cleanup)
	return m
}

// cleanup ends what this test started and is still running: the launcher, then the daemon
// named by the conmon pid file (after runc delete --force it should be ending by itself).
func (m *monitor) cleanup() {
	if m.spec.ctr != nil {
		_, _ = m.spec.ctr.runc("delete", "--force", m.spec.ctr.id)
	}
	m.em.CloseFiles()
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		m.t.Errorf("monitor %d still running at the end of the test; killed", m.cmd.Process.Pid)
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	if m.spec.pidCue != "" {
		if pid, err := readPidFile(m.spec.pidCue); err == nil && pid != m.cmd.Process.Pid {
			if !e2eutil.WaitPidGone(pid, 5*time.Second) && isProcessOf(pid, m.spec.bin) {
				m.t.Errorf("daemonised monitor %d still running at the end of the test; killed", pid)
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	if report := m.takePanics(); report != "" {
		m.t.Errorf("the monitor reported an internal error (docs/lifecycle.md §13.1):\n%s", report)
	}
}

// takePanics returns the panic reports of the monitor so far and clears them.
func (m *monitor) takePanics() string {
	data, _ := os.ReadFile(m.panics)
	os.Remove(m.panics)
	return string(data)
}

func isProcessOf(pid int, bin string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	want, _ := filepath.EvalSymlinks(bin)
	return exe == want || exe == bin
}

func (m *monitor) writeStart() {
	m.t.Helper()
	if err := m.em.WriteStart(); err != nil {
		m.t.Fatal(err)
	}
}

// wait waits for the launcher (or --sync monitor) to end and returns its exit status.
func (m *monitor) wait(timeout time.Duration) int {
	m.t.Helper()
	code, err := m.em.Wait(timeout)
	if err != nil {
		m.t.Fatal(err)
	}
	return code
}

// launch is the engine's create sequence up to the first sync message: start byte,
// launcher exit 0, then the pid (or failure) message.
func (m *monitor) launch() syncMsg {
	m.t.Helper()
	if m.startF != nil {
		m.writeStart()
	}
	if code := m.wait(10 * time.Second); code != 0 {
		m.t.Fatalf("launcher exit status %d, want 0; stdout %q stderr %q", code, m.stdout.String(), m.stderr.String())
	}
	msg, err := m.readSync(30 * time.Second)
	if err != nil {
		m.t.Fatalf("sync pipe: %v", err)
	}
	return msg
}

// syncMsg is one message of the sync or attach pipe.
type syncMsg struct {
	raw  string
	keys map[string]json.RawMessage
}

func (s syncMsg) int(key string) (int, bool) { return e2eutil.SyncMsg{Keys: s.keys}.Int(key) }

func (s syncMsg) message() string { return e2eutil.SyncMsg{Keys: s.keys}.Message() }

// mustInt returns the value of the only numeric key, which must be key.
func (s syncMsg) mustInt(t *testing.T, key string) int {
	t.Helper()
	n, ok := s.int(key)
	if !ok {
		t.Fatalf("sync message %q has no integer %q", s.raw, key)
	}
	for k := range s.keys {
		if k != key && k != "message" {
			t.Fatalf("sync message %q has unexpected key %q", s.raw, k)
		}
	}
	return n
}

func (m *monitor) readSync(timeout time.Duration) (syncMsg, error) {
	msg, err := m.em.ReadSync(timeout)
	return syncMsg{msg.Raw, msg.Keys}, err
}

func (m *monitor) readAttachPipe(timeout time.Duration) (syncMsg, error) {
	msg, err := m.em.ReadAttachPipe(timeout)
	return syncMsg{msg.Raw, msg.Keys}, err
}

// attachPipeClosed reports, without waiting, whether the monitor's end of the attach pipe
// is closed.
func (m *monitor) attachPipeClosed() bool {
	rc, err := m.attachF.SyscallConn()
	if err != nil {
		m.t.Fatal(err)
	}
	var revents int16
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if _, err := unix.Poll(fds, 0); err == nil {
			revents = fds[0].Revents
		}
	})
	return revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
}

// ---- pids and files ----

func readPidFile(path string) (int, error) { return e2eutil.ReadPidFile(path) }

// inotify is a watch on a few directories; events from one inotify fd are in kernel order.
type inotify struct {
	t    *testing.T
	f    *os.File
	dirs map[int32]string // watch descriptor -> directory
}

type fsEvent struct {
	dir, name string
	mask      uint32
}

const fileAppears = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_MODIFY

func watchDirs(t *testing.T, dirs ...string) *inotify {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	w := &inotify{t: t, f: os.NewFile(uintptr(fd), "inotify"), dirs: map[int32]string{}}
	t.Cleanup(func() { w.f.Close() })
	for _, d := range dirs {
		wd, err := unix.InotifyAddWatch(fd, d, fileAppears)
		if err != nil {
			t.Fatalf("inotify %s: %v", d, err)
		}
		w.dirs[int32(wd)] = d
	}
	return w
}

// next returns the next batch of events, or an error at the deadline.
func (w *inotify) next(deadline time.Time) ([]fsEvent, error) {
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	buf := make([]byte, 64*1024)
	n, err := w.f.Read(buf)
	if err != nil {
		return nil, err
	}
	var evs []fsEvent
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		// struct inotify_event: int32 wd, uint32 mask, uint32 cookie, uint32 len, name[len]
		wd := int32(binary.NativeEndian.Uint32(buf[off:]))
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
		evs = append(evs, fsEvent{dir: w.dirs[wd], name: name, mask: mask})
		off += unix.SizeofInotifyEvent + nameLen
	}
	return evs, nil
}

// ---- k8s-file logs ----

type record struct {
	ts, stream string
	partial    bool
	content    []byte // without the \n appended to P records
}

// parseLog checks the record syntax of docs/logging.md §2 and returns the records.
func parseLog(t *testing.T, data []byte) []record {
	t.Helper()
	recs, err := e2eutil.ParseLog(data)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]record, len(recs))
	for i, r := range recs {
		out[i] = record{ts: r.TS, stream: r.Stream, partial: r.Partial, content: r.Content}
	}
	return out
}

// parseRecord parses one log line (without its final \n); content aliases line.
func parseRecord(line []byte) (record, error) {
	r, err := e2eutil.ParseRecord(line)
	return record{ts: r.TS, stream: r.Stream, partial: r.Partial, content: r.Content}, err
}

// scanLog parses a possibly huge log record by record without holding it in memory.
func scanLog(t *testing.T, path string, fn func(r record)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			t.Fatalf("%s: record longer than 1 MiB", path)
		}
		if err == io.EOF && len(line) == 0 {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v (partial last line %q)", path, err, trunc(line))
		}
		r, perr := parseRecord(line[:len(line)-1])
		if perr != nil {
			t.Fatal(perr)
		}
		fn(r)
	}
}

func trunc(b []byte) string { return e2eutil.Trunc(b) }

// joined reassembles one stream from its P/F records.
func joined(recs []record, stream string) []byte {
	var out []byte
	for _, r := range recs {
		if r.stream == stream {
			out = append(out, r.content...)
		}
	}
	return out
}

// masked renders one stream's records with the timestamps masked, for golden comparisons.
func masked(recs []record, stream string) string {
	var b strings.Builder
	for _, r := range recs {
		if r.stream != stream {
			continue
		}
		tag := "F"
		if r.partial {
			tag = "P"
		}
		fmt.Fprintf(&b, "TS %s %s %q\n", r.stream, tag, r.content)
	}
	return b.String()
}

func readLog(t *testing.T, path string) []record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseLog(t, data)
}

// ---- attach socket and ctl ----

// dialPodman connects like podman: O_PATH fd on <bundle>/attach, connect to /proc/self/fd/<n>.
func dialPodman(t *testing.T, bundle string) *net.UnixConn {
	t.Helper()
	pfd, err := unix.Open(filepath.Join(bundle, "attach"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open attach O_PATH: %v", err)
	}
	defer unix.Close(pfd)
	sfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(sfd, &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d", pfd)}); err != nil {
		unix.Close(sfd)
		t.Fatalf("connect attach socket: %v", err)
	}
	f := os.NewFile(uintptr(sfd), "attach")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

// dialCRIO connects like CRI-O: net.DialUnix("unixpacket", "<socket dir>/<cuuid>/attach").
func dialCRIO(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// attachReader accumulates frames read from one attach connection.
type attachReader struct {
	t        *testing.T
	c        *net.UnixConn
	out, err bytes.Buffer
	maxFrame int
	eof      bool
	buf      []byte
}

func newAttachReader(t *testing.T, c *net.UnixConn) *attachReader {
	return &attachReader{t: t, c: c, buf: make([]byte, 65536)}
}

// readUntil reads frames until cond holds, EOF, or the timeout (a test failure).
func (r *attachReader) readUntil(cond func() bool, timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	_ = r.c.SetReadDeadline(deadline)
	for !cond() {
		if r.eof {
			r.t.Fatalf("attach stream ended; stdout %q stderr %q", trunc(r.out.Bytes()), trunc(r.err.Bytes()))
		}
		r.readFrame()
	}
}

// readToEOF reads until the monitor closes the connection.
func (r *attachReader) readToEOF(timeout time.Duration) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(timeout))
	for !r.eof {
		r.readFrame()
	}
}

func (r *attachReader) readFrame() {
	r.t.Helper()
	n, err := seqpacket.ReadPacket(r.c, r.buf)
	if n == 0 && (err == nil || err == io.EOF || errors.Is(err, unix.ECONNRESET)) {
		r.eof = true
		return
	}
	if err != nil {
		r.t.Fatalf("attach read: %v; so far stdout %q stderr %q", err, trunc(r.out.Bytes()), trunc(r.err.Bytes()))
	}
	if n > r.maxFrame {
		r.maxFrame = n
	}
	switch r.buf[0] {
	case 2:
		r.out.Write(r.buf[1:n])
	case 3:
		r.err.Write(r.buf[1:n])
	default:
		r.t.Fatalf("attach frame with stream id %d", r.buf[0])
	}
}

// writeCtl writes one line to <bundle>/ctl the way podman does (O_NONBLOCK open: a missing
// reader is an error, not a hang).
func writeCtl(t *testing.T, bundle, line string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(bundle, "ctl"), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open ctl: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatalf("write ctl: %v", err)
	}
}

// ---- exec process specs ----

func writeProcessSpec(t *testing.T, path string, tty bool, args ...string) {
	t.Helper()
	if err := e2eutil.WriteProcessSpec(path, tty, args...); err != nil {
		t.Fatal(err)
	}
}

// pidAlive: the process exists and has not exited (a zombie counts as gone).
func pidAlive(pid int) bool { return e2eutil.PidAlive(pid) }

// waitLog waits (inotify on the log directory, bounded) until the reassembled stream
// contains want, and returns the records.
func waitLog(t *testing.T, path, stream, want string, timeout time.Duration) []record {
	t.Helper()
	w := watchDirs(t, filepath.Dir(path))
	deadline := time.Now().Add(timeout)
	for {
		if data, err := os.ReadFile(path); err == nil && bytes.HasSuffix(data, []byte("\n")) {
			recs := parseLog(t, data)
			if strings.Contains(string(joined(recs, stream)), want) {
				return recs
			}
		}
		if _, err := w.next(deadline); err != nil {
			data, _ := os.ReadFile(path)
			t.Fatalf("waiting for %q on %s in %s: %v; log: %q", want, stream, path, err, trunc(data))
		}
	}
}
