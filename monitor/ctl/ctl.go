// Package ctl serves the <bundle>/ctl and <bundle>/winsz FIFOs (docs/protocol.md §6): engines
// write resize and log-reopen requests as text lines.
package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// lineBuf is conmon's 200-byte buffer: a line including its newline may use 199 bytes.
const lineBuf = 200

// Handler applies valid requests. Calls are serialised.
type Handler interface {
	Resize(rows, cols int)
	Reopen()
}

// FIFOs holds both FIFOs and their reader goroutines.
type FIFOs struct {
	ctl, winsz *fifo
	h          Handler
	log        diag.Logger
	hmu        sync.Mutex // serialises Handler calls from the two readers
	wg         sync.WaitGroup
	startOnce  sync.Once
	closeOnce  sync.Once
}

type fifo struct {
	path    string
	r       *os.File // O_RDONLY|O_NONBLOCK read half, on the poller
	w       int      // write half kept open so that the reader never sees EOF
	buf     [lineBuf]byte
	n       int
	discard bool // inside an over-long line: drop bytes up to its newline
	line    func(f *FIFOs, line []byte)
}

// Create makes <bundle>/ctl and <bundle>/winsz (replacing existing files, links included:
// they are removed, never followed) and opens them.
// Nothing is read before Start.
func Create(bundle string, h Handler, log diag.Logger) (*FIFOs, error) {
	if log == nil {
		log = diag.Discard
	}
	f := &FIFOs{h: h, log: log}
	var err error
	if f.ctl, err = openFIFO(bundle+"/ctl", "terminal control fifo"); err != nil {
		return nil, err
	}
	if f.winsz, err = openFIFO(bundle+"/winsz", "window resize control fifo"); err != nil {
		f.ctl.close()
		return nil, err
	}
	f.ctl.line = (*FIFOs).ctlLine
	f.winsz.line = (*FIFOs).winszLine
	return f, nil
}

func openFIFO(path, what string) (*fifo, error) {
	if err := unix.Unlink(path); err != nil && err != unix.ENOENT {
		return nil, fmt.Errorf("Failed to mkfifo at %s: %w", path, err)
	}
	if err := unix.Mkfifo(path, 0o660); err != nil {
		return nil, fmt.Errorf("Failed to mkfifo at %s: %w", path, err)
	}
	// O_NOFOLLOW: a link put in the FIFO's place meanwhile is refused, not followed.
	r, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("Failed to open %s read half: %w", what, err)
	}
	// Does not block: the read half is open.
	w, err := unix.Open(path, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(r)
		return nil, fmt.Errorf("Failed to open %s write half: %w", what, err)
	}
	return &fifo{path: path, r: os.NewFile(uintptr(r), path), w: w}, nil
}

func (p *fifo) close() {
	p.r.Close()
	unix.Close(p.w)
}

// Start begins reading both FIFOs.
func (f *FIFOs) Start() {
	f.startOnce.Do(func() {
		f.wg.Add(2)
		go f.readLoop(f.ctl)
		go f.readLoop(f.winsz)
	})
}

// Close stops the readers and closes every descriptor. The FIFOs stay in the bundle.
func (f *FIFOs) Close() {
	f.closeOnce.Do(func() {
		f.ctl.r.Close() // wakes a reader parked on the poller
		f.winsz.r.Close()
		f.wg.Wait()
		unix.Close(f.ctl.w)
		unix.Close(f.winsz.w)
	})
}

// Remove unlinks both FIFOs, for a monitor that ends before the engine let it start
// (after a finished container they stay in the bundle, as with conmon).
func (f *FIFOs) Remove() {
	for _, p := range []*fifo{f.ctl, f.winsz} {
		if err := unix.Unlink(p.path); err != nil && err != unix.ENOENT {
			f.log.Warnf("Failed to remove %s: %v", p.path, err)
		}
	}
}

func (f *FIFOs) readLoop(p *fifo) {
	defer f.wg.Done()
	defer diag.Recover(f.log, "reader of "+p.path, nil) // that FIFO is no longer read
	for {
		n, err := p.r.Read(p.buf[p.n : lineBuf-1])
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				f.log.Warnf("Failed to read from %s: %v", p.path, err)
			}
			return
		}
		p.n += n
		f.process(p)
	}
}

// process handles every complete line in the buffer and keeps the incomplete rest.
func (f *FIFOs) process(p *fifo) {
	start := 0
	for {
		i := bytes.IndexByte(p.buf[start:p.n], '\n')
		if i < 0 {
			break
		}
		if p.discard {
			p.discard = false
		} else {
			p.line(f, p.buf[start:start+i])
		}
		start += i + 1
	}
	p.n = copy(p.buf[:], p.buf[start:p.n])
	if p.discard {
		p.n = 0
	} else if p.n == lineBuf-1 {
		f.log.Warnf("Could not find newline in entire buffer")
		p.discard, p.n = true, 0
	}
}

func (f *FIFOs) ctlLine(line []byte) {
	f.log.Debugf("Got ctl message: %s", line)
	diag.PanicPoint("ctl")
	m, err := ParseControl(line)
	if err != nil {
		f.log.Warnf("%v", err)
		return
	}
	f.hmu.Lock()
	defer f.hmu.Unlock()
	if m.Type == TypeResize {
		f.h.Resize(m.A, m.B)
	} else {
		f.h.Reopen()
	}
}

func (f *FIFOs) winszLine(line []byte) {
	rows, cols, err := ParseWinsz(line)
	if err != nil {
		f.log.Warnf("%v", err)
		return
	}
	f.hmu.Lock()
	defer f.hmu.Unlock()
	f.h.Resize(rows, cols)
}
