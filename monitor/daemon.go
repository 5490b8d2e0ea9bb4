package monitor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/diag"
)

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
// same argv and the engine's fds at their own numbers (docs/lifecycle.md §3). The monitor
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
			log.Errorf("Failed to write conmon pidfile: %v", err)
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
	// Ours, not the engine's: inheritedFDs must not count it, or the exit sequence would
	// close its number again after a later open reused it.
	unix.CloseOnExec(hs)
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
	m.catchStopSignals() // while the engine works: a signal until the release is kept for run
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
