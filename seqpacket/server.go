// Package seqpacket serves the attach socket <bundle>/attach (docs/protocol.md §5): a
// SOCK_SEQPACKET listener bound through a directory fd, output frames fanned out to every
// client through bounded per-client queues, client datagrams delivered to container stdin.
// A client that reads slowly holds the output back and loses nothing; one that makes no
// progress for stallTimeout is disconnected; neither holds back new clients or the input of
// the others.
package seqpacket

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
)

// Output frame, one SOCK_SEQPACKET datagram per frame (monitor -> client):
//
//	+--------+------------------------+
//	| byte 0 | bytes 1..8192          |
//	| stream | payload (1..8192 bytes)|
//	+--------+------------------------+
//
// Client -> monitor datagrams are raw stdin bytes without a header.
const (
	maxPayload = 8192
	maxFrame   = 1 + maxPayload
	maxClients = 64
	gcEvery    = 256 // attach sessions between the collections their ends ask for
	// backlogWindow: how long after the first output Broadcast looks for clients waiting
	// in the listen backlog (see Server.hadClient).
	backlogWindow = 5 * time.Second
	recvSize      = 64 << 10 // conmon reads 32 KiB; engines send at most 32 KiB
	backlog       = 10
	sunPathLen    = 108 // sizeof(sockaddr_un.sun_path) on Linux
)

// Config describes where the socket lives and where client input goes.
type Config struct {
	Bundle    string // socket file is <Bundle>/attach
	SocketDir string // "" with --full-attach; else symlink <SocketDir>/<CUUID> -> Bundle
	CUUID     string
	Stdin     StdinTarget // nil: client input is read and discarded
	Log       diag.Logger
}

// StdinTarget is the container's stdin as seen by the attach clients.
type StdinTarget interface {
	WriteStdin(p []byte) error // may wait (poller) until the container accepts the bytes
	ClientInputClosed()        // a client's input side ended (EOF, HUP, error, SHUT_WR)
}

// Server is a listening attach socket and its clients.
type Server struct {
	cfg      Config
	log      diag.Logger
	sockPath string // <Bundle>/attach, unlinked by Remove
	link     string // symlink name really created, "" with --full-attach
	bound    bool   // the socket file exists because we created it

	lf  *os.File
	lrc syscall.RawConn
	// pendFn is acceptPending bound once: a method value per call would cost Broadcast
	// an allocation (16 bytes) while it looks into the backlog
	// (TestBroadcastAllocsBeforeClient).
	pendFn func(fd uintptr)
	// hadClient: a client was accepted. Until then, and for backlogWindow after the
	// first output (backlogUntil, in Unix nanoseconds), every Broadcast first accepts
	// what waits in the backlog (one accept4, usually EAGAIN): an engine connects right
	// after it read the pid and before it starts the container. Later clients attach to
	// a running stream and race with it anyway; a container nobody attaches to does not
	// pay a system call per read for its whole life.
	hadClient    atomic.Bool
	backlogUntil int64 // guarded by bmu; 0 until the first Broadcast

	mu      sync.Mutex // guards clients, started, closing
	clients [maxClients]*client
	gone    atomic.Uint32 // clients that went, counted for clientGone
	// bmu serialises Broadcast (every client sees the streams' frames in one order) and
	// guards targets, its copy of the client list.
	bmu        sync.Mutex
	targets    [maxClients]*client
	started    bool
	closing    bool
	acceptDone chan struct{}

	stdinMu    sync.Mutex // one datagram reaches stdin at a time, never interleaved
	removeOnce sync.Once
	failed     atomic.Bool // a goroutine panicked: see Failed
}

// Listen creates the symlink (unless --full-attach), binds and listens. It does not accept
// connections before Start. On error nothing it created is left behind.
func Listen(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Log, sockPath: cfg.Bundle + "/attach", acceptDone: make(chan struct{})}
	if s.log == nil {
		s.log = diag.Discard
	}
	s.pendFn = s.acceptPending
	parent := cfg.Bundle
	if cfg.SocketDir != "" {
		link, err := makeLink(cfg)
		if err != nil {
			return nil, err
		}
		s.link = link
		parent = link
	}
	if err := s.bind(parent); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

