package k8sfile

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/ptyio"
)

func TestParseRecord(t *testing.T) {
	for _, c := range []struct {
		line    string
		stream  ptyio.Stream
		partial bool
		content string
		at      time.Time
	}{
		{"2026-11-27T12:38:19.750087082+00:00 stdout F out1", ptyio.Stdout, false, "out1",
			time.Date(2026, 11, 27, 12, 38, 19, 750087082, time.UTC)},
		{"2026-11-27T12:38:19.750087082-03:00 stderr P part ial\r", ptyio.Stderr, true, "part ial\r",
			time.Date(2026, 11, 27, 15, 38, 19, 750087082, time.UTC)},
		{"2026-11-27T12:38:20.05Z stdout F ", ptyio.Stdout, false, "", time.Date(2026, 11, 27, 12, 38, 20, 5e7, time.UTC)},
		{"2026-11-27T12:38:20Z stdout F", ptyio.Stdout, false, "", time.Date(2026, 11, 27, 12, 38, 20, 0, time.UTC)},
	} {
		r, err := ParseRecord([]byte(c.line))
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if r.Stream != c.stream || r.Partial != c.partial || string(r.Content) != c.content || !r.Time.Equal(c.at) ||
			string(r.Stamp) != c.line[:strings.IndexByte(c.line, ' ')] {
			t.Errorf("%q parsed as %+v", c.line, r)
		}
	}
	for _, bad := range []string{
		"", "hello", "hello world stdout F x",
		"2026-11-27T12:38:19.750087082+00:00",
		"2026-11-27 12:38:19 stdout F x",
		"2026-11-27T12:38:19.750087082+00:00 stdin F x",
		"2026-11-27T12:38:19.750087082+00:00 stdout X x",
		"2026-11-27T12:38:19.750087082+00:00 stdout Fx",
		"2026-11-27T12:38:19.750087082+00:00 stdout",
		"2026-11-27T12:38:19.750087082+00:00 stdout  F x",
	} {
		if r, err := ParseRecord([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %+v, want an error", bad, r)
		}
	}
}

// growing is a log being written: reads return what was appended so far, then io.EOF.
type growing struct{ data []byte }

func (g *growing) Read(p []byte) (int, error) {
	if len(g.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.data)
	g.data = g.data[n:]
	return n, nil
}

func TestScannerWaitsForTheRestOfARecord(t *testing.T) {
	g := &growing{}
	sc := NewScanner(g, 100)
	rec := "2026-11-27T12:38:19.750087082+00:00 stdout F out1\n"
	g.data = []byte(rec + rec[:20])
	if r, err := sc.Next(); err != nil || string(r.Content) != "out1" || r.Offset != 100 {
		t.Fatalf("first record %+v, %v", r, err)
	}
	if _, err := sc.Next(); err != io.EOF {
		t.Fatalf("torn record: %v, want io.EOF", err)
	}
	g.data = []byte(rec[20:])
	if r, err := sc.Next(); err != nil || string(r.Content) != "out1" || r.Offset != 100+int64(len(rec)) {
		t.Fatalf("completed record %+v, %v", r, err)
	}
	if sc.Offset() != 100+2*int64(len(rec)) {
		t.Fatalf("offset %d", sc.Offset())
	}
	if _, err := sc.Torn(); err != io.EOF {
		t.Fatalf("Torn without a torn line: %v", err)
	}
}

func TestScannerTorn(t *testing.T) {
	rec := "2026-11-27T12:38:19.750087082+00:00 stderr F out1\n"
	for _, c := range []struct {
		tail    string
		content string // "" : does not parse
	}{
		{rec[:len(rec)-3], "ou"},
		{rec[:20], ""},
	} {
		sc := NewScanner(strings.NewReader(rec+c.tail), 0)
		if _, err := sc.Next(); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Next(); err != io.EOF {
			t.Fatal(err)
		}
		r, err := sc.Torn()
		var fe *FormatError
		switch {
		case c.content == "" && !(errors.As(err, &fe) && fe.Offset == int64(len(rec))):
			t.Errorf("torn %q: %v, want a FormatError at %d", c.tail, err, len(rec))
		case c.content != "" && (err != nil || !r.Partial || string(r.Content) != c.content || r.Stream != ptyio.Stderr):
			t.Errorf("torn %q: %+v %v, want a partial record of %q", c.tail, r, err, c.content)
		}
		if sc.Offset() != int64(len(rec)+len(c.tail)) {
			t.Errorf("offset %d after Torn", sc.Offset())
		}
	}
}

func TestScannerLongRecords(t *testing.T) {
	long := "2026-11-27T12:38:19Z stdout F " + strings.Repeat("x", 300<<10) + "\n"
	sc := NewScanner(strings.NewReader(long), 0)
	if r, err := sc.Next(); err != nil || len(r.Content) != 300<<10 {
		t.Fatalf("300 KiB record: %d bytes, %v", len(r.Content), err)
	}
	sc = NewScanner(strings.NewReader(strings.Repeat("y", maxRecord+1)), 0)
	var fe *FormatError
	if _, err := sc.Next(); !errors.As(err, &fe) {
		t.Fatalf("a line over %d bytes: %v, want a FormatError", maxRecord, err)
	}
	sc = NewScanner(strings.NewReader("not a log\n"), 0)
	if _, err := sc.Next(); !errors.As(err, &fe) || fe.Offset != 0 || !strings.Contains(err.Error(), "byte 0") {
		t.Fatalf("not a log: %v", err)
	}
}

// streams reassembles what each stream wrote from the lines a Joiner emits, checking that
// stretches follow each other.
type streams struct {
	t    testing.TB
	text [2]bytes.Buffer
	mid  [2]bool // a line was started and not ended
	off  [2]int64
	n    int
}

func (s *streams) emit(l Line) error {
	i := l.Stream & 1
	if l.Start == s.mid[i] || !l.Start && l.Offset != s.off[i] {
		s.t.Fatalf("stretch %+v: line under way %v at %d", l, s.mid[i], s.off[i])
	}
	s.mid[i], s.off[i] = !l.End, l.Offset
	s.text[i].Write(l.Content)
	if l.End {
		s.text[i].WriteByte('\n')
	}
	s.n++
	return nil
}

func readAll(t testing.TB, data []byte, max int) *streams {
	s := &streams{t: t}
	sc := NewScanner(bytes.NewReader(data), 0)
	j := NewJoiner(max)
	for {
		r, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Add(r, s.emit); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Flush(s.emit); err != nil {
		t.Fatal(err)
	}
	return s
}

// What the Writer stores, the Scanner and Joiner give back, byte for byte, per stream.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	var in [2][]byte
	w := open(t, Config{})
	for range 300 {
		s := ptyio.Stream(2 + rng.Intn(2))
		chunk := make([]byte, rng.Intn(30000))
		for i := range chunk {
			chunk[i] = byte('a' + rng.Intn(26))
			if rng.Intn(500) == 0 {
				chunk[i] = '\n'
			}
		}
		w.Write(s, chunk, time.Now())
		in[s&1] = append(in[s&1], chunk...)
	}
	w.Flush()
	data := []byte(read(t, w.cfg.Path))
	for _, max := range []int{10, 16384, 1 << 20} {
		s := readAll(t, data, max)
		for i := range in {
			if !bytes.Equal(s.text[i].Bytes(), in[i]) {
				t.Fatalf("max %d: stream %d: read back %d bytes, wrote %d", max, i, s.text[i].Len(), len(in[i]))
			}
		}
	}
}

func TestJoinerStretches(t *testing.T) {
	log := "2026-01-01T00:00:01Z stdout P aaaa\n" +
		"2026-01-01T00:00:02Z stderr F e1\n" +
		"2026-01-01T00:00:03Z stdout P bbbb\n" +
		"2026-01-01T00:00:04Z stdout F cc\n" +
		"2026-01-01T00:00:05Z stderr P e2\n" +
		"2026-01-01T00:00:06Z stdout P ddd\n"
	type got struct {
		stamp, content string
		start, end     bool
	}
	var lines []got
	sc := NewScanner(strings.NewReader(log), 0)
	j := NewJoiner(6)
	emit := func(l Line) error {
		lines = append(lines, got{string(l.Stamp), string(l.Content), l.Start, l.End})
		return nil
	}
	for {
		r, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err := j.Add(r, emit); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Flush(emit); err != nil {
		t.Fatal(err)
	}
	want := []got{
		{"2026-01-01T00:00:02Z", "e1", true, true},
		{"2026-01-01T00:00:01Z", "aaaa", true, false}, // aaaa+bbbb exceeds 6
		{"2026-01-01T00:00:01Z", "bbbbcc", false, true},
		{"2026-01-01T00:00:05Z", "e2", true, false}, // unfinished, flushed earlier line first
		{"2026-01-01T00:00:06Z", "ddd", true, false},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines %+v, want %+v", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, lines[i], want[i])
		}
	}
}

// Arbitrary bytes never crash the reader, and what it joins is exactly the records' content.
func FuzzScan(f *testing.F) {
	f.Add([]byte("2026-11-27T12:38:19.750087082+00:00 stdout P a\n2026-11-27T12:38:19Z stderr F b\n2026-11-27T12:38:19Z stdout F c\n"), 4)
	f.Add([]byte("2026-11-27T12:38:19Z stdout F\n2026-11-27T12:38:19Z stdout P xyz"), 1)
	f.Add([]byte("garbage\n"), 0)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		var want [2]bytes.Buffer
		sc := NewScanner(bytes.NewReader(data), 0)
		s := &streams{t: t}
		j := NewJoiner(max & 0xffff)
		for {
			r, err := sc.Next()
			if err != nil {
				break
			}
			if r.Offset < 0 || r.Offset >= int64(len(data)) || data[r.Offset+int64(len(r.Stamp))] != ' ' {
				t.Fatalf("record %+v at a wrong offset", r)
			}
			want[r.Stream&1].Write(r.Content)
			if !r.Partial {
				want[r.Stream&1].WriteByte('\n')
			}
			if err := j.Add(r, s.emit); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Flush(s.emit); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if !bytes.Equal(want[i].Bytes(), s.text[i].Bytes()) {
				t.Fatalf("stream %d joined %q, records hold %q", i, s.text[i].Bytes(), want[i].Bytes())
			}
		}
	})
}

// Whatever a container writes, in whatever chunks, reads back unchanged per stream.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello\nwor"), []byte("ld\n\r\n"), uint8(3))
	f.Add(bytes.Repeat([]byte("x"), 40000), []byte("\n"), uint8(200))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, out, errOut []byte, chunk uint8) {
		path := dir + "/ctr.log"
		os.Remove(path)
		w, err := Open(Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		n := max(int(chunk), 1) * 97
		for i := 0; i < max(len(out), len(errOut)); i += n {
			w.Write(ptyio.Stdout, out[min(i, len(out)):min(i+n, len(out))], time.Now())
			w.Write(ptyio.Stderr, errOut[min(i, len(errOut)):min(i+n, len(errOut))], time.Now())
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		s := readAll(t, []byte(read(t, path)), 4096)
		if !bytes.Equal(s.text[0].Bytes(), out) || !bytes.Equal(s.text[1].Bytes(), errOut) {
			t.Fatalf("read back %q / %q", s.text[0].Bytes(), s.text[1].Bytes())
		}
	})
}
