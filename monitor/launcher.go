package monitor

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/cgroups"
	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/diag"
)

// launcherMain is the process the engine starts (lifecycle.md §2, L1–L6). Everything that
// can fail is checked here, while stderr is still the caller's; then, unless --sync, it
// releases the monitor, writes the conmon pid file and exits 0.
//
// With a start pipe the monitor is started at once and spends its Go runtime start and
// setup while the engine places the launcher in its cgroups; after the start byte the
// launcher moves it into the same cgroups before releasing it. A monitor that cannot be
// moved is ended, and a new one started, as without a start pipe.
func launcherMain(args []string, signals chan os.Signal) int {
	unix.Umask(0o022)
	opts, err := cli.Parse(args[1:])
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	if opts.Help {
		os.Stdout.WriteString(cli.Usage())
		return 0
	}
	if opts.Version {
		os.Stdout.WriteString(cli.Version(Commit))
		return 0
	}
	cwd, _ := os.Getwd()
	warnings, err := opts.Validate(cwd, os.Getenv)
	if opts.Level >= diag.Warning {
		for _, w := range warnings {
			os.Stderr.WriteString(w + "\n")
		}
	}
	if err != nil {
		reportInvalid(opts, err)
		return 1
	}
	startFD, startPresent, startErr := parseFDEnv("_OCI_STARTPIPE")
	var early *daemon
	if startPresent && startErr == nil && !opts.Sync {
		early = startEarly(args, opts, startFD)
	}
	defer early.kill()
	signal.Ignore(launcherIgnored...)
	// SIGTERM, SIGINT and SIGQUIT end the launcher with status 1 while it waits for the
	// start byte. signal.Notify costs three round trips to another thread and starts
	// three threads, so it runs beside the rest, and not at all when the byte is there
	// already (CRI-O writes it at once): then the launcher is done in a moment, and the
	// early monitor, starting meanwhile, needs the CPU. A signal before Notify ends the
	// process by its default action, as during the Go runtime's start-up.
	if !startPresent || !readable(startFD) {
		go signal.Notify(signals, launcherSignals...)
	}
	log := diag.New(opts.Level, os.Stderr, opts.Syslog, opts.CID, opts.LogTag)
	defer log.Flush()
	if opts.Logs.HasK8s {
		// Created here so that a bad path reaches the caller (cli.md §4 step 19).
		fd, err := unix.Open(opts.Logs.K8sPath, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC, 0o640)
		if err != nil {
			log.Errorf("Failed to open log file %s", diag.Strerror(err))
			return 1
		}
		unix.Close(fd)
	}
	if opts.Trust.Active {
		if _, err := selectRuntime(opts, log, true); err != nil {
			log.Errorf("%v", err)
			return 1
		}
	}

	stopEarly := exitOnTermination(signals)

	syncFD, _, err := parseFDEnv("_OCI_SYNCPIPE")
	if err != nil {
		log.Errorf("unable to parse _OCI_SYNCPIPE")
		return 1
	}
	attachFD := -1
	if opts.ExecAttach {
		var present bool
		attachFD, present, err = parseFDEnv("_OCI_ATTACHPIPE")
		if !present {
			log.Errorf("--attach specified but _OCI_ATTACHPIPE was not")
			return 1
		}
		if err != nil {
			log.Errorf("unable to parse _OCI_ATTACHPIPE")
			return 1
		}
	}
	if startErr != nil {
		log.Errorf("unable to parse _OCI_STARTPIPE")
		return 1
	}
	if startPresent {
		// The engine moves this process into its cgroups before writing the byte, so
		// nothing may run in the monitor before it arrives.
		if err := readStartPipe(startFD); err != nil {
			log.Errorf("start-pipe read failed %s", diag.Strerror(err))
			return 1
		}
		if !opts.ExecAttach {
			unix.Close(startFD)
			startFD = -1
		}
	}

	if opts.Sync {
		stopEarly()
		signal.Notify(signals, handledSignals...)
		if _, err := unix.Setsid(); err != nil && err != unix.EPERM {
			log.Debugf("setsid: %v", err)
		}
		if !opts.Logs.Passthrough {
			redirectStdio()
		}
		log.SetStderr(os.Stderr)
		m := newMonitor(opts, log, signals, syncFD, startFD, attachFD)
		if err := m.prepare(); err != nil {
			return m.fail(err.Error())
		}
		return m.runGuarded()
	}
	if early != nil {
		err := cgroups.Join(early.pid)
		if err == nil {
			return early.release(opts.ConmonPidfile, log)
		}
		log.Debugf("monitor started before the start byte cannot join the cgroups, starting another: %v", err)
		early.kill()
	}
	d, err := startDaemon(args, opts.Logs.Passthrough, -1)
	if err != nil {
		log.Errorf("%v", err)
		return 1
	}
	return d.release(opts.ConmonPidfile, log)
}

