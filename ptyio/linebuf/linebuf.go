// Package linebuf assembles a container's output into log records (docs/logging.md §3.2): per
// stream, a line of up to MaxLine bytes ending in '\n' becomes one full record however many
// reads it took; bytes without '\n' become a partial record when they fill MaxLine, when the
// stream has been idle for Idle, or at Flush.
//
// Locking and the idle timer: the Assembler owns one timer per stream, armed only while that
// stream has pending bytes (no timer runs while idle). It has no lock of its own: every
// method must be called with the driver's mutex held, and the timer callback takes that same
// mutex before touching any state. This lets a driver keep one lock for its own state
// (batch buffer, file) and the assembler's.
package linebuf

import (
	"bytes"
	"sync"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"github.com/conmon-go/conmon-go/ptyio"
)

// Stream is the output stream a record belongs to.
type Stream = ptyio.Stream

const (
	// MaxLine bounds an assembled line; longer lines are cut into partial records.
	MaxLine = 16384
	// Idle is how long a stream must stay silent before its pending bytes are emitted.
	Idle = 100 * time.Millisecond
)

// Emitter receives the assembled records.
type Emitter interface {
	// Record receives one record. A full record's line ends with its '\n'; a partial one has
	// none. line is valid only during the call. now is the time of the read that completed
	// the record (for idle and final records: of the last read that added to it).
	Record(s Stream, line []byte, partial bool, now time.Time)
	// IdleDone follows the record(s) emitted by the idle timer (mutex still held), so a
	// batching emitter can write them out. After Write and Flush the caller does that itself.
	IdleDone()
}

// Assembler holds the pending bytes of stdout and stderr.
type Assembler struct {
	mu  sync.Locker
	e   Emitter
	log diag.Logger
	st  [2]line // indexed by stream&1: Stdout (2) -> 0, Stderr (3) -> 1
}

type line struct {
	a     *Assembler
	s     Stream
	n     int // pending bytes in buf
	buf   [MaxLine]byte
	last  time.Time // time of the last read that added to buf
	t     *time.Timer
	armed bool // t is scheduled or its callback is waiting for mu
	stale int  // fired callbacks that must do nothing (superseded by a Reset or Stop)
}

// New returns an assembler emitting to e. mu is the lock its caller holds around every
// call; the idle timer takes it too. log may be nil.
func New(mu sync.Locker, e Emitter, log diag.Logger) *Assembler {
	a := &Assembler{mu: mu, e: e, log: log}
	for i, s := range [2]Stream{ptyio.Stdout, ptyio.Stderr} {
		l := &a.st[i]
		l.a, l.s = a, s
	}
	return a
}

// Write adds one read's bytes. Complete lines found with nothing pending are emitted
// straight from p, without copying.
func (a *Assembler) Write(s Stream, p []byte, now time.Time) {
	if len(p) == 0 {
		return
	}
	l := &a.st[s&1]
	for len(p) > 0 {
		if l.n == 0 {
			w := p[:min(len(p), MaxLine)]
			if i := bytes.IndexByte(w, '\n'); i >= 0 {
				a.e.Record(s, p[:i+1], false, now)
				p = p[i+1:]
				continue
			}
			if len(w) == MaxLine {
				a.e.Record(s, w, true, now)
				p = p[MaxLine:]
				continue
			}
			l.n = copy(l.buf[:], p)
			break
		}
		w := p[:min(len(p), MaxLine-l.n)]
		if i := bytes.IndexByte(w, '\n'); i >= 0 {
			n := l.n + copy(l.buf[l.n:], w[:i+1])
			l.n = 0
			a.e.Record(s, l.buf[:n], false, now)
			p = p[i+1:]
			continue
		}
		l.n += copy(l.buf[l.n:], w)
		p = p[len(w):]
		if l.n == MaxLine {
			l.n = 0
			a.e.Record(s, l.buf[:], true, now)
		}
	}
	if l.n > 0 {
		l.last = now
		l.arm()
	} else {
		l.disarm()
	}
}

// Flush emits every pending line as a partial record (end of output) and stops the timers.
// It never emits an empty record.
func (a *Assembler) Flush() {
	for i := range a.st {
		l := &a.st[i]
		l.disarm()
		l.emitPending()
	}
}

func (l *line) emitPending() {
	if l.n > 0 {
		n := l.n
		l.n = 0
		l.a.e.Record(l.s, l.buf[:n], true, l.last)
	}
}

// arm (re)starts the idle countdown. A Reset that returns false on an armed timer means its
// callback already fired and is waiting for mu: that run must be skipped.
func (l *line) arm() {
	if l.t == nil {
		l.t = time.AfterFunc(Idle, l.onTimer)
	} else if !l.t.Reset(Idle) && l.armed {
		l.stale++
	}
	l.armed = true
}

func (l *line) disarm() {
	if l.armed {
		if !l.t.Stop() {
			l.stale++
		}
		l.armed = false
	}
}

// drop forgets the pending bytes and the timer.
func (l *line) drop() { l.n, l.armed = 0, false }

func (l *line) onTimer() {
	a := l.a
	a.mu.Lock()
	defer a.mu.Unlock()
	// A panic here loses this pending line, not the log (docs/lifecycle.md §13.1).
	defer diag.Recover(a.log, "idle flush of the container log", l.drop)
	if l.stale > 0 {
		l.stale--
		return
	}
	l.armed = false
	if l.n > 0 {
		l.emitPending()
		a.e.IdleDone()
	}
}
