// Package journald is the journald log driver (docs/logging.md §9): it assembles lines like the
// k8s-file driver (ptyio/linebuf) and sends one entry per record with go-systemd's
// journal.Send, which speaks journald's native protocol in pure Go and passes an entry too
// large for one datagram as a file descriptor.
//
// journal.Send blocks while journald's socket queue is full, so the output path never
// calls it: records are copied into a bounded queue (queue.go) that one sender goroutine
// empties. While journald takes entries, the output path waits for room (journald's pace,
// as with conmon); when the queue has stayed full for stallTimeout, records that find no
// room are dropped without waiting until journald has taken half of the queue. Drops are
// counted and warned about at most every warnEvery.
package journald

import (
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

// Socket is journald's native protocol socket, the one journal.Send writes to.
const Socket = "/run/systemd/journal/socket"

const (
	// stallTimeout bounds how long the output path waits for room in a full queue
	// while journald takes no entry at all.
	stallTimeout = 100 * time.Millisecond
	// flushTimeout bounds the wait for the queue to drain at the end of output and at
	// Close, like the flush of attach clients.
	flushTimeout = time.Second
	// warnEvery rate-limits the warning about dropped entries.
	warnEvery = 10 * time.Second

	partialField = "CONTAINER_PARTIAL_MESSAGE"
)

var (
	errStalled = errors.New("journald accepted no entry for " + stallTimeout.String())
	errClosed  = errors.New("journald did not take them before the log driver was closed")
)

// Config describes the container whose output is logged.
type Config struct {
	CID           string   // --cid, longer than 12 bytes
	Name          string   // --name, may be empty
	Tag           string   // --log-tag, may be empty
	Labels        []string // --log-label NAME=VALUE, validated by the caller
	NoPartialFlag bool     // --no-container-partial-message
	Log           diag.Logger
}

// Writer is a ptyio.LogDriver sending container output to journald.
type Writer struct {
	mu     sync.Mutex // guards asm, cont, prio, closed; also taken by the assembler's idle timer
	asm    *linebuf.Assembler
	cont   [2]bool // per stream: the last record was partial, the next one continues its line
	prio   [2]byte // per stream: priority digit of the line in progress
	closed bool
	timer  *time.Timer // for waits on the queue, stopped between them

	q     *queue
	gate  *gate
	drops drops

	// The fields of every entry besides MESSAGE and PRIORITY, read only by the sender:
	// one map for complete lines and one adding the partial flag.
	fields, partialFields map[string]string
	// senderDone is closed when the sender goroutine returns. Only a test waits for it:
	// TestCloseIdempotent checks that Close stops the sender.
	senderDone chan struct{}
}

var _ ptyio.LogDriver = (*Writer)(nil)

// New starts the sender. journald not running is not an error: each entry then counts as
// dropped until it is back.
func New(cfg Config) (*Writer, error) {
	w, err := newWriter(cfg)
	if err != nil {
		return nil, err
	}
	if err := w.gate.dial(time.Now()); err != nil {
		w.drops.log.Debugf("journald not reachable yet: %v", err)
	}
	go w.send()
	return w, nil
}

// newWriter prepares everything but the sender goroutine.
func newWriter(cfg Config) (*Writer, error) {
	if len(cfg.CID) <= 12 {
		return nil, errors.New("Container ID must be longer than 12 characters")
	}
	log := diag.OrDiscard(cfg.Log)
	g, err := newGate()
	if err != nil {
		return nil, err
	}
	w := &Writer{q: newQueue(), gate: g, timer: time.NewTimer(time.Hour), senderDone: make(chan struct{})}
	w.timer.Stop()
	w.drops.log = log
	w.drops.timer = time.AfterFunc(time.Hour, w.drops.warn)
	w.drops.timer.Stop()

	// Labels first: a label cannot replace the fields that identify the container.
	// journald ignores client fields starting with '_', and journal.Send would complain
	// about each one on stderr, so they are left out.
	f := make(map[string]string, len(cfg.Labels)+5)
	for _, l := range cfg.Labels {
		if name, value, _ := strings.Cut(l, "="); !strings.HasPrefix(name, "_") {
			f[name] = value
		}
	}
	id := cfg.CID[:12]
	f["CONTAINER_ID_FULL"] = cfg.CID
	f["CONTAINER_ID"] = id
	ident := id
	if cfg.Name != "" {
		f["CONTAINER_NAME"] = cfg.Name
		ident = cfg.Name
	}
	if cfg.Tag != "" {
		f["CONTAINER_TAG"] = cfg.Tag
		ident = cfg.Tag
	}
	f["SYSLOG_IDENTIFIER"] = ident
	w.fields, w.partialFields = f, f
	if !cfg.NoPartialFlag {
		w.partialFields = make(map[string]string, len(f)+1)
		for k, v := range f {
			w.partialFields[k] = v
		}
		w.partialFields[partialField] = "true"
	}
	w.asm = linebuf.New(&w.mu, (*emitter)(w), log)
	return w, nil
}

// Write feeds one read of the container's output to the line assembler.
func (w *Writer) Write(s ptyio.Stream, p []byte, now time.Time) {
	w.mu.Lock()
	if !w.closed {
		w.asm.Write(s, p, now)
	}
	w.mu.Unlock()
}

// Flush queues pending partial lines as partial entries (end of output) and waits, at most
// flushTimeout, until journald has taken every entry.
func (w *Writer) Flush() {
	w.mu.Lock()
	if !w.closed {
		w.asm.Flush()
		w.q.drain(w.timer, time.Now().Add(flushTimeout))
	}
	w.mu.Unlock()
}

// Reopen is meaningless for journald.
func (w *Writer) Reopen() {}

// Sync is meaningless for journald.
func (w *Writer) Sync() error { return nil }

// Close flushes like Flush, then stops the sender; entries journald has not taken by then
// count as dropped. A sender inside journal.Send stays there until journald reads again or
// the process exits.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.asm.Flush()
	w.q.drain(w.timer, time.Now().Add(flushTimeout))
	if n := w.q.close(); n > 0 {
		w.drops.add(n, errClosed)
	}
	w.gate.close()
	w.drops.final()
	return nil
}

