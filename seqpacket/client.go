package seqpacket

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// Send queue: a preallocated ring of queueSize bytes holding records
//
//	+----------------------+--------+-----------------+
//	| frame length (2, LE) | stream | payload         |
//	+----------------------+--------+-----------------+
//
// where the frame length counts the stream byte and the payload (at most 8193).
const (
	queueSize = 256 << 10 // power of two: ring offsets are masked
	recHdr    = 2
)

// stallTimeout is how long a client whose queue is full may go without sending progress
// before it is disconnected. A client that keeps reading (podman copying to a slow
// terminal) holds the output back as with conmon and loses nothing; a client that stopped
// reading costs the container this delay once, then is dropped.
const stallTimeout = 500 * time.Millisecond

// client is one accepted connection: a writer goroutine drains its queue, a reader
// goroutine forwards its datagrams to stdin. The last of the two to finish closes it.
type client struct {
	s  *Server
	fd int
	f  *os.File
	rc syscall.RawConn

	mu    sync.Mutex
	cond  sync.Cond // writer waits here for frames, flush or stop
	space sync.Cond // enqueue waits here for room in a full queue
	sent  time.Time // last time the writer finished a send
	// stallTimer wakes waitForRoom when the client's stall time is up; made at the
	// first wait and reused, so that waiting allocates nothing.
	stallTimer *time.Timer
	mem        []byte // clientMem bytes mapped for ring, sendBuf and recvBuf
	ring       []byte
	head       int
	used       int
	outDone    bool // output side finished: frames are dropped
	flush      bool // Shutdown: the writer ends once the queue is empty
	refs       int  // goroutines still using the client
	wdone      chan struct{}

	// Writer state, used only by the writer goroutine. sendFn is trySend bound once, and
	// the frame's length and the send's result pass through sendLen and sendErr: a closure
	// per send costs 2 allocations (48 bytes) per frame on the output path, some 600 kB of
	// garbage per 100 MiB sent to a client (TestClientWriterAllocs).
	sendBuf []byte
	sendLen int
	sendErr error
	sendFn  func(uintptr) bool

	// Reader state, used only by the reader goroutine.
	recvBuf []byte
	iov     unix.Iovec
	msg     unix.Msghdr
}

// clientMem is the size of a client's buffers (queue, frame to send, datagram received),
// mapped together outside the Go heap: they go back to the system the moment the client
// has gone. On the heap, each session would leave some 330 KiB of garbage that the
// collector only reclaims once the heap reaches its 4 MB minimum goal, which an idle
// monitor that served a few attach sessions would then keep.
const clientMem = queueSize + maxFrame + recvSize

func newClient(s *Server, fd int) (*client, error) {
	mem, err := unix.Mmap(-1, 0, clientMem, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("map attach client buffers: %w", err)
	}
	f := os.NewFile(uintptr(fd), "attach client")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Munmap(mem)
		return nil, err
	}
	c := &client{
		s: s, fd: fd, f: f, rc: rc,
		mem:     mem,
		ring:    mem[:queueSize:queueSize],
		refs:    2,
		wdone:   make(chan struct{}),
		sendBuf: mem[queueSize : queueSize+maxFrame : queueSize+maxFrame],
		recvBuf: mem[queueSize+maxFrame:],
	}
	c.cond.L = &c.mu
	c.space.L = &c.mu
	c.sent = time.Now()
	c.sendFn = c.trySend
	c.iov.Base = &c.recvBuf[0]
	c.iov.SetLen(recvSize)
	c.msg.Iov = &c.iov
	c.msg.SetIovlen(1)
	return c, nil
}

