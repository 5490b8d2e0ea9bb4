package seqpacket

import (
	"bytes"
	"io"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
)

// fuzzChunks cuts a stream cycling through data into pieces whose sizes come from sizes,
// one byte each: the top bit is passed on as a flag, the rest picks 0 to 63 bytes, or 1 to
// 64 KiB in KiB steps; 0x7f and 0xff add one byte to 64 KiB. The pieces stop at 1 MiB in
// total, which keeps each run short.
func fuzzChunks(data, sizes []byte) (chunks [][]byte, flags []bool) {
	if len(data) == 0 {
		data = []byte{0}
	}
	off := 0
	for _, b := range sizes {
		if off >= 1<<20 {
			break
		}
		n := int(b & 0x7f)
		switch {
		case n == 0x7f:
			n = 64<<10 + 1
		case n >= 64:
			n = (n - 63) << 10
		}
		c := make([]byte, n)
		for i := range c {
			c[i] = data[(off+i)%len(data)]
		}
		off += n
		chunks = append(chunks, c)
		flags = append(flags, b&0x80 != 0)
	}
	return chunks, flags
}

// Any sequence of datagrams from a client reaches the container's stdin (a real pipe behind
// ptyio.Stdin, as the monitor passes it) as exactly their bytes, in order (docs/protocol.md
// §5.3): an empty datagram adds nothing and does not end the input; a datagram longer than
// the receive buffer is cut to its first 64 KiB. The client's end of input then closes the
// pipe.
func FuzzClientDatagramsReachStdin(f *testing.F) {
	f.Add([]byte("ls -l\n"), []byte{6, 0, 1}) // an empty datagram in the middle
	f.Add([]byte("\x00\xff\r\x03"), []byte{0x40, 0x7f, 0, 0, 3})
	f.Add([]byte("y"), []byte{})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		dgrams, _ := fuzzChunks(data, sizes)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		bundle := t.TempDir()
		_, log := startServer(t, Config{Bundle: bundle, Stdin: ptyio.NewStdin(w, false, true, nil)})
		got := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(r); got <- b }()
		fd := connect(t, log, bundle+"/attach", 1)
		var want []byte
		for _, d := range dgrams {
			if _, err := unix.Write(fd, d); err != nil {
				t.Fatalf("send %d bytes: %v", len(d), err)
			}
			want = append(want, d[:min(len(d), 65536)]...)
		}
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			t.Fatal(err)
		}
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("stdin received %d bytes, want %d from %d datagrams (first difference at %d)",
				len(b), len(want), len(dgrams), firstDiff(b, want))
		}
		if n := log.count("truncated"); n != countLonger(dgrams, 65536) {
			t.Fatalf("%d truncation warnings for %d datagrams longer than 65536", n, countLonger(dgrams, 65536))
		}
	})
}

// Output chunks of any size on either stream reach a client as frames of 1 to 8192 payload
// bytes, each tagged with its chunk's stream, in order (docs/protocol.md §5.2).
func FuzzOutputFrames(f *testing.F) {
	f.Add([]byte("hello\n"), []byte{6, 0x84})
	f.Add([]byte("\x00\x02\x03"), []byte{0x48, 0, 0x7f, 0xc1})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		chunks, toStderr := fuzzChunks(data, sizes)
		bundle := t.TempDir()
		s, log := startServer(t, Config{Bundle: bundle})
		rd := startReader(connect(t, log, bundle+"/attach", 1), true, nil)
		var want tagged
		for i, c := range chunks {
			stream := ptyio.Stdout
			if toStderr[i] {
				stream = ptyio.Stderr
			}
			s.Broadcast(stream, c)
			want.add(byte(stream), c)
		}
		s.Shutdown(waitLimit)
		if err := rd.waitEOF(t); err != nil {
			t.Fatal(err)
		}
		var got tagged
		for _, fr := range rd.frames {
			if len(fr) < 2 || len(fr) > 1+8192 || fr[0] != byte(ptyio.Stdout) && fr[0] != byte(ptyio.Stderr) {
				t.Fatalf("frame of %d bytes, stream id %d", len(fr), fr[0])
			}
			got.add(fr[0], fr[1:])
		}
		if !bytes.Equal(got.data, want.data) || !slices.Equal(got.runs, want.runs) {
			t.Fatalf("%d frames carry %d bytes in stream runs %v, want %d bytes in %v (first difference at byte %d); server log %q",
				len(rd.frames), len(got.data), got.runs, len(want.data), want.runs, firstDiff(got.data, want.data), log.lines)
		}
	})
}

// tagged is a byte sequence in which every byte belongs to a stream: the bytes, and the
// lengths of the runs of one stream.
type tagged struct {
	data []byte
	runs []run
}

type run struct {
	stream byte
	n      int
}

func (t *tagged) add(stream byte, p []byte) {
	t.data = append(t.data, p...)
	if k := len(t.runs) - 1; k >= 0 && t.runs[k].stream == stream {
		t.runs[k].n += len(p)
	} else if len(p) > 0 {
		t.runs = append(t.runs, run{stream, len(p)})
	}
}

func countLonger(ps [][]byte, n int) int {
	c := 0
	for _, p := range ps {
		if len(p) > n {
			c++
		}
	}
	return c
}

func firstDiff(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}
