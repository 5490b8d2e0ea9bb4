package person

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// privateEnv lists variables that speak to this process only and must not reach the
// monitor, the runtime or the container: NOTIFY_SOCKET and WATCHDOG_* belong to our own
// systemd unit (the monitor would report its own readiness to it, and runc proxies
// NOTIFY_SOCKET into the container and makes `start` wait for it), LISTEN_* describe fds
// we were given (the monitor would take its sync and start pipes for them), and _OCI_*
// would be taken for an engine's pipes.
var privateEnv = []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "_OCI_"}

// childEnv is our environment without privateEnv.
func childEnv() []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range privateEnv {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// runtime runs the OCI runtime's own commands the way engines do: start, kill and delete
// go to the runtime directly, not through the monitor.
type runtime struct {
	path string
	env  []string
}

// findRuntime resolves name (a path, or a command looked up in PATH) to an absolute path,
// which the monitor requires.
func findRuntime(name string) (runtime, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return runtime{}, fail("runtime %s: %w", name, errors.Unwrap(err))
	}
	if path, err = filepath.Abs(path); err != nil {
		return runtime{}, fail("runtime %s: %w", name, err)
	}
	return runtime{path: path, env: childEnv()}, nil
}

// run runs the runtime with args; its error carries the runtime's own message.
func (r runtime) run(args ...string) error {
	cmd := exec.Command(r.path, args...)
	cmd.Env = r.env
	// Its own process group: a ctrl-c on the terminal is ours to forward, not the
	// runtime's to receive.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(bytes.ToValidUTF8(out, nil)))
		if msg == "" {
			msg = err.Error()
		}
		return errors.New(r.path + " " + args[0] + ": " + msg)
	}
	return nil
}

func (r runtime) start(id string) error { return r.run("start", id) }

func (r runtime) kill(id string, sig syscall.Signal) error {
	return r.run("kill", id, strconv.Itoa(int(sig)))
}

// delete removes the container from the runtime; force also kills a running one.
func (r runtime) delete(id string, force bool) error {
	if force {
		return r.run("delete", "--force", id)
	}
	return r.run("delete", id)
}