// tryEnqueue appends p as frames when all of them fit; false (nothing queued) otherwise.
func (c *client) tryEnqueue(stream byte, p []byte) bool {
	need := len(p) + (len(p)+maxPayload-1)/maxPayload*(recHdr+1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outDone {
		return true
	}
	if queueSize-c.used < need {
		return false
	}
	c.startStallClock()
	c.putFrames(stream, p)
	c.cond.Signal()
	return true
}

// enqueue appends p as frames, waiting for room while the client makes progress; a
// client that made none for stallTimeout is disconnected.
func (c *client) enqueue(stream byte, p []byte) {
	c.mu.Lock()
	if c.outDone {
		c.mu.Unlock()
		return
	}
	c.startStallClock()
	for len(p) > 0 {
		n := min(len(p), maxPayload)
		if queueSize-c.used < recHdr+1+n && !c.waitForRoom(recHdr+1+n) {
			if c.outDone {
				c.mu.Unlock()
				return
			}
			c.outDone, c.used = true, 0
			c.cond.Signal()
			c.mu.Unlock()
			c.s.log.Warnf("attach client too slow, disconnected")
			// The writer ends, the reader sees EOF, the peer reads EOF.
			c.rc.Control(shutRDWR)
			return
		}
		c.putFrames(stream, p[:n])
		p = p[n:]
	}
	c.cond.Signal()
	c.mu.Unlock()
}

// startStallClock starts measuring the time without progress when the queue is empty: a
// client whose writer was idle (or not yet scheduled) is not behind.
func (c *client) startStallClock() {
	if c.used == 0 {
		c.sent = time.Now()
	}
}

// putFrames appends p, which fits, as frames of at most maxPayload bytes.
func (c *client) putFrames(stream byte, p []byte) {
	for len(p) > 0 {
		n := min(len(p), maxPayload)
		hdr := [recHdr + 1]byte{byte(n + 1), byte((n + 1) >> 8), stream}
		c.put(hdr[:])
		c.put(p[:n])
		p = p[n:]
	}
}

// waitForRoom waits, with c.mu held, until need bytes fit into the queue; false when the
// client stalled for stallTimeout or its output ended meanwhile (its queue may then belong
// to another client already).
func (c *client) waitForRoom(need int) bool {
	for c.outDone || queueSize-c.used < need {
		left := stallTimeout - time.Since(c.sent)
		if c.outDone || left <= 0 {
			return false
		}
		if c.stallTimer == nil {
			c.stallTimer = time.AfterFunc(left, c.wakeEnqueue)
		} else {
			c.stallTimer.Reset(left)
		}
		c.space.Wait()
		c.stallTimer.Stop()
	}
	return true
}

func (c *client) wakeEnqueue() {
	c.mu.Lock()
	c.space.Broadcast()
	c.mu.Unlock()
}

func (c *client) put(p []byte) {
	tail := (c.head + c.used) & (queueSize - 1)
	n := copy(c.ring[tail:], p)
	copy(c.ring, p[n:])
	c.used += len(p)
}

func (c *client) get(p []byte) {
	n := copy(p, c.ring[c.head:])
	copy(p[n:], c.ring)
	c.head = (c.head + len(p)) & (queueSize - 1)
	c.used -= len(p)
}

// pop moves the oldest frame into sendBuf and returns its length.
func (c *client) pop() int {
	var hdr [recHdr]byte
	c.get(hdr[:])
	n := int(hdr[0]) | int(hdr[1])<<8
	c.get(c.sendBuf[:n])
	return n
}

func (c *client) requestFlush() {
	c.mu.Lock()
	c.flush = true
	c.cond.Signal()
	c.mu.Unlock()
}

// stopOutput drops the queue and ends the writer; it reports whether output was already
// stopped (by Shutdown, a disconnect or the peer's hang-up).
func (c *client) stopOutput() bool {
	c.mu.Lock()
	was := c.outDone
	c.outDone, c.used = true, 0
	c.cond.Signal()
	c.space.Broadcast()
	c.mu.Unlock()
	return was
}

func (c *client) writeLoop() {
	defer c.release()
	defer close(c.wdone)
	defer diag.Recover(c.s.log, "attach client", c.failed)
	for {
		c.mu.Lock()
		for c.used == 0 && !c.outDone && !c.flush {
			c.cond.Wait()
		}
		if c.outDone || c.used == 0 {
			c.mu.Unlock()
			return
		}
		c.sendLen = c.pop()
		c.mu.Unlock()
		err := c.rc.Write(c.sendFn)
		if err == nil {
			err = c.sendErr
		}
		if err == nil {
			c.mu.Lock()
			c.sent = time.Now()
			c.space.Signal()
			c.mu.Unlock()
		}
		if err != nil {
			if !c.stopOutput() && !peerGone(err) {
				c.s.log.Warnf("Failed to write to remote console socket: %v", err)
			}
			c.rc.Control(shutWR)
			return
		}
	}
}

// trySend runs inside the poller's Write: false means "wait until writable". A
// SOCK_SEQPACKET send is all or nothing.
func (c *client) trySend(fd uintptr) bool {
	for {
		err := unix.Sendto(int(fd), c.sendBuf[:c.sendLen], unix.MSG_NOSIGNAL, nil)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.sendErr = err
		return true
	}
}

func (c *client) readLoop() {
	defer c.release()
	defer diag.Recover(c.s.log, "attach client", c.failed)
	st := c.s.cfg.Stdin
	for {
		n, flags, err := c.recv()
		if err == unix.ECONNRESET {
			// The client closed with output unread: Linux says so once, before the
			// datagrams it sent last, which are still to be read (ReadPacket).
			continue
		}
		if err != nil {
			break
		}
		if n == 0 {
			if c.inputEnded() {
				break
			}
			continue // an empty datagram: nothing to deliver
		}
		if flags&unix.MSG_TRUNC != 0 {
			c.s.log.Warnf("Attach client datagram larger than %d bytes, truncated", recvSize)
		}
		if st == nil {
			c.s.log.Debugf("No container stdin, discarding %d bytes from attach client", n)
			continue
		}
		if err := c.s.deliver(c.recvBuf[:n]); err != nil {
			c.s.log.Warnf("Failed to write container stdin: %v", err)
		}
	}
	c.rc.Control(shutRD)
	if st != nil {
		st.ClientInputClosed()
	}
	// Keep the client while its output side works (a SHUT_WR half-close); notice a full
	// close at once instead of at the next output.
	c.rc.Read(c.waitHUP)
	c.stopOutput()
}

// waitHUP runs inside the poller's Read: true once the socket is shut both ways.
func (c *client) waitHUP(fd uintptr) bool {
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	n, _ := unix.Poll(pfd, 0)
	return n > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
}

// inputEnded tells the end of a client's input from an empty datagram, which recvmsg also
// reports as 0 bytes: the input has ended when the peer shut down its sending side and no
// byte is left in the queue (empty datagrams there carry nothing either).
func (c *client) inputEnded() bool {
	ended := false
	c.rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		n, _ := unix.Poll(pfd, 0)
		if n <= 0 || pfd[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) == 0 {
			return
		}
		queued, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		ended = err != nil || queued == 0
	})
	return ended
}

