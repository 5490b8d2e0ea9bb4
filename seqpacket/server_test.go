package seqpacket

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
)

const waitLimit = 20 * time.Second

// The monitor hands ptyio's stdin writer to the server.
var _ StdinTarget = (*ptyio.Stdin)(nil)

// testLogger records messages and lets tests wait for them.
type testLogger struct {
	t      *testing.T
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

func newTestLogger(t *testing.T) *testLogger {
	return &testLogger{t: t, notify: make(chan struct{})}
}

func (l *testLogger) add(level, format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, level+fmt.Sprintf(format, args...))
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

func (l *testLogger) Warnf(format string, args ...any)  { l.add("W ", format, args...) }
func (l *testLogger) Debugf(format string, args ...any) { l.add("D ", format, args...) }

func (l *testLogger) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// waitFor waits until at least n messages contain sub.
func (l *testLogger) waitFor(sub string, n int) {
	l.t.Helper()
	deadline := time.After(waitLimit)
	for {
		l.mu.Lock()
		ch := l.notify
		l.mu.Unlock()
		if l.count(sub) >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			l.t.Fatalf("timed out waiting for %d messages %q; have %q", n, sub, l.lines)
		}
	}
}

// pipeStdin is a StdinTarget over a real pipe whose write end is non-blocking.
type pipeStdin struct {
	w       *os.File
	r       *os.File
	blocked chan struct{} // signalled when a write found the pipe full
	closed  atomic.Int32
	closedC chan struct{}
}

func newPipeStdin(t *testing.T, size int) *pipeStdin {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	if size > 0 {
		if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
			t.Fatal(err)
		}
	}
	ps := &pipeStdin{
		r: os.NewFile(uintptr(p[0]), "stdin-r"), w: os.NewFile(uintptr(p[1]), "stdin-w"),
		blocked: make(chan struct{}, 1), closedC: make(chan struct{}, 64),
	}
	t.Cleanup(func() { ps.r.Close(); ps.w.Close() })
	return ps
}

// WriteStdin writes p in two halves, so that only the server's serialisation keeps
// datagrams of different clients from interleaving.
func (ps *pipeStdin) WriteStdin(p []byte) error {
	if err := ps.write(p[:len(p)/2]); err != nil {
		return err
	}
	return ps.write(p[len(p)/2:])
}

func (ps *pipeStdin) write(p []byte) error {
	rc, err := ps.w.SyscallConn()
	if err != nil {
		return err
	}
	var n int
	rc.Control(func(fd uintptr) { n, _ = unix.Write(int(fd), p) })
	if n < 0 {
		n = 0
	}
	if n < len(p) {
		select {
		case ps.blocked <- struct{}{}:
		default:
		}
		_, err = ps.w.Write(p[n:]) // waits on the poller: the back-pressure
	}
	return err
}

func (ps *pipeStdin) ClientInputClosed() {
	ps.closed.Add(1)
	ps.closedC <- struct{}{}
}

func startServer(t *testing.T, cfg Config) (*Server, *testLogger) {
	t.Helper()
	log := newTestLogger(t)
	cfg.Log = log
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(0); s.Remove() })
	return s, log
}

// dial connects like podman: O_PATH on the socket file, connect to /proc/self/fd/<n>.
// The returned fd is blocking.
func dial(t *testing.T, sock string) int {
	t.Helper()
	pfd, err := unix.Open(sock, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(pfd)}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// connect dials and waits until the server has registered the client (n-th accept).
func connect(t *testing.T, log *testLogger, sock string, n int) int {
	t.Helper()
	fd := dial(t, sock)
	log.waitFor("Accepted console connection", n)
	return fd
}

// reader collects every datagram of a client in a goroutine.
type reader struct {
	fd       int
	mu       sync.Mutex
	frames   [][]byte
	got      atomic.Int64 // payload bytes received
	progress chan struct{}
	done     chan error // nil on EOF
	check    func(frame []byte) error
	keep     bool
}

func startReader(fd int, keep bool, check func([]byte) error) *reader {
	r := &reader{fd: fd, keep: keep, check: check, progress: make(chan struct{}, 1), done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				r.done <- err
				return
			}
			if n == 0 {
				r.done <- nil
				return
			}
			if n > maxFrame {
				r.done <- fmt.Errorf("datagram of %d bytes", n)
				return
			}
			if r.check != nil {
				if err := r.check(buf[:n]); err != nil {
					r.done <- err
					return
				}
			}
			if r.keep {
				r.mu.Lock()
				r.frames = append(r.frames, append([]byte(nil), buf[:n]...))
				r.mu.Unlock()
			}
			r.got.Add(int64(n - 1))
			select {
			case r.progress <- struct{}{}:
			default:
			}
		}
	}()
	return r
}

