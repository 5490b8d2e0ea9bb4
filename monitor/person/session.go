package person

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/ctl"
	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/seqpacket"
)

// sessionSignals are the signals a session handles; SIGPIPE is caught so that a write to
// a closed stdout fails with EPIPE instead of killing the process.
var sessionSignals = []os.Signal{
	unix.SIGWINCH, unix.SIGCONT, unix.SIGPIPE,
	unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2,
}

// catchSignals starts catching sessionSignals, from the start of a command: a ctrl-c
// while the container is being created must not leave it behind.
func catchSignals() (<-chan os.Signal, func()) {
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, sessionSignals...)
	return sigc, func() { signal.Stop(sigc) }
}

// terminating reports the signals that ask the container to end.
func terminating(sig syscall.Signal) bool {
	return sig == unix.SIGINT || sig == unix.SIGTERM || sig == unix.SIGHUP
}

// outputStalled bounds the wait for the output copy after a session was ended from our
// side: the copy may sit in a write to a terminal that does not take output.
const outputStalled = time.Second

// input reads our stdin for the life of a command, so that the sessions that follow each
// other (after a reconnect) take turns with one reader. It reads only when stdin is
// readable and stop has not been called: input typed after the end belongs to the shell.
type input struct {
	chunks chan []byte // closed at the end of stdin
	stopR  int         // readable once stop was called
	stopW  int
	once   sync.Once
}

func readInput() (*input, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fail("pipe: %w", err)
	}
	in := &input{chunks: make(chan []byte, 1), stopR: p[0], stopW: p[1]}
	go in.loop()
	return in, nil
}