// makeLink replaces <SocketDir>/<CUUID> with a symlink to the bundle, so that clients have
// a short path. Like conmon, a name of exactly 107 bytes loses its last byte (it would
// otherwise collide with the socket path length); the name really created is returned.
func makeLink(cfg Config) (string, error) {
	link := strings.TrimRight(cfg.SocketDir, "/") + "/" + cfg.CUUID
	if len(link) == sunPathLen-1 {
		link = link[:len(link)-1]
	}
	if err := unix.Unlink(link); err != nil && err != unix.ENOENT {
		return "", fmt.Errorf("Failed to remove existing symlink for socket directory %s: %w", link, err)
	}
	if err := unix.Symlink(cfg.Bundle, link); err != nil {
		// conmon's text, misleading as it is.
		return "", fmt.Errorf("Failed to create symlink for notify socket: %w", err)
	}
	return link, nil
}

// bind creates the listening socket <parent>/attach. The address is
// /proc/self/fd/<dirfd>/attach, which fits sun_path whatever the length of parent.
func (s *Server) bind(parent string) error {
	path := parent + "/attach"
	dfd, err := unix.Open(parent, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to open socket path parent dir %s: %w", parent, err)
	}
	defer unix.Close(dfd)
	if err := unix.Unlinkat(dfd, "attach", 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("Failed to remove existing socket: %s: %w", path, err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("Failed to create socket %s: %w", path, err)
	}
	if err := s.setup(fd, dfd, path); err != nil {
		unix.Close(fd)
		return err
	}
	s.lf = os.NewFile(uintptr(fd), path)
	rc, err := s.lf.SyscallConn()
	if err != nil {
		s.lf.Close()
		return fmt.Errorf("attach socket %s: %w", path, err)
	}
	s.lrc = rc
	return nil
}

// setup binds and listens. The file gets the socket's mode, 0700, less the umask: bind
// creates it from the socket's inode. conmon also chmods the path after binding; that call
// would follow a link put in the socket's place meanwhile, so there is none here.
func (s *Server) setup(fd, dfd int, path string) error {
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("Failed to change socket permissions %s: %w", path, err)
	}
	addr := &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(dfd) + "/attach"}
	if err := unix.Bind(fd, addr); err != nil {
		return fmt.Errorf("Failed to bind socket: %s: %w", path, err)
	}
	s.bound = true
	if err := unix.Listen(fd, backlog); err != nil {
		return fmt.Errorf("Failed to listen on attach socket: %s: %w", path, err)
	}
	return nil
}

// Start begins accepting clients.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closing {
		return
	}
	s.started = true
	go s.acceptLoop()
}

