package logview

import (
	"bytes"
	"io"
	"os"
	"time"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/k8sfile"
)

// tailStarts finds, per stream, the offset of the first of the last n lines that began at
// or after since (the file's size for a stream without any), reading a window at the end
// of the file that doubles until it holds those lines whole. Lines are counted in the
// order they are written out: when they end, unfinished ones last.
//
// Each stream's lines follow each other, so the last n lines are the last few of each
// stream, and showing a stream from the first of them on shows exactly those.
func tailStarts(f *os.File, n int, since time.Time) ([2]int64, error) {
	st, err := f.Stat()
	if err != nil {
		return [2]int64{}, err
	}
	size := st.Size()
	if n == 0 {
		return [2]int64{size, size}, nil
	}
	for window := int64(64 << 10); ; window *= 2 {
		from := max(size-window, 0)
		starts, enough, err := tailWindow(f, from, size, n, since)
		if err != nil || enough || from == 0 {
			return starts, err
		}
	}
}

// lineAt is a line found in the window.
type lineAt struct {
	off     int64
	stream  ptyio.Stream
	time    time.Time
	certain bool // it begins in the window (a stream's first line there may have begun before)
}

// tailWindow looks for the lines in the part of the file from from to size; enough reports
// that a larger window would not change the result.
func tailWindow(f *os.File, from, size int64, n int, since time.Time) (starts [2]int64, enough bool, err error) {
	start, err := recordStart(f, from, size)
	if err != nil {
		return starts, false, err
	}
	var (
		open  [2]bool   // the stream's line is under way
		line  [2]lineAt // that line
		ended [2]bool   // a line of the stream ended in the window: the next one begins in it
		older bool      // a line of the window began before since
		lines []lineAt  // the latest lines since since, in the order they end
	)
	add := func(l lineAt) {
		if l.time.Before(since) {
			older = older || l.certain
			return
		}
		if len(lines) >= n && len(lines)-n >= n { // keep at most 2n
			lines = lines[:copy(lines, lines[len(lines)-n:])]
		}
		lines = append(lines, l)
	}
	record := func(r k8sfile.Record) {
		i := r.Stream & 1
		if !open[i] {
			open[i] = true
			line[i] = lineAt{off: r.Offset, stream: r.Stream, time: r.Time, certain: start == 0 || ended[i]}
		}
		if !r.Partial {
			add(line[i])
			open[i], ended[i] = false, true
		}
	}
	sc := k8sfile.NewScanner(io.NewSectionReader(f, start, size-start), start)
	for {
		r, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return starts, false, err
		}
		record(r)
	}
	if r, err := sc.Torn(); err == nil {
		record(r)
	}
	if open[0] && open[1] && line[1].off < line[0].off {
		line[0], line[1] = line[1], line[0]
		open[0], open[1] = open[1], open[0]
	}
	for i := range open {
		if open[i] {
			add(line[i])
		}
	}
	lines = lines[max(len(lines)-n, 0):]
	enough = len(lines) == n || older
	starts = [2]int64{size, size}
	for _, l := range lines {
		enough = enough && l.certain
		i := l.stream & 1
		starts[i] = min(starts[i], l.off)
	}
	return starts, enough, nil
}

// recordStart returns the offset of the first record that begins at or after from: the
// byte after the first '\n' at or after from-1 (size if there is none).
func recordStart(f *os.File, from, size int64) (int64, error) {
	if from == 0 {
		return 0, nil
	}
	buf := make([]byte, 4096)
	for off := from - 1; off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return off + int64(i) + 1, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		if n == 0 {
			break
		}
		off += int64(n)
	}
	return size, nil
}