func (in *input) loop() {
	defer close(in.chunks)
	defer unix.Close(in.stopR)
	fds := []unix.PollFd{{Fd: 0, Events: unix.POLLIN}, {Fd: int32(in.stopR), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents == 0 {
			continue
		}
		buf := make([]byte, seqpacket.MaxInput)
		n, err := unix.Read(0, buf)
		switch {
		case n > 0:
			in.chunks <- buf[:n]
		case err == unix.EINTR || err == unix.EAGAIN:
		default: // end of input, or an error that will not go away
			return
		}
	}
}

// stop ends the reading.
func (in *input) stop() {
	if in != nil {
		in.once.Do(func() { unix.Close(in.stopW) })
	}
}

// session connects the person's stdio to an attach socket: container output to stdout
// and stderr, stdin (with the detach keys) to the container, window size changes to the
// ctl FIFO.
type session struct {
	conn *seqpacket.Conn
	in   *input // nil: stdin is not forwarded
	// keys finds the detach sequence; it belongs to the session, not to one connection, so
	// that a sequence half typed when the monitor drops the session completes after it.
	keys detacher
	// unsent is input a failed write left over, sent first on the next connection.
	unsent []byte
	term   *userTerminal
	ctl    *ctl.Writer // nil: the container has no terminal to resize
	mute   bool        // the output is read and dropped: it is in the journal already
	// noInput: without stdin to forward, the client's input side is shut at once, as
	// podman does (a monitor started with -i then closes the container's stdin).
	noInput bool
}

// outcome says how a session ended.
type outcome int

const (
	ended    outcome = iota // the monitor closed the connection
	detached                // the person typed the detach keys
	stopped                 // onSignal (or a failed stdout) ended it
)

// run copies until the monitor closes the connection, the detach keys are typed, or
// onSignal returns true for a signal received on sigc. A stdout that cannot be written to
// any more counts as SIGPIPE: the output is then read and dropped. It returns once the
// input copy has ended: the next run (after a reattach) takes over stdin and the connection.
func (s *session) run(sigc <-chan os.Signal, onSignal func(syscall.Signal) bool) outcome {
	if s.in == nil && s.noInput {
		s.conn.CloseWrite()
	}
	s.resize() // before the first keys are forwarded
	outDone := make(chan struct{})
	outFailed := make(chan struct{}, 1)
	go s.copyOutput(outDone, outFailed)
	stop := make(chan struct{})
	inDone := make(chan struct{})
	detach := make(chan struct{}, 1)
	if s.in != nil {
		go func() {
			defer close(inDone)
			s.copyInput(stop, detach)
		}()
	} else {
		close(inDone)
	}
	// end closes the connection, which ends a copy parked in a read or a write on it, and
	// waits for both copies; the output copy may sit in a write to a terminal that does
	// not take output, and is given outputStalled.
	end := func(o outcome) outcome {
		s.conn.Close()
		close(stop)
		<-inDone
		select {
		case <-outDone:
		case <-time.After(outputStalled):
		}
		return o
	}
	for {
		select {
		case <-outDone:
			return end(ended)
		case <-detach:
			return end(detached)
		case <-outFailed:
			if onSignal(unix.SIGPIPE) {
				return end(stopped)
			}
		case sig := <-sigc:
			if ss, _ := sig.(syscall.Signal); s.signal(ss, onSignal) {
				return end(stopped)
			}
		}
	}
}

// signal handles a signal received during the session; true when onSignal ends it.
func (s *session) signal(sig syscall.Signal, onSignal func(syscall.Signal) bool) bool {
	switch sig {
	case unix.SIGWINCH:
		s.resize()
	case unix.SIGCONT:
		s.term.rawAgain()
		s.resize()
	case unix.SIGPIPE:
		// Seen through the failed write.
	default:
		return onSignal(sig)
	}
	return false
}

// maxReattach bounds how often a session is resumed after the monitor dropped it.
const maxReattach = 10

// stay runs the session until the container's output ends or the person detaches. A
// monitor drops a client that stops reading (a terminal that cannot keep up): while the
// socket at sock still accepts connections the container runs, and the session resumes.
func (s *session) stay(sock string, sigc <-chan os.Signal, onSignal func(syscall.Signal) bool, report io.Writer) outcome {
	for i := 0; ; i++ {
		out := s.run(sigc, onSignal)
		if out != ended || i == maxReattach {
			return out
		}
		conn, err := dial(sock, sigc, func(sig syscall.Signal) bool { return s.signal(sig, onSignal) })
		var in *interrupted
		switch {
		case errors.As(err, &in):
			return stopped
		case err != nil:
			return out
		}
		s.conn = conn
		fmt.Fprintf(report, "conmon-go: the monitor dropped this slow client; attached again (the output in between is in the log)\r\n")
	}
}

// dialTimeout bounds the wait for a monitor that accepts no connections (stopped or hung
// with its listen backlog full).
const dialTimeout = 10 * time.Second

// dial connects to the attach socket sock. While it waits, the signals on sigc go to
// handle; one for which it returns true abandons the wait with an *interrupted error.
func dial(sock string, sigc <-chan os.Signal, handle func(syscall.Signal) bool) (*seqpacket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	type result struct {
		conn *seqpacket.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := seqpacket.Dial(ctx, sock)
		done <- result{conn, err}
	}()
	var stop syscall.Signal
	for {
		select {
		case r := <-done:
			if stop == 0 {
				return r.conn, r.err
			}
			if r.conn != nil {
				r.conn.Close()
			}
			return nil, &interrupted{stop}
		case sig := <-sigc:
			if ss, _ := sig.(syscall.Signal); stop == 0 && handle(ss) {
				stop = ss
				cancel()
			}
		}
	}
}

func (s *session) resize() {
	if s.ctl == nil {
		return
	}
	if rows, cols, ok := s.term.winsize(); ok {
		s.ctl.Resize(rows, cols)
	}
}

// copyOutput writes every frame to stdout or stderr until the connection ends.
func (s *session) copyOutput(done, failed chan<- struct{}) {
	defer close(done)
	broken := false
	for {
		stream, p, err := s.conn.ReadFrame()
		if err != nil {
			return
		}
		if broken || s.mute {
			continue
		}
		w := os.Stdout
		switch stream {
		case ptyio.Stdout:
		case ptyio.Stderr:
			w = os.Stderr
		default:
			continue // stdin echoes or unknown ids carry nothing for us
		}
		if _, err := w.Write(p); err != nil {
			broken = true
			failed <- struct{}{}
		}
	}
}

// copyInput forwards stdin until it ends (then the input side is shut, which closes the
// container's stdin unless the monitor keeps it open), the detach keys are typed, or the
// session stops.
func (s *session) copyInput(stop <-chan struct{}, detach chan<- struct{}) {
	if len(s.unsent) > 0 && !s.send(s.unsent) {
		return
	}
	for {
		select {
		case <-stop:
			return
		case p, ok := <-s.in.chunks:
			if !ok {
				if rest := s.keys.pending(); len(rest) > 0 && !s.send(rest) {
					return
				}
				s.conn.CloseWrite()
				return
			}
			out, hit := s.keys.scan(p)
			sent := len(out) == 0 || s.send(out)
			if hit {
				detach <- struct{}{}
				return
			}
			if !sent {
				return
			}
		}
	}
}

// send writes p to the container's stdin. What a failed write left unsent (the monitor
// dropped the connection) is kept for the next connection.
func (s *session) send(p []byte) bool {
	n, err := s.conn.Write(p)
	if err != nil {
		s.unsent = append(s.unsent[:0], p[n:]...)
		return false
	}
	s.unsent = s.unsent[:0]
	return true
}
