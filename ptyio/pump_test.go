package ptyio

import (
	"encoding/binary"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

func outputPipes(t *testing.T) *Pipes {
	t.Helper()
	p, err := NewPipes(false, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.CloseChildEnds()
		p.Stdout.Close()
		p.Stderr.Close()
	})
	return p
}

// seqChecker verifies that it sees the byte sequence of consecutive big-endian uint64s.
type seqChecker struct {
	mu  sync.Mutex
	pos uint64
	bad bool
}

func (c *seqChecker) check(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var w [8]byte
	for _, b := range p {
		binary.BigEndian.PutUint64(w[:], c.pos/8)
		if b != w[c.pos%8] {
			c.bad = true
		}
		c.pos++
	}
}

type seqDriver struct{ seqChecker }

func (d *seqDriver) Write(_ Stream, p []byte, _ time.Time) { d.check(p) }
func (d *seqDriver) Flush()                                {}
func (d *seqDriver) Reopen()                               {}
func (d *seqDriver) Sync() error                           { return nil }
func (d *seqDriver) Close() error                          { return nil }

type seqBroadcaster struct{ seqChecker }

func (b *seqBroadcaster) Broadcast(_ Stream, p []byte) { b.check(p) }

func TestPumpDeliversEverythingInOrder(t *testing.T) {
	const total = 50 << 20
	p := outputPipes(t)
	d, b := &seqDriver{}, &seqBroadcaster{}
	pump := StartPump(p.Stdout, Stdout, false, &Output{Drivers: []LogDriver{d}, Attach: b})
	w := p.Child[1]
	p.Child[1] = nil
	go func() {
		defer w.Close()
		buf := make([]byte, 100<<10)
		for i := uint64(0); i < total/8; {
			n := 0
			for ; n < len(buf) && i < total/8; n, i = n+8, i+1 {
				binary.BigEndian.PutUint64(buf[n:], i)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	p.CloseChildEnds()
	select {
	case <-pump.EOF():
	case <-time.After(60 * time.Second):
		t.Fatal("no EOF")
	}
	pump.Drain(time.Second, time.Second)
	for name, c := range map[string]*seqChecker{"driver": &d.seqChecker, "broadcaster": &b.seqChecker} {
		if c.pos != total || c.bad {
			t.Errorf("%s got %d bytes (out of order: %v), want %d", name, c.pos, c.bad, total)
		}
	}
}

type signalDriver struct{ got chan struct{} }

func (d signalDriver) Write(Stream, []byte, time.Time) { d.got <- struct{}{} }
func (signalDriver) Flush()                            {}
func (signalDriver) Reopen()                           {}
func (signalDriver) Sync() error                       { return nil }
func (signalDriver) Close() error                      { return nil }

func TestPumpZeroAllocsPerRead(t *testing.T) {
	p := outputPipes(t)
	d := signalDriver{got: make(chan struct{}, 1)}
	pump := StartPump(p.Stdout, Stdout, false, &Output{Drivers: []LogDriver{d}})
	defer pump.Stop()
	msg := []byte("a line of container output\n")
	w := p.Child[1]
	read := func() {
		w.Write(msg)
		<-d.got
	}
	read() // warm up
	if n := testing.AllocsPerRun(200, read); n != 0 {
		t.Errorf("%v allocations per read, want 0", n)
	}
}

func TestDrainAfterWriterClosed(t *testing.T) {
	p := outputPipes(t)
	r := newRecorder()
	pump := StartPump(p.Stdout, Stdout, false, &Output{Drivers: []LogDriver{r}})
	p.Child[1].Write([]byte("bye"))
	p.CloseChildEnds()
	start := time.Now()
	pump.Drain(time.Second, 2*time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Drain took %v with the writer closed", d)
	}
	if got := r.bytes(Stdout); got != "bye" {
		t.Errorf("got %q", got)
	}
	select {
	case <-pump.EOF():
	default:
		t.Error("EOF not signalled")
	}
	pump.Drain(time.Second, time.Second) // safe again
	pump.Stop()
}

func TestDrainIdleWithWriterHoldingPipe(t *testing.T) {
	p := outputPipes(t)
	r := newRecorder()
	pump := StartPump(p.Stdout, Stdout, false, &Output{Drivers: []LogDriver{r}})
	// A "daemonised grandchild" keeps p.Child[1] open; one of its lines arrives after the exit.
	time.AfterFunc(50*time.Millisecond, func() { p.Child[1].Write([]byte("late\n")) })
	start := time.Now()
	pump.Drain(200*time.Millisecond, 5*time.Second)
	d := time.Since(start)
	if d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("Drain took %v, want about 50ms + 200ms idle", d)
	}
	if got := r.bytes(Stdout); got != "late\n" {
		t.Errorf("got %q, want the late line", got)
	}
	select {
	case <-pump.EOF():
		t.Error("EOF signalled while a writer holds the pipe")
	default:
	}
}

func TestDrainTotalBound(t *testing.T) {
	p := outputPipes(t)
	r := newRecorder()
	pump := StartPump(p.Stdout, Stdout, false, &Output{Drivers: []LogDriver{r}})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				p.Child[1].Write([]byte("."))
			}
		}
	}()
	start := time.Now()
	pump.Drain(200*time.Millisecond, 300*time.Millisecond)
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("Drain took %v against a chatty writer, want about 300ms", d)
	}
}

