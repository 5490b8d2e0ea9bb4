package seqpacket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
)

// The client against the real server: frames keep their stream, stdin datagrams arrive
// whole, CloseWrite ends the client's input, the peer is this process.
func TestDialExchangesFramesAndStdin(t *testing.T) {
	dir := t.TempDir()
	stdin := newPipeStdin(t, 0)
	s, log := startServer(t, Config{Bundle: dir, Stdin: stdin})
	c, err := Dial(context.Background(), filepath.Join(dir, "attach"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log.waitFor("Accepted console connection", 1)

	big := bytes.Repeat([]byte("x"), maxPayload+10)
	s.Broadcast(ptyio.Stdout, []byte("out"))
	s.Broadcast(ptyio.Stderr, []byte("err"))
	s.Broadcast(ptyio.Stdout, big)
	want := []struct {
		stream ptyio.Stream
		data   string
	}{{ptyio.Stdout, "out"}, {ptyio.Stderr, "err"}, {ptyio.Stdout, string(big[:maxPayload])}, {ptyio.Stdout, "xxxxxxxxxx"}}
	for _, w := range want {
		stream, p, err := c.ReadFrame()
		if err != nil || stream != w.stream || string(p) != w.data {
			t.Fatalf("ReadFrame = %d %d bytes %v; want %d %d bytes", stream, len(p), err, w.stream, len(w.data))
		}
	}

	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	// The test's stdin writes what it gets in two halves.
	var got []byte
	buf := make([]byte, 64)
	for len(got) < len("hello\n") {
		n, err := stdin.r.Read(buf)
		if err != nil {
			t.Fatalf("container stdin got %q, %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "hello\n" {
		t.Fatalf("container stdin got %q", got)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stdin.closedC:
	case <-time.After(waitLimit):
		t.Fatal("CloseWrite did not end the client's input at the server")
	}
	if pid, err := c.PeerPid(); err != nil || pid != os.Getpid() {
		t.Fatalf("PeerPid = %d, %v; want %d", pid, err, os.Getpid())
	}
	s.Shutdown(time.Second)
	if _, _, err := c.ReadFrame(); err != io.EOF {
		t.Fatalf("after Shutdown ReadFrame = %v; want io.EOF", err)
	}
}

// Input longer than MaxInput goes as several datagrams, none truncated by a reader with
// conmon's 32 KiB buffer.
func TestDialWriteSplitsInput(t *testing.T) {
	dir := t.TempDir()
	stdin := newPipeStdin(t, 1<<20)
	_, log := startServer(t, Config{Bundle: dir, Stdin: stdin})
	c, err := Dial(context.Background(), filepath.Join(dir, "attach"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log.waitFor("Accepted console connection", 1)
	data := bytes.Repeat([]byte("0123456789abcdef"), (MaxInput*2+100)/16)
	if n, err := c.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := make([]byte, 0, len(data))
	buf := make([]byte, 64<<10)
	for len(got) < len(data) {
		n, err := stdin.r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("stdin bytes differ from what was written")
	}
	if log.count("truncated") != 0 {
		t.Fatal("a datagram was truncated")
	}
}

// A socket path longer than sun_path is reached through the directory's fd.
func TestDialLongPath(t *testing.T) {
	dir := t.TempDir()
	for len(dir) < 120 {
		dir = filepath.Join(dir, strings.Repeat("d", 30))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	startServer(t, Config{Bundle: dir})
	c, err := Dial(context.Background(), filepath.Join(dir, "attach"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Dial(context.Background(), file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if _, err := Dial(context.Background(), filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}

	stream := filepath.Join(dir, "stream")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: stream}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(context.Background(), stream); !errors.Is(err, ErrNotAttachSocket) {
		t.Errorf("stream socket: %v; want ErrNotAttachSocket", err)
	}

	// A socket file nobody listens on any more: the monitor has exited.
	gone := filepath.Join(dir, "gone")
	fd2, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err := unix.Bind(fd2, &unix.SockaddrUnix{Name: gone}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd2)
	if _, err := Dial(context.Background(), gone); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("socket without listener: %v; want ECONNREFUSED", err)
	}
}

// A monitor that accepts nobody (stopped, its listen backlog full): Dial waits until its
// context ends, and connects as soon as there is room.
func TestDialFullBacklog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "attach")
	l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l)
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 0); err != nil { // room for one connection
		t.Fatal(err)
	}
	first, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, path); !errors.Is(err, ErrNotAccepting) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial with a full backlog = %v; want ErrNotAccepting after the deadline", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel) // before or during the Dial: the same result
	if _, err := Dial(ctx, path); !errors.Is(err, ErrNotAccepting) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial cancelled = %v; want ErrNotAccepting, cancelled", err)
	}

	dialed := make(chan error, 1)
	go func() {
		c, err := Dial(context.Background(), path)
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	a, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC) // room in the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(a)
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("Dial once there was room: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Dial did not connect once there was room")
	}
}
