package seqpacket

import (
	"errors"
	"io"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// spinReader reads a non-blocking socket by retrying at once on EAGAIN, so that its reads
// overlap the peer's write and close as closely as the machine allows.
type spinReader struct{ fd int }

func (r spinReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		switch {
		case err == unix.EAGAIN:
			continue
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// spin delays the peer by up to a few microseconds, different in each round, so that its
// write and close land at every point of the reader's read.
var spin int

// A peer that writes its last datagram and closes at once, against a non-blocking reader
// on another CPU: every datagram is read before EOF. With two CPUs on Linux 6.18, plain
// reads saw EOF first in 2 to 6 of 20000 such rounds, the datagram still queued;
// ReadPacket must lose none.
func TestReadPacketSurvivesWriteThenClose(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Log("one CPU: the peer's write and close never run during a read here")
	}
	const rounds = 30000
	msg := []byte(`{"data": 0}` + "\n")
	buf := make([]byte, 64)
	for i := range rounds {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.SetNonblock(fds[0], true); err != nil {
			t.Fatal(err)
		}
		wrote := make(chan error, 1)
		go func() {
			for k := range i % 64 * 30 {
				spin += k
			}
			_, err := unix.Write(fds[1], msg)
			unix.Close(fds[1])
			wrote <- err
		}()
		n, err := ReadPacket(spinReader{fds[0]}, buf)
		if werr := <-wrote; werr != nil {
			t.Fatal(werr)
		}
		if string(buf[:n]) != string(msg) || err != nil {
			t.Fatalf("round %d: read %q, %v; want the datagram", i, buf[:n], err)
		}
		if n, err := ReadPacket(spinReader{fds[0]}, buf); n != 0 || err != io.EOF {
			t.Fatalf("round %d: after the datagram read %d, %v; want EOF", i, n, err)
		}
		unix.Close(fds[0])
	}
}

// A peer that closes with a datagram of ours unread: the first read reports ECONNRESET,
// the datagram the peer had sent is still read, then EOF.
func TestReadPacketReadsPastConnReset(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	if _, err := unix.Write(fds[0], []byte("unread by the peer")); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fds[1], []byte("last")); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])
	buf := make([]byte, 64)
	n, err := ReadPacket(spinReader{fds[0]}, buf)
	if string(buf[:n]) != "last" || err != nil {
		t.Fatalf("read %q, %v; want \"last\"", buf[:n], err)
	}
	n, err = ReadPacket(spinReader{fds[0]}, buf)
	if n != 0 || (err != io.EOF && !errors.Is(err, unix.ECONNRESET)) {
		t.Fatalf("then read %d, %v; want the end", n, err)
	}
}