// blockingDriver holds the pump inside Write until released.
type blockingDriver struct {
	*recorder
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (d *blockingDriver) Write(s Stream, p []byte, now time.Time) {
	d.recorder.Write(s, p, now)
	d.once.Do(func() {
		close(d.entered)
		<-d.release
	})
}

func TestStopReadsWhatIsBuffered(t *testing.T) {
	p := outputPipes(t)
	d := &blockingDriver{recorder: newRecorder(), entered: make(chan struct{}), release: make(chan struct{})}
	pump := StartPump(p.Stdout, Stdout, false, &Output{Drivers: []LogDriver{d}})
	p.Child[1].Write([]byte("first;"))
	<-d.entered
	p.Child[1].Write([]byte("buffered")) // sits in the pipe while the pump is busy
	stopped := make(chan struct{})
	go func() { pump.Stop(); close(stopped) }()
	for pump.mode.Load() != modeStop { // the pump is still inside the driver
		runtime.Gosched()
	}
	close(d.release)
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		t.Fatal("Stop did not return while the writer holds the pipe")
	}
	if got := d.bytes(Stdout); got != "first;buffered" {
		t.Errorf("got %q", got)
	}
}

type panicDriver struct{}

func (panicDriver) Write(Stream, []byte, time.Time) { panic("bad driver") }
func (panicDriver) Flush()                          {}
func (panicDriver) Reopen()                         {}
func (panicDriver) Sync() error                     { return nil }
func (panicDriver) Close() error                    { return nil }

// panicAttach panics on its first broadcast.
type panicAttach struct{ calls int }

func (a *panicAttach) Broadcast(Stream, []byte) {
	if a.calls++; a.calls == 1 {
		panic("bad attach")
	}
}

// A consumer that panics is reported and switched off; the output keeps reaching the
// others, and the pump reads on to EOF (docs/lifecycle.md §13.1).
func TestPumpPanicSwitchesConsumerOff(t *testing.T) {
	diag.ProductionPanics(t.Cleanup)
	p := outputPipes(t)
	log := &testLogger{}
	r := newRecorder()
	attach := &panicAttach{}
	out := &Output{Drivers: []LogDriver{panicDriver{}, r}, Attach: attach, Log: log}
	pump := StartPump(p.Stdout, Stdout, false, out)
	p.Child[1].Write([]byte("one;"))
	r.waitFor(t, Stdout, "one;")
	p.Child[1].Write([]byte("two"))
	r.waitFor(t, Stdout, "one;two")
	p.Child[1].Close()
	select {
	case <-pump.EOF():
	case <-time.After(5 * time.Second):
		t.Fatal("the pump did not read on to EOF")
	}
	if !out.DriverOff(0) || out.DriverOff(1) || !out.AttachOff() || attach.calls != 1 {
		t.Errorf("off: driver 0 %v, driver 1 %v, attach %v (%d calls)", out.DriverOff(0), out.DriverOff(1), out.AttachOff(), attach.calls)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	want := []string{"internal error in output pump: bad driver", "no more container output goes to the log driver ptyio.panicDriver",
		"internal error in output pump: bad attach", "no more container output goes to the attach clients"}
	if len(log.warns) != len(want) {
		t.Fatalf("warnings %q", log.warns)
	}
	for i, w := range want {
		if !strings.HasPrefix(log.warns[i], w) {
			t.Errorf("warning %d: %q, want %q", i, log.warns[i], w)
		}
	}
}

func TestPumpTerminal(t *testing.T) {
	term, slave := receiveTerminal(t)
	// One recorder each: the master may hand over "hello" and "\r\n" in separate reads.
	r, attach := newRecorder(), newRecorder()
	pump := StartPump(term.Master, Stdout, true, &Output{Drivers: []LogDriver{r}, Attach: attach})
	slave.Write([]byte("hello\n"))
	r.waitFor(t, Stdout, "hello\r\n")
	attach.waitFor(t, Stdout, "hello\r\n")
	slave.Close()
	// The container is gone but our peer slave keeps the master open: drained at EAGAIN.
	start := time.Now()
	pump.Drain(time.Second, 2*time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("tty Drain took %v", d)
	}
}

// Without a peer slave the master gives EIO while no slave is open: no data now, not an end.
func TestPumpTerminalEIO(t *testing.T) {
	master, slave := openPty(t)
	if err := unix.SetNonblock(master, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(master), "master")
	defer m.Close()
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	pump := StartPump(m, Stdout, true, &Output{Drivers: []LogDriver{r}})
	slave.Write([]byte("a"))
	r.waitFor(t, Stdout, "a")
	slave.Close() // the master now reports HUP and reads give EIO
	select {
	case <-pump.ended:
		t.Fatal("pump ended on EIO")
	case <-time.After(3 * ttyRetry / 2):
	}
	openSlave(t, n).Write([]byte("b"))
	r.waitFor(t, Stdout, "ab")
	start := time.Now()
	pump.Stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Stop took %v", d)
	}
}
