// Package dispatch is a second program, conmon-go-runtime: an OCI runtime that engines
// call in place of runc, not a part of the monitor. The binary runs it when started under
// that name (cmd/conmon-go); it lives beside monitor/trust, whose decision and records it
// shares (docs/trust.md §9). The engines call their runtime directly for everything but
// create/restore/exec (start, kill, delete, state, ...); dispatching every call by the
// record written at create keeps a container on the runtime that created it.
package dispatch

import (
	"fmt"
	"log/syslog"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/trust"
)

const progName = "conmon-go-runtime"

// Main runs the dispatcher with the runtime's argv and returns the exit status; on
// success for every sub-command but delete it does not return (the runtime replaces it).
func Main(args []string) int {
	log := logger{diag.NewSyslog(progName, syslogPath)}
	defer log.sys.Flush()
	status, err := dispatch(args, log)
	if err != nil {
		os.Stderr.WriteString(progName + ": " + err.Error() + "\n")
		return 1
	}
	return status
}

func dispatch(args []string, log logger) (int, error) {
	s, err := loadSettings(os.Getenv)
	if err != nil {
		return 1, err
	}
	s.Log = log
	inv := parseArgs(args)
	switch {
	case inv.id == "":
		return 1, log.execRuntime(s.Trusted, args)
	case inv.sub == "create" || inv.sub == "run" || inv.sub == "restore":
		// A record that later calls would ignore cannot keep the container on its runtime.
		if err := trust.CheckDir(s.StateDir); err != nil {
			return 1, fmt.Errorf("trust state dir: %w", err)
		}
		bundle := inv.bundle
		if bundle == "" {
			if bundle, err = os.Getwd(); err != nil {
				return 1, fmt.Errorf("get working directory: %w", err)
			}
		}
		d, err := trust.Decide(s, bundle, inv.id)
		if err != nil {
			return 1, err
		}
		severity := syslog.LOG_INFO
		if d.Warning {
			severity = syslog.LOG_WARNING
		}
		log.sys.Send(severity, d.LogText())
		if err := trust.WriteRecord(s.StateDir, d); err != nil {
			return 1, err
		}
		return 1, log.execRuntime(d.Runtime, args)
	case inv.sub == "delete":
		return deleteContainer(log, trust.DecideExec(s, inv.id).Runtime, args, s.StateDir, inv.id)
	default:
		return 1, log.execRuntime(trust.DecideExec(s, inv.id).Runtime, args)
	}
}

// execRuntime replaces the dispatcher with runtime, argv unchanged but for argv[0]. The
// syslog messages still queued are given their short time first: exec ends their sender.
func (l logger) execRuntime(runtime string, args []string) error {
	l.sys.Flush()
	argv := append([]string{runtime}, args[1:]...)
	err := unix.Exec(runtime, argv, os.Environ())
	return fmt.Errorf("exec %s: %w", runtime, err)
}

// deleteContainer runs the runtime as a child to learn whether the container is gone
// before its record is removed, and exits with the runtime's status.
func deleteContainer(log logger, runtime string, args []string, stateDir, id string) (int, error) {
	argv := append([]string{runtime}, args[1:]...)
	pid, err := syscall.ForkExec(runtime, argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		return 1, fmt.Errorf("run %s: %w", runtime, err)
	}
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 1, fmt.Errorf("wait for %s: %w", runtime, err)
	}
	switch {
	case ws.Signaled():
		return 128 + int(ws.Signal()), nil
	case ws.ExitStatus() != 0:
		return ws.ExitStatus(), nil
	}
	// The container is gone: a record left behind is only stale, so warn and succeed.
	if err := trust.RemoveRecord(stateDir, id); err != nil {
		log.Warnf("remove trust record: %v", err)
	}
	return 0, nil
}

// logger reports warnings on stderr, where the engine shows a runtime's messages, and to syslog.
type logger struct{ sys *diag.Syslog }

func (l logger) Warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	os.Stderr.WriteString(progName + ": warning: " + msg + "\n")
	l.sys.Send(syslog.LOG_WARNING, msg)
}

func (logger) Debugf(string, ...any) {}
