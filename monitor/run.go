package monitor

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/ctl"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/oom"
	"github.com/conmon-go/conmon-go/monitor/sdnotify"
	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/journald"
	"github.com/conmon-go/conmon-go/ptyio/k8sfile"
	"github.com/conmon-go/conmon-go/seqpacket"
)

// Bounds of the exit sequence (lifecycle.md §14): engines give up ≈ 5 s after the death.
const (
	drainIdle         = 250 * time.Millisecond
	drainTotal        = 2 * time.Second
	drainBound        = 3 * time.Second // the wait for the pumps, whatever they are stuck in
	attachFlush       = time.Second
	timeoutReap       = time.Second
	exitCommandBound  = 300 * time.Second
	runtimeStderrWait = time.Second
	maxRuntimeStderr  = 8191
)

// runtimeFailed stands for the runtime's status when waiting for it panicked: exited 1.
const runtimeFailed = unix.WaitStatus(1 << 8)

type monitor struct {
	opts    *cli.Options
	log     *diag.Printer
	signals chan os.Signal
	reaper  *reaper
	spawner *spawner

	sync       *syncPipe
	attachPipe *syncPipe // nil unless --exec-attach; closed after its one message
	startFD    int       // kept only for --exec-attach's second read
	inherited  []int

	runtimePath string
	runtimeArgs []string
	trustRecord string // record to remove at exit

	pipes   *ptyio.Pipes
	console *ptyio.ConsoleSocket
	drivers []ptyio.LogDriver
	attach  *seqpacket.Server
	fifos   *ctl.FIFOs
	notify  *sdnotify.Proxy
	oomw    *oom.Watcher
	stdin   *stdinGate

	output *ptyio.Output // the pumps' consumers, set up with the logs and the attach socket

	// The monitor's own progress, for afterPanic (docs/lifecycle.md §13.1).
	reported atomic.Bool            // the pid was reported: the start-up is over
	exited   <-chan unix.WaitStatus // the container's status, from the reaper
	gone     <-chan struct{}        // closed when the container process is gone
	step     atomic.Int32           // the last exit step done (stepNone …)

	mu             sync.Mutex // guards the fields below, shared with the signal loop
	runtimeStarted bool
	runtimePid     int
	containerPid   int
	pidfd          int
	term           *ptyio.Terminal
	pendingSize    [2]int
	hasPendingSize bool
	status         int // the container's status, once statusKnown
	statusKnown    bool
	timedOut       bool
}

func newMonitor(opts *cli.Options, log *diag.Printer, signals chan os.Signal, syncFD, startFD, attachFD int) *monitor {
	m := &monitor{
		opts:    opts,
		log:     log,
		signals: signals,
		reaper:  newReaper(),
		startFD: startFD,
		pidfd:   -1,
	}
	m.spawner = &spawner{reaper: m.reaper, replaceLPID: opts.ReplaceListenPID}
	// The engine's notification fds must not leak into the runtime or the container.
	for _, fd := range []int{syncFD, startFD, attachFD} {
		if fd >= 0 {
			unix.CloseOnExec(fd)
		}
	}
	m.sync = newSyncPipe(syncFD, log)
	if attachFD >= 0 {
		m.attachPipe = newSyncPipe(attachFD, log)
	}
	m.inherited = inheritedFDs(syncFD, startFD, attachFD)
	return m
}

// runGuarded is run with the panic policy applied to the monitor's own path: a panic
// there ends in afterPanic (docs/lifecycle.md §13.1).
func (m *monitor) runGuarded() (status int) {
	defer diag.Recover(m.log, "monitor", func() { status = m.afterPanic() })
	return m.run()
}

// prepare takes the process-wide settings of M2 and M3 (lifecycle.md §2): neither
// creates anything nor depends on the cgroups, so a daemon does it before its release.
func (m *monitor) prepare() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return errors.New("Failed to set as subreaper: " + diag.Strerror(err))
	}
	m.spawner.lowerOOMScore(m.log)
	return nil
}

