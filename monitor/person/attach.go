package person

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/ctl"
	"github.com/conmon-go/conmon-go/seqpacket"
)

// AttachOptions is what `conmon-go attach` was asked for.
type AttachOptions struct {
	Target     string // a bundle or state directory, an attach socket, or a run's name
	NoStdin    bool
	Terminal   bool // treat the container as having a terminal whatever its config.json says
	DetachKeys string
}

// attachExitWait bounds the wait for the exit file once the monitor closed the
// connection; engines allow about 5 s.
const attachExitWait = 5 * time.Second

// Attach connects the person's terminal to a running container's attach socket, of
// conmon-go or conmon, until the container ends (its exit status is returned when its exit
// file can be found) or the person detaches (0).
func Attach(o AttachOptions) (int, error) {
	sigc, release := catchSignals()
	defer release()
	keys, err := parseDetachKeys(o.DetachKeys)
	if err != nil {
		return ExitFailure, err
	}
	sock, err := Locate(o.Target, "attach", "attach socket: the container is not running, or this is not its bundle")
	if err != nil {
		return ExitFailure, err
	}
	conn, err := dial(sock, sigc, terminating)
	var in *interrupted
	switch {
	case errors.As(err, &in):
		return exitSignalBase + int(in.sig), nil
	case err != nil:
		return ExitFailure, dialError(sock, err)
	}
	dir := filepath.Dir(sock)
	var watch *exitWatch
	if pid, err := conn.PeerPid(); err == nil {
		watch = newExitWatch(exitFilesOf(pid), pid)
		defer watch.close()
	}
	tty := o.Terminal || configTerminal(dir)
	s := &session{conn: conn, keys: detacher{keys: keys}}
	if !o.NoStdin {
		if s.in, err = readInput(); err != nil {
			conn.Close()
			return ExitFailure, err
		}
		defer s.in.stop()
	}
	term, err := openTerminal(tty && s.in != nil)
	if err != nil {
		conn.Close()
		return ExitFailure, err
	}
	defer term.restore()
	s.term = term
	if tty {
		if w, err := ctl.OpenWriter(dir); err == nil {
			s.ctl = w
			defer w.Close()
		}
	}
	out := s.stay(sock, sigc, func(sig syscall.Signal) bool { return terminating(sig) || sig == unix.SIGPIPE }, os.Stderr)
	s.in.stop()
	s.conn.Close()
	term.restore()
	if out != ended {
		fmt.Fprintf(os.Stderr, "\nconmon-go: detached from %s\n", sock)
		return 0, nil
	}
	if watch == nil {
		return ExitFailure, fail("the monitor closed the connection; the container's exit status is unknown")
	}
	status, err := watch.wait(attachExitWait)
	if err != nil {
		return ExitFailure, fail("the monitor closed the connection; the container's exit status is unknown: %w", err)
	}
	return status, nil
}

// dialError says in one line why sock cannot be attached to.
func dialError(sock string, err error) error {
	switch {
	case errors.Is(err, seqpacket.ErrNotAttachSocket):
		return fail("%s is not an attach socket (not SOCK_SEQPACKET)", sock)
	case errors.Is(err, unix.ECONNREFUSED):
		return fail("%s: nobody listens: the container's monitor has exited", sock)
	case errors.Is(err, seqpacket.ErrNotAccepting):
		return fail("%s: the monitor accepts no connections for %v: it is stopped or hung", sock, dialTimeout)
	}
	return fail("%w", err)
}

// configTerminal reports whether the bundle in dir gives the container a terminal.
func configTerminal(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return false
	}
	cfg, err := decodeConfig(data)
	if err != nil {
		return false
	}
	process, _ := cfg["process"].(map[string]any)
	terminal, _ := process["terminal"].(bool)
	return terminal
}
