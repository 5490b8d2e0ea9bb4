// Package k8sfile is the k8s-file log driver: CRI records (docs/logging.md §2) assembled by
// linebuf, with --log-size-max truncation or rotation, --log-global-size-max, reopen on ctl
// request and write-error tolerance (docs/logging.md §4–§8, §11).
//
// Failures after Open are never fatal: a failed write drops its batch; a failed reopen,
// truncation or rotation keeps the current file and is retried at most once per second.
package k8sfile

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

// One record (docs/logging.md §2), e.g. `2026-11-27T12:38:19.750087082+00:00 stdout F out1\n`:
//
//	<timestamp:35> ' ' <stream:6> ' ' <tag:1> ' ' <content> ['\n' for P]
//	|<------------- prefix: 43 bytes ------------>|
const (
	tsLayout  = "2006-01-02T15:04:05.000000000-07:00"
	overhead  = 43 + 2    // prefix, tag and its space: cost = overhead + content (+1 for P)
	batchMax  = 128 << 10 // one write per chunk; holds many records of at most MaxLine+46 bytes
	retryGap  = time.Second
	openFlags = unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT | unix.O_CLOEXEC
)

// Config describes one k8s-file log.
type Config struct {
	Path          string
	SizeMax       int64 // --log-size-max; <= 0: unlimited
	GlobalSizeMax int64 // --log-global-size-max; <= 0: unlimited
	Rotate        bool  // --log-rotate: rotate instead of truncating
	MaxFiles      int   // --log-max-files: backups kept when rotating (< 1 counts as 1)
	AllowlistDirs []string
	Log           diag.Logger
}

var _ ptyio.LogDriver = (*Writer)(nil)

// Writer is the k8s-file driver; it implements ptyio.LogDriver.
type Writer struct {
	mu   sync.Mutex
	cfg  Config
	log  diag.Logger
	asm  *linebuf.Assembler
	dir  string // parent directory of cfg.Path
	base string // file name of cfg.Path
	fd   int    // -1 after Close

	batch []byte    // records of the current chunk, written with one write
	ts    []byte    // formatted timestamp of tsAt
	tsAt  time.Time // time of the read being formatted

	file, global int64    // bytes in the current file / written by this monitor
	mid          [2]bool  // the stream's line has begun (a P record was accepted)
	lineCost     [2]int64 // bytes of that begun line in the current file
	fileMid      [2]bool  // the file's last record of the stream is a P record
	inBatch      [2]bool  // the batch holds records of the stream
	cut          [2]bool  // the rest of the file's begun line was lost: end it first

	reopenDue  bool      // a requested reopen has not succeeded yet
	retryAt    time.Time // no reopen/truncation/rotation attempt before this (after a failure)
	globalFull bool      // the global limit was reached (warned once)
	dropped    int64     // bytes lost to write errors
	warnAt     time.Time // next write-error warning allowed
}

// Open opens (creating it 0640 if needed) the log file for appending. On failure the
// returned *os.PathError wraps the unix.Errno, for `Failed to open log file <strerror>`.
func Open(cfg Config) (*Writer, error) {
	fd, err := openRetry(func() (int, error) { return unix.Open(cfg.Path, openFlags, 0o640) })
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: cfg.Path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: cfg.Path, Err: err}
	}
	w := &Writer{
		cfg:    cfg,
		log:    cfg.Log,
		dir:    filepath.Dir(cfg.Path),
		base:   filepath.Base(cfg.Path),
		fd:     fd,
		batch:  make([]byte, 0, batchMax),
		ts:     make([]byte, 0, 64),
		file:   st.Size,
		global: st.Size,
	}
	if w.log == nil {
		w.log = diag.Discard
	}
	w.asm = linebuf.New(&w.mu, (*emitter)(w), w.log)
	return w, nil
}

// Write logs one chunk read from the container; now is the time of that read.
func (w *Writer) Write(s ptyio.Stream, p []byte, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	diag.PanicPoint("k8s-file")
	if w.fd < 0 {
		return
	}
	w.asm.Write(s, p, now)
	w.writeBatch()
}

// Flush writes pending partial lines as final P records (end of output).
func (w *Writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return
	}
	w.asm.Flush()
	w.writeBatch()
}

// Reopen handles ctl reopen (docs/logging.md §8): a new file at the path, by rotation with
// Rotate. Pending partial lines go to the new file.
func (w *Writer) Reopen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return
	}
	w.switchFile(true)
}

// Sync fsyncs the log file.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return nil
	}
	for {
		err := unix.Fsync(w.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fsync", Path: w.cfg.Path, Err: err}
		}
		return nil
	}
}