// waitGot waits until the reader received at least n payload bytes.
func (r *reader) waitGot(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(waitLimit)
	for r.got.Load() < n {
		select {
		case <-r.progress:
		case err := <-r.done:
			r.done <- err
			if r.got.Load() < n {
				t.Fatalf("reader ended (%v) after %d of %d bytes", err, r.got.Load(), n)
			}
		case <-deadline:
			t.Fatalf("timed out: %d of %d bytes", r.got.Load(), n)
		}
	}
}

func (r *reader) waitEOF(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for EOF")
	}
	return nil
}

// pattern is the deterministic content of byte offset i of a test stream.
func pattern(i int64) byte { return byte(i*131 + i>>13) }

func fill(p []byte, off int64) {
	for i := range p {
		p[i] = pattern(off + int64(i))
	}
}

// checkStream returns a frame checker verifying stream id, size and content in order.
func checkStream(stream byte) func([]byte) error {
	var off int64
	return func(f []byte) error {
		if len(f) < 2 || f[0] != stream {
			return fmt.Errorf("bad frame: len %d id %d", len(f), f[0])
		}
		for i, b := range f[1:] {
			if b != pattern(off+int64(i)) {
				return fmt.Errorf("byte %d differs", off+int64(i))
			}
		}
		off += int64(len(f) - 1)
		return nil
	}
}

func TestTwoClientsSameFrames(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	a := startReader(connect(t, log, bundle+"/attach", 1), true, nil)
	b := startReader(connect(t, log, bundle+"/attach", 2), true, nil)
	s.Broadcast(ptyio.Stdout, []byte("hello1\n"))
	s.Broadcast(ptyio.Stderr, []byte("err\n"))
	s.Broadcast(ptyio.Stdout, []byte("out\r\nerr\r\n"))
	want := [][]byte{[]byte("\x02hello1\n"), []byte("\x03err\n"), []byte("\x02out\r\nerr\r\n")}
	s.Shutdown(5 * time.Second)
	for _, r := range []*reader{a, b} {
		if err := r.waitEOF(t); err != nil {
			t.Fatal(err)
		}
		if len(r.frames) != len(want) {
			t.Fatalf("got %d frames, want %d", len(r.frames), len(want))
		}
		for i := range want {
			if !bytes.Equal(r.frames[i], want[i]) {
				t.Fatalf("frame %d: %q, want %q", i, r.frames[i], want[i])
			}
		}
	}
}

// broadcastPaced sends total bytes in 64 KiB chunks (the pumps' read size), never letting
// more than 128 KiB be outstanding for the pacing reader, and returns the longest time a
// single Broadcast call took.
func broadcastPaced(t *testing.T, s *Server, pace *reader, total int64) time.Duration {
	t.Helper()
	chunk := make([]byte, 64<<10)
	var longest time.Duration
	for off := int64(0); off < total; off += int64(len(chunk)) {
		pace.waitGot(t, off-128<<10)
		p := chunk[:min(int64(len(chunk)), total-off)]
		fill(p, off)
		start := time.Now()
		s.Broadcast(ptyio.Stdout, p)
		longest = max(longest, time.Since(start))
	}
	return longest
}

