package k8sfile

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

// fuzzInput is data with a run of 'x' (no newline) of runLen bytes inserted, so that the
// fuzzer reaches lines longer than linebuf.MaxLine without having to grow data that far.
func fuzzInput(data []byte, runLen uint16) []byte {
	at := int(runLen) % (len(data) + 1)
	in := make([]byte, 0, len(data)+int(runLen))
	in = append(in, data[:at]...)
	in = append(in, bytes.Repeat([]byte{'x'}, int(runLen))...)
	return append(in, data[at:]...)
}

// fuzzRead maps one byte to a read: the top bit picks the stream, the rest the size: 1 to
// 64 bytes, or 1 to 64 KiB in KiB steps (the pumps read at most 64 KiB at a time).
func fuzzRead(b byte) (ptyio.Stream, int) {
	s := ptyio.Stdout
	if b&0x80 != 0 {
		s = ptyio.Stderr
	}
	if v := int(b & 0x7f); v < 64 {
		return s, v + 1
	}
	return s, (int(b&0x7f) - 63) << 10
}

// Any bytes, in reads of any size on either stream, come back from the file's records
// exactly: joining each stream's P and F contents gives its bytes (docs/logging.md §2, §3.2).
// A record never holds more than one line nor more than MaxLine bytes; an F record ends
// with the line's own newline; a P record is MaxLine bytes long unless it is the last of its
// stream (the flush at the end) or the idle timer may have fired.
func FuzzRecordsReassemble(f *testing.F) {
	f.Add([]byte("out1\nerr1\npartial"), []byte{3, 0x85, 7}, uint16(0))
	f.Add([]byte("a\n\nb"), []byte{0}, uint16(20000))
	f.Add([]byte("\xff\xfe\x00\r\n\xc3\x28\n"), []byte{0, 0x80, 0x7f, 64}, uint16(16383))
	f.Add([]byte("\n"), []byte{0x7f}, uint16(linebuf.MaxLine))
	f.Fuzz(func(t *testing.T, data, reads []byte, runLen uint16) {
		in := fuzzInput(data, runLen)
		path := filepath.Join(t.TempDir(), "ctr.log")
		w := open(t, Config{Path: path})
		var want [2][]byte // by stream&1
		start := time.Now()
		for i, p := 0, in; len(p) > 0; i++ {
			s, n := ptyio.Stdout, len(p)
			if len(reads) > 0 {
				s, n = fuzzRead(reads[i%len(reads)])
			}
			n = min(n, len(p), 64<<10)
			w.Write(s, p[:n], time.Now())
			want[s&1] = append(want[s&1], p[:n]...)
			p = p[n:]
		}
		w.Flush()
		idleMayHaveFired := time.Since(start) >= linebuf.Idle
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		recs := parse(t, read(t, path))
		for i, name := range [2]string{"stdout", "stderr"} {
			var got []parsed
			for _, r := range recs {
				if r.stream == name {
					got = append(got, r)
				}
			}
			if j := joined(got); j != string(want[i]) {
				t.Fatalf("%s: records join to %d bytes, want the %d bytes written", name, len(j), len(want[i]))
			}
			for k, r := range got {
				nl := strings.IndexByte(r.content, '\n')
				switch {
				case len(r.content) == 0 || len(r.content) > linebuf.MaxLine:
					t.Fatalf("%s record %d has %d bytes", name, k, len(r.content))
				case r.partial && nl >= 0, !r.partial && nl != len(r.content)-1:
					t.Fatalf("%s record %d (partial %v) has a newline at %d of %d", name, k, r.partial, nl, len(r.content))
				case r.partial && len(r.content) < linebuf.MaxLine && k != len(got)-1 && !idleMayHaveFired:
					t.Fatalf("%s record %d: P record of %d bytes before the end", name, k, len(r.content))
				}
			}
		}
	})
}
