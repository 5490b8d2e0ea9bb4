package main

// Driving a monitor the way CRI-O does (engines.md §3.2, §3.3): argv, environment,
// _OCI_SYNCPIPE/_OCI_STARTPIPE on fds 3/4, the start byte, the sync message, runc start,
// the exit file, runc delete --force.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CRI-O's default monitor_env.
const monitorPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type monitor struct {
	label string // "monitor" or "reference" column
	path  string
	exe   string // path with symlinks resolved, compared with /proc/<pid>/exe
}

type env struct {
	work     string // private temporary directory
	runc     string
	mkbundle string
	rootfs   string // shared read-only busybox rootfs
	sockDir  string // --socket-dir-path

	mu     sync.Mutex
	seq    int
	tpls   map[string]string // workload name -> template config.json
	live   map[*run]bool     // containers not yet destroyed, for the final cleanup
	closed bool              // cleanup has begun: create nothing more
}

// run is one container under one monitor (or bare runc).
type run struct {
	id      string
	dir     string // holds everything of this run
	root    string // private runc --root
	bundle  string
	exitDir string
	log     string   // k8s-file log
	logArg  string   // -l value; "" means the k8s-file log
	mon     *monitor // nil: bare runc
	monPid  int      // from the -P pid file
}

func newEnv(runc, mkbundle string) (*env, error) {
	work, err := os.MkdirTemp("", "conmon-bench.")
	if err != nil {
		return nil, err
	}
	e := &env{work: work, runc: runc, mkbundle: mkbundle, sockDir: filepath.Join(work, "sock"),
		tpls: map[string]string{}, live: map[*run]bool{}}
	if err := os.Mkdir(e.sockDir, 0o700); err != nil {
		return e, err
	}
	// The first bundle carries the rootfs every later bundle points at.
	base := filepath.Join(work, "base")
	if out, err := exec.Command("sh", mkbundle, base).CombinedOutput(); err != nil {
		return e, fmt.Errorf("%s %s: %v: %s", mkbundle, base, err, strings.TrimSpace(string(out)))
	}
	e.rootfs = filepath.Join(base, "rootfs")
	return e, nil
}

// template returns the config.json of a workload, built once with the shared rootfs.
func (e *env) template(name string, args ...string) (string, error) {
	if p, ok := e.tpls[name]; ok {
		return p, nil
	}
	dir := filepath.Join(e.work, "tpl-"+name)
	cmd := exec.Command("sh", append([]string{e.mkbundle, dir}, args...)...)
	cmd.Env = append(os.Environ(), "ROOTFS="+e.rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkbundle %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	p := filepath.Join(dir, "config.json")
	e.tpls[name] = p
	return p, nil
}

// newRun prepares a private directory, runc root and (tpl != "") bundle for one run.
func (e *env) newRun(mon *monitor, tpl string) (*run, error) {
	e.mu.Lock()
	e.seq++
	id := fmt.Sprintf("bench-%07d-%d", os.Getpid(), e.seq) // journald needs more than 12 bytes
	e.mu.Unlock()
	dir := filepath.Join(e.work, id)
	r := &run{id: id, dir: dir, root: filepath.Join(dir, "runc"), bundle: filepath.Join(dir, "bundle"),
		exitDir: filepath.Join(dir, "exits"), log: filepath.Join(dir, "ctr.log"), mon: mon}
	for _, d := range []string{r.root, r.bundle, r.exitDir, filepath.Join(dir, "persist")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if tpl == "" {
		return r, nil
	}
	cfg, err := os.ReadFile(tpl)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(r.bundle, "config.json"), cfg, 0o600); err != nil {
		return nil, err
	}
	return r, nil
}

// track records a run that is about to create a container, so that cleanup finds it.
func (e *env) track(r *run) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("bench interrupted")
	}
	e.live[r] = true
	return nil
}

