package ptyio

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

const (
	readBufSize = 64 << 10
	// Without a peer slave a tty master reports HUP/EIO while no process holds the slave;
	// wait this long before reading again instead of spinning.
	ttyRetry = 100 * time.Millisecond
	// Stop reads what is buffered; this bounds it against a writer that never pauses.
	stopBound = time.Second
	// A read of at least coalesceMin bytes means the container streams output: the pump
	// waits coalesceDelay before the next read. Interactive output (smaller reads) is
	// never delayed.
	coalesceMin   = 16 << 10
	coalesceDelay = time.Millisecond
)

// Pump modes.
const (
	modeRun   int32 = iota // read as data arrives
	modeDrain              // read until EOF, bounded by idle and end (pipes)
	modeStop               // read until EAGAIN, bounded by end
)

// Output is where the pumps deliver container output.
type Output struct {
	Drivers []LogDriver
	Attach  Broadcaster // may be nil
	Log     diag.Logger // may be nil

	off atomic.Uint32 // consumers switched off by a panic: bit i for Drivers[i], attachBit
}

// Consumers are numbered in delivery order: the drivers, then the attach server. In
// Output.off a driver has its own bit and the attach server attachBit.
const (
	noConsumer = -1
	attachBit  = 31
)

// DriverOff reports whether driver i panicked and was switched off: it is never called
// again, by the pumps or anyone else (it may have been stopped holding its lock).
func (o *Output) DriverOff(i int) bool { return o.off.Load()&(1<<i) != 0 }

// AttachOff reports the same for the attach server.
func (o *Output) AttachOff() bool { return o.off.Load()&(1<<attachBit) != 0 }

// Pump copies one stream of container output to the Output.
type Pump struct {
	f   *os.File
	s   Stream
	tty bool
	out *Output
	log diag.Logger
	rc  syscall.RawConn
	buf []byte

	mode  atomic.Int32
	idle  time.Duration // set before mode leaves modeRun
	end   atomic.Int64  // UnixNano bound of the drain/stop
	kick  chan struct{} // closed when the mode leaves modeRun
	once  sync.Once
	eof   chan struct{}
	ended chan struct{}
	retry *time.Timer

	cur     int       // the consumer being called (noConsumer outside deliver)
	chunk   []byte    // the chunk being delivered, for the consumers after one that panicked
	chunkAt time.Time // its read time
	resume  int       // > 0: the next loop first delivers chunk from this consumer on
}

// StartPump starts the goroutine reading f (a non-blocking file on the poller) as stream s.
// tty: f is a pty master, where EIO means "no slave open now", not an error.
// out must not be nil. The pump never closes f.
func StartPump(f *os.File, s Stream, tty bool, out *Output) *Pump {
	p := &Pump{
		f: f, s: s, tty: tty, out: out, log: diag.OrDiscard(out.Log), cur: noConsumer,
		buf:  make([]byte, readBufSize),
		kick: make(chan struct{}), eof: make(chan struct{}), ended: make(chan struct{}),
	}
	go p.run()
	return p
}

// EOF is closed when the stream reached end of file (never for a tty master with our peer
// slave, nor when the pump ended through Drain/Stop bounds or a panic).
func (p *Pump) EOF() <-chan struct{} { return p.eof }

// Drain is called after the container exited: read until EOF (tty: until EAGAIN), stop
// after idle without data or total overall. It returns when the pump goroutine has ended.
func (p *Pump) Drain(idle, total time.Duration) {
	p.once.Do(func() {
		now := time.Now()
		p.idle = idle
		p.end.Store(now.Add(total).UnixNano())
		if p.tty {
			// Our peer slave keeps the master open: EOF never comes, EAGAIN is the end.
			p.enter(modeStop)
			return
		}
		p.mode.Store(modeDrain)
		close(p.kick)
		p.f.SetReadDeadline(p.drainDeadline(now))
	})
	<-p.ended
}

// Stop reads only what is buffered now, then ends the pump (timeout exit path).
func (p *Pump) Stop() {
	p.once.Do(func() {
		p.end.Store(time.Now().Add(stopBound).UnixNano())
		p.enter(modeStop)
	})
	<-p.ended
}

func (p *Pump) enter(mode int32) {
	p.mode.Store(mode)
	close(p.kick)
	p.f.SetReadDeadline(time.Unix(1, 0)) // wakes the poller wait; modeStop reads bypass it
}

func (p *Pump) drainDeadline(now time.Time) time.Time {
	d := now.Add(p.idle)
	if end := time.Unix(0, p.end.Load()); end.Before(d) {
		return end
	}
	return d
}

