package monitor

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/ptyio"
)

// runtimeFailed stands for the runtime's status when waiting for it panicked: exited 1.
const runtimeFailed = unix.WaitStatus(1 << 8)

// Bounds of what is read of a failed runtime's stderr (runtimeStderr).
const (
	runtimeStderrWait = time.Second
	maxRuntimeStderr  = 8191
)

// runtimeArgv builds the runtime's command line exactly as docs/lifecycle.md §5.1 lays it out.
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

// waitRuntime returns the runtime's wait status. Its exit makes the pidfd readable, and
// the runtime's poller wakes the goroutine waiting for that on the thread that polls:
// SIGCHLD, not caught before the pid is reported (quietSignals), would take the way
// through the signal thread, the signal loop and two more threads. Without a pidfd the
// monitor waits for SIGCHLD. The reaper collects the status either way.
func (m *monitor) waitRuntime(rt lockedChild) unix.WaitStatus {
	exited := m.reaper.wait(rt.pid)
	if rt.pidfd < 0 {
		m.catchQuietSignals()
		return <-exited
	}
	defer unix.Close(rt.pidfd)
	// CLONE_PIDFD gives a blocking fd, which the poller would not take.
	unix.SetNonblock(rt.pidfd, true)
	select {
	case ws := <-exited:
		return ws
	case <-watchExit(rt.pid, rt.pidfd, nil, m.log):
		m.reaper.reapOne(rt.pid) // the rest once the pid is out (catchQuietSignals)
		return <-exited
	}
}

// runRuntime starts the runtime, runs setup (if any) meanwhile, waits for the runtime (and
// the console), reports the pid, and runs the container until it exits (docs/lifecycle.md
// §2 M11–M19).
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

type termResult struct {
	t   *ptyio.Terminal
	err error
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
// allowed (docs/lifecycle.md §10.3). Only a regular file of less than 128 bytes counts, opened
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
