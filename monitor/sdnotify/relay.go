// Package sdnotify relays filtered sd_notify datagrams from the container's
// notify socket to the host's (docs/protocol.md §8), tells the monitor's own
// systemd unit (or that of `conmon-go run`) that the container runs or ends, and feeds
// that unit's watchdog.
package sdnotify

import (
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

const (
	// recvBufSize bounds one datagram; a larger one is dropped (MSG_TRUNC), as systemd
	// drops a notification of more than 4096 bytes (PIPE_BUF).
	recvBufSize = 4096
	// sendRetry bounds how long a forward may wait for a full host socket.
	sendRetry = time.Second
)

// Proxy owns <bundle>/notify/notify.sock and relays what it receives.
type Proxy struct {
	in   *net.UnixConn // bound receiving socket
	name string        // its path, for messages
	rc   syscall.RawConn
	host string
	log  diag.Logger
	buf  []byte

	startOnce sync.Once
	done      chan struct{}
	started   bool
	closing   atomic.Bool // set before in.Close, so the loop ends quietly
	closeOnce sync.Once
}

// NewProxy creates and binds <bundle>/notify/notify.sock (mode 0777). The
// notify directory must already exist. hostSocket is where datagrams go.
func NewProxy(bundle, hostSocket string, log diag.Logger) (*Proxy, error) {
	if log == nil {
		log = diag.Discard
	}
	// Bind relative to a directory fd so a long bundle path never reaches sun_path.
	dirfd, err := unix.Open(bundle, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open bundle for notify socket", Path: bundle, Err: err}
	}
	defer unix.Close(dirfd)
	full := bundle + "/notify/notify.sock"

	// A socket left by an earlier run of the same bundle would make bind fail.
	var st unix.Stat_t
	if unix.Fstatat(dirfd, "notify/notify.sock", &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		if err := unix.Unlinkat(dirfd, "notify/notify.sock", 0); err != nil {
			return nil, &os.PathError{Op: "remove stale notify socket", Path: full, Err: err}
		}
	}

	procPath := "/proc/self/fd/" + strconv.Itoa(dirfd) + "/notify/notify.sock"
	// A datagram UnixConn never unlinks its path on Close (only a UnixListener does).
	in, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: procPath, Net: "unixgram"})
	if err != nil {
		return nil, &os.PathError{Op: "create notify socket", Path: full, Err: unwrapNet(err)}
	}
	// bind applies the umask; engines expect a socket anyone in the container can use.
	if err := unix.Fchmodat(dirfd, "notify/notify.sock", 0o777, 0); err != nil {
		in.Close()
		return nil, &os.PathError{Op: "chmod notify socket", Path: full, Err: err}
	}
	rc, err := in.SyscallConn()
	if err != nil {
		in.Close()
		return nil, &os.PathError{Op: "notify socket", Path: full, Err: err}
	}
	return &Proxy{
		in:   in,
		name: full,
		rc:   rc,
		host: hostSocket,
		log:  log,
		buf:  make([]byte, recvBufSize),
		done: make(chan struct{}),
	}, nil
}

// Start relays datagrams in a goroutine until Close.
func (p *Proxy) Start() {
	p.startOnce.Do(func() {
		p.started = true
		go p.loop()
	})
}

// Close relays what the container sent before it, stops the relay and closes the socket
// (the file stays, as with conmon). A READY=1 sent just before the container exits is
// queued on the socket by the time the monitor closes it, and must not be lost.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		p.startOnce.Do(func() {})
		if p.started {
			// An expired deadline wakes a receive parked in the poller; the loop then
			// relays what is queued and ends.
			if p.in.SetReadDeadline(time.Now()) != nil {
				p.in.Close()
			}
			<-p.done
		}
		p.in.Close()
	})
}

func (p *Proxy) loop() {
	defer close(p.done)
	defer diag.Recover(p.log, "sd_notify relay", nil)
	wait := true
	for {
		n, trunc, err := p.recv(wait)
		if err != nil {
			if !p.closing.Load() {
				p.log.Warnf("sd_notify proxy stopped: receive on %s: %v", p.name, err)
				return
			}
			if !wait {
				return // queue drained (EAGAIN) or socket gone
			}
			wait = false // closing: relay what is queued, without waiting for more
			continue
		}
		if trunc {
			p.log.Warnf("dropping sd_notify datagram larger than %d bytes", recvBufSize)
			continue
		}
		if msg := filter(p.buf[:n]); len(msg) > 0 {
			if err := send(p.host, msg); err != nil {
				p.log.Warnf("dropping sd_notify message for %s: %v", p.host, err)
			}
		}
	}
}

