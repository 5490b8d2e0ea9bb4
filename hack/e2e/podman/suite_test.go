package podman

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const (
	image          = "localhost/e2e-busybox:latest"
	runcPath       = e2eutil.RuncPath
	defaultTimeout = 60 * time.Second
)

// suite is the private podman installation all tests share.
type suite struct {
	bin     string // monitor under test, absolute
	version string // its --version output
	isGo    bool   // conmon-go on the second line of version

	dir                         string // temporary root of everything below
	root, runroot, tmpdir, conf string
	driver                      string // storage driver that works on this machine
}

var (
	s          suite
	skipReason string // a prerequisite is missing: every test skips
	setupErr   error  // the suite could not be set up: every test fails
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	if skipReason = missingPrerequisite(); skipReason == "" {
		setupErr = s.setup()
		defer s.teardown()
	}
	return m.Run()
}

// need skips without the prerequisites and fails when the suite could not be set up.
func need(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != nil {
		t.Fatalf("suite setup: %v", setupErr)
	}
}

// requireConmonGo guards checks where conmon-go must do better than conmon 2.1.6.
func requireConmonGo(t *testing.T) {
	t.Helper()
	need(t)
	if !s.isGo {
		t.Skipf("needs conmon-go: %s --version does not name conmon-go", s.bin)
	}
}

func missingPrerequisite() string {
	if os.Geteuid() != 0 {
		return "needs root: podman with a private --root, runc, mounts"
	}
	for _, tool := range []string{"podman", runcPath, "busybox", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "needs " + tool + ": " + err.Error()
		}
	}
	return ""
}

func (s *suite) setup() error {
	dir, err := os.MkdirTemp("", "podman-e2e-")
	if err != nil {
		return err
	}
	s.dir = dir
	s.root = filepath.Join(dir, "root")
	s.runroot = filepath.Join(dir, "runroot")
	s.tmpdir = filepath.Join(dir, "tmp")
	s.conf = filepath.Join(dir, "containers.conf")
	root, err := e2eutil.ModuleRoot()
	if err != nil {
		return err
	}
	if s.bin, err = e2eutil.MonitorBinary(root, dir); err != nil {
		return err
	}
	out, err := exec.Command(s.bin, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", s.bin, err)
	}
	s.version = string(out)
	lines := strings.SplitN(s.version, "\n", 3)
	s.isGo = len(lines) > 1 && strings.Contains(lines[1], "conmon-go")
	if err := os.WriteFile(s.conf, []byte(e2eutil.ContainersConf(s.bin, "")), 0o644); err != nil {
		return err
	}
	if err := s.importImage(); err != nil {
		return err
	}
	// podman 4.3.1 silently falls back to the conmon in $PATH when it dislikes --version
	// (docs/engines.md §4): every check would then test the wrong monitor.
	r, err := s.do(opts{}, "info", "--format", "{{.Host.Conmon.Path}}")
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(r.stdout); got != s.bin {
		return fmt.Errorf("podman uses conmon %q instead of %s: it rejected the --version output %q\n%s", got, s.bin, s.version, r)
	}
	return nil
}

// importImage builds the busybox rootfs with hack/mkbundle.sh and imports it as the image,
// on overlay if a container runs there, else on vfs.
func (s *suite) importImage() error {
	mkbundle, err := filepath.Abs("../../mkbundle.sh")
	if err != nil {
		return err
	}
	bundle := filepath.Join(s.dir, "bundle")
	if err := e2eutil.MakeBundle(mkbundle, "", bundle); err != nil {
		return err
	}
	tarball := filepath.Join(s.dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", filepath.Join(bundle, "rootfs"), "-cf", tarball, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar rootfs: %v\n%s", err, out)
	}
	var errs []error
	for _, driver := range []string{"overlay", "vfs"} {
		s.driver = driver
		err := s.tryDriver(tarball)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("storage driver %s: %w", driver, err))
		s.wipeStore()
	}
	return errors.Join(errs...)
}

func (s *suite) tryDriver(tarball string) error {
	for _, args := range [][]string{
		{"import", "--change", `CMD ["/bin/sh"]`, tarball, image},
		{"run", "--rm", "--network", "none", image, "true"},
	} {
		r, err := s.do(opts{}, args...)
		if err != nil {
			return err
		}
		if r.code != 0 {
			return errors.New(r.String())
		}
	}
	return nil
}

// teardown removes every container, ends what they left running, unmounts and deletes the
// temporary root.
func (s *suite) teardown() {
	if s.driver != "" {
		if r, err := s.do(opts{}, "rm", "-af", "-t", "0"); err != nil || r.code != 0 {
			fmt.Fprintf(os.Stderr, "teardown: podman rm -af: %v %v\n", err, r)
		}
	}
	s.wipeStore()
	if err := os.RemoveAll(s.dir); err != nil {
		fmt.Fprintf(os.Stderr, "teardown: %v\n", err)
	}
}

