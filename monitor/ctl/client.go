package ctl

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Writer is the engines' side of <dir>/ctl: it asks a monitor (conmon or conmon-go) to
// resize the container's terminal.
type Writer struct {
	fd   int
	path string
}

// OpenWriter opens <dir>/ctl for writing without waiting: it fails (ENXIO) when no monitor
// has the FIFO open, instead of blocking until one does.
func OpenWriter(dir string) (*Writer, error) {
	path := dir + "/ctl"
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &Writer{fd: fd, path: path}, nil
}

// Resize sends "1 <rows> <cols>\n", each value clamped to the range monitors accept. The
// line is far below PIPE_BUF, so it is written whole or not at all; a FIFO that is full
// (a monitor that stopped reading) drops it rather than blocking the caller.
func (w *Writer) Resize(rows, cols int) error {
	line := make([]byte, 0, 16)
	line = strconv.AppendInt(line, TypeResize, 10)
	line = append(line, ' ')
	line = strconv.AppendInt(line, int64(min(max(rows, 0), maxSize)), 10)
	line = append(line, ' ')
	line = strconv.AppendInt(line, int64(min(max(cols, 0), maxSize)), 10)
	line = append(line, '\n')
	for {
		_, err := unix.Write(w.fd, line)
		switch err {
		case unix.EINTR:
			continue
		case nil:
			return nil
		}
		return fmt.Errorf("write %s: %w", w.path, err)
	}
}

// Close closes the FIFO.
func (w *Writer) Close() error { return unix.Close(w.fd) }
