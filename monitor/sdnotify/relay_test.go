package sdnotify

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type testLogger struct{ t testing.TB }

func (l testLogger) Warnf(f string, a ...any)  { l.t.Logf("warn: "+f, a...) }
func (l testLogger) Debugf(f string, a ...any) { l.t.Logf("debug: "+f, a...) }

func TestFilter(t *testing.T) {
	cases := []struct{ in, want string }{
		{"READY=1", "READY=1"},
		{"READY=1\nMAINPID=42", "READY=1"},
		{"MAINPID=42\nFDSTORE=1\nFDNAME=x", ""},
		{"STATUS=starting up\r\nERRNO=2\nBUSERROR=org.x.Y", "STATUS=starting up\nERRNO=2\nBUSERROR=org.x.Y"},
		{"RELOADING=1\nMONOTONIC_USEC=123\nSTOPPING=1", "RELOADING=1\nMONOTONIC_USEC=123\nSTOPPING=1"},
		{"WATCHDOG=1\nWATCHDOG=trigger\nWATCHDOG_USEC=5", "WATCHDOG=1\nWATCHDOG=trigger"},
		{"EXTEND_TIMEOUT_USEC=1000000", "EXTEND_TIMEOUT_USEC=1000000"},
		{"READY=10\nREADY=1 \n READY=1\nready=1", ""},
		{"READY=1\n\n\nSTATUS=", "READY=1\nSTATUS="},
		{"", ""},
	}
	for _, c := range cases {
		if got := string(filter([]byte(c.in))); got != c.want {
			t.Errorf("filter(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// hostSocket binds a datagram socket standing in for systemd's notify socket.
func hostSocket(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func recvString(t *testing.T, fd int) string {
	t.Helper()
	buf := make([]byte, 128<<10)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		t.Fatalf("receive on host socket: %v", err)
	}
	return string(buf[:n])
}

// sendTo sends one datagram, optionally with fds, from an unbound socket.
func sendTo(t *testing.T, path string, msg []byte, fds ...int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, msg, oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		t.Fatalf("send to %s: %v", path, err)
	}
}

func newBundle(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "notify"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startRelay starts a proxy for bundle that relays to a host socket of its own, and returns
// it with the path of its notify socket and the host socket.
func startRelay(t *testing.T, bundle string) (p *Proxy, sock string, host int) {
	t.Helper()
	hostPath := filepath.Join(t.TempDir(), "host.sock")
	host = hostSocket(t, hostPath)
	p, err := NewProxy(bundle, hostPath, testLogger{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.Start()
	return p, filepath.Join(bundle, "notify", "notify.sock"), host
}

func TestRelay(t *testing.T) {
	tmp := t.TempDir()
	// A bundle path far beyond sun_path's 108 bytes, as podman's are.
	bundle := newBundle(t, filepath.Join(tmp, strings.Repeat("b", 100), strings.Repeat("c", 100)))
	_, sockPath, host := startRelay(t, bundle)

	st, err := os.Stat(sockPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o777 {
		t.Fatalf("notify socket mode %v, want socket 0777", st.Mode())
	}
	// Container-side clients use a short path; reach the long one through a symlink.
	short := filepath.Join(tmp, "n.sock")
	if err := os.Symlink(sockPath, short); err != nil {
		t.Fatal(err)
	}

	// Passed fds are closed by the proxy: after we close our copy of the
	// write end, the read end must see EOF.
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	sendTo(t, short, []byte("MAINPID=1\nFDSTORE=1"), pipe[1]) // nothing kept: not forwarded
	sendTo(t, short, []byte("READY=1\nMAINPID=77\rSTATUS=up\nFDSTORE=1"), pipe[1])
	unix.Close(pipe[1])
	if got := recvString(t, host); got != "READY=1\nSTATUS=up" {
		t.Fatalf("host got %q", got)
	}
	n, err := unix.Read(pipe[0], make([]byte, 1))
	if n != 0 || err != nil {
		t.Fatalf("passed fd still open in the proxy: read = %d, %v", n, err)
	}

	// A datagram beyond 4096 bytes is dropped whole, the next one still relayed.
	big := append([]byte("READY=1\nSTATUS="), make([]byte, 70<<10)...)
	for i := 15; i < len(big); i++ {
		big[i] = 'x'
	}
	sendTo(t, short, big)
	sendTo(t, short, []byte("STOPPING=1"))
	if got := recvString(t, host); got != "STOPPING=1" {
		t.Fatalf("host got %.40q, want the truncated datagram dropped", got)
	}
}

// systemd takes notifications of at most 4096 bytes, and so does the relay: whatever it
// would keep of a longer one, systemd would not have taken it from the container.
func TestRelayDatagramBound(t *testing.T) {
	_, sock, host := startRelay(t, newBundle(t, t.TempDir()))
	status := func(size int) []byte {
		return append([]byte("STATUS="), strings.Repeat("x", size-len("STATUS="))...)
	}
	sendTo(t, sock, append([]byte("READY=1\n"), status(4096-len("READY=1\n")+1)...))
	sendTo(t, sock, status(4096))
	if got := recvString(t, host); got != string(status(4096)) {
		t.Fatalf("host got %.40q (%d bytes), want the 4096-byte STATUS= only", got, len(got))
	}
}

// What the container sent before the monitor closes the proxy (READY=1 right before
// it exits) still reaches the host, in order.
func TestCloseRelaysQueued(t *testing.T) {
	p, sock, host := startRelay(t, newBundle(t, t.TempDir()))
	for i := range 3 {
		sendTo(t, sock, []byte("STATUS="+strconv.Itoa(i)))
	}
	p.Close()
	for i := range 3 {
		if got, want := recvString(t, host), "STATUS="+strconv.Itoa(i); got != want {
			t.Fatalf("host got %q, want %q", got, want)
		}
	}
}

func TestCloseWithoutStartAndStaleSocket(t *testing.T) {
	tmp := t.TempDir()
	bundle := newBundle(t, tmp)
	p, err := NewProxy(bundle, filepath.Join(tmp, "none"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	p.Close()
	// The socket file stays (as with conmon) and a new proxy replaces it.
	p2, err := NewProxy(bundle, filepath.Join(tmp, "none"), nil)
	if err != nil {
		t.Fatalf("rebind over stale socket: %v", err)
	}
	p2.Start()
	p2.Close()
}

func TestMissingNotifyDir(t *testing.T) {
	_, err := NewProxy(t.TempDir(), "/nonexistent", nil)
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("err = %v, want ENOENT", err)
	}
}

func TestSendWaitsForFullReceiver(t *testing.T) {
	tmp := t.TempDir()
	hostPath := filepath.Join(tmp, "host.sock")
	host := hostSocket(t, hostPath)
	// Fill the receiver's queue.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: hostPath}); err != nil {
		t.Fatal(err)
	}
	queued := 0
	for ; ; queued++ {
		if err := unix.Send(fd, []byte("fill"), 0); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}

	// With nobody reading, the send gives up after its bound.
	start := time.Now()
	if err := send(hostPath, []byte("READY=1")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("send to a full socket: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d < sendRetry || d > 3*sendRetry {
		t.Fatalf("send gave up after %v, want about %v", d, sendRetry)
	}

	// A reader that frees one slot lets a waiting send through.
	res := make(chan error, 1)
	go func() { res <- send(hostPath, []byte("READY=1")) }()
	if got := recvString(t, host); got != "fill" {
		t.Fatalf("got %q", got)
	}
	if err := <-res; err != nil {
		t.Fatalf("send after the receiver drained: %v", err)
	}
	for i := 1; i < queued; i++ {
		recvString(t, host)
	}
	if got := recvString(t, host); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}
}

func TestLongHostPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("h", 120))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hostPath := filepath.Join(dir, "notify.sock")
	// Bind the long path the same way the proxy reaches it.
	name, release, err := dialName(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatal(err)
	}
	release()
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := send(hostPath, []byte("READY=1")); err != nil {
		t.Fatal(err)
	}
	if got := recvString(t, fd); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
}
