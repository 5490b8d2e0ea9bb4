// Package logview shows a k8s-file log to a person, as `conmon-go logs` does: each
// stream's lines whole on an output of its own, all of them or the last N or those since a
// time, and, when following, what the container writes next, across the monitor's reopens,
// rotations and truncations, until the container's monitor has exited.
package logview

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio/k8sfile"
)

// stretch bounds what is held of one line: a longer line is written in pieces.
const stretch = 64 << 10

// Options select what Show writes.
type Options struct {
	Follow     bool
	Timestamps bool      // prefix each line with its first record's timestamp, as written
	Tail       int       // only the last Tail lines (< 0: all)
	Since      time.Time // only lines that began at or after Since (zero: all)
}

// view is one Show: the file being read and what has been written of it.
type view struct {
	o      Options
	path   string
	f      *os.File
	id     fileID
	sc     *k8sfile.Scanner
	j      *k8sfile.Joiner
	out    [2]*bufio.Writer // stdout, stderr
	last   int              // the output written last: flushed before the other one is written
	first  bool             // still in the file opened first, where starts apply
	starts [2]int64         // per stream, the offset of the first line to show (--tail)
	show   [2]bool          // the stream's current line is shown
}

// Show writes the stdout records of the log at path to stdout and its stderr records to
// stderr, joined into lines.
func Show(path string, o Options, stdout, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	v := &view{o: o, path: path, f: f, first: true, j: k8sfile.NewJoiner(stretch),
		out: [2]*bufio.Writer{bufio.NewWriterSize(stdout, 64<<10), bufio.NewWriterSize(stderr, 64<<10)}}
	defer func() { v.f.Close() }()
	if v.id, err = statFile(f); err != nil {
		return err
	}
	var fl *follower
	if o.Follow {
		// Watching and finding the writers before the first read: whatever is written
		// afterwards raises an event, and once the writers are gone the file is complete.
		if fl, err = newFollower(path, f); err != nil {
			return err
		}
		defer fl.close()
	}
	var from int64
	if o.Tail >= 0 {
		if v.starts, err = tailStarts(f, o.Tail, o.Since); err != nil {
			return v.fileErr(err)
		}
		from = min(v.starts[0], v.starts[1])
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			return err
		}
	}
	v.sc = k8sfile.NewScanner(f, from)
	if !o.Follow {
		if err := v.drain(); err != nil {
			return err
		}
		return v.end()
	}
	gone := fl.gone()
	for {
		if err := v.drain(); err != nil {
			return err
		}
		if err := v.j.Flush(v.emit); err != nil { // an unfinished line is shown as it grows
			return err
		}
		if err := v.flush(); err != nil {
			return err
		}
		switched, err := v.switchFile(fl)
		if err != nil {
			return err
		}
		switch {
		case switched:
			gone = fl.gone() // writers of the new file, if those known were gone
		case gone:
			return v.end()
		default:
			if gone, err = fl.wait(); err != nil {
				return err
			}
		}
	}
}

// drain shows every complete record read so far.
func (v *view) drain() error {
	for {
		r, err := v.sc.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return v.fileErr(err)
		}
		if err := v.j.Add(r, v.emit); err != nil {
			return err
		}
	}
}

// end shows what is left of the file (a torn last record, unfinished lines) and flushes.
func (v *view) end() error {
	if err := v.endFile(); err != nil {
		return err
	}
	if err := v.j.Flush(v.emit); err != nil {
		return err
	}
	return v.flush()
}

// endFile shows a torn last record of a file that is not written any more. A torn line
// that does not parse is ignored, unless it is all the file has.
func (v *view) endFile() error {
	r, err := v.sc.Torn()
	var fe *k8sfile.FormatError
	switch {
	case err == nil:
		return v.j.Add(r, v.emit)
	case errors.As(err, &fe) && fe.Offset == 0:
		return v.fileErr(err)
	}
	return nil
}

// emit writes one stretch of a line; whether a line is shown is decided at its start.
func (v *view) emit(l k8sfile.Line) error {
	i := int(l.Stream & 1)
	if l.Start {
		v.show[i] = !l.Time.Before(v.o.Since) && (!v.first || l.Offset >= v.starts[i])
	}
	if !v.show[i] {
		return nil
	}
	if i != v.last {
		if err := v.out[v.last].Flush(); err != nil {
			return err
		}
		v.last = i
	}
	w := v.out[i]
	if l.Start && v.o.Timestamps {
		w.Write(l.Stamp)
		w.WriteByte(' ')
	}
	w.Write(l.Content)
	if l.End {
		w.WriteByte('\n')
	}
	return nil // a write error stays in w and comes out of the next Flush
}

func (v *view) flush() error {
	if err := v.out[1-v.last].Flush(); err != nil {
		return err
	}
	return v.out[v.last].Flush()
}

// switchFile moves to the file now at the path when it is another one (after a reopen or
// rotation), or back to the start of a file truncated in place; it reports whether it did.
func (v *view) switchFile(fl *follower) (bool, error) {
	var st unix.Stat_t
	err := unix.Stat(v.path, &st)
	if err == unix.ENOENT {
		// Renamed away (kubelet renames, then asks for a reopen): the monitor writes on
		// into the renamed file until a new one appears at the path.
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "stat", Path: v.path, Err: err}
	}
	if (fileID{st.Dev, st.Ino}) == v.id {
		if st.Size >= v.sc.Offset() {
			return false, nil
		}
		if _, err := v.f.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		v.sc.Reset(v.f, 0)
		v.first = false
		return true, nil
	}
	nf, err := os.Open(v.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A monitor writes to the new file only once it is at the path: what it wrote to the
	// old one before is there by now.
	if err := v.drain(); err != nil {
		nf.Close()
		return false, err
	}
	if err := v.endFile(); err != nil {
		nf.Close()
		return false, err
	}
	id, err := statFile(nf)
	if err == nil {
		err = fl.follow(nf)
	}
	if err != nil {
		nf.Close()
		return false, err
	}
	v.f.Close()
	v.f, v.id, v.first = nf, id, false
	v.sc.Reset(nf, 0)
	return true, nil
}

// fileErr names the path in a format error; a file whose first line is not a record is
// not a k8s-file log at all.
func (v *view) fileErr(err error) error {
	var fe *k8sfile.FormatError
	if errors.As(err, &fe) && fe.Offset == 0 && v.first {
		return fmt.Errorf("%s is not a k8s-file log (first line: %v)", v.path, fe.Err)
	}
	return fmt.Errorf("%s: %w", v.path, err)
}

type fileID struct{ dev, ino uint64 }

func statFile(f *os.File) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return fileID{st.Dev, st.Ino}, nil
}
