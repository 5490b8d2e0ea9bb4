// Package person drives a monitor the way an engine does, for a person at a terminal and
// for a systemd unit. conmon cannot be used by hand: it needs an engine to create its
// pipes, read its sync messages, start the container and talk to its attach socket. This
// package is that engine, kept small: Run starts one container under the full monitor
// (this same binary, through the code path podman uses) and stays with it in the
// foreground; Attach connects a terminal to the attach socket of any conmon-style monitor,
// conmon's included.
package person

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Exit statuses of run and attach when conmon-go itself, not the container, decides; the
// values are podman's.
const (
	ExitFailure     = 125 // bad input, or the monitor or runtime failed
	ExitCannotRun   = 126 // the container's command cannot be executed
	ExitNotFound    = 127 // the container's command was not found
	exitSignalBase  = 128 // + signal number: the container was killed by a signal
	defaultStateDir = "/run/conmon-go"
)

// Error is a failure with the exit status it calls for.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(format string, args ...any) error {
	return &Error{Code: ExitFailure, Err: fmt.Errorf(format, args...)}
}

// ExitCode is the status a command should exit with after err: ExitFailure unless err
// carries another.
func ExitCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailure
}

// StateBase is the directory holding one state directory per container started by `run`:
// /run/conmon-go for root (system services and login shells see the same containers),
// $XDG_RUNTIME_DIR/conmon-go for other users.
func StateBase() (string, error) {
	if os.Geteuid() == 0 {
		return defaultStateDir, nil
	}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		return filepath.Join(xdg, "conmon-go"), nil
	}
	return "", errors.New("XDG_RUNTIME_DIR is not set: give --state-dir")
}

// Locate finds the file of a container (its attach socket, its log) from what a person
// names the container by, the same for every command: an existing path that is not a
// directory is the file itself; a directory holds it as file (a bundle, a run's state
// directory, podman's userdata directory, CRI-O's <socket-dir>/<id>); a word without '/'
// that names nothing is the name given to `run`, whose state directory is in StateBase.
// A directory without the file is "<dir> has no <what>".
func Locate(target, file, what string) (string, error) {
	st, err := os.Stat(target)
	if errors.Is(err, os.ErrNotExist) && target != "" && !strings.ContainsRune(target, '/') {
		base, berr := StateBase()
		if berr != nil {
			return "", fail("%s: no such file or directory, nor a container name: %w", target, berr)
		}
		dir := filepath.Join(base, target)
		if st, err = os.Stat(dir); err != nil {
			return "", fail("%s: no such file, directory or container name (no %s)", target, dir)
		}
		target = dir
	}
	if err != nil {
		return "", fail("%w", err)
	}
	if !st.IsDir() {
		return target, nil
	}
	path := filepath.Join(target, file)
	if _, err := os.Lstat(path); err != nil {
		return "", fail("%s has no %s", target, what)
	}
	return path, nil
}

// validName reports whether name can be a container name: it names the state directory
// and appears in journald's CONTAINER_NAME, so it keeps to the runtime's id characters.
func validName(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' || name[0] == '-' {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}) < 0
}