// runcCmd runs runc with the run's root. Its output goes to a file, not a pipe: a
// created container inherits runc's stdio and would hold a pipe open.
func (e *env) runcCmd(r *run, args ...string) error {
	out, err := os.CreateTemp(r.dir, "runc.out.")
	if err != nil {
		return err
	}
	defer func() {
		out.Close()
		os.Remove(out.Name())
	}()
	cmd := exec.Command(e.runc, append([]string{"--root", r.root}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("runc %s: %v: %s", args[0], err, strings.TrimSpace(string(b)))
	}
	return nil
}

// bareCreate times `runc create` alone: the floor of the create latency.
func (e *env) bareCreate(r *run) (time.Duration, error) {
	if err := e.track(r); err != nil {
		return 0, err
	}
	t0 := time.Now()
	err := e.runcCmd(r, "create", "--bundle", r.bundle, "--pid-file", filepath.Join(r.dir, "pidfile"), r.id)
	return time.Since(t0), err
}

// socketpair returns our end (non-blocking, so deadlines work) and the monitor's end.
func socketpair(name string) (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair %s: %w", name, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair %s: %w", name, err)
	}
	return os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name+"-child"), nil
}

// startMonitor runs the monitor with fds 3 (sync, given) and 4 (start, a socketpair),
// writes the start byte and waits for the launcher to exit, as CRI-O does.
// A --sync monitor is not a launcher: it exits with the exec's status, which is accepted.
func (e *env) startMonitor(r *run, syncEnd *os.File, args []string, isSync bool) error {
	start, startChild, err := socketpair("start")
	if err != nil {
		return err
	}
	defer start.Close()
	out, err := os.Create(filepath.Join(r.dir, "monitor.out"))
	if err != nil {
		startChild.Close()
		return err
	}
	defer out.Close()
	cmd := exec.Command(r.mon.path, args...)
	cmd.Env = []string{monitorPATH, "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"}
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = out, out // files, so Wait does not wait for the daemon
	cmd.ExtraFiles = []*os.File{syncEnd, startChild}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	startChild.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", r.mon.path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if _, err := start.Write([]byte{0}); err != nil {
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("start byte: %w", err)
	}
	// A launcher that never exits must not hang the bench; the daemon it may have
	// forked left the process group (setsid) and is found through -P later.
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = errors.New("did not exit within 30 s")
	}
	if err != nil && !isSync {
		return fmt.Errorf("launcher: %w%s", err, r.monitorOutput())
	}
	return nil
}

func (r *run) monitorOutput() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "monitor.out"))
	if s := strings.TrimSpace(string(b)); s != "" {
		if len(s) > 300 {
			s = s[len(s)-300:]
		}
		return " (monitor output: " + s + ")"
	}
	return ""
}

// syncMsg is one message of the sync pipe, API 0 (protocol.md §3.2).
type syncMsg struct {
	Pid      *int   `json:"pid"`
	ExitCode *int   `json:"exit_code"`
	Message  string `json:"message"`
}

func readSync(f *os.File, timeout time.Duration) (syncMsg, error) {
	var m syncMsg
	f.SetReadDeadline(time.Now().Add(timeout))
	if err := json.NewDecoder(f).Decode(&m); err != nil {
		return m, fmt.Errorf("sync pipe: %w", err)
	}
	return m, nil
}

// create starts a container under the monitor with CRI-O's create argv and returns the
// time from the monitor's exec to the container pid on the sync pipe.
func (e *env) create(r *run) (time.Duration, error) {
	syncEnd, syncChild, err := socketpair("sync")
	if err != nil {
		return 0, err
	}
	defer syncEnd.Close()
	logArg := r.log
	if r.logArg != "" {
		logArg = r.logArg
	}
	args := []string{"-b", r.bundle, "-c", r.id, "--exit-dir", r.exitDir, "-l", logArg,
		"--log-level", "info", "-n", "k8s_bench_" + r.id, "-P", filepath.Join(r.dir, "conmon-pidfile"),
		"-p", filepath.Join(r.dir, "pidfile"), "--persist-dir", filepath.Join(r.dir, "persist"),
		"-r", e.runc, "--runtime-arg", "--root=" + r.root, "--socket-dir-path", e.sockDir, "-u", r.id}
	if err := e.track(r); err != nil {
		syncChild.Close()
		return 0, err
	}
	t0 := time.Now()
	err = e.startMonitor(r, syncChild, args, false)
	syncChild.Close()
	if err != nil {
		r.readMonPid() // so that destroy can kill a daemon left behind
		return 0, err
	}
	m, err := readSync(syncEnd, 30*time.Second)
	d := time.Since(t0)
	pidErr := r.readMonPid()
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, r.monitorOutput())
	}
	if m.Pid == nil || *m.Pid <= 0 {
		return 0, fmt.Errorf("create failed: %+v%s", m, r.monitorOutput())
	}
	return d, pidErr
}

