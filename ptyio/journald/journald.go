// Package journald is the journald log driver (logging.md §9): it assembles
// lines like the k8s-file driver (ptyio/linebuf) and sends one entry per
// record over journald's native datagram protocol, written by hand so the
// monitor needs neither cgo nor package net.
package journald

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

// DefaultSocket is journald's native protocol socket.
const DefaultSocket = "/run/systemd/journal/socket"

const (
	// sendRetry bounds the wait for a full journald queue: the journal must
	// never stall the container.
	sendRetry = 100 * time.Millisecond
	// warnEvery rate-limits the warning about dropped entries.
	warnEvery = 10 * time.Second
)

// Config describes the container whose output is logged.
type Config struct {
	CID           string   // --cid, longer than 12 bytes
	Name          string   // --name, may be empty
	Tag           string   // --log-tag, may be empty
	Labels        []string // --log-label NAME=VALUE, validated by the caller
	NoPartialFlag bool     // --no-container-partial-message
	Log           diag.Logger

	socket string // journald's socket; DefaultSocket when empty (tests replace it)
}

// Writer is a ptyio.LogDriver sending container output to journald.
type Writer struct {
	mu  sync.Mutex // guards everything below, also taken by the assembler's idle timer
	asm *linebuf.Assembler
	log diag.Logger

	cont [2]bool // per stream: the last record was partial, the next one continues its line
	prio [2]byte // per stream: priority digit of the line in progress

	f         *os.File
	rc        syscall.RawConn
	sa        *unix.SockaddrUnix
	connected bool
	closed    bool

	// Field bytes fixed for the container's life, encoded once.
	cidField []byte // CONTAINER_ID_FULL
	fixed    []byte // CONTAINER_ID … SYSLOG_IDENTIFIER
	partial  []byte // CONTAINER_PARTIAL_MESSAGE=true, or nil with NoPartialFlag
	labels   []byte

	buf    []byte // the datagram being built, reused
	out    []byte // what sendOnce/sendWait transmit
	serr   error  // result of the last send callback
	sendFn func(uintptr) bool
	waitFn func(uintptr) bool

	dropped  uint64
	lastWarn time.Time
}

var _ ptyio.LogDriver = (*Writer)(nil)

// New opens the datagram socket. journald not running is not an error: each
// entry then counts as dropped until it is back.
func New(cfg Config) (*Writer, error) {
	if len(cfg.CID) <= 12 {
		return nil, errors.New("Container ID must be longer than 12 characters")
	}
	log := cfg.Log
	if log == nil {
		log = diag.Discard
	}
	path := cfg.socket
	if path == "" {
		path = DefaultSocket
	}
	w := &Writer{log: log, sa: &unix.SockaddrUnix{Name: path}}

	w.cidField = appendField(nil, "CONTAINER_ID_FULL", []byte(cfg.CID))
	id := cfg.CID[:12]
	w.fixed = appendField(nil, "CONTAINER_ID", []byte(id))
	if cfg.Tag != "" {
		w.fixed = appendField(w.fixed, "CONTAINER_TAG", []byte(cfg.Tag))
	}
	if cfg.Name != "" {
		w.fixed = appendField(w.fixed, "CONTAINER_NAME", []byte(cfg.Name))
	}
	ident := id
	if cfg.Tag != "" {
		ident = cfg.Tag
	} else if cfg.Name != "" {
		ident = cfg.Name
	}
	w.fixed = appendField(w.fixed, "SYSLOG_IDENTIFIER", []byte(ident))
	if !cfg.NoPartialFlag {
		w.partial = []byte("CONTAINER_PARTIAL_MESSAGE=true\n")
	}
	for _, l := range cfg.Labels {
		name, value, _ := bytes.Cut([]byte(l), []byte{'='})
		w.labels = appendField(w.labels, string(name), value)
	}
	// Room for the longest record plus every field, so appends never grow it.
	w.buf = make([]byte, 0, linebuf.MaxLine+len(w.cidField)+len(w.fixed)+len(w.partial)+len(w.labels)+64)
	w.sendFn = w.sendOnce
	w.waitFn = w.sendWait

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("create journald socket", err)
	}
	w.f = os.NewFile(uintptr(fd), path)
	if w.rc, err = w.f.SyscallConn(); err != nil {
		w.f.Close()
		return nil, &os.PathError{Op: "journald socket", Path: path, Err: err}
	}
	if err := w.connect(); err != nil {
		log.Debugf("journald not reachable yet: %v", err)
	}
	w.asm = linebuf.New(&w.mu, (*emitter)(w), log)
	return w, nil
}

// connect associates the socket with journald's. A connected datagram socket
// lets the poller wake a sender when journald's full queue drains; an
// unconnected sendto would get no such wake-up.
func (w *Writer) connect() error {
	var err error
	if cerr := w.rc.Control(func(fd uintptr) { err = unix.Connect(int(fd), w.sa) }); cerr != nil {
		err = cerr
	}
	w.connected = err == nil
	if err != nil {
		return &os.PathError{Op: "connect", Path: w.sa.Name, Err: err}
	}
	return nil
}