func TestFramesSplit(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	fd := connect(t, log, bundle+"/attach", 1)
	var sizes [maxFrame + 1]int
	check := checkStream(2)
	r := startReader(fd, false, func(f []byte) error {
		sizes[len(f)]++ // len(f) <= maxFrame is checked by the reader
		return check(f)
	})
	const total = 1 << 20
	broadcastPaced(t, s, r, total)
	r.waitGot(t, total)
	s.Shutdown(time.Second)
	if err := r.waitEOF(t); err != nil {
		t.Fatal(err)
	}
	if sizes[maxFrame] != total/maxPayload {
		t.Fatalf("%d full frames, want %d", sizes[maxFrame], total/maxPayload)
	}
	if log.count("too slow") != 0 {
		t.Fatal("reading client was disconnected")
	}
}

func TestSlowClientDisconnected(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	slow := connect(t, log, bundle+"/attach", 1)
	fast := startReader(connect(t, log, bundle+"/attach", 2), false, checkStream(2))

	const total = 50 << 20
	start := time.Now()
	longest := broadcastPaced(t, s, fast, total)
	t.Logf("50 MiB broadcast in %v, longest Broadcast call %v", time.Since(start), longest)
	fast.waitGot(t, total)
	if n := log.count("W attach client too slow, disconnected"); n != 1 {
		t.Fatalf("%d slow-client warnings, want 1", n)
	}

	// The slow client finds what the kernel buffered, then EOF.
	var got int
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Read(slow, buf)
		if err != nil {
			t.Fatalf("slow client read: %v", err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	if got == 0 || got >= total {
		t.Fatalf("slow client read %d bytes", got)
	}
	s.Shutdown(time.Second)
	if err := fast.waitEOF(t); err != nil {
		t.Fatal(err)
	}
}

// While Broadcast waits for a client that stopped reading, the client list stays free: a
// new client is accepted and a fast client receives the frame before the stuck client is
// given up.
func TestStuckClientHoldsNothingBack(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	connect(t, log, bundle+"/attach", 1) // never reads
	fast := startReader(connect(t, log, bundle+"/attach", 2), false, nil)
	s.mu.Lock()
	stuck := s.clients[0]
	s.mu.Unlock()

	// Fill the stuck client's queue until its writer cannot send any more.
	chunk := make([]byte, 64<<10)
	sent := int64(0)
	for !stuck.blockedFull(len(chunk)) {
		s.Broadcast(ptyio.Stdout, chunk)
		sent += int64(len(chunk))
	}
	fast.waitGot(t, sent)

	done := make(chan struct{})
	go func() {
		s.Broadcast(ptyio.Stdout, chunk) // waits stallTimeout for the stuck client
		close(done)
	}()
	fast.waitGot(t, sent+int64(len(chunk)))
	connect(t, log, bundle+"/attach", 3)
	select {
	case <-done:
		t.Fatal("Broadcast returned before the new client was accepted: it held the client list while waiting")
	default:
	}
	<-done
	if n := log.count("too slow"); n != 1 {
		t.Fatalf("%d slow-client warnings, want 1", n)
	}
}

// blockedFull reports whether a frame of n bytes finds no room in the queue and the
// writer cannot send (the peer's socket buffer is full).
func (c *client) blockedFull(n int) bool {
	c.mu.Lock()
	full := queueSize-c.used < n+recHdr+1
	c.mu.Unlock()
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
	ready, _ := unix.Poll(fds, 0)
	return full && ready == 0
}

func TestStdinBackpressure(t *testing.T) {
	bundle := t.TempDir()
	ps := newPipeStdin(t, 4096)
	_, log := startServer(t, Config{Bundle: bundle, Stdin: ps})
	const per, size = 300, 1000
	var wg sync.WaitGroup
	for id := 1; id <= 2; id++ {
		fd := connect(t, log, bundle+"/attach", id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := make([]byte, size)
			for seq := range per {
				d[0], d[1], d[2] = byte(id), byte(seq>>8), byte(seq)
				for i := 3; i < size; i++ {
					d[i] = byte(id + seq)
				}
				if _, err := unix.Write(fd, d); err != nil {
					t.Errorf("client %d: %v", id, err)
					return
				}
			}
			unix.Shutdown(fd, unix.SHUT_WR)
		}()
	}
	select {
	case <-ps.blocked:
	case <-time.After(waitLimit):
		t.Fatal("stdin never filled up")
	}
	// Delivery is stalled on the full pipe; now drain it and check nothing was lost.
	data := make([]byte, 2*per*size)
	if _, err := ps.r.Read(data[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := readFull(ps.r, data[1:]); err != nil {
		t.Fatal(err)
	}
	next := [3]int{}
	for off := 0; off < len(data); off += size {
		d := data[off : off+size]
		id, seq := int(d[0]), int(d[1])<<8|int(d[2])
		if id < 1 || id > 2 || seq != next[id] {
			t.Fatalf("datagram at %d: client %d seq %d, want seq %d", off, id, seq, next[id])
		}
		for _, b := range d[3:] {
			if b != byte(id+seq) {
				t.Fatalf("datagram at %d (client %d seq %d) interleaved or corrupted", off, id, seq)
			}
		}
		next[id]++
	}
	wg.Wait()
	for range 2 {
		select {
		case <-ps.closedC:
		case <-time.After(waitLimit):
			t.Fatal("ClientInputClosed not called")
		}
	}
}

func readFull(f *os.File, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := f.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestHalfCloseKeepsOutput(t *testing.T) {
	bundle := t.TempDir()
	ps := newPipeStdin(t, 0)
	s, log := startServer(t, Config{Bundle: bundle, Stdin: ps})
	fd := connect(t, log, bundle+"/attach", 1)
	if _, err := unix.Write(fd, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ps.closedC:
	case <-time.After(waitLimit):
		t.Fatal("ClientInputClosed not called")
	}
	buf := make([]byte, 16)
	if n, err := ps.r.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("stdin got %q, %v", buf[:n], err)
	}
	s.Broadcast(ptyio.Stderr, []byte("after"))
	if n, err := unix.Read(fd, buf); err != nil || string(buf[:n]) != "\x03after" {
		t.Fatalf("client got %q, %v", buf[:n], err)
	}
	s.Shutdown(time.Second)
	if n, err := unix.Read(fd, buf); n != 0 || err != nil {
		t.Fatalf("want EOF, got %d, %v", n, err)
	}
	if n := ps.closed.Load(); n != 1 {
		t.Fatalf("ClientInputClosed called %d times", n)
	}
}

func TestNoStdinDiscards(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	fd := connect(t, log, bundle+"/attach", 1)
	if _, err := unix.Write(fd, make([]byte, 70000)); err != nil {
		t.Fatal(err)
	}
	log.waitFor("W Attach client datagram larger than 65536 bytes, truncated", 1)
	log.waitFor("D No container stdin, discarding 65536 bytes", 1)
	unix.Close(fd)
	log.waitFor("D Closing", 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freeSlot() != 0 {
		t.Fatal("closed client still registered")
	}
}

func TestTooManyClients(t *testing.T) {
	bundle := t.TempDir()
	_, log := startServer(t, Config{Bundle: bundle})
	for i := 1; i <= maxClients; i++ {
		connect(t, log, bundle+"/attach", i)
	}
	fd := dial(t, bundle+"/attach")
	log.waitFor("W Too many attach clients (64)", 1)
	if n, err := unix.Read(fd, make([]byte, 16)); n > 0 || (err != nil && err != unix.ECONNRESET) {
		t.Fatalf("65th client: %d, %v", n, err)
	}
}

// A client's buffers are returned to the system when it goes, not left to the collector.
func TestClientBuffersUnmapped(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	fd := connect(t, log, bundle+"/attach", 1)
	s.mu.Lock()
	addr := uintptr(unsafe.Pointer(&s.clients[0].mem[0]))
	s.mu.Unlock()
	// Whether a mapping covers addr (the kernel may merge it with a neighbour).
	mapped := func() bool {
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(maps), "\n") {
			var start, end uintptr
			if _, err := fmt.Sscanf(line, "%x-%x", &start, &end); err == nil && start <= addr && addr < end {
				return true
			}
		}
		return false
	}
	if !mapped() {
		t.Fatalf("no mapping at %#x for the client's buffers", addr)
	}
	if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil {
		t.Fatal(err)
	}
	log.waitFor("Closing", 1)
	if mapped() {
		t.Fatal("the buffers of a client that went are still mapped")
	}
}

// longDir creates a directory whose path is at least n bytes long.
func longDir(t *testing.T, n int) string {
	dir := t.TempDir()
	for len(dir) < n {
		dir = filepath.Join(dir, strings.Repeat("d", 60))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func assertSocket(t *testing.T, path string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o777 != 0o700 {
		t.Fatalf("%s: mode %o", path, st.Mode)
	}
}

func roundTrip(t *testing.T, s *Server, log *testLogger, sock string) {
	t.Helper()
	fd := connect(t, log, sock, 1)
	s.Broadcast(ptyio.Stdout, []byte("x"))
	buf := make([]byte, 8)
	if n, err := unix.Read(fd, buf); err != nil || string(buf[:n]) != "\x02x" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("%s not empty: %v", dir, ents)
	}
}

func TestLongBundleFullAttach(t *testing.T) {
	bundle := longDir(t, 300)
	// A stale socket file from an earlier run is replaced.
	if err := os.WriteFile(bundle+"/attach", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, log := startServer(t, Config{Bundle: bundle})
	assertSocket(t, bundle+"/attach")
	roundTrip(t, s, log, bundle+"/attach")
	s.Shutdown(time.Second)
	s.Remove()
	s.Remove()
	assertEmpty(t, bundle)
}

func TestLongBundleSymlink(t *testing.T) {
	bundle := longDir(t, 200)
	sockDir := t.TempDir()
	// A stale link from an earlier run is replaced.
	if err := os.Symlink("/nonexistent", sockDir+"/cid"); err != nil {
		t.Fatal(err)
	}
	s, log := startServer(t, Config{Bundle: bundle, SocketDir: sockDir + "/", CUUID: "cid"})
	if dst, err := os.Readlink(sockDir + "/cid"); err != nil || dst != bundle {
		t.Fatalf("symlink -> %q, %v", dst, err)
	}
	assertSocket(t, bundle+"/attach")
	// CRI-O dials the short path directly.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sockDir + "/cid/attach"}); err != nil {
		t.Fatal(err)
	}
	log.waitFor("Accepted console connection", 1)
	s.Broadcast(ptyio.Stdout, []byte("y"))
	buf := make([]byte, 8)
	if n, err := unix.Read(fd, buf); err != nil || string(buf[:n]) != "\x02y" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	s.Shutdown(time.Second)
	s.Remove()
	assertEmpty(t, bundle)
	assertEmpty(t, sockDir)
}

func TestSymlink107Bytes(t *testing.T) {
	bundle := t.TempDir()
	sockDir := t.TempDir()
	cuuid := strings.Repeat("c", sunPathLen-1-len(sockDir)-1)
	full := sockDir + "/" + cuuid
	if len(full) != 107 {
		t.Fatalf("setup: %d bytes", len(full))
	}
	s, log := startServer(t, Config{Bundle: bundle, SocketDir: sockDir, CUUID: cuuid})
	if _, err := os.Lstat(full); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unshortened name exists: %v", err)
	}
	if dst, err := os.Readlink(full[:106]); err != nil || dst != bundle {
		t.Fatalf("shortened symlink -> %q, %v", dst, err)
	}
	roundTrip(t, s, log, full[:106]+"/attach")
	s.Shutdown(time.Second)
	s.Remove()
	assertEmpty(t, bundle)
	assertEmpty(t, sockDir)
}

func TestListenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Listen(Config{Bundle: dir + "/missing"})
	if err == nil || !strings.HasPrefix(err.Error(), "failed to open socket path parent dir "+dir+"/missing: ") {
		t.Fatalf("got %v", err)
	}
	// The link is created, binding fails, nothing stays behind.
	_, err = Listen(Config{Bundle: dir + "/missing", SocketDir: dir, CUUID: "x"})
	if err == nil {
		t.Fatal("no error")
	}
	assertEmpty(t, dir)
	_, err = Listen(Config{Bundle: dir, SocketDir: dir + "/nodir", CUUID: "x"})
	if err == nil || !strings.HasPrefix(err.Error(), "Failed to create symlink for notify socket: ") {
		t.Fatalf("got %v", err)
	}
}

func TestBroadcastAllocs(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	r := startReader(connect(t, log, bundle+"/attach", 1), false, nil)
	p := make([]byte, 1024)
	const runs = 100 // 100 KiB in total: fits the queue whatever the reader's speed
	allocs := testing.AllocsPerRun(runs, func() { s.Broadcast(ptyio.Stdout, p) })
	r.waitGot(t, (runs+1)*1024)
	if allocs != 0 {
		t.Fatalf("%v allocations per Broadcast", allocs)
	}
}

// Until a client came, every Broadcast first accepts what waits in the listen backlog:
// without an allocation either.
func TestBroadcastAllocsBeforeClient(t *testing.T) {
	s, _ := startServer(t, Config{Bundle: t.TempDir()})
	p := make([]byte, 1024)
	if allocs := testing.AllocsPerRun(100, func() { s.Broadcast(ptyio.Stdout, p) }); allocs != 0 {
		t.Fatalf("%v allocations per Broadcast", allocs)
	}
}

// The client's writer sends the queued frames without allocating. Each run waits until
// the reader has them, so that the writer's work falls inside the measurement.
func TestClientWriterAllocs(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	r := startReader(connect(t, log, bundle+"/attach", 1), false, nil)
	p := make([]byte, 64<<10) // 8 frames
	var want int64
	allocs := testing.AllocsPerRun(20, func() {
		s.Broadcast(ptyio.Stdout, p)
		want += int64(len(p))
		for r.got.Load() < want {
			select {
			case <-r.progress:
			case err := <-r.done:
				t.Fatalf("reader ended (%v) after %d of %d bytes", err, r.got.Load(), want)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 8 frames sent", allocs)
	}
}

func TestShutdownFlushesQueue(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	fd := connect(t, log, bundle+"/attach", 1)
	// 240 KiB: more than the kernel buffers, less than the queue.
	const total = 30 * maxPayload
	p := make([]byte, total)
	fill(p, 0)
	for off := 0; off < total; off += 16 << 10 {
		s.Broadcast(ptyio.Stdout, p[off:off+16<<10])
	}
	done := make(chan struct{})
	go func() { s.Shutdown(waitLimit); close(done) }()
	r := startReader(fd, false, checkStream(2))
	if err := r.waitEOF(t); err != nil {
		t.Fatal(err)
	}
	if r.got.Load() != total {
		t.Fatalf("got %d of %d bytes before EOF", r.got.Load(), total)
	}
	<-done
	if log.count("too slow") != 0 {
		t.Fatal("client was disconnected")
	}
}

func TestShutdownFlushBounded(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	fd := connect(t, log, bundle+"/attach", 1)
	p := make([]byte, 30*maxPayload)
	s.Broadcast(ptyio.Stdout, p)
	start := time.Now()
	s.Shutdown(50 * time.Millisecond) // the client never reads
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	buf := make([]byte, 1<<16)
	got := 0
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n == 0 {
			break
		}
		got += n
	}
	if got >= len(p) {
		t.Fatalf("client got all %d bytes although the flush was cut short", got)
	}
	if n := log.count("W "); n != 0 {
		t.Fatalf("%d warnings: %q", n, log.lines)
	}
}

// A client still in the listen backlog (the accept goroutine has not run) receives the
// first output: podman connects and starts the container immediately.
func TestBacklogClientGetsFirstOutput(t *testing.T) {
	bundle := t.TempDir()
	s, err := Listen(Config{Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(0); s.Remove() })
	// Output before anybody connected (a runtime warning on the stderr pipe) must not end
	// the backlog check.
	s.Broadcast(ptyio.Stderr, []byte("early"))
	fd := dial(t, bundle+"/attach") // Start was not called: nobody accepts
	s.Broadcast(ptyio.Stdout, []byte("first"))
	buf := make([]byte, maxFrame)
	n, err := unix.Read(fd, buf)
	if err != nil || string(buf[:n]) != "\x02first" {
		t.Fatalf("read %q, %v; want \\x02first", buf[:n], err)
	}
}

// Past the backlog window a Broadcast makes no accept4: a client waiting in the backlog is
// left to the accept goroutine (not started here), and the output does not reach it.
func TestBacklogWindowEnds(t *testing.T) {
	bundle := t.TempDir()
	s, err := Listen(Config{Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(0); s.Remove() })
	s.Broadcast(ptyio.Stderr, []byte("early"))
	s.bmu.Lock()
	s.backlogUntil = time.Now().Add(-time.Second).UnixNano()
	s.bmu.Unlock()
	fd := dial(t, bundle+"/attach")
	s.Broadcast(ptyio.Stdout, []byte("late"))
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, maxFrame)
	if n, err := unix.Read(fd, buf); err != unix.EAGAIN {
		t.Fatalf("read %q, %v: the client was accepted after the backlog window", buf[:max(n, 0)], err)
	}
}

// A client that keeps reading, only more slowly than the container writes, holds the
// output back instead of being disconnected, and receives every byte.
func TestReadingSlowClientKeepsEverything(t *testing.T) {
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle})
	fd := connect(t, log, bundle+"/attach", 1)
	const total = 2 << 20
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, maxFrame)
		n := 0
		for {
			k, err := unix.Read(fd, buf)
			if err != nil || k == 0 {
				got <- n
				return
			}
			n += k - 1
			time.Sleep(200 * time.Microsecond) // a reader slower than the producer
		}
	}()
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < total; sent += len(chunk) {
		s.Broadcast(ptyio.Stdout, chunk)
	}
	s.Shutdown(10 * time.Second)
	if n := <-got; n != total {
		t.Fatalf("slow reader received %d of %d bytes", n, total)
	}
	if n := log.count("too slow"); n != 0 {
		t.Fatalf("reading client was disconnected")
	}
}

