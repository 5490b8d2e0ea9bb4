package diag

import (
	"log/syslog"
	"sync"
	"time"
)

// Syslog sends messages to the local syslog daemon through log/syslog, facility LOG_USER,
// in the daemon's local form:
//
//	<PRI>Mmm dd hh:mm:ss tag[pid]: message\n
//
// Its callers never wait for the daemon: log/syslog writes to a socket without a deadline,
// so messages go through a queue of at most syslogQueueLen (more are dropped) to one
// sender goroutine, which is the only one a daemon that stops reading can park. The
// sender starts with a message, dials then, and hangs up and ends once the queue is empty:
// an idle process holds neither socket nor goroutine, and the next message reaches a
// restarted daemon. Within a burst log/syslog redials after a failed write. A daemon that
// cannot be reached drops the message. Safe for concurrent use.
type Syslog struct {
	tag  string
	addr string // a datagram socket; "" is the system's (/dev/log)

	mu    sync.Mutex
	queue []syslogMessage
	done  chan struct{} // nil unless the sender runs; closed when it ends
}

type syslogMessage struct {
	severity syslog.Priority
	text     string
}

const (
	syslogQueueLen = 64
	// flushTimeout bounds how long an exiting process waits for its last messages.
	flushTimeout = 100 * time.Millisecond
)

// NewSyslog returns a sender whose messages carry tag (the program's name) and go to the
// datagram socket addr, "" for the system's.
func NewSyslog(tag, addr string) *Syslog {
	return &Syslog{tag: tag, addr: addr}
}

// Send queues text with severity (syslog.LOG_ERR, LOG_WARNING or LOG_INFO) and returns at
// once; when the queue is full the message is dropped.
func (s *Syslog) Send(severity syslog.Priority, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= syslogQueueLen {
		return
	}
	s.queue = append(s.queue, syslogMessage{severity, text})
	if s.done == nil {
		s.done = make(chan struct{})
		go s.sender(s.done)
	}
}

// Flush waits, at most flushTimeout, until the queued messages are sent, and reports
// whether they were: a process calls it before it exits or execs.
func (s *Syslog) Flush() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return true
	}
	t := time.NewTimer(flushTimeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func (s *Syslog) sender(done chan struct{}) {
	defer close(done)
	var w *syslog.Writer
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	defer Recover(nil, "syslog sender", s.abandon)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.queue, s.done = nil, nil
			s.mu.Unlock()
			break
		}
		m := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		PanicPoint("syslog sender")
		if w == nil {
			w = s.dial()
		}
		if w != nil {
			m.writeTo(w)
		}
	}
}

// abandon drops the queue after a panic of the sender, so that the next message starts
// a new one (the queued messages may be what made it panic).
func (s *Syslog) abandon() {
	s.mu.Lock()
	s.queue, s.done = nil, nil
	s.mu.Unlock()
}

// dial connects to the daemon, or returns nil when none listens.
func (s *Syslog) dial() *syslog.Writer {
	network := "unixgram"
	if s.addr == "" {
		network = "" // log/syslog tries /dev/log and the other usual sockets
	}
	w, err := syslog.Dial(network, s.addr, syslog.LOG_USER|syslog.LOG_INFO, s.tag)
	if err != nil {
		return nil
	}
	return w
}

func (m syslogMessage) writeTo(w *syslog.Writer) {
	// A message the daemon does not take has nowhere else to go.
	switch m.severity {
	case syslog.LOG_ERR:
		_ = w.Err(m.text)
	case syslog.LOG_WARNING:
		_ = w.Warning(m.text)
	default:
		_ = w.Info(m.text)
	}
}
