package monitor

import (
	"errors"
	"os"

	"github.com/conmon-go/conmon-go/monitor/ctl"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/journald"
	"github.com/conmon-go/conmon-go/ptyio/k8sfile"
	"github.com/conmon-go/conmon-go/seqpacket"
)

// setupOutput opens the log drivers and creates the attach socket and the ctl/winsz FIFOs.
func (m *monitor) setupOutput() error {
	if err := m.openLogs(); err != nil {
		return err
	}
	// Complete before the ctl reader starts, which reads it (Reopen).
	m.output = &ptyio.Output{Drivers: m.drivers, Log: m.log}
	if m.servesAttach() {
		return m.listenAttach()
	}
	return nil
}

// servesAttach: a bundle to put the attach socket in, and output that passes through
// the monitor.
func (m *monitor) servesAttach() bool { return m.opts.Bundle != "" && !m.opts.Logs.Passthrough }

// setupStdio creates the container's stdio (docs/lifecycle.md §6).
func (m *monitor) setupStdio() error {
	opts := m.opts
	if opts.Logs.Passthrough {
		return nil
	}
	var err error
	if opts.Terminal {
		if m.console, err = ptyio.NewConsoleSocket(os.Getenv("TMPDIR")); err != nil {
			return err
		}
		m.console.Log = m.log
		m.pipes, err = ptyio.NewPipes(false, false)
	} else {
		m.pipes, err = ptyio.NewPipes(opts.Stdin, true)
	}
	if err != nil {
		return err
	}
	if m.stdin == nil { // or made with the attach socket before the start byte
		m.stdin = newStdinGate()
	}
	if !opts.Terminal && m.pipes.Stdin != nil {
		m.stdin.open(ptyio.NewStdin(m.pipes.Stdin, false, opts.Stdin && !opts.LeaveStdinOpen, m.log))
	} else if !opts.Terminal {
		m.stdin.open(nil)
	}
	return nil
}

func (m *monitor) openLogs() error {
	opts := m.opts
	if opts.Logs.Passthrough {
		return nil
	}
	if opts.Logs.HasK8s {
		w, err := k8sfile.Open(k8sfile.Config{
			Path:          opts.Logs.K8sPath,
			SizeMax:       opts.LogSizeMax,
			GlobalSizeMax: opts.LogGlobalSizeMax,
			Rotate:        opts.LogRotate,
			MaxFiles:      opts.LogMaxFiles,
			AllowlistDirs: opts.LogAllowlistDirs,
			Log:           m.log,
		})
		if err != nil {
			return errors.New("Failed to open log file " + diag.Strerror(err))
		}
		m.drivers = append(m.drivers, w)
	}
	if opts.Logs.Journald {
		w, err := journald.New(journald.Config{
			CID:           opts.CID,
			Name:          opts.Name,
			Tag:           opts.LogTag,
			Labels:        opts.LogLabels,
			NoPartialFlag: opts.NoContainerPartialMessage,
			Log:           m.log,
		})
		if err != nil {
			return err
		}
		m.drivers = append(m.drivers, w)
	}
	return nil
}

// listenAttach starts the attach socket and the ctl/winsz FIFOs, creating them unless
// listenEarly did; podman connects and writes to ctl right after it reads the pid, so they
// exist before it is reported.
func (m *monitor) listenAttach() error {
	if m.attach == nil {
		if err := m.createAttach(); err != nil {
			return err
		}
	}
	m.output.Attach = m.attach
	m.attach.Start()
	m.fifos.Start()
	return nil
}

// createAttach creates the attach socket and the ctl/winsz FIFOs, without serving them.
func (m *monitor) createAttach() error {
	opts := m.opts
	socketDir := opts.SocketDir
	if opts.FullAttach {
		socketDir = ""
	}
	srv, err := seqpacket.Listen(seqpacket.Config{
		Bundle:    opts.Bundle,
		SocketDir: socketDir,
		CUUID:     opts.CUUID,
		Stdin:     m.stdin,
		Log:       m.log,
	})
	if err != nil {
		return err
	}
	m.attach = srv
	fifos, err := ctl.Create(opts.Bundle, m, m.log)
	if err != nil {
		return err
	}
	m.fifos = fifos
	return nil
}

// listenEarly creates the attach socket and the FIFOs while the engine still works on its
// cgroups, so that they are off the create path (docs/lifecycle.md §3.3). A start byte that
// is there already leaves them to the runtime's start-up, which they then overlap. A
// failure undoes what it made and leaves the work, and the report, to the regular step.
func (m *monitor) listenEarly(startFD int) {
	if !m.servesAttach() || startByteArrived(startFD) {
		return
	}
	m.stdin = newStdinGate()
	if err := m.createAttach(); err != nil {
		m.log.Debugf("attach socket before the start byte: %v", err)
		m.discardEarly()
	}
}

// discardEarly closes and removes what listenEarly made, when the monitor ends (or hands
// over to another one) before its start.
func (m *monitor) discardEarly() {
	if m.fifos != nil {
		m.fifos.Close()
		m.fifos.Remove()
		m.fifos = nil
	}
	if m.attach != nil {
		m.attach.Shutdown(0)
		m.attach.Remove()
		m.attach = nil
	}
}

// Resize applies a ctl/winsz resize; before the pty master exists only the latest size is
// kept, and without a terminal resizes are dropped (ctl.Handler).
func (m *monitor) Resize(rows, cols int) {
	if !m.opts.Terminal {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.term == nil {
		m.pendingSize = [2]int{rows, cols}
		m.hasPendingSize = true
		return
	}
	if err := m.term.Resize(rows, cols); err != nil {
		m.log.Warnf("%v", err)
	}
}

// Reopen serves ctl's "2 0 0" (ctl.Handler).
func (m *monitor) Reopen() {
	for i, d := range m.drivers {
		if !m.driverOff(i) {
			d.Reopen()
		}
	}
}

func (m *monitor) setTerminal(t *ptyio.Terminal) {
	m.mu.Lock()
	m.term = t
	if m.hasPendingSize {
		if err := t.Resize(m.pendingSize[0], m.pendingSize[1]); err != nil {
			m.log.Warnf("%v", err)
		}
	}
	m.mu.Unlock()
	// A client's stdin goes to the pty even without -i (docs/lifecycle.md §6.2).
	m.stdin.open(ptyio.NewStdin(t.Master, true, m.opts.Stdin && !m.opts.LeaveStdinOpen, m.log))
}