// Write feeds one read of the container's output to the line assembler.
func (w *Writer) Write(s ptyio.Stream, p []byte, now time.Time) {
	w.mu.Lock()
	if !w.closed {
		w.asm.Write(s, p, now)
	}
	w.mu.Unlock()
}

// Flush sends pending partial lines as partial entries (end of output).
func (w *Writer) Flush() {
	w.mu.Lock()
	if !w.closed {
		w.asm.Flush()
	}
	w.mu.Unlock()
}

// Reopen is meaningless for journald.
func (w *Writer) Reopen() {}

// Sync is meaningless for journald.
func (w *Writer) Sync() error { return nil }

// Close sends what is pending and closes the socket.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.asm.Flush()
	w.closed = true
	return w.f.Close()
}

// emitter receives the assembler's records (mu held); a separate type keeps
// Record and IdleDone out of Writer's API.
type emitter Writer

func (e *emitter) IdleDone() {}

// Record sends one entry. Layout of the datagram (native protocol), fields in
// logging.md §9.2 order:
//
//	MESSAGE\n<len: 8 bytes little-endian><line>\n   (value containing \n)
//	NAME=value\n                                     (any other value)
//	CONTAINER_ID_FULL, PRIORITY, CONTAINER_ID, [CONTAINER_TAG], [CONTAINER_NAME],
//	SYSLOG_IDENTIFIER, [CONTAINER_PARTIAL_MESSAGE=true], labels…
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

	b := appendField(w.buf[:0], "MESSAGE", line)
	b = append(b, w.cidField...)
	b = append(b, "PRIORITY="...)
	b = append(b, w.prio[i], '\n')
	b = append(b, w.fixed...)
	if partial {
		b = append(b, w.partial...)
	}
	b = append(b, w.labels...)
	w.buf = b
	w.send(b)
}

func appendField(b []byte, name string, value []byte) []byte {
	b = append(b, name...)
	if bytes.IndexByte(value, '\n') < 0 {
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// send transmits one datagram: non-blocking, at most sendRetry of waiting for
// a full queue, a sealed memfd when it is too large, a reconnect when
// journald was restarted. Failures count as drops.
func (w *Writer) send(b []byte) {
	if !w.connected {
		if err := w.connect(); err != nil {
			w.drop(err)
			return
		}
	}
	w.out = b
	err := w.transmit()
	if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOTCONN) {
		// journald restarted: its new socket has the same path.
		if err = w.connect(); err == nil {
			err = w.transmit()
		}
	}
	if errors.Is(err, unix.EMSGSIZE) {
		err = w.sendMemfd(b)
	}
	if err != nil {
		w.drop(err)
	}
}

// transmit sends w.out once and, if journald's queue is full, waits for
// room through the poller for at most sendRetry.
func (w *Writer) transmit() error {
	if err := w.rc.Write(w.sendFn); err != nil {
		return err
	}
	if w.serr != unix.EAGAIN {
		return w.serr
	}
	w.f.SetWriteDeadline(time.Now().Add(sendRetry))
	err := w.rc.Write(w.waitFn)
	w.f.SetWriteDeadline(time.Time{})
	if err != nil {
		return err
	}
	return w.serr
}

func (w *Writer) sendOnce(fd uintptr) bool {
	w.serr = unix.Send(int(fd), w.out, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	return true
}

func (w *Writer) sendWait(fd uintptr) bool {
	w.serr = unix.Send(int(fd), w.out, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	return w.serr != unix.EAGAIN
}

// sendMemfd passes an entry too large for one datagram as a sealed memfd
// with no payload, which journald reads as the entry.
func (w *Writer) sendMemfd(b []byte) error {
	mfd, err := unix.MemfdCreate("conmon-journal", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("memfd_create", err)
	}
	defer unix.Close(mfd)
	for p := b; len(p) > 0; {
		n, err := unix.Write(mfd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write memfd", err)
		}
		p = p[n:]
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(mfd), unix.F_ADD_SEALS, seals); err != nil {
		return os.NewSyscallError("seal memfd", err)
	}
	rights := unix.UnixRights(mfd)
	send := func(fd uintptr) bool {
		_, w.serr = unix.SendmsgN(int(fd), nil, rights, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		return w.serr != unix.EAGAIN
	}
	w.f.SetWriteDeadline(time.Now().Add(sendRetry))
	err = w.rc.Write(send)
	w.f.SetWriteDeadline(time.Time{})
	if err != nil {
		return err
	}
	return w.serr
}

// drop counts a lost entry and warns at most every warnEvery.
func (w *Writer) drop(err error) {
	w.dropped++
	now := time.Now()
	if w.lastWarn.IsZero() || now.Sub(w.lastWarn) >= warnEvery {
		w.lastWarn = now
		w.log.Warnf("journald: dropped %d log entries so far: %v", w.dropped, err)
	}
}