func (p *Pump) run() {
	defer close(p.ended)
	rc, err := p.f.SyscallConn()
	if err != nil {
		p.log.Warnf("Failed to read container output: %v", err)
		return
	}
	p.rc = rc
	for p.loop() {
	}
}

// loop reads and delivers until the stream or the pump ends. After a panic in a consumer
// that consumer is switched off and loop returns true to be run again: the output keeps
// flowing to the others and the container never blocks on a full pipe. A panic in the
// pump itself ends it (docs/lifecycle.md §13.1).
func (p *Pump) loop() (again bool) {
	defer diag.Recover(p.log, "output pump", func() { again = p.switchOff() })
	if k := p.resume; k > 0 {
		p.resume = 0
		p.deliverFrom(k, p.chunk, p.chunkAt)
	}
	var err error
	for {
		mode := p.mode.Load()
		var n int
		if mode == modeStop {
			n, err = p.readNow()
		} else {
			n, err = p.f.Read(p.buf)
		}
		if n > 0 {
			now := time.Now()
			p.chunk, p.chunkAt = p.buf[:n], now
			p.deliver(p.chunk, now)
			if mode == modeRun && n >= coalesceMin && n < len(p.buf) {
				// A stream this busy is not interactive: let the pipe fill for a moment so
				// the next read carries a full buffer. Waking up for every few KiB costs
				// more CPU than formatting the output (scheduler and poller round trips).
				time.Sleep(coalesceDelay)
			}
			switch mode {
			case modeStop:
				if now.UnixNano() > p.end.Load() {
					return
				}
			case modeDrain:
				// Fresh time: the idle window starts after the drivers are done.
				p.f.SetReadDeadline(p.drainDeadline(time.Now()))
			}
		}
		switch {
		case err == nil:
		case err == io.EOF:
			close(p.eof)
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Set by Drain or Stop: modeDrain's bound expired; otherwise the next
			// iteration sees the new mode.
			if mode == modeDrain {
				return
			}
		case err == unix.EAGAIN:
			return // modeStop: everything buffered is read
		case p.tty && errors.Is(err, syscall.EIO):
			if p.mode.Load() != modeRun {
				return
			}
			p.waitRetry()
		default:
			if !errors.Is(err, os.ErrClosed) {
				p.log.Warnf("Failed to read container output: %v", err)
			}
			return
		}
	}
}

func (p *Pump) deliver(b []byte, now time.Time) { p.deliverFrom(0, b, now) }

// deliverFrom passes b to the consumers from the k-th on: the drivers in order, then the
// attach server (k = len(Drivers)).
func (p *Pump) deliverFrom(k int, b []byte, now time.Time) {
	off := p.out.off.Load()
	for ; k < len(p.out.Drivers); k++ {
		if off&(1<<k) == 0 {
			p.cur = k
			p.out.Drivers[k].Write(p.s, b, now)
		}
	}
	if p.out.Attach != nil && off&(1<<attachBit) == 0 {
		p.cur = k
		p.out.Attach.Broadcast(p.s, b)
	}
	p.cur = noConsumer
}

// switchOff takes the consumer that panicked out of the Output, and has the next loop
// pass the chunk it was given to the consumers after it; false when the panic was the
// pump's own.
func (p *Pump) switchOff() bool {
	k := p.cur
	p.cur = noConsumer
	if k == noConsumer {
		p.log.Warnf("container output of stream %d is no longer read", int(p.s))
		return false
	}
	if k == len(p.out.Drivers) {
		p.out.off.Or(1 << attachBit)
		p.log.Warnf("no more container output goes to the attach clients")
		return true
	}
	p.out.off.Or(1 << k)
	p.log.Warnf("no more container output goes to the log driver %T", p.out.Drivers[k])
	p.resume = k + 1
	return true
}

// readNow reads once without waiting: EAGAIN when nothing is buffered. Only Stop and a
// terminal's drain read this way, at the exit.
func (p *Pump) readNow() (int, error) {
	var n int
	var err error
	for {
		if cerr := p.rc.Control(func(fd uintptr) { n, err = unix.Read(int(fd), p.buf) }); cerr != nil {
			return 0, cerr
		}
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// waitRetry sleeps ttyRetry, cut short by Drain or Stop.
func (p *Pump) waitRetry() {
	if p.retry == nil {
		p.retry = time.NewTimer(ttyRetry)
	} else {
		p.retry.Reset(ttyRetry)
	}
	select {
	case <-p.retry.C:
	case <-p.kick:
	}
}