// recv receives one datagram into recvBuf, waiting in the poller until one is there.
func (c *client) recv() (n, flags int, err error) {
	rerr := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
			switch errno {
			case 0:
				n, flags = int(r), int(c.msg.Flags)
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			default:
				err = errno
			}
			return true
		}
	})
	if rerr != nil {
		return 0, 0, rerr
	}
	return n, flags, err
}

// failed disconnects the client after a panic in one of its goroutines: it leaves the
// server's list, so that no output waits for it, and its peer reads EOF.
func (c *client) failed() {
	c.s.failed.Store(true)
	c.s.forget(c)
	c.rc.Control(shutRDWR)
}

// release is called by each goroutine when it ends; the last one closes the socket and
// hands the buffers back to the server. Broadcast may still hold the client: with its
// output stopped first, it no longer touches the queue.
func (c *client) release() {
	c.mu.Lock()
	c.refs--
	last := c.refs == 0
	c.mu.Unlock()
	if last {
		c.stopOutput()
		c.s.forget(c)
		c.unmap() // before the fd goes: a client whose fd is gone holds no memory either
		c.f.Close()
		c.s.log.Debugf("Closing %d", c.fd)
		c.s.clientGone()
	}
}

// unmap returns the buffers of a client whose goroutines have ended (or never ran). A
// Broadcast that still holds the client finds its output stopped and touches nothing.
func (c *client) unmap() {
	c.mu.Lock()
	mem := c.mem
	c.mem, c.ring, c.sendBuf, c.recvBuf = nil, nil, nil, nil
	c.mu.Unlock()
	if mem != nil {
		unix.Munmap(mem)
	}
}