// A client that sends its last input and closes with output of the monitor's unread: Linux
// reports ECONNRESET to the monitor's next read before the input still queued, and that
// input reaches the container's stdin all the same.
func TestInputBeforeResetReachesStdin(t *testing.T) {
	dir := t.TempDir()
	stdin := newPipeStdin(t, 0)
	s, log := startServer(t, Config{Bundle: dir, Stdin: stdin})
	fd := connect(t, log, filepath.Join(dir, "attach"), 1)
	s.Broadcast(ptyio.Stdout, []byte("never read"))
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, int(waitLimit.Milliseconds())); n != 1 || err != nil {
		t.Fatalf("the output did not reach the client: %d %v", n, err)
	}
	if _, err := unix.Write(fd, []byte("last input")); err != nil {
		t.Fatal(err)
	}
	// Closes the socket, with the output unread; fd stays valid for dial's clean-up.
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(null)
	if err := unix.Dup2(null, fd); err != nil {
		t.Fatal(err)
	}
	// The test's stdin writes each datagram in two halves (WriteStdin): read both.
	stdin.r.SetReadDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, len("last input"))
	n, err := io.ReadFull(stdin.r, buf)
	if string(buf[:n]) != "last input" {
		t.Fatalf("container stdin got %q (%v), want \"last input\"", buf[:n], err)
	}
}
