package ptyio

import (
	"os"
	"sync/atomic"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

// Stdin writes attach-client input to the container (docs/protocol.md §5.3, §5.5).
type Stdin struct {
	f          *os.File // nil: no destination, input is discarded
	terminal   bool
	closeOnEOF bool
	log        diag.Logger
	stopped    atomic.Bool
}

// NewStdin returns the stdin target for the attach server. f is the pipe write end or the
// pty master (non-blocking, on the poller). closeOnClientEOF = -i && !--leave-stdin-open.
// For a terminal "close" means: stop delivering (the master stays open for output); for a
// pipe: close the write end.
func NewStdin(f *os.File, terminal, closeOnClientEOF bool, log diag.Logger) *Stdin {
	return &Stdin{f: f, terminal: terminal, closeOnEOF: closeOnClientEOF, log: diag.OrDiscard(log)}
}

// WriteStdin writes all of p, waiting on the poller while the container does not read
// (back-pressure for the attach clients). After the input was closed p is discarded.
// Concurrent calls are serialised by the file's write lock.
func (s *Stdin) WriteStdin(p []byte) error {
	if s.f == nil || s.stopped.Load() {
		return nil
	}
	if _, err := s.f.Write(p); err != nil {
		if s.stopped.Load() { // closed under us by ClientInputClosed
			return nil
		}
		return err
	}
	return nil
}

// ClientInputClosed is called when an attach client's input side ended.
func (s *Stdin) ClientInputClosed() {
	if !s.closeOnEOF || s.f == nil || s.stopped.Swap(true) {
		return
	}
	if s.terminal {
		// The master also carries the output: keep it open. Stdin is its only writer, so a
		// past write deadline just aborts a pending write.
		s.f.SetWriteDeadline(time.Unix(1, 0))
		s.log.Debugf("attach client input ended: no more stdin for the terminal")
		return
	}
	if err := s.f.Close(); err != nil {
		s.log.Warnf("Failed to close container stdin: %v", err)
	}
}
