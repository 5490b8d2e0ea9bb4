package main

// Driving a monitor the way CRI-O does (docs/engines.md §3.2, §3.3): argv, environment,
// _OCI_SYNCPIPE/_OCI_STARTPIPE on fds 3/4, the start byte, the sync message, runc start,
// the exit file, runc delete --force.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
	"github.com/conmon-go/conmon-go/seqpacket"
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
	runcExe  string // runc with its links resolved, as /proc/<pid>/exe shows it
	mkbundle string
	rootfs   string // shared read-only busybox rootfs
	sockDir  string // --socket-dir-path
	// The bench runs in benchCgroup; launchers started with a pause are moved into
	// monitorCgroup, a child of it, in every hierarchy, as podman does with cgroupfs.
	// Both are nil if they could not be made.
	benchCgroup, monitorCgroup *e2eutil.Placement

	mu     sync.Mutex
	seq    int
	tpls   map[string]string // workload name -> template config.json
	live   map[*run]bool     // containers not yet destroyed, for the final cleanup
	closed bool              // interrupted or cleaned up: create nothing more
	// cleanMu serialises cleanup: a second signal cleans up while the first clean-up (or
	// the runs) may still be going.
	cleanMu sync.Mutex
}

// errInterrupted fails every run started after a signal.
var errInterrupted = errors.New("bench interrupted")

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
	mark    roundMark
	// the launcher's CPU time (ns, user and system), once it has exited
	launcherCPU int64
}

func newEnv(runc, mkbundle string) (*env, error) {
	work, err := os.MkdirTemp("", "conmon-bench.")
	if err != nil {
		return nil, err
	}
	e := &env{work: work, runc: runc, mkbundle: mkbundle, sockDir: filepath.Join(work, "sock"),
		tpls: map[string]string{}, live: map[*run]bool{}}
	if e.runcExe, err = filepath.EvalSymlinks(runc); err != nil {
		return e, err
	}
	if err := os.Mkdir(e.sockDir, 0o700); err != nil {
		return e, err
	}
	// The first bundle carries the rootfs every later bundle points at.
	base := filepath.Join(work, "base")
	if out, err := exec.Command("sh", mkbundle, base).CombinedOutput(); err != nil {
		return e, fmt.Errorf("%s %s: %v: %s", mkbundle, base, err, strings.TrimSpace(string(out)))
	}
	e.rootfs = filepath.Join(base, "rootfs")
	// The bench moves itself into a cgroup of its own, and the launchers of the pause
	// variant into a child of it, as an engine's monitor cgroup: their CPU share then
	// does not differ from that of the runs left where the bench is.
	every := func(e2eutil.Hierarchy) bool { return true }
	bench, err := e2eutil.NewPlacement(fmt.Sprintf("conmon-bench-%d", os.Getpid()), every)
	if err == nil {
		if err = bench.Move(os.Getpid()); err == nil {
			e.benchCgroup = bench
			// Made below the bench's cgroup, which NewPlacement now finds as its own.
			e.monitorCgroup, err = e2eutil.NewPlacement("conmon", every)
		} else {
			bench.Remove()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no cgroups of its own, the pause is only a pause: %v\n", err)
	}
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
	if e.closed {
		e.mu.Unlock()
		return nil, errInterrupted
	}
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
		return errInterrupted
	}
	e.live[r] = true
	return nil
}

// interrupt makes every later newRun and track fail: the figures run out quickly.
func (e *env) interrupt() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
}

func (e *env) interrupted() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
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