// wipeStore ends processes still naming the temporary root (monitors, exit commands: all
// started by this suite's podman), unmounts what is mounted under it and deletes the store.
func (s *suite) wipeStore() {
	if s.dir == "" {
		return
	}
	mine := func(argv []string) bool { return strings.Contains(strings.Join(argv, " "), s.dir+"/") }
	deadline := time.Now().Add(10 * time.Second)
	for len(e2eutil.Processes(mine)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // exit commands finishing; nothing to wait on
	}
	for _, p := range e2eutil.Processes(mine) {
		fmt.Fprintf(os.Stderr, "teardown: killing leftover process %d: %s\n", p.Pid, strings.Join(p.Argv, " "))
		_ = unix.Kill(p.Pid, unix.SIGKILL)
	}
	for _, mp := range mountsUnder(s.dir) {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "teardown: umount %s: %v\n", mp, err)
		}
	}
	for _, d := range []string{s.root, s.runroot, s.tmpdir} {
		if err := os.RemoveAll(d); err != nil {
			fmt.Fprintf(os.Stderr, "teardown: %v\n", err)
		}
	}
}

// ---- running podman ----

type opts struct {
	timeout time.Duration // default defaultTimeout
	stdin   io.Reader
	stdout  io.Writer  // replaces the captured stdout
	extra   []*os.File // podman's fds 3, 4, ...
}

type result struct {
	args           []string
	stdout, stderr string
	code           int
	keptOpen       bool // podman exited 0 but its stdout/stderr stayed open (a descendant held them)
}

func (r result) String() string {
	return fmt.Sprintf("podman %s: exit %d\nstdout: %s\nstderr: %s",
		strings.Join(r.args, " "), r.code, clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:1000] + fmt.Sprintf("…[%d bytes]…", len(s)-2000) + s[len(s)-1000:]
	}
	return s
}

// command is podman with the isolation flags and --conmon; every podman call goes through it.
func (s *suite) command(ctx context.Context, args ...string) *exec.Cmd {
	global := []string{
		"--root", s.root, "--runroot", s.runroot, "--tmpdir", s.tmpdir,
		"--storage-driver", s.driver, "--conmon", s.bin,
	}
	cmd := exec.CommandContext(ctx, "podman", append(global, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONTAINERS_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CONTAINERS_CONF="+s.conf)
	cmd.Dir = s.dir // podman gives the monitor its cwd
	return cmd
}

// do runs podman to completion; the error is for a start failure or a timeout only.
func (s *suite) do(o opts, args ...string) (result, error) {
	if o.timeout == 0 {
		o.timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := s.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = o.stdin
	cmd.Stdout = &stdout
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	}
	cmd.Stderr = &stderr
	cmd.ExtraFiles = o.extra
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("podman %s: timed out after %v", strings.Join(args, " "), o.timeout)
	case errors.Is(err, exec.ErrWaitDelay):
		r.keptOpen = true
	case err != nil && !errors.As(err, &exitErr):
		return r, fmt.Errorf("podman %s: %w", strings.Join(args, " "), err)
	}
	r.code = cmd.ProcessState.ExitCode()
	return r, nil
}

func podman(t *testing.T, args ...string) result {
	t.Helper()
	return podmanWith(t, opts{}, args...)
}

func podmanWith(t *testing.T, o opts, args ...string) result {
	t.Helper()
	r, err := s.do(o, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if r.keptOpen {
		t.Errorf("podman %s: its stdout/stderr stayed open after it exited: the monitor, runtime or container kept podman's fds",
			strings.Join(args, " "))
	}
	return r
}

// mustPodman fails unless podman exits 0 and returns its trimmed stdout.
func mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	r := podman(t, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	return strings.TrimSpace(r.stdout)
}

// run is `podman run --network none ARGS...`.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return podman(t, append([]string{"run", "--network", "none"}, args...)...)
}

// runDetached starts a container with run -d and removes it at the end of the test.
func runDetached(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, append([]string{"-d"}, args...)...)
	if r.code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { podman(t, "rm", "-f", "-t", "0", id) })
	return id
}

func inspect(t *testing.T, ctr, format string) string {
	t.Helper()
	return mustPodman(t, "inspect", "--format", format, ctr)
}

func inspectInt(t *testing.T, ctr, format string) int {
	t.Helper()
	v := inspect(t, ctr, format)
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("inspect %s %s: %q is not a number", ctr, format, v)
	}
	return n
}