// run is the monitor proper after prepare (lifecycle.md §2, M4–M19). It returns the
// process exit status.
func (m *monitor) run() int {
	opts := m.opts
	go m.signalLoop()
	m.runtimePath, m.runtimeArgs = opts.Runtime, opts.RuntimeArgs
	if opts.Trust.Active {
		d, err := selectRuntime(opts, m.log, false)
		if err != nil {
			return m.fail(err.Error())
		}
		m.runtimePath, m.runtimeArgs, m.trustRecord = d.path, d.args, d.recordDir
	}
	if opts.SdNotifySocket != "" && opts.Bundle != "" {
		p, err := sdnotify.NewProxy(opts.Bundle, opts.SdNotifySocket, m.log)
		if err != nil {
			return m.fail(err.Error())
		}
		m.notify = p
		p.Start()
	}
	if err := m.setupStdio(); err != nil {
		return m.fail(err.Error())
	}
	if m.attachPipe == nil {
		// The log and the attach socket need only exist when the pid is reported:
		// they are set up while the runtime works (its own start-up takes longer).
		return m.runRuntime(m.setupOutput)
	}
	// podman's exec attaches before the exec starts, and the monitor waits for its client
	// before it starts the runtime: a signal meanwhile must end it cleanly (forward), not
	// by the default action, which would leave the attach socket behind. This path is not
	// the one whose latency counts.
	m.catchSignals()
	if err := m.setupOutput(); err != nil {
		return m.fail(err.Error())
	}
	m.attachPipe.send("data", 0, "")
	m.attachPipe.close()
	m.attachPipe = nil
	if m.startFD >= 0 {
		// podman writes the second byte once its attach client is connected.
		if err := readStartPipe(m.startFD); err != nil {
			return m.fail("start-pipe read failed " + diag.Strerror(err))
		}
	}
	return m.runRuntime(nil)
}

// setupOutput opens the log drivers and creates the attach socket and the ctl/winsz FIFOs.
func (m *monitor) setupOutput() error {
	if err := m.openLogs(); err != nil {
		return err
	}
	// Complete before the ctl reader starts, which reads it (Reopen).
	m.output = &ptyio.Output{Drivers: m.drivers, Log: m.log}
	if m.opts.Bundle != "" && !m.opts.Logs.Passthrough {
		return m.listenAttach()
	}
	return nil
}

// setupStdio creates the container's stdio (lifecycle.md §6).
func (m *monitor) setupStdio() error {
	opts := m.opts
	if opts.Logs.Passthrough {
		return nil
	}
	var err error
	if opts.Terminal {
		if m.console, err = ptyio.NewConsoleSocket(os.Getenv("TMPDIR")); err != nil {
			return err
		}
		m.console.Log = m.log
		m.pipes, err = ptyio.NewPipes(false, false)
	} else {
		m.pipes, err = ptyio.NewPipes(opts.Stdin, true)
	}
	if err != nil {
		return err
	}
	m.stdin = newStdinGate()
	if !opts.Terminal && m.pipes.Stdin != nil {
		m.stdin.open(ptyio.NewStdin(m.pipes.Stdin, false, opts.Stdin && !opts.LeaveStdinOpen, m.log))
	} else if !opts.Terminal {
		m.stdin.open(nil)
	}
	return nil
}

func (m *monitor) openLogs() error {
	opts := m.opts
	if opts.Logs.Passthrough {
		return nil
	}
	if opts.Logs.HasK8s {
		w, err := k8sfile.Open(k8sfile.Config{
			Path:          opts.Logs.K8sPath,
			SizeMax:       opts.LogSizeMax,
			GlobalSizeMax: opts.LogGlobalSizeMax,
			Rotate:        opts.LogRotate,
			MaxFiles:      opts.LogMaxFiles,
			AllowlistDirs: opts.LogAllowlistDirs,
			Log:           m.log,
		})
		if err != nil {
			return errors.New("Failed to open log file " + diag.Strerror(err))
		}
		m.drivers = append(m.drivers, w)
	}
	if opts.Logs.Journald {
		w, err := journald.New(journald.Config{
			CID:           opts.CID,
			Name:          opts.Name,
			Tag:           opts.LogTag,
			Labels:        opts.LogLabels,
			NoPartialFlag: opts.NoContainerPartialMessage,
			Log:           m.log,
		})
		if err != nil {
			return err
		}
		m.drivers = append(m.drivers, w)
	}
	return nil
}

