package k8sfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/conmon-go/conmon-go/ptyio"
)

// Reading accepts what conmon, conmon-go and kubelet write: any RFC 3339 timestamp (numeric
// offset or Z, any number of fraction digits), and a tag with nothing after it as an empty
// record. A record is one line; the content never holds a '\n', so every '\n' in a log ends
// a record and a reader can start at any record boundary.
const maxRecord = 1 << 20 // longer lines are not records of any writer: the file is not a log

// Record is one parsed record. Slices alias the Scanner's buffer until its next call.
type Record struct {
	Offset  int64  // of the record's first byte in the file
	Stamp   []byte // the timestamp as written
	Time    time.Time
	Stream  ptyio.Stream
	Partial bool   // P: the line goes on in the stream's next record
	Content []byte // without the record's '\n'
}

// ParseRecord parses one record without its final '\n'.
func ParseRecord(line []byte) (Record, error) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return Record{}, errors.New("no space after the timestamp")
	}
	r := Record{Stamp: line[:sp]}
	var err error
	if r.Time, err = time.Parse(time.RFC3339Nano, string(r.Stamp)); err != nil {
		return Record{}, fmt.Errorf("timestamp %q is not RFC 3339", clip(r.Stamp))
	}
	rest := line[sp+1:]
	switch {
	case len(rest) < 8 || rest[6] != ' ' || len(rest) > 8 && rest[8] != ' ':
		return Record{}, fmt.Errorf("%q is not `stdout|stderr P|F content`", clip(rest))
	case string(rest[:6]) == "stdout":
		r.Stream = ptyio.Stdout
	case string(rest[:6]) == "stderr":
		r.Stream = ptyio.Stderr
	default:
		return Record{}, fmt.Errorf("stream %q is neither stdout nor stderr", rest[:6])
	}
	switch rest[7] {
	case 'P':
		r.Partial = true
	case 'F':
	default:
		return Record{}, fmt.Errorf("tag %q is neither P nor F", rest[7])
	}
	if len(rest) > 8 {
		r.Content = rest[9:]
	}
	return r, nil
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// FormatError is a line that is not a record.
type FormatError struct {
	Offset int64 // of the line in the file
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("byte %d: not a k8s-file record: %v", e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Scanner reads the records of a log that may still be growing: an incomplete last line
// stays buffered until a later Next completes it (or Torn takes it).
type Scanner struct {
	r          io.Reader
	buf        []byte
	head, tail int   // unconsumed bytes: buf[head:tail]
	off        int64 // file offset of buf[head]
}

// NewScanner reads records from r, whose next byte is at file offset off, a record boundary.
func NewScanner(r io.Reader, off int64) *Scanner {
	return &Scanner{r: r, buf: make([]byte, 64<<10), off: off}
}

// Reset starts over on r at offset off, dropping buffered bytes.
func (s *Scanner) Reset(r io.Reader, off int64) {
	s.r, s.head, s.tail, s.off = r, 0, 0, off
}

// Offset is the file offset of the first byte not yet returned as a record.
func (s *Scanner) Offset() int64 { return s.off }

// Next returns the next complete record, io.EOF when the data read so far holds none, or a
// *FormatError.
func (s *Scanner) Next() (Record, error) {
	for {
		if i := bytes.IndexByte(s.buf[s.head:s.tail], '\n'); i >= 0 {
			off := s.off
			line := s.buf[s.head : s.head+i]
			s.head += i + 1
			s.off += int64(i) + 1
			r, err := ParseRecord(line)
			if err != nil {
				return Record{}, &FormatError{Offset: off, Err: err}
			}
			r.Offset = off
			return r, nil
		}
		if s.head > 0 {
			s.tail = copy(s.buf, s.buf[s.head:s.tail])
			s.head = 0
		}
		if s.tail == len(s.buf) {
			if len(s.buf) >= maxRecord {
				return Record{}, &FormatError{Offset: s.off, Err: fmt.Errorf("a line longer than %d bytes", maxRecord)}
			}
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		n, err := s.r.Read(s.buf[s.tail:])
		s.tail += n
		if n == 0 {
			if err == nil {
				err = io.EOF
			}
			return Record{}, err
		}
	}
}

// Torn takes the incomplete last line, for a file that ended (for good) in the middle of
// a record, as after a crash: if it parses, it is returned as a partial record, so that the
// content written so far is not lost. io.EOF: there is none; *FormatError: it does not parse.
func (s *Scanner) Torn() (Record, error) {
	line := s.buf[s.head:s.tail]
	off := s.off
	s.off += int64(len(line))
	s.head, s.tail = 0, 0
	if len(line) == 0 {
		return Record{}, io.EOF
	}
	r, err := ParseRecord(line)
	if err != nil {
		return Record{}, &FormatError{Offset: off, Err: err}
	}
	r.Offset, r.Partial = off, true
	return r, nil
}

// Line is a stretch of one line of a stream: the records of a P…P F sequence joined. Lines
// longer than the Joiner's bound come in several stretches. Slices are valid during the
// emit call only.
type Line struct {
	Offset  int64 // of the line's first record
	Stamp   []byte
	Time    time.Time // the timestamp of the line's first record
	Stream  ptyio.Stream
	Content []byte // without the line's '\n'
	Start   bool   // Content begins the line; otherwise it continues the stretch emitted before
	End     bool   // the line is complete: a '\n' follows Content
}

// Joiner joins each stream's records into lines, holding at most max bytes per stream.
type Joiner struct {
	max  int
	part [2]pending // indexed by stream&1
}

type pending struct {
	open  bool // the stream's last record was P: a line is under way
	shown bool // a stretch of it was emitted already
	off   int64
	stamp []byte
	time  time.Time
	buf   []byte
}

// NewJoiner returns a Joiner that emits the beginning of a line once it holds max bytes
// and the line has not ended.
func NewJoiner(max int) *Joiner { return &Joiner{max: max} }

// Add adds one record; every stretch it completes goes to emit, whose error Add returns.
func (j *Joiner) Add(r Record, emit func(Line) error) error {
	p := &j.part[r.Stream&1]
	if !p.open {
		p.open, p.shown = true, false
		p.off, p.time = r.Offset, r.Time
		p.stamp = append(p.stamp[:0], r.Stamp...)
	}
	if len(p.buf) > 0 && len(p.buf)+len(r.Content) > j.max {
		if err := j.emit(p, r.Stream, false, emit); err != nil {
			return err
		}
	}
	if !r.Partial || len(r.Content) > j.max {
		var err error
		if len(p.buf) == 0 {
			err = emit(p.line(r.Stream, r.Content, !r.Partial))
			p.shown = true
		} else {
			p.buf = append(p.buf, r.Content...)
			err = j.emit(p, r.Stream, !r.Partial, emit)
		}
		p.open = r.Partial
		return err
	}
	p.buf = append(p.buf, r.Content...)
	return nil
}

// Flush emits what is held of unfinished lines, the earlier line first. Their next
// records continue them.
func (j *Joiner) Flush(emit func(Line) error) error {
	order := [2]ptyio.Stream{ptyio.Stdout, ptyio.Stderr}
	if j.part[1].off < j.part[0].off {
		order[0], order[1] = order[1], order[0]
	}
	for _, s := range order {
		if p := &j.part[s&1]; p.open && (len(p.buf) > 0 || !p.shown) {
			if err := j.emit(p, s, false, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *Joiner) emit(p *pending, s ptyio.Stream, end bool, emit func(Line) error) error {
	err := emit(p.line(s, p.buf, end))
	p.buf = p.buf[:0]
	p.shown = true
	return err
}

func (p *pending) line(s ptyio.Stream, content []byte, end bool) Line {
	return Line{Offset: p.off, Stamp: p.stamp, Time: p.time, Stream: s, Content: content, Start: !p.shown, End: end}
}