// Close writes pending partial lines and closes the file; later calls do nothing.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return nil
	}
	w.asm.Flush()
	w.writeBatch()
	err := unix.Close(w.fd)
	w.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: w.cfg.Path, Err: err}
	}
	return nil
}

// emitter is the Writer seen by the assembler; it keeps Record off Writer's exported API.
type emitter Writer

// Record appends one record to the batch, applying the size limits first. Called with mu held.
func (e *emitter) Record(s ptyio.Stream, line []byte, partial bool, now time.Time) {
	w := (*Writer)(e)
	if w.fd < 0 {
		return
	}
	cost := int64(overhead + len(line))
	if partial {
		cost++
	}
	if lim := w.cfg.GlobalSizeMax; lim > 0 && w.global >= lim {
		if !w.globalFull {
			w.globalFull = true
			w.log.Warnf("log file %s reached --log-global-size-max %d: dropping further output", w.cfg.Path, lim)
		}
		return
	}
	i := s & 1
	if w.reopenDue && w.mayRetry() {
		w.writeBatch()
		w.switchFile(true)
	}
	// Size check only where a line starts, unless the line alone exceeds the limit.
	if lim := w.cfg.SizeMax; lim > 0 && w.file > 0 && w.file+cost > lim &&
		(!w.mid[i] || w.lineCost[i]+cost > lim) && w.mayRetry() {
		w.writeBatch()
		w.switchFile(false)
	}
	var end int64
	if w.cut[i] {
		// A failed write lost the rest of the line the file holds a P record of: an
		// empty F record ends that line, so that readers do not join it to this one.
		end = overhead + 1
	}
	if len(w.batch)+int(end+cost) > cap(w.batch) {
		w.writeBatch()
	}
	if len(w.ts) == 0 || !now.Equal(w.tsAt) {
		w.ts = now.Local().AppendFormat(w.ts[:0], tsLayout)
		w.tsAt = now
	}
	b := w.batch
	if w.cut[i] {
		b = append(w.appendRecord(b, s, "F ", nil), '\n')
		w.cut[i] = false
	}
	if partial {
		b = w.appendRecord(b, s, "P ", line)
		b = append(b, '\n')
	} else {
		b = w.appendRecord(b, s, "F ", line)
	}
	w.batch = b
	w.inBatch[i] = true
	w.file += end + cost
	w.global += end + cost
	if partial {
		w.mid[i] = true
		w.lineCost[i] += cost
	} else {
		w.mid[i] = false
		w.lineCost[i] = 0
	}
}

func (w *Writer) appendRecord(b []byte, s ptyio.Stream, tag string, line []byte) []byte {
	b = append(b, w.ts...)
	if s == ptyio.Stderr {
		b = append(b, " stderr "...)
	} else {
		b = append(b, " stdout "...)
	}
	b = append(b, tag...)
	return append(b, line...)
}

// IdleDone writes the records emitted by the idle timer.
func (e *emitter) IdleDone() { (*Writer)(e).writeBatch() }

// writeBatch writes the batch with one write (continued after short writes). On error the
// batch is dropped: bytes of it already written are cut off again so the file keeps whole
// records, a line the file holds the beginning of is ended before its stream's next
// record, the loss is counted and a warning goes out at most once per second.
func (w *Writer) writeBatch() {
	all := w.batch
	w.batch = w.batch[:0]
	in := w.inBatch
	w.inBatch = [2]bool{}
	if len(all) == 0 || w.fd < 0 {
		return
	}
	b := all
	var err error
	for len(b) > 0 {
		var n int
		n, err = unix.Write(w.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break
		}
		if n == 0 {
			err = unix.EIO
			break
		}
		b = b[n:]
	}
	if err == nil {
		for i := range in {
			if in[i] {
				w.fileMid[i] = w.mid[i]
			}
		}
		return
	}
	for i := range in {
		w.cut[i] = w.cut[i] || (in[i] && w.fileMid[i])
	}
	lost := int64(len(b))
	if done := int64(len(all) - len(b)); done > 0 {
		var st unix.Stat_t
		if unix.Fstat(w.fd, &st) == nil && st.Size >= done && unix.Ftruncate(w.fd, st.Size-done) == nil {
			lost = int64(len(all))
		}
	}
	w.file -= lost
	w.global -= lost
	w.dropped += lost
	if now := time.Now(); !now.Before(w.warnAt) {
		w.warnAt = now.Add(retryGap)
		w.log.Warnf("Failed to write to log file %s: %v (%d bytes dropped so far)", w.cfg.Path, err, w.dropped)
	}
}

// mayRetry reports whether a reopen/truncation/rotation may be attempted now.
func (w *Writer) mayRetry() bool {
	return w.retryAt.IsZero() || !time.Now().Before(w.retryAt)
}