// readMonPid reads the monitor's pid from the -P pid file.
func (r *run) readMonPid() error {
	b, err := os.ReadFile(filepath.Join(r.dir, "conmon-pidfile"))
	if err != nil {
		return fmt.Errorf("monitor pid file: %w", err)
	}
	if _, err := fmt.Sscan(string(b), &r.monPid); err != nil {
		return fmt.Errorf("monitor pid file %q: %w", b, err)
	}
	return nil
}

// execSync runs `true` in the container of target, CRI-O ExecSync style: --sync, no
// --api-version, sync on the write end of a pipe(2), read after the monitor exited.
func (e *env) execSync(r, target *run) (time.Duration, error) {
	spec := filepath.Join(r.dir, "exec-process")
	if err := os.WriteFile(spec, []byte(`{"terminal":false,"user":{"uid":0,"gid":0},"args":["true"],`+
		`"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/"}`), 0o600); err != nil {
		return 0, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	unix.SetNonblock(p[0], true)
	rd, wr := os.NewFile(uintptr(p[0]), "sync"), os.NewFile(uintptr(p[1]), "sync-child")
	defer rd.Close()
	args := []string{"-c", target.id, "-n", "k8s_bench_" + target.id, "-r", e.runc,
		"-p", filepath.Join(r.dir, "pidfile"), "-e", "-l", r.log, "--socket-dir-path", e.sockDir,
		"--log-level", "info", "--sync", "--log-global-size-max", "16777216", "-T", "10",
		"--exec-process-spec", spec, "--runtime-arg", "--root=" + target.root}
	t0 := time.Now()
	err := e.startMonitor(r, wr, args, true)
	wr.Close()
	if err != nil {
		return 0, err
	}
	m, err := readSync(rd, 10*time.Second)
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, r.monitorOutput())
	}
	if m.ExitCode == nil || *m.ExitCode != 0 {
		return 0, fmt.Errorf("exec failed: %+v%s", m, r.monitorOutput())
	}
	return d, nil
}

// waitFile polls for path (the exit file, a log marker) until it exists and ok accepts
// it, or the timeout.
func waitFile(path string, timeout time.Duration, ok func(*os.File) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if f, err := os.Open(path); err == nil {
			good := ok == nil || ok(f)
			f.Close()
			if good {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %v", path, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// endsWith reports whether the file ends with suffix.
func endsWith(suffix string) func(*os.File) bool {
	buf := make([]byte, len(suffix))
	return func(f *os.File) bool {
		fi, err := f.Stat()
		if err != nil || fi.Size() < int64(len(suffix)) {
			return false
		}
		n, _ := f.ReadAt(buf, fi.Size()-int64(len(suffix)))
		return n == len(suffix) && string(buf) == suffix
	}
}

func (r *run) exitFile() string { return filepath.Join(r.exitDir, r.id) }

// monitorAlive reports whether monPid still runs our monitor binary (not a zombie, not
// a recycled pid).
func (r *run) monitorAlive() bool {
	if r.mon == nil || r.monPid <= 0 {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.monPid))
	return err == nil && exe == r.mon.exe
}

// destroy kills the container, lets the monitor write its exit file, deletes the
// container and removes the run's files; a monitor still running afterwards is killed.
func (e *env) destroy(r *run) {
	e.mu.Lock()
	if !e.live[r] {
		e.mu.Unlock()
		return
	}
	delete(e.live, r)
	e.mu.Unlock()
	e.runcCmd(r, "kill", r.id, "KILL")
	if r.monitorAlive() {
		waitFile(r.exitFile(), 5*time.Second, nil)
		for i := 0; i < 250 && r.monitorAlive(); i++ {
			time.Sleep(2 * time.Millisecond)
		}
	}
	e.runcCmd(r, "delete", "--force", r.id)
	if r.monitorAlive() {
		unix.Kill(r.monPid, unix.SIGKILL)
	}
	os.RemoveAll(r.dir)
}

// cleanup destroys every run still alive and removes the work directory.
func (e *env) cleanup() {
	e.mu.Lock()
	e.closed = true
	runs := make([]*run, 0, len(e.live))
	for r := range e.live {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		e.destroy(r)
	}
	if err := os.RemoveAll(e.work); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
	}
}