// socketpair returns our end (non-blocking, so deadlines work) and the monitor's end;
// typ is unix.SOCK_STREAM (CRI-O) or unix.SOCK_SEQPACKET (podman).
func socketpair(name string, typ int) (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
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

// launch is one start of a monitor by an engine.
type launch struct {
	args     []string
	sync     *os.File // the monitor's end, fd 3
	attach   *os.File // the monitor's end of --exec-attach's pipe, fd 5; nil without
	startTyp int      // socket type of the start pipe (fd 4)
	// pause between the launcher's exec and the start byte, the engine moving the
	// launcher into a cgroup (podman: cgroupfs writes or a systemd scope over D-Bus):
	// the launcher is moved into env.monitorCgroup, then the rest of the pause passes.
	// 0 writes the byte at once.
	pause  time.Duration
	isSync bool // --sync: the process started is the monitor and may exit non-zero
}

// startMonitor runs the monitor with the launch's fds, writes the start byte (after the
// pause) and waits for the launcher to exit, as the engines do. It returns the time from
// the launcher's exec to the start byte, and our end of the start pipe, still open for
// --exec-attach's second byte (the caller closes it).
func (e *env) startMonitor(r *run, l launch) (paused time.Duration, start *os.File, err error) {
	start, startChild, err := socketpair("start", l.startTyp)
	if err != nil {
		return 0, nil, err
	}
	defer func() {
		if err != nil {
			start.Close()
		}
	}()
	out, err := os.Create(filepath.Join(r.dir, "monitor.out"))
	if err != nil {
		startChild.Close()
		return 0, nil, err
	}
	defer out.Close()
	cmd := exec.Command(r.mon.path, l.args...)
	cmd.Env = []string{monitorPATH, "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"}
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = out, out // files, so Wait does not wait for the daemon
	cmd.ExtraFiles = []*os.File{l.sync, startChild}
	if l.attach != nil {
		cmd.Env = append(cmd.Env, "_OCI_ATTACHPIPE=5")
		cmd.ExtraFiles = append(cmd.ExtraFiles, l.attach)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.mark = roundMark{started: monotonicNow()}
	t0 := time.Now()
	err = cmd.Start()
	startChild.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", r.mon.path, err)
	}
	r.mark.launcher = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if l.pause > 0 {
		if e.monitorCgroup != nil {
			if err := e.monitorCgroup.Move(cmd.Process.Pid); err != nil {
				cmd.Process.Kill()
				<-done
				return 0, nil, fmt.Errorf("cgroup move: %w", err)
			}
		}
		time.Sleep(l.pause - time.Since(t0))
		r.mark.byteAt = monotonicNow()
	}
	paused = time.Since(t0)
	if _, err := start.Write([]byte{0}); err != nil {
		cmd.Process.Kill()
		<-done
		return 0, nil, fmt.Errorf("start byte: %w", err)
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
	if err != nil && !l.isSync {
		return 0, nil, fmt.Errorf("launcher: %w%s", err, r.monitorOutput())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.launcherCPU = ru.Utime.Nano() + ru.Stime.Nano()
	}
	return paused, start, nil
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

// syncMsg is one message of the sync pipe: API 0 (docs/protocol.md §3.2) or, "data", API 1.
type syncMsg struct {
	Pid      *int   `json:"pid"`
	Data     *int   `json:"data"`
	ExitCode *int   `json:"exit_code"`
	Message  string `json:"message"`
}

// packetReader reads the engine's end of a sync or attach pipe: datagram by datagram
// through seqpacket.ReadPacket, which a plain read of a non-blocking SOCK_SEQPACKET
// socket needs to see a message the monitor wrote just before it closed the pipe (a
// stream socket or pipe is read as it is).
type packetReader struct{ f *os.File }

func (r packetReader) Read(p []byte) (int, error) { return seqpacket.ReadPacket(r.f, p) }

// readSync decodes the next message of a sync or attach pipe.
func readSync(f *os.File, timeout time.Duration) (syncMsg, error) {
	var m syncMsg
	f.SetReadDeadline(time.Now().Add(timeout))
	if err := json.NewDecoder(packetReader{f}).Decode(&m); err != nil {
		return m, fmt.Errorf("sync pipe: %w", err)
	}
	return m, nil
}

// create starts a container under the monitor with CRI-O's create argv and returns the
// time from the monitor's exec to the container pid on the sync pipe, less the pause
// before the start byte (the engine's own work).
func (e *env) create(r *run, pause time.Duration) (time.Duration, error) {
	syncEnd, syncChild, err := socketpair("sync", unix.SOCK_STREAM)
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
	paused, start, err := e.startMonitor(r, launch{args: args, sync: syncChild, startTyp: unix.SOCK_STREAM, pause: pause})
	syncChild.Close()
	if err != nil {
		r.readMonPid() // so that destroy can kill a daemon left behind
		return 0, err
	}
	start.Close()
	m, err := readSync(syncEnd, 30*time.Second)
	d := time.Since(t0) - paused
	r.mark.pidRead = monotonicNow()
	pidErr := r.readMonPid()
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, r.monitorOutput())
	}
	if m.Pid == nil || *m.Pid <= 0 {
		return 0, fmt.Errorf("create failed: %+v%s", m, r.monitorOutput())
	}
	if pidErr != nil {
		return 0, pidErr
	}
	cpu, err := threadsCPU(r.monPid)
	r.mark.cpu = r.launcherCPU + cpu
	return d, err
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

// writeTrueSpec writes the process spec of an exec of `true` into the run's directory.
func writeTrueSpec(r *run) (string, error) {
	spec := filepath.Join(r.dir, "exec-process")
	return spec, os.WriteFile(spec, []byte(`{"terminal":false,"user":{"uid":0,"gid":0},"args":["true"],`+
		`"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/"}`), 0o600)
}

// execSync runs `true` in the container of target, CRI-O ExecSync style: --sync, no
// --api-version, sync on the write end of a pipe(2), read after the monitor exited.
func (e *env) execSync(r, target *run) (time.Duration, error) {
	spec, err := writeTrueSpec(r)
	if err != nil {
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
	_, start, err := e.startMonitor(r, launch{args: args, sync: wr, startTyp: unix.SOCK_STREAM, isSync: true})
	wr.Close()
	if err != nil {
		return 0, err
	}
	start.Close()
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

// podmanExec runs `true` in the container of target as `podman exec -d` does (API 1,
// --exec-attach, no --sync; docs/lifecycle.md §12.1): start byte (after pause), launcher exit,
// {"data": 0} on the attach pipe, second byte without attaching, then the exec pid on the
// sync pipe. It returns the time from the monitor's exec to the pid, less the pause, and
// waits until the monitor has reported the exit and closed the sync pipe.
func (e *env) podmanExec(r, target *run, pause time.Duration) (time.Duration, error) {
	spec, err := writeTrueSpec(r)
	if err != nil {
		return 0, err
	}
	exitDir := filepath.Join(r.dir, "exit")
	if err := os.Mkdir(exitDir, 0o700); err != nil {
		return 0, err
	}
	syncEnd, syncChild, err := socketpair("sync", unix.SOCK_SEQPACKET)
	if err != nil {
		return 0, err
	}
	defer syncEnd.Close()
	attachEnd, attachChild, err := socketpair("attach", unix.SOCK_SEQPACKET)
	if err != nil {
		syncChild.Close()
		return 0, err
	}
	defer attachEnd.Close()
	args := []string{"--api-version", "1", "-c", target.id, "-u", r.id, "-r", e.runc, "-b", r.dir,
		"-p", filepath.Join(r.dir, "exec_pid"), "-n", "bench", "--exit-dir", exitDir, "--full-attach",
		"-l", "none", "--log-level", "warning", "--runtime-arg", "--log-format=json", "--runtime-arg", "--log",
		"--runtime-arg=" + filepath.Join(r.dir, "oci-log"), "--runtime-arg", "--root=" + target.root,
		"-e", "--exec-attach", "--exec-process-spec", spec}
	t0 := time.Now()
	paused, start, err := e.startMonitor(r, launch{args: args, sync: syncChild, attach: attachChild,
		startTyp: unix.SOCK_SEQPACKET, pause: pause})
	syncChild.Close()
	attachChild.Close()
	if err != nil {
		return 0, err
	}
	defer start.Close()
	if m, err := readSync(attachEnd, 10*time.Second); err != nil || m.Data == nil || *m.Data != 0 {
		// After its release the monitor reports on the sync pipe only (its stderr is
		// /dev/null): show that too.
		sm, serr := readSync(syncEnd, time.Second)
		return 0, fmt.Errorf("attach pipe: %+v %v; sync pipe: %+v %v%s", m, err, sm, serr, r.monitorOutput())
	}
	if _, err := start.Write([]byte{0}); err != nil {
		return 0, fmt.Errorf("second start byte: %w", err)
	}
	m, err := readSync(syncEnd, 10*time.Second)
	d := time.Since(t0) - paused
	r.mark.pidRead = monotonicNow()
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, r.monitorOutput())
	}
	if m.Data == nil || *m.Data <= 0 {
		return 0, fmt.Errorf("exec failed: %+v%s", m, r.monitorOutput())
	}
	// The exit status, then EOF: the monitor is gone.
	if _, err := readSync(syncEnd, 10*time.Second); err != nil {
		return 0, err
	}
	var buf [64]byte
	syncEnd.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := syncEnd.Read(buf[:]); n != 0 || (err != nil && err != io.EOF) {
		return 0, fmt.Errorf("sync pipe after the exit status: %q %v", buf[:n], err)
	}
	return d, nil
}

// bareExec times `runc exec --detach` of `true` alone, with podman's runtime arguments:
// the floor of podmanExec.
func (e *env) bareExec(r, target *run) (time.Duration, error) {
	spec, err := writeTrueSpec(r)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	err = e.runcCmd(target, "--log-format=json", "--log", filepath.Join(r.dir, "oci-log"), "exec",
		"--pid-file", filepath.Join(r.dir, "exec_pid"), "--process", spec, "--detach", target.id)
	return time.Since(t0), err
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
	e.cleanMu.Lock()
	defer e.cleanMu.Unlock()
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
	if e.benchCgroup != nil {
		var err error
		if e.monitorCgroup != nil {
			err = e.monitorCgroup.Remove()
		}
		err = errors.Join(err, e.benchCgroup.Leave(os.Getpid()), e.benchCgroup.Remove())
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
		e.benchCgroup, e.monitorCgroup = nil, nil
	}
	if err := os.RemoveAll(e.work); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
	}
}