// waitUntil polls cond: the states waited for live in other processes (podman's database,
// the process table) and announce nothing to this one.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- processes and mounts ----

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// monitorsNamed lists monitor processes of the binary under test started with `-n name`
// (or a name with that prefix when prefix is set).
func monitorsNamed(name string, prefix bool) []e2eutil.Proc {
	return e2eutil.Processes(func(argv []string) bool {
		if argv[0] != s.bin {
			return false
		}
		for i := 1; i+1 < len(argv); i++ {
			if argv[i] == "-n" && (argv[i+1] == name || prefix && strings.HasPrefix(argv[i+1], name)) {
				return true
			}
		}
		return false
	})
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mps []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	return mps
}

// ---- terminals ----

// term is podman running on the slave side of a pty this test owns as its terminal.
type term struct {
	t      *testing.T
	cmd    *exec.Cmd
	master console.Console
	mu     sync.Mutex
	out    []byte
	seen   int           // expect consumed out[:seen]
	more   chan struct{} // a read appended output
	ended  chan struct{} // the master reached EOF/EIO
	exited chan struct{} // podman exited
}

// startTerm runs podman as the session leader of a new pty of rows x cols.
func startTerm(t *testing.T, rows, cols int, args ...string) *term {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatalf("new pty: %v", err)
	}
	if err := master.Resize(console.WinSize{Height: uint16(rows), Width: uint16(cols)}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open %s: %v", slavePath, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	cmd := s.command(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		cancel()
		master.Close()
		t.Fatalf("podman %v: %v", args, err)
	}
	tm := &term{t: t, cmd: cmd, master: master, more: make(chan struct{}, 1),
		ended: make(chan struct{}), exited: make(chan struct{})}
	go tm.read()
	go func() { _ = cmd.Wait(); close(tm.exited) }()
	t.Cleanup(func() {
		cancel() // kills podman if still running
		<-tm.exited
		master.Close()
	})
	return tm
}

func (tm *term) read() {
	defer close(tm.ended)
	buf := make([]byte, 32*1024)
	for {
		n, err := tm.master.Read(buf)
		if n > 0 {
			tm.mu.Lock()
			tm.out = append(tm.out, buf[:n]...)
			tm.mu.Unlock()
			select {
			case tm.more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// expect waits until want appears in the output not yet consumed and consumes up to it.
func (tm *term) expect(want string, timeout time.Duration) {
	tm.t.Helper()
	if !tm.waitFor(want, timeout) {
		tm.mu.Lock()
		defer tm.mu.Unlock()
		tm.t.Fatalf("terminal: %q not seen within %v; output so far: %q", want, timeout, clip(string(tm.out)))
	}
}

func (tm *term) waitFor(want string, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		tm.mu.Lock()
		i := bytes.Index(tm.out[tm.seen:], []byte(want))
		if i >= 0 {
			tm.seen += i + len(want)
		}
		tm.mu.Unlock()
		if i >= 0 {
			return true
		}
		select {
		case <-tm.more:
		case <-tm.ended:
			tm.mu.Lock()
			found := bytes.Contains(tm.out[tm.seen:], []byte(want))
			tm.mu.Unlock()
			if !found {
				return false
			}
		case <-timer.C:
			return false
		}
	}
}

// waitRaw waits until podman has put its terminal in raw mode: keys typed before that are
// cooked by the line discipline (echoed, held until a newline) and detach keys do nothing.
// TCGETS on a pty master reports the slave's termios.
func (tm *term) waitRaw(timeout time.Duration) {
	tm.t.Helper()
	waitUntil(tm.t, timeout, "podman to set its terminal raw", func() bool {
		tio, err := unix.IoctlGetTermios(int(tm.master.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&(unix.ICANON|unix.ECHO) == 0
	})
}

func (tm *term) send(keys string) {
	tm.t.Helper()
	if _, err := tm.master.Write([]byte(keys)); err != nil {
		tm.t.Fatalf("terminal write: %v", err)
	}
}

func (tm *term) resize(rows, cols int) {
	tm.t.Helper()
	if err := tm.master.Resize(console.WinSize{Height: uint16(rows), Width: uint16(cols)}); err != nil {
		tm.t.Fatalf("terminal resize: %v", err)
	}
}

// wait returns podman's exit code.
func (tm *term) wait(timeout time.Duration) int {
	tm.t.Helper()
	select {
	case <-tm.exited:
		return tm.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		tm.mu.Lock()
		defer tm.mu.Unlock()
		tm.t.Fatalf("podman %v still running after %v; output: %q", tm.cmd.Args, timeout, clip(string(tm.out)))
		return -1
	}
}