// recv reads one datagram; with wait false it does not wait for one (EAGAIN when none is
// queued). It passes no control buffer, so the kernel discards the fds a container sends
// with a datagram instead of installing them. It works on the raw connection: the closing
// relay must take what is queued without waiting, and ReadMsgUnix never reads again once
// the deadline that woke it has passed.
func (p *Proxy) recv(wait bool) (n int, trunc bool, err error) {
	var flags int
	var rerr error
	receive := func(fd uintptr) bool {
		n, _, flags, _, rerr = unix.Recvmsg(int(fd), p.buf, nil, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	}
	if wait {
		err = p.rc.Read(receive)
	} else {
		err = p.rc.Control(func(fd uintptr) { receive(fd) })
	}
	if err == nil {
		err = rerr
	}
	err = unwrapNet(err)
	if err != nil {
		return 0, false, err
	}
	return n, flags&unix.MSG_TRUNC != 0, nil
}

// keepExact and keepPrefix are the assignments forwarded to the host
// (docs/protocol.md §8.1); MAINPID= and FDSTORE= are deliberately absent.
var (
	keepExact  = []string{"READY=1", "RELOADING=1", "STOPPING=1", "WATCHDOG=1", "WATCHDOG=trigger"}
	keepPrefix = []string{"STATUS=", "ERRNO=", "BUSERROR=", "MONOTONIC_USEC=", "EXTEND_TIMEOUT_USEC="}
)

// filter splits msg at \n and \r and returns the kept lines joined by \n,
// or nil when nothing is kept.
func filter(msg []byte) []byte {
	var out []byte
	start := 0
	for i := 0; i <= len(msg); i++ {
		if i < len(msg) && msg[i] != '\n' && msg[i] != '\r' {
			continue
		}
		line := msg[start:i]
		start = i + 1
		if !keep(line) {
			continue
		}
		if out != nil {
			out = append(out, '\n')
		}
		out = append(out, line...)
	}
	return out
}

func keep(line []byte) bool {
	for _, k := range keepExact {
		if string(line) == k {
			return true
		}
	}
	for _, k := range keepPrefix {
		if len(line) >= len(k) && string(line[:len(k)]) == k {
			return true
		}
	}
	return false
}

// send delivers one datagram to addr from a fresh unbound socket, waiting at most
// sendRetry while the receiver's queue is full. The socket is connected so that the
// poller wakes the wait as soon as the queue drains (an unconnected sendto gets no such
// wake-up).
func send(addr string, msg []byte) error {
	name, release, err := dialName(addr)
	if err != nil {
		return err
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	release()
	if err != nil {
		return &os.PathError{Op: "send", Path: addr, Err: unwrapNet(err)}
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(sendRetry)); err != nil {
		return &os.PathError{Op: "send", Path: addr, Err: err}
	}
	if _, err := c.Write(msg); err != nil {
		return &os.PathError{Op: "send", Path: addr, Err: unwrapNet(err)}
	}
	return nil
}

// dialName returns the name to connect to for a path or @abstract name. A path too long
// for sun_path is reached through /proc/self/fd/<dirfd>/<base>; release closes that dirfd
// once connected.
func dialName(addr string) (name string, release func(), err error) {
	const maxPath = len(unix.RawSockaddrUnix{}.Path) - 1
	if addr[0] == '@' || len(addr) <= maxPath {
		return addr, func() {}, nil
	}
	i := len(addr) - 1
	for i > 0 && addr[i] != '/' {
		i--
	}
	dir, base := addr[:i], addr[i+1:]
	if dir == "" {
		dir = "/"
	}
	dirfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open socket directory", Path: dir, Err: err}
	}
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + base, func() { unix.Close(dirfd) }, nil
}

// unwrapNet drops net.OpError's rendering ("dial unixgram /proc/self/fd/7/...: connect:
// ..."), which names the /proc path instead of the socket's.
func unwrapNet(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}