func (s *Server) acceptLoop() {
	defer close(s.acceptDone)
	defer diag.Recover(s.log, "attach listener", s.listenerFailed)
	var (
		nfd int
		err error // of the accept4 call, not of the wait
	)
	accept := func(fd uintptr) bool {
		nfd, err = tryAccept(fd)
		return err != unix.EAGAIN // EAGAIN: wait until readable
	}
	for {
		if s.lrc.Read(accept) != nil {
			return // listener closed by Shutdown
		}
		if err != nil {
			s.log.Warnf("Failed to accept client connection on attach socket: %v", err)
			if err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM {
				// The listener stays readable: back off instead of spinning.
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		s.addClient(nfd)
	}
}

func tryAccept(fd uintptr) (int, error) {
	for {
		nfd, _, err := unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != unix.EINTR && err != unix.ECONNABORTED {
			return nfd, err
		}
	}
}

func (s *Server) addClient(fd int) {
	c, err := newClient(s, fd)
	if err != nil {
		s.log.Warnf("Failed to set up attach client: %v", err)
		return
	}
	// Both the accept goroutine and Broadcast (acceptPending) add clients: the slot is
	// found and taken under one lock.
	s.mu.Lock()
	slot := s.freeSlot()
	if s.closing || slot < 0 {
		s.mu.Unlock()
		c.f.Close()
		c.unmap()
		if slot < 0 {
			s.log.Warnf("Too many attach clients (%d), closing new connection", maxClients)
		}
		return
	}
	s.clients[slot] = c
	s.mu.Unlock()
	s.hadClient.Store(true)
	s.log.Debugf("Accepted console connection %d", fd)
	go c.writeLoop()
	go c.readLoop()
}

// acceptPending accepts the connections waiting in the listen backlog. podman connects and
// starts the container right away; the first output must reach it even when the accept
// goroutine has not run yet.
func (s *Server) acceptPending(fd uintptr) {
	for {
		// The raw call passes no address buffer: unix.Accept4's escapes to the heap, and
		// this runs on every Broadcast.
		nfd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, fd, 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			s.addClient(int(nfd))
		case unix.EINTR, unix.ECONNABORTED:
		default:
			return
		}
	}
}

// clientGone runs when a client has gone. Every gcEvery sessions their garbage (about a
// kilobyte each; the buffers are not on the heap) is collected: the collector would
// otherwise let it pile up to its minimum heap goal of 4 MB, which an idle monitor keeps
// after enough attach sessions. Counting sessions spares the usual monitor with a few of
// them the first collection's own cost (about 1 MB of collector metadata, kept for the
// process's life), and costs nothing to measure.
func (s *Server) clientGone() {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if !closing && s.gone.Add(1)%gcEvery == 0 {
		runtime.GC()
	}
}

func (s *Server) freeSlot() int {
	for i, c := range s.clients {
		if c == nil {
			return i
		}
	}
	return -1
}

func (s *Server) forget(c *client) {
	s.mu.Lock()
	for i := range s.clients {
		if s.clients[i] == c {
			s.clients[i] = nil
		}
	}
	s.mu.Unlock()
}

// Broadcast queues p, cut into frames of at most 8192 payload bytes, to every client.
// Clients with room get the frames at once; then Broadcast waits for each client that is
// behind, as long as it keeps reading (back-pressure, as with conmon: nothing is lost), and
// disconnects one that made no progress for stallTimeout. It never holds the client list
// while it waits, so new clients are accepted and client input flows meanwhile.
func (s *Server) Broadcast(stream ptyio.Stream, p []byte) {
	if len(p) == 0 {
		return
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.lrc != nil && !s.hadClient.Load() {
		now := time.Now().UnixNano()
		if s.backlogUntil == 0 {
			s.backlogUntil = now + int64(backlogWindow)
		}
		if now < s.backlogUntil {
			s.lrc.Control(s.pendFn)
		}
	}
	s.mu.Lock()
	targets := s.targets[:0]
	for _, c := range s.clients {
		if c != nil {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	behind := targets[:0]
	for _, c := range targets {
		if !c.tryEnqueue(byte(stream), p) {
			behind = append(behind, c)
		}
	}
	for _, c := range behind {
		c.enqueue(byte(stream), p)
	}
	clear(s.targets[:]) // no reference to a client outlives its connection
}

// Shutdown stops accepting, gives the clients' queued frames up to flush in total to be
// sent, then closes every client (they read EOF) and the listener.
func (s *Server) Shutdown(flush time.Duration) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	started := s.started
	s.mu.Unlock()

	s.lf.Close()
	if started {
		<-s.acceptDone
	}
	s.mu.Lock()
	cs := make([]*client, 0, maxClients)
	for i, c := range s.clients {
		if c != nil {
			cs = append(cs, c)
			s.clients[i] = nil
		}
	}
	s.mu.Unlock()

	for _, c := range cs {
		c.requestFlush()
	}
	timer := time.NewTimer(flush)
	defer timer.Stop()
wait:
	for _, c := range cs {
		select {
		case <-c.wdone:
		case <-timer.C:
			break wait
		}
	}
	for _, c := range cs {
		c.stopOutput()
		c.rc.Control(shutRDWR)
		c.f.Close()
	}
}

// Remove unlinks the socket file and the symlink really created. Idempotent; safe after
// Shutdown and after a failed Listen.
func (s *Server) Remove() {
	s.removeOnce.Do(func() {
		if s.bound {
			if err := unix.Unlink(s.sockPath); err != nil && err != unix.ENOENT {
				s.log.Warnf("Failed to remove %s: %v", s.sockPath, err)
			}
		}
		if s.link != "" {
			if err := unix.Unlink(s.link); err != nil && err != unix.ENOENT {
				s.log.Warnf("Failed to remove %s: %v", s.link, err)
			}
		}
	})
}

// deliver passes one client datagram to stdin; the lock keeps datagrams of different
// clients from interleaving and makes every reader wait while stdin is full.
func (s *Server) deliver(p []byte) error {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	return s.cfg.Stdin.WriteStdin(p)
}

// Failed reports that one of the server's goroutines panicked (docs/lifecycle.md §13.1): the
// server may be stopped holding a lock, so Shutdown is not called; Remove still is.
func (s *Server) Failed() bool { return s.failed.Load() }

// listenerFailed switches the listener off after a panic: new clients are refused.
func (s *Server) listenerFailed() {
	s.failed.Store(true)
	s.lf.Close()
}

func shutRD(fd uintptr)   { unix.Shutdown(int(fd), unix.SHUT_RD) }
func shutWR(fd uintptr)   { unix.Shutdown(int(fd), unix.SHUT_WR) }
func shutRDWR(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) }

// peerGone reports errors that just mean the client went away.
func peerGone(err error) bool {
	return errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET)
}
