package person

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/seqpacket"
)

// syncTimeout bounds the wait for the container's pid on the sync pipe (podman's bound).
const syncTimeout = 240 * time.Second

// interrupted is a start-up abandoned because of a terminating signal.
type interrupted struct{ sig syscall.Signal }

func (e *interrupted) Error() string { return "interrupted by " + unix.SignalName(e.sig) }

// launch starts the monitor with argv the way podman does: the sync and start pipes are
// SOCK_SEQPACKET socketpairs passed as fds 3 and 4 (_OCI_SYNCPIPE, _OCI_STARTPIPE); the
// start byte goes at once, as there is no cgroup to move the launcher into; the launcher
// writes the monitor's pid file, daemonises the monitor and exits; the monitor reports the
// container's pid on the sync pipe. It returns the container's and the monitor's pids (the
// monitor's also with an error, once known). A terminating signal on sigc abandons the
// wait.
func launch(argv, env []string, conmonPidFile string, sigc <-chan os.Signal) (containerPid, monitorPid int, err error) {
	syncR, syncW, err := socketpair("sync")
	if err != nil {
		return 0, 0, err
	}
	defer syncR.Close()
	startW, startR, err := socketpair("start")
	if err != nil {
		syncW.Close()
		return 0, 0, err
	}
	defer startW.Close()

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       argv,
		Env:        append(env, "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"),
		ExtraFiles: []*os.File{syncW, startR},
		// Its own process group, as with podman: signals from the terminal are ours.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	// The launcher's complaints become our one-line error.
	var complaints bytes.Buffer
	cmd.Stderr = &complaints
	err = cmd.Start()
	syncW.Close()
	startR.Close()
	if err != nil {
		return 0, 0, fail("start the monitor: %w", err)
	}
	if _, err := startW.Write([]byte{0}); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, 0, fail("start pipe: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		if msg := launcherMessage(complaints.String()); msg != "" {
			return 0, 0, fail("the monitor did not start: %s", msg)
		}
		return 0, 0, fail("the monitor did not start: %w", err)
	}
	os.Stderr.Write(complaints.Bytes()) // warnings
	if monitorPid, err = readPid(conmonPidFile); err != nil {
		return 0, 0, fail("the monitor's pid: %w", err)
	}
	containerPid, err = readSync(syncR, sigc)
	return containerPid, monitorPid, err
}

// socketpair returns the two ends of a SOCK_SEQPACKET socketpair; the first is ours and
// non-blocking (on the runtime poller), the second is for the launcher.
func socketpair(what string) (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fail("%s pipe: %w", what, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fail("%s pipe: %w", what, err)
	}
	return os.NewFile(uintptr(fds[0]), what+" pipe"), os.NewFile(uintptr(fds[1]), what+" pipe"), nil
}

// syncMessage is the monitor's report with --api-version 1.
type syncMessage struct {
	Data    *int   `json:"data"`
	Message string `json:"message"`
}

// readSync reads the one message of the sync pipe: the container's pid, or why it could
// not be created.
func readSync(f *os.File, sigc <-chan os.Signal) (int, error) {
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, 4096)
	done := make(chan result, 1)
	f.SetReadDeadline(time.Now().Add(syncTimeout))
	go func() {
		n, err := seqpacket.ReadPacket(f, buf)
		done <- result{n, err}
	}()
	var r result
wait:
	for {
		select {
		case r = <-done:
			break wait
		case sig := <-sigc:
			if s, ok := sig.(syscall.Signal); ok && terminating(s) {
				f.SetReadDeadline(time.Now())
				<-done
				return 0, &interrupted{s}
			}
		}
	}
	if errors.Is(r.err, os.ErrDeadlineExceeded) {
		return 0, fail("the monitor did not report the container's pid within %v", syncTimeout)
	}
	if r.err != nil || r.n == 0 {
		return 0, fail("the monitor exited without reporting the container's pid")
	}
	var m syncMessage
	if err := json.Unmarshal(buf[:r.n], &m); err != nil || m.Data == nil {
		return 0, fail("unexpected message from the monitor: %q", buf[:r.n])
	}
	if *m.Data < 0 {
		return 0, createError(m.Message)
	}
	return *m.Data, nil
}

// createError is the runtime's failure to create the container, with podman's exit status
// for it: 126 for a command that cannot be executed, 127 for one that does not exist.
func createError(msg string) error {
	msg = runtimeMessage(msg)
	code := ExitFailure
	switch {
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "operation not permitted"):
		code = ExitCannotRun
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		code = ExitNotFound
	}
	return &Error{Code: code, Err: fmt.Errorf("create the container: %s", msg)}
}

// runtimeMessage is the text of the runtime's error: runc reports it as a logrus line,
// time="..." level=error msg="<quoted text>".
func runtimeMessage(out string) string {
	out = strings.TrimSpace(out)
	lines := strings.Split(out, "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if i := strings.Index(last, `msg="`); i >= 0 {
		if text, err := strconv.Unquote(last[i+4:]); err == nil {
			return text
		}
	}
	return out
}

// launcherMessage joins the launcher's message lines without their "[conmon:x]: " tags.
func launcherMessage(out string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if i := strings.Index(l, "]: "); strings.HasPrefix(l, "[conmon:") && i > 0 {
			l = l[i+3:]
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: not a pid: %q", path, data)
	}
	return pid, nil
}
