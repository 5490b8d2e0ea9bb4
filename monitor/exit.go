package monitor

import (
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/exitfile"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/trust"
	"github.com/conmon-go/conmon-go/ptyio"
)

// Bounds of the exit sequence (docs/lifecycle.md §14): engines give up ≈ 5 s after the death.
const (
	drainIdle   = 250 * time.Millisecond
	drainTotal  = 2 * time.Second
	drainBound  = 3 * time.Second // the wait for the pumps, whatever they are stuck in
	attachFlush = time.Second
	timeoutReap = time.Second
)

// exitSequence reports the exit (docs/lifecycle.md §14, conmon-go order).
func (m *monitor) exitSequence(status int, timedOut bool, pumps []*ptyio.Pump) int {
	diag.PanicPoint("exit")
	opts := m.opts
	if m.oomw != nil {
		m.oomw.Final()
		m.oomw.Close()
	}
	m.drain(pumps, timedOut)
	for i, d := range m.drivers {
		if m.driverOff(i) {
			continue
		}
		d.Flush()
		if !opts.NoSyncLog {
			if err := d.Sync(); err != nil {
				m.log.Warnf("Failed to sync log file before exit: %v", err)
			}
		}
	}
	if m.attachUsable() {
		m.attach.Shutdown(attachFlush)
	}
	for _, fd := range m.inherited {
		unix.Close(fd)
	}
	if m.startFD >= 0 {
		unix.Close(m.startFD)
		m.startFD = -1
	}
	exitStatus := m.reportExit(status, timedOut)
	m.removeFiles()
	for i, d := range m.drivers {
		if !m.driverOff(i) {
			d.Close()
		}
	}
	if m.fifos != nil {
		m.fifos.Close()
	}
	if m.notify != nil {
		m.notify.Close()
	}
	m.finishExit()
	return exitStatus
}

// drain lets the pumps read what is left (docs/lifecycle.md §14 step 2). The wait is bounded
// beyond the pumps' own bounds: a consumer stuck after a panic elsewhere must not keep
// the exit files from being written.
func (m *monitor) drain(pumps []*ptyio.Pump, timedOut bool) {
	var wg sync.WaitGroup
	for _, p := range pumps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer diag.Recover(m.log, "output drain", nil)
			if timedOut {
				p.Stop()
			} else {
				p.Drain(drainIdle, drainTotal)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer diag.Recover(m.log, "output drain", nil)
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainBound):
		m.log.Warnf("container output not drained within %v", drainBound)
	}
}

// Exit steps done, for afterPanic.
const (
	stepNone = iota
	stepExitFiles
	stepReported
	stepFinished
)

// reportExit writes the exit files and sends an exec's final message (docs/lifecycle.md §14
// steps 7 and 8), and returns the monitor's exit status.
func (m *monitor) reportExit(status int, timedOut bool) int {
	opts := m.opts
	exitStatus := status & 0xff
	if m.step < stepExitFiles {
		if opts.PersistDir != "" {
			if err := writeExitFile(filepath.Join(opts.PersistDir, "exit"), status); err != nil {
				m.log.Warnf("Failed to write %d to container exit file: %v", status, err)
				exitStatus = 1
			}
		}
		if opts.ExitDir != "" {
			if err := writeExitFile(filepath.Join(opts.ExitDir, opts.CID), status); err != nil {
				m.log.Warnf("Failed to write %d to exit file: %v", status, err)
				exitStatus = 1
			}
		}
		m.step = stepExitFiles
	}
	if m.step < stepReported {
		m.step = stepReported // once, even if the send panics
		if opts.Exec {
			msg := ""
			if timedOut {
				msg = "command timed out"
			}
			m.sync.send(m.syncKey(), status, msg)
		}
		m.sync.close()
	}
	return exitStatus
}

// finishExit runs the exit command and reaps what is left (steps 10 and 11).
func (m *monitor) finishExit() {
	if m.step == stepFinished {
		return
	}
	m.step = stepFinished
	m.runExitCommand()
	m.reaper.reap()
}

// writeExitFile retries once: a transient failure must not lose the exit status.
func writeExitFile(path string, status int) error {
	err := exitfile.WriteInt(path, status)
	if err != nil {
		err = exitfile.WriteInt(path, status)
	}
	return err
}

// removeFiles removes what the monitor created and nobody else cleans up: the attach
// socket, the socket-dir symlink, the console socket and the trust record.
func (m *monitor) removeFiles() {
	if m.attach != nil {
		m.attach.Remove()
	}
	if m.console != nil {
		m.console.Close()
	}
	if m.trustRecord != "" {
		if err := trust.RemoveRecord(m.trustRecord, m.opts.CID); err != nil {
			m.log.Debugf("%v", err)
		}
	}
}

// attachUsable: an attach server exists and no panic switched it off (a server that
// panicked may be stopped holding a lock: only its files are removed).
func (m *monitor) attachUsable() bool {
	return m.attach != nil && !m.attach.Failed() && (m.output == nil || !m.output.AttachOff())
}

// driverOff reports that log driver i panicked in the pumps and is no longer called.
func (m *monitor) driverOff(i int) bool { return m.output != nil && m.output.DriverOff(i) }