// listenAttach creates the attach socket and the ctl/winsz FIFOs; podman connects and
// writes to ctl right after it reads the pid, so they exist before it is reported.
func (m *monitor) listenAttach() error {
	opts := m.opts
	socketDir := opts.SocketDir
	if opts.FullAttach {
		socketDir = ""
	}
	srv, err := seqpacket.Listen(seqpacket.Config{
		Bundle:    opts.Bundle,
		SocketDir: socketDir,
		CUUID:     opts.CUUID,
		Stdin:     m.stdin,
		Log:       m.log,
	})
	if err != nil {
		return err
	}
	m.attach = srv
	m.output.Attach = srv
	srv.Start()
	fifos, err := ctl.Create(opts.Bundle, m, m.log)
	if err != nil {
		return err
	}
	m.fifos = fifos
	fifos.Start()
	return nil
}

// Resize applies a ctl/winsz resize; before the pty master exists only the latest size is
// kept, and without a terminal resizes are dropped (ctl.Handler).
func (m *monitor) Resize(rows, cols int) {
	if !m.opts.Terminal {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.term == nil {
		m.pendingSize = [2]int{rows, cols}
		m.hasPendingSize = true
		return
	}
	if err := m.term.Resize(rows, cols); err != nil {
		m.log.Warnf("%v", err)
	}
}

// Reopen serves ctl's "2 0 0" (ctl.Handler).
func (m *monitor) Reopen() {
	for i, d := range m.drivers {
		if !m.driverOff(i) {
			d.Reopen()
		}
	}
}

// runtimeArgv builds the runtime's command line exactly as lifecycle.md §5.1 lays it out.
func (m *monitor) runtimeArgv() []string {
	opts := m.opts
	argv := []string{m.runtimePath}
	if opts.SystemdCgroup && !opts.Exec {
		argv = append(argv, "--systemd-cgroup")
	}
	argv = append(argv, m.runtimeArgs...)
	switch {
	case opts.Exec:
		argv = append(argv, "exec", "--pid-file", opts.ContainerPidfile,
			"--process", opts.ExecProcessSpec, "--detach")
	default:
		sub := "create"
		if opts.Restore != "" {
			sub = "restore"
		}
		argv = append(argv, sub, "--bundle", opts.Bundle, "--pid-file", opts.ContainerPidfile)
		if opts.NoPivot {
			argv = append(argv, "--no-pivot")
		}
		if opts.NoNewKeyring {
			argv = append(argv, "--no-new-keyring")
		}
		if opts.Restore != "" {
			argv = append(argv, "--detach", "--image-path", opts.Restore, "--work-path", opts.Bundle)
		}
	}
	argv = append(argv, opts.RuntimeOpts...)
	if m.console != nil {
		argv = append(argv, "--console-socket", m.console.Path)
	}
	return append(argv, opts.CID)
}

// catchSignals takes the monitor's signals (handledSignals) from Go's default actions,
// unless that is done already (--sync, or a podman exec waiting for its attach client).
// A create does it once the runtime runs, off the create path: until it reports the pid
// no one but the launcher knows it, and the runtime's exit is seen through its pidfd. It
// is done before the pid is reported. The
// first signal.Notify locks the thread it runs on to os/signal's mask goroutine for
// good: usually the main thread here (the one the runtime was forked from), which Go
// never ends anyway, so no other thread is kept for it.
func (m *monitor) catchSignals() {
	signal.Notify(m.signals, handledSignals...)
}

// waitRuntime returns the runtime's wait status. Its exit makes the pidfd readable, and
// the runtime's poller wakes the goroutine waiting for that on the thread that polls:
// SIGCHLD would take the way through the signal thread, the signal loop and two more
// threads. The reaper collects the status either way.
func (m *monitor) waitRuntime(rt lockedChild) unix.WaitStatus {
	exited := m.reaper.wait(rt.pid)
	if rt.pidfd < 0 {
		return <-exited
	}
	defer unix.Close(rt.pidfd)
	// CLONE_PIDFD gives a blocking fd, which the poller would not take.
	unix.SetNonblock(rt.pidfd, true)
	select {
	case ws := <-exited:
		return ws
	case <-watchExit(rt.pid, rt.pidfd, nil, m.log):
		m.reaper.reap()
		return <-exited
	}
}

// runRuntime starts the runtime, runs setup (if any) meanwhile, waits for the runtime
// (and the console), reports the pid, and runs the container until it exits (M11–M19).
func (m *monitor) runRuntime(setup func() error) int {
	opts := m.opts
	argv := m.runtimeArgv()
	m.log.Tracef("calling runtime args: %s", joinArgs(argv))
	files := []uintptr{0, 1, 2}
	if m.pipes != nil {
		for i, f := range m.pipes.Child {
			files[i] = f.Fd()
		}
	}
	// Signals inherited as ignored would stay ignored in the runtime and the container.
	for _, sig := range []os.Signal{unix.SIGHUP, unix.SIGPIPE} {
		if signal.Ignored(sig) {
			signal.Notify(m.signals, sig)
		}
	}
	m.mu.Lock()
	m.runtimeStarted = true
	m.mu.Unlock()
	rt, err := m.spawner.startPinned(child{argv: argv, env: os.Environ(), files: files, setpgid: true})
	if err != nil {
		return m.finishFailed("Failed to fork runtime: " + diag.Strerror(err))
	}
	m.mu.Lock()
	m.runtimePid = rt.pid
	m.mu.Unlock()
	m.catchSignals()
	done := make(chan unix.WaitStatus, 1)
	go func() {
		// After a panic here the runtime counts as failed: the monitor's path goes on.
		defer diag.Recover(m.log, "runtime wait", func() { done <- runtimeFailed })
		done <- m.waitRuntime(rt)
	}()
	if opts.Logs.Passthrough {
		redirectStdio()
	}
	if m.pipes != nil {
		m.pipes.CloseChildEnds()
	}

	var termCh chan termResult
	runtimeDone := make(chan struct{})
	if m.console != nil {
		termCh = make(chan termResult, 1)
		go func() {
			defer diag.Recover(m.log, "console socket", func() { termCh <- termResult{err: errors.New(diag.Panicked())} })
			t, err := m.console.Receive(runtimeDone)
			termCh <- termResult{t, err}
		}()
	}
	var setupErr error
	if setup != nil {
		setupErr = setup()
	}
	ws := <-done
	close(runtimeDone)
	m.mu.Lock()
	m.runtimePid = 0
	m.mu.Unlock()
	runtimeOK := ws.Exited() && ws.ExitStatus() == 0
	if setupErr != nil {
		return m.abortCreated(setupErr.Error(), termCh)
	}

	if termCh != nil {
		tr := <-termCh
		m.console.Close()
		if tr.err == nil {
			m.setTerminal(tr.t)
		} else if runtimeOK {
			if errors.Is(tr.err, ptyio.ErrNoTerminal) {
				return m.finishFailed("Runtime did not set up terminal")
			}
			return m.finishFailed(tr.err.Error())
		}
	}
	var stderrText string
	if !runtimeOK {
		status := statusCode(ws)
		stderrText = m.runtimeStderr()
		if stderrText != "" {
			m.log.Warnf("runtime stderr: %s", stderrText)
		}
		if !opts.Exec {
			m.log.Debugf("Failed to create container: exit status %d", status)
			if stderrText == "" {
				return m.finishFailed("runtime exited with status " + strconv.Itoa(status))
			}
			return m.finishFailed(stderrText)
		}
		m.log.Warnf("runtime exec exited with status %d", status)
	}
	pid, err := readPidFile(opts.ContainerPidfile)
	if err != nil {
		// A failed exec writes no pid file; its error text is the better message.
		if stderrText == "" {
			stderrText = m.runtimeStderr()
		}
		if stderrText == "" {
			stderrText = "runtime did not write a valid pid file " + opts.ContainerPidfile + ": " + err.Error()
		}
		return m.finishFailed(stderrText)
	}
	// The thread that started the runtime is unlocked once the pid is out, off the create
	// path.
	return m.superviseContainer(pid, rt.release)
}

// abortCreated reports a setup failure that happened while the runtime ran: conmon would
// have failed before starting it, so a container the runtime created is killed rather
// than left without a monitor, and the engine deletes it as after any failed create.
func (m *monitor) abortCreated(message string, termCh <-chan termResult) int {
	if termCh != nil {
		if tr := <-termCh; tr.err == nil {
			tr.t.Close()
		}
	}
	if pid, err := readPidFile(m.opts.ContainerPidfile); err == nil {
		// The container init is the monitor's child by now: reaped here, it does not
		// outlive the monitor as a zombie.
		exited := m.reaper.wait(pid)
		if unix.Kill(pid, unix.SIGKILL) == nil {
			select {
			case <-exited:
			case <-time.After(timeoutReap):
				m.log.Warnf("killed container %d not reaped within %v", pid, timeoutReap)
			}
		}
	}
	return m.finishFailed(message)
}

type termResult struct {
	t   *ptyio.Terminal
	err error
}

func (m *monitor) setTerminal(t *ptyio.Terminal) {
	m.mu.Lock()
	m.term = t
	if m.hasPendingSize {
		if err := t.Resize(m.pendingSize[0], m.pendingSize[1]); err != nil {
			m.log.Warnf("%v", err)
		}
	}
	m.mu.Unlock()
	// A client's stdin goes to the pty even without -i (lifecycle.md §6.2).
	m.stdin.open(ptyio.NewStdin(t.Master, true, m.opts.Stdin && !m.opts.LeaveStdinOpen, m.log))
}

// runtimeStderr collects what the failed runtime wrote on the stderr pipe: until EOF,
// maxRuntimeStderr bytes, or runtimeStderrWait; once something arrived, until the pipe is
// empty (the runtime has exited, so its output is complete).
func (m *monitor) runtimeStderr() string {
	if m.pipes == nil || m.pipes.Stderr == nil {
		return ""
	}
	f := m.pipes.Stderr
	buf := make([]byte, maxRuntimeStderr)
	n := 0
	deadline := time.Now().Add(runtimeStderrWait)
	for n < len(buf) {
		if n > 0 {
			deadline = time.Now() // only what is already there
		}
		f.SetReadDeadline(deadline)
		k, err := f.Read(buf[n:])
		n += k
		if err != nil {
			break
		}
	}
	f.SetReadDeadline(time.Time{})
	return string(buf[:n])
}

// readPidFile reads the pid the runtime wrote: a positive decimal, surrounding whitespace
// allowed (lifecycle.md §10.3). Only a regular file of less than 128 bytes counts, opened
// without blocking: a FIFO or a link to a device left at the path by a runtime that failed
// must neither hang the monitor nor feed it without end.
func readPidFile(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, errors.New(diag.Strerror(err))
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, errors.New(diag.Strerror(err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, errors.New("not a regular file")
	}
	var buf [128]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return 0, errors.New(diag.Strerror(err))
	}
	if n == len(buf) {
		return 0, errors.New("invalid content: longer than a pid")
	}
	s := string(bytes.TrimSpace(buf[:n]))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || s[0] == '+' {
		return 0, errors.New("invalid content " + strconv.Quote(s))
	}
	return pid, nil
}

func joinArgs(argv []string) string {
	var b bytes.Buffer
	for _, a := range argv {
		b.WriteString(a)
		b.WriteByte(' ')
	}
	return b.String()
}

// stdinGate is the attach server's view of the container's stdin: the pty master arrives
// only after the runtime ran, and clients may already be connected by then. Until it is
// known, writers wait (back-pressure); without any stdin, input is discarded.
type stdinGate struct {
	ready  chan struct{}
	once   sync.Once
	target *ptyio.Stdin
}

func newStdinGate() *stdinGate { return &stdinGate{ready: make(chan struct{})} }

func (g *stdinGate) open(t *ptyio.Stdin) {
	g.once.Do(func() {
		g.target = t
		close(g.ready)
	})
}

func (g *stdinGate) WriteStdin(p []byte) error {
	<-g.ready
	if g.target == nil {
		return nil
	}
	return g.target.WriteStdin(p)
}

func (g *stdinGate) ClientInputClosed() {
	<-g.ready
	if g.target != nil {
		g.target.ClientInputClosed()
	}
}