// reportInvalid writes a failed validation to stderr and, with --syslog, from the checks
// that run after the message system exists, to syslog as "<msg>[: <strerror>]".
func reportInvalid(opts *cli.Options, err error) {
	os.Stderr.WriteString(err.Error() + "\n")
	var ve *cli.ValidationError
	if !opts.Syslog || !errors.As(err, &ve) || ve.Early {
		return
	}
	msg := ve.Msg
	if ve.Errno != "" {
		msg += ": " + ve.Errno
	}
	log := diag.New(diag.Error, nil, true, opts.CID, opts.LogTag)
	log.Errorf("%s", msg)
	log.Flush()
}

// exitOnTermination makes SIGTERM, SIGINT and SIGQUIT end the process with status 1 until
// the returned function is called (lifecycle.md §2 L3): nothing has been started yet but
// a monitor not yet released, which then ends by itself.
func exitOnTermination(signals chan os.Signal) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer diag.Recover(nil, "launcher signals", nil)
		for {
			select {
			case sig := <-signals:
				switch sig {
				case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
					os.Exit(1)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// readable reports whether a read of fd would not block, without changing the flags of
// the engine's fd.
func readable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err != unix.EINTR {
			return err == nil && n > 0
		}
	}
}

// readStartPipe does the one blocking read of the start pipe; content and EOF are both
// accepted.
func readStartPipe(fd int) error {
	var buf [8192]byte
	for {
		_, err := unix.Read(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// daemon is a monitor started by startDaemon that waits for its release.
type daemon struct {
	pid       int
	handshake int    // write end of the handshake pipe; -1 once released or killed
	pidFile   string // the conmon pid file, once written with pid
}

// startEarly starts the monitor before the start byte and writes the conmon pid file
// meanwhile; nil when either fails, with nothing left (the launcher then starts the
// monitor after the byte and reports what still fails).
func startEarly(args []string, opts *cli.Options, startFD int) *daemon {
	skip := startFD
	if opts.ExecAttach {
		skip = -1 // its monitor reads the start pipe's second byte
	}
	d, err := startDaemon(args, opts.Logs.Passthrough, skip)
	if err != nil {
		return nil
	}
	if err := d.writePidFile(opts.ConmonPidfile); err != nil {
		d.kill()
		return nil
	}
	return d
}

// startDaemon starts the monitor as a new session by re-executing /proc/self/exe with the
// same argv and the engine's fds at their own numbers (lifecycle.md §3). The monitor
// prepares itself and then waits on a handshake pipe for release, which comes after the
// conmon pid file is written, so no container is ever started by a monitor whose pid the
// engine cannot learn; it exits when the pipe ends without the byte. skipFD (≥ 0) is an
// inherited fd not to pass on.
func startDaemon(args []string, passthrough bool, skipFD int) (*daemon, error) {
	inherited := inheritedFDs(skipFD)
	maxFD := 2
	for _, fd := range inherited {
		maxFD = max(maxFD, fd)
	}
	files := make([]uintptr, maxFD+2)
	for i := range files {
		files[i] = ^uintptr(0) // closed in the child
	}
	for _, fd := range inherited {
		files[fd] = uintptr(fd)
	}
	if passthrough {
		// The runtime and the container use the caller's stdio directly.
		files[0], files[1], files[2] = 0, 1, 2
	} else {
		// The monitor never holds the caller's stdio: podman waits for EOF on the stderr
		// it gave the launcher before it reads the sync pipe.
		null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("Failed to open %s: %w", os.DevNull, err)
		}
		defer unix.Close(null)
		files[0], files[1], files[2] = uintptr(null), uintptr(null), uintptr(null)
	}
	var hs [2]int
	if err := unix.Pipe2(hs[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("Failed to create handshake pipe: %w", err)
	}
	handshakeFD := len(files) - 1
	files[handshakeFD] = uintptr(hs[0])
	env := append(os.Environ(), envDaemon+"="+strconv.Itoa(handshakeFD))
	if _, ok := os.LookupEnv("GOMAXPROCS"); !ok {
		// One P: every P costs threads and memory in every monitor on a node, and the
		// output path (one read-format-write loop per stream) never needs a second CPU.
		// Set through the environment, the runtime starts with it; calling
		// runtime.GOMAXPROCS later costs a stop-the-world and an extra thread.
		env = append(env, "GOMAXPROCS=1", envOwnMaxProcs+"=1")
	}
	pid, err := syscall.ForkExec("/proc/self/exe", args, &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	unix.Close(hs[0])
	if err != nil {
		unix.Close(hs[1])
		return nil, fmt.Errorf("Failed to fork monitor: %w", err)
	}
	return &daemon{pid: pid, handshake: hs[1]}, nil
}

// writePidFile writes the monitor's pid to path (-P), unless path is "".
func (d *daemon) writePidFile(path string) error {
	if path == "" {
		return nil
	}
	if err := exitfile.WritePid(path, d.pid); err != nil {
		return err
	}
	d.pidFile = path
	return nil
}

// release writes the conmon pid file (if asked for and not yet done) and lets the
// monitor run.
func (d *daemon) release(pidFile string, log *diag.Printer) int {
	if d.pidFile == "" {
		if err := d.writePidFile(pidFile); err != nil {
			d.kill()
			log.Errorf("Failed to write conmon pidfile: %s", describe(err))
			return 1
		}
	}
	if _, err := unix.Write(d.handshake, []byte{0}); err != nil {
		d.kill()
		log.Errorf("Failed to release monitor: %v", err)
		return 1
	}
	unix.Close(d.handshake)
	d.handshake = -1
	return 0
}

// kill ends a monitor that was not released, reaps it and removes the pid file written
// for it; the monitor has started nothing and written nothing yet. No-op on nil or after
// release.
func (d *daemon) kill() {
	if d == nil || d.handshake < 0 {
		return
	}
	unix.Close(d.handshake)
	d.handshake = -1
	unix.Kill(d.pid, unix.SIGKILL)
	for {
		if _, err := unix.Wait4(d.pid, nil, 0, nil); err != unix.EINTR {
			break
		}
	}
	if d.pidFile != "" {
		unix.Unlink(d.pidFile)
	}
}

// daemonMain is the monitor started by startDaemon. It repeats the launcher's validation
// silently (the launcher reported everything already; a failure now is a race and goes to
// the sync pipe) and prepares itself, then waits for the launcher's handshake: until then
// it may be ended at any moment, so it creates no file and no process.
func daemonMain(args []string, handshake string, signals chan os.Signal) int {
	hs, err := strconv.Atoi(handshake)
	if err != nil {
		return 1
	}
	opts, err := cli.Parse(args[1:])
	if err != nil {
		return 1
	}
	cwd, _ := os.Getwd()
	_, verr := opts.Validate(cwd, os.Getenv)
	log := diag.New(opts.Level, os.Stderr, opts.Syslog, opts.CID, opts.LogTag)
	defer log.Flush()
	syncFD, _, _ := parseFDEnv("_OCI_SYNCPIPE")
	startFD := -1
	attachFD := -1
	if opts.ExecAttach {
		startFD, _, _ = parseFDEnv("_OCI_STARTPIPE")
		attachFD, _, _ = parseFDEnv("_OCI_ATTACHPIPE")
	}
	m := newMonitor(opts, log, signals, syncFD, startFD, attachFD)
	if verr == nil {
		verr = m.prepare()
	}
	if !awaitRelease(hs) {
		// The launcher gave up or died; the pid file it wrote early names this process.
		if data, err := os.ReadFile(opts.ConmonPidfile); err == nil && string(data) == strconv.Itoa(os.Getpid()) {
			os.Remove(opts.ConmonPidfile)
		}
		return 1
	}
	if verr != nil {
		var ve *cli.ValidationError
		if errors.As(verr, &ve) {
			return m.fail(ve.Text()) // fail adds the prefix where it prints
		}
		return m.fail(verr.Error())
	}
	return m.runGuarded()
}

// awaitRelease waits for the launcher's byte on the handshake pipe; EOF (the launcher
// exited or was killed without releasing the monitor) is false.
func awaitRelease(fd int) bool {
	// Our own pipe: wait on the poller instead of holding a thread in read(2).
	unix.SetNonblock(fd, true)
	f := os.NewFile(uintptr(fd), "handshake")
	defer f.Close()
	var b [1]byte
	n, _ := f.Read(b[:])
	return n == 1
}

// redirectStdio points fds 0-2 at /dev/null (lifecycle.md §2 M6).
func redirectStdio() {
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	for fd := 0; fd <= 2; fd++ {
		unix.Dup2(null, fd)
	}
	unix.Close(null)
}

// describe renders a wrapped error as "<what failed> <strerror>".
func describe(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + pe.Path + ": " + diag.Strerror(pe.Err)
	}
	return err.Error()
}