// emitter receives the assembler's records (mu held); a separate type keeps Record and
// IdleDone out of Writer's API.
type emitter Writer

func (e *emitter) IdleDone() {}

// Record queues one entry. While the queue is full it waits for room as long as the sender
// makes progress, and drops the entry once stallTimeout passed without any.
func (e *emitter) Record(s ptyio.Stream, line []byte, partial bool, _ time.Time) {
	w := (*Writer)(e)
	i := s & 1
	if !w.cont[i] {
		// A line starting with <0>…<7> sets its priority; the prefix is dropped.
		w.prio[i] = '6'
		if s == ptyio.Stderr {
			w.prio[i] = '3'
		}
		if len(line) >= 3 && line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>' {
			w.prio[i] = line[1]
			line = line[3:]
		}
	}
	// The continuation of a partial record is no line start: it keeps the priority.
	w.cont[i] = partial

	for {
		ok, stalled := w.q.tryPush(line, w.prio[i], partial)
		if ok {
			return
		}
		if stalled || !w.q.waitRoom(w.timer, stallTimeout, time.Time{}) {
			w.drops.add(1, errStalled)
			return
		}
	}
}

// send is the sender goroutine: it hands the queued entries to journal.Send in order, each
// once journald's queue has room (gate.go).
func (w *Writer) send() {
	defer close(w.senderDone)
	// Without the sender the queue stays full: the output path drops what follows after
	// one stall, counted and warned about like any other drop.
	defer diag.Recover(w.drops.log, "journald sender", nil)
	for {
		msg, e, ok := w.q.front()
		if !ok {
			return
		}
		fields := w.fields
		if e.partial {
			fields = w.partialFields
		}
		if !w.gate.wait(time.Now()) {
			return // closed: what is left counts as dropped (Close)
		}
		// A failed entry is counted before it leaves the queue: Close, which waits for an
		// empty queue, then finds it counted.
		if err := journal.Send(string(msg), journal.Priority(e.prio-'0'), fields); err != nil {
			w.gate.reset()
			w.drops.add(1, sendError(err))
		}
		w.q.pop()
	}
}

// sendError names the socket and the errno of a failed send: journal.Send's own error
// also names the package's anonymous client socket.
func sendError(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &os.PathError{Op: "send to", Path: Socket, Err: errno}
	}
	return err
}

// drops counts lost entries and warns about them from a timer, never from the output
// path: at the first drop, then at most every warnEvery while drops go on, and at Close.
type drops struct {
	log   diag.Logger
	timer *time.Timer // runs warn
	// held across a whole warning, its Warnf included, so that final does not return while
	// the timer's warning is still being written (mu is not: add is on the output path)
	warnMu sync.Mutex

	mu       sync.Mutex
	n        uint64 // entries dropped so far
	reported uint64 // n at the last warning
	cause    error  // of the latest drop
	armed    bool   // timer is scheduled
	next     time.Time
}

func (d *drops) add(n int, cause error) {
	d.mu.Lock()
	d.n += uint64(n)
	d.cause = cause
	if !d.armed {
		d.armed = true
		d.timer.Reset(max(time.Until(d.next), 0))
	}
	d.mu.Unlock()
}

// count returns the number of entries dropped so far; only tests read it. How many
// entries a stopped journald costs depends on timing, and TestStoppedJournald needs the
// number to know how many the journal must hold.
func (d *drops) count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *drops) warn() {
	d.warnMu.Lock()
	defer d.warnMu.Unlock()
	d.report()
}

// report warns about the drops not reported yet (warnMu held).
func (d *drops) report() {
	d.mu.Lock()
	n, cause := d.n, d.cause
	d.armed = false
	if n == d.reported { // final already told
		d.mu.Unlock()
		return
	}
	d.reported = n
	d.next = time.Now().Add(warnEvery)
	d.mu.Unlock()
	d.log.Warnf("journald: dropped %d log entries so far: %v", n, cause)
}

// final warns now about drops not reported yet, once a warning the timer is writing is out.
func (d *drops) final() {
	d.warnMu.Lock()
	defer d.warnMu.Unlock()
	d.mu.Lock()
	d.timer.Stop()
	d.armed = false
	pending := d.n > d.reported
	d.mu.Unlock()
	if pending {
		d.report()
	}
}
