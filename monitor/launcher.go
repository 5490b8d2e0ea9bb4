package monitor

import (
	"errors"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/diag"
)

// launcherMain is the process the engine starts (lifecycle.md §2, L1–L6). Everything that
// can fail is checked here, while stderr is still the caller's; then, unless --sync, it
// re-executes itself as the monitor, writes the conmon pid file and exits 0.
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
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
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
	startFD, present, err := parseFDEnv("_OCI_STARTPIPE")
	if err != nil {
		log.Errorf("unable to parse _OCI_STARTPIPE")
		return 1
	}
	if present {
		// The engine moves this process into its cgroup before writing the byte, so
		// nothing may be started before it arrives.
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
		return m.runGuarded()
	}
	return daemonize(args, opts, log)
}

// exitOnTermination makes SIGTERM, SIGINT and SIGQUIT end the process with status 1 until
// the returned function is called (lifecycle.md §2 L3): nothing has been started yet.
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

// daemonize starts the monitor as a new session by re-executing /proc/self/exe with the
// same argv and the engine's fds at their own numbers (lifecycle.md §3). A handshake pipe
// holds the monitor back until the conmon pid file is written, so no container is ever
// started by a monitor whose pid the engine cannot learn.
func daemonize(args []string, opts *cli.Options, log *diag.Printer) int {
	inherited := inheritedFDs()
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
	if opts.Logs.Passthrough {
		// The runtime and the container use the caller's stdio directly.
		files[0], files[1], files[2] = 0, 1, 2
	} else {
		// The monitor never holds the caller's stdio: podman waits for EOF on the stderr
		// it gave the launcher before it reads the sync pipe.
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			log.Errorf("Failed to open %s: %v", os.DevNull, err)
			return 1
		}
		defer null.Close()
		files[0], files[1], files[2] = null.Fd(), null.Fd(), null.Fd()
	}
	var hs [2]int
	if err := unix.Pipe2(hs[:], unix.O_CLOEXEC); err != nil {
		log.Errorf("Failed to create handshake pipe: %v", err)
		return 1
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
		log.Errorf("Failed to fork monitor: %v", err)
		return 1
	}
	if opts.ConmonPidfile != "" {
		if err := exitfile.WritePid(opts.ConmonPidfile, pid); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			log.Errorf("Failed to write conmon pidfile: %s", describe(err))
			return 1
		}
	}
	if _, err := unix.Write(hs[1], []byte{0}); err != nil {
		log.Errorf("Failed to release monitor: %v", err)
		return 1
	}
	return 0
}

// daemonMain is the monitor started by daemonize. It waits for the launcher's handshake,
// then repeats the launcher's validation silently (the launcher reported everything
// already; a failure now is a race and goes to the sync pipe).
func daemonMain(args []string, handshake string, signals chan os.Signal) int {
	hs, err := strconv.Atoi(handshake)
	if err != nil {
		return 1
	}
	// Our own pipe: wait on the poller instead of holding a thread in read(2).
	unix.SetNonblock(hs, true)
	f := os.NewFile(uintptr(hs), "handshake")
	var b [1]byte
	n, _ := f.Read(b[:])
	f.Close()
	if n != 1 {
		return 1 // the launcher could not write the pid file and gave up
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
	if verr != nil {
		return m.fail(verr.Error())
	}
	return m.runGuarded()
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
