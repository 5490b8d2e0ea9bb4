package monitor

import (
	"errors"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/cgroups"
	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/diag"
)

// launcherMain is the process the engine starts (docs/lifecycle.md §2 L1–L7). Everything that
// can fail is checked here, while stderr is still the caller's; then, unless --sync, it
// releases the monitor, writes the conmon pid file and exits 0.
//
// With a start pipe the monitor is started at once and spends its Go runtime start and
// setup while the engine places the launcher in its cgroups; after the start byte the
// launcher moves it into the same cgroups before releasing it. A monitor that cannot be
// moved is ended, and a new one started, as without a start pipe.
//
// In the monitor forked at the entry point (prefork.go) this is the launcher's work done by
// the monitor itself, which then goes on as the monitor (runForked).
func launcherMain(args []string, signals chan os.Signal) int {
	forked := forkedMonitor()
	startRead := preforkStarted == 1 // its forked monitor read the byte, then fell back
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
	if opts.Level >= diag.Warning && !startRead { // else the forked monitor printed them
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
	if startPresent && startErr == nil && !opts.Sync && !forked && !startRead {
		early = startEarly(args, opts, startFD)
	}
	defer early.kill()
	if !forked { // its launcher ignores them; the monitor catches them itself
		signal.Ignore(launcherIgnored...)
	}
	// SIGTERM, SIGINT and SIGQUIT end the launcher with status 1 while it waits for the
	// start byte. signal.Notify costs three round trips to another thread and starts
	// three threads, so it runs beside the rest, and not at all when the engine has
	// written the byte already: then the launcher is done in a moment, and the early
	// monitor, starting meanwhile, needs the CPU. A signal before Notify (or without it)
	// ends the process by its default action, as during the Go runtime's start-up.
	waits := !forked && !startRead && (!startPresent || !readable(startFD))
	if waits {
		go signal.Notify(signals, launcherSignals...)
	}
	log := diag.New(opts.Level, os.Stderr, opts.Syslog, opts.CID, opts.LogTag)
	defer log.Flush()
	if opts.Logs.HasK8s {
		// Created here so that a bad path reaches the caller (docs/cli.md §4 step 19).
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

	stopEarly := func() {}
	if waits {
		stopEarly = exitOnTermination(signals)
	}

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
	if forked {
		return runForked(opts, log, signals, syncFD, startFD, attachFD)
	}
	if startPresent && !startRead {
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
		signal.Notify(signals, stopSignals...)
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
		err := cgroups.Join(early.pid, os.Getpid())
		if err == nil {
			return early.release(opts.ConmonPidfile, log)
		}
		logJoinFallback(log, err)
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
// the returned function is called (docs/lifecycle.md §2 L3): nothing has been started yet but
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

// logJoinFallback says that the monitor started before the start byte could not be moved
// into the engine's cgroups and that another one is started (docs/lifecycle.md §3.2, §3.3).
func logJoinFallback(log *diag.Printer, err error) {
	log.Debugf("monitor started before the start byte cannot join the cgroups, starting another: %v", err)
}
