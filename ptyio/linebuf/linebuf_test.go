package linebuf

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/ptyio"
)

type rec struct {
	s       Stream
	line    string
	partial bool
	now     time.Time
}

// collector records what the assembler emits; idle is signalled on every IdleDone.
type collector struct {
	recs []rec
	idle chan struct{}
}

func (c *collector) Record(s Stream, line []byte, partial bool, now time.Time) {
	c.recs = append(c.recs, rec{s, string(line), partial, now})
}

func (c *collector) IdleDone() {
	select {
	case c.idle <- struct{}{}:
	default:
	}
}

func newTest() (*Assembler, *collector, *sync.Mutex) {
	var mu sync.Mutex
	c := &collector{idle: make(chan struct{}, 1)}
	return New(&mu, c, nil), c, &mu
}

// join reassembles the content of the records of one stream.
func join(recs []rec) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.line)
	}
	return b.String()
}

func checkShape(t *testing.T, recs []rec) {
	t.Helper()
	for i, r := range recs {
		if len(r.line) == 0 {
			t.Fatalf("record %d is empty", i)
		}
		if len(r.line) > MaxLine {
			t.Fatalf("record %d has %d bytes", i, len(r.line))
		}
		nl := strings.IndexByte(r.line, '\n')
		if r.partial && nl >= 0 || !r.partial && nl != len(r.line)-1 {
			t.Fatalf("record %d (partial=%v) has a newline at %d: %q", i, r.partial, nl, r.line)
		}
	}
}

func TestAlignedChunksOneFullPerLine(t *testing.T) {
	a, c, _ := newTest()
	now := time.Now()
	a.Write(ptyio.Stdout, []byte("a\nbb\n"), now)
	a.Write(ptyio.Stderr, []byte("err\n"), now)
	a.Write(ptyio.Stdout, []byte("\nccc\n"), now)
	want := []rec{
		{ptyio.Stdout, "a\n", false, now}, {ptyio.Stdout, "bb\n", false, now},
		{ptyio.Stderr, "err\n", false, now},
		{ptyio.Stdout, "\n", false, now}, {ptyio.Stdout, "ccc\n", false, now},
	}
	if len(c.recs) != len(want) {
		t.Fatalf("got %d records %+v", len(c.recs), c.recs)
	}
	for i := range want {
		if c.recs[i] != want[i] {
			t.Fatalf("record %d: got %+v want %+v", i, c.recs[i], want[i])
		}
	}
	if a.st[0].armed || a.st[1].armed {
		t.Fatal("timer armed without pending data")
	}
}

func TestLineInTenChunksIsOneRecord(t *testing.T) {
	a, c, _ := newTest()
	line := bytes.Repeat([]byte("x"), 10*1024-1)
	line = append(line, '\n')
	var last time.Time
	for i := 0; i < 10; i++ {
		last = time.Now()
		a.Write(ptyio.Stdout, line[i*1024:(i+1)*1024], last)
	}
	if len(c.recs) != 1 || c.recs[0].partial || c.recs[0].line != string(line) {
		t.Fatalf("got %d records", len(c.recs))
	}
	if !c.recs[0].now.Equal(last) {
		t.Fatal("record time is not the time of the completing read")
	}
}

func TestLongLinePartialThenFull(t *testing.T) {
	for _, chunk := range []int{20 * 1024, 1000, 8192} {
		a, c, _ := newTest()
		line := bytes.Repeat([]byte("y"), 20*1024)
		line[len(line)-1] = '\n'
		for p := line; len(p) > 0; {
			n := min(chunk, len(p))
			a.Write(ptyio.Stdout, p[:n], time.Now())
			p = p[n:]
		}
		if len(c.recs) != 2 || !c.recs[0].partial || len(c.recs[0].line) != MaxLine ||
			c.recs[1].partial || join(c.recs) != string(line) {
			t.Fatalf("chunk %d: got %d records", chunk, len(c.recs))
		}
	}
}

func TestExactlyMaxLine(t *testing.T) {
	a, c, _ := newTest()
	line := bytes.Repeat([]byte("z"), MaxLine)
	line[MaxLine-1] = '\n'
	a.Write(ptyio.Stdout, line[:100], time.Now())
	a.Write(ptyio.Stdout, line[100:], time.Now())
	if len(c.recs) != 1 || c.recs[0].partial {
		t.Fatalf("a %d-byte line gave %d records", MaxLine, len(c.recs))
	}
}

func TestMegabyteLineAndBinaryReassemble(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	big = append(big, '\n')
	bin := make([]byte, 300000)
	rng.Read(bin)
	for i := range bin { // sprinkle newlines and CRs so lines of every length occur
		switch rng.Intn(2000) {
		case 0:
			bin[i] = '\n'
		case 1:
			bin[i] = '\r'
		}
	}
	copy(bin[1000:], "\xff\xfe\xc3\x28\x00") // invalid UTF-8 and NUL
	for name, in := range map[string][]byte{"1MiB": big, "binary": bin} {
		a, c, _ := newTest()
		for p := in; len(p) > 0; {
			n := min(1+rng.Intn(70000), len(p))
			a.Write(ptyio.Stdout, p[:n], time.Now())
			p = p[n:]
		}
		a.Flush()
		checkShape(t, c.recs)
		if join(c.recs) != string(in) {
			t.Fatalf("%s: reassembled content differs", name)
		}
	}
}

func TestFlushAtExit(t *testing.T) {
	a, c, _ := newTest()
	a.Write(ptyio.Stderr, []byte("done\nprompt> "), time.Now())
	a.Flush()
	a.Flush()
	if len(c.recs) != 2 || c.recs[1] != (rec{ptyio.Stderr, "prompt> ", true, c.recs[0].now}) {
		t.Fatalf("got %+v", c.recs)
	}
	if a.st[1].armed || a.st[1].t.Stop() {
		t.Fatal("timer still armed after Flush")
	}
}

func TestIdleFlush(t *testing.T) {
	a, c, mu := newTest()
	start := time.Now()
	mu.Lock()
	a.Write(ptyio.Stdout, []byte("prompt> "), start)
	mu.Unlock()
	select {
	case <-c.idle:
	case <-time.After(5 * time.Second):
		t.Fatal("no idle flush")
	}
	if d := time.Since(start); d < Idle {
		t.Fatalf("idle flush after %v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(c.recs) != 1 || c.recs[0] != (rec{ptyio.Stdout, "prompt> ", true, start}) {
		t.Fatalf("got %+v", c.recs)
	}
	l := &a.st[0]
	if l.armed || l.t.Stop() || l.stale != 0 {
		t.Fatal("a timer stays armed while idle")
	}
	// The next line starts fresh.
	a.Write(ptyio.Stdout, []byte("answer\n"), time.Now())
	if len(c.recs) != 2 || c.recs[1].line != "answer\n" || c.recs[1].partial || l.armed {
		t.Fatalf("got %+v", c.recs)
	}
}

// A timer that fired while Write held the lock must not flush the bytes that Write just added.
func TestStaleTimerSkipped(t *testing.T) {
	a, c, mu := newTest()
	mu.Lock()
	a.Write(ptyio.Stdout, []byte("a"), time.Now())
	l := &a.st[0]
	for l.t.Stop() { // let the timer fire while mu is held: re-arm it with a tiny delay
		l.t.Reset(time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	a.Write(ptyio.Stdout, []byte("b"), time.Now()) // Reset returns false: the fired run is stale
	if l.stale != 1 {
		mu.Unlock()
		t.Fatalf("stale = %d", l.stale)
	}
	mu.Unlock()
	select {
	case <-c.idle:
	case <-time.After(5 * time.Second):
		t.Fatal("no idle flush")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(c.recs) != 1 || c.recs[0].line != "ab" || l.stale != 0 || l.armed {
		t.Fatalf("got %+v stale %d", c.recs, l.stale)
	}
}

type discard struct{}

func (discard) Record(Stream, []byte, bool, time.Time) {}
func (discard) IdleDone()                              {}

func TestNoAllocs(t *testing.T) {
	var mu sync.Mutex
	a := New(&mu, discard{}, nil)
	chunk := make([]byte, 0, 64<<10)
	for len(chunk)+71 <= cap(chunk) {
		chunk = append(chunk, strings.Repeat("l", 70)+"\n"...)
	}
	chunk = append(chunk, "tail"...)
	big := bytes.Repeat([]byte("b"), 1<<20)
	now := time.Now()
	mu.Lock()
	defer mu.Unlock()
	a.Write(ptyio.Stdout, chunk, now) // creates the timer once
	if n := testing.AllocsPerRun(100, func() {
		a.Write(ptyio.Stdout, chunk, now)
		a.Write(ptyio.Stdout, big, now)
	}); n != 0 {
		t.Fatalf("%v allocations per Write", n)
	}
	a.Flush()
}

// panicky panics on the first idle record and signals when it did.
type panicky struct {
	collector
	fired chan struct{}
}

func (p *panicky) Record(s Stream, line []byte, partial bool, now time.Time) {
	if p.fired != nil {
		close(p.fired)
		p.fired = nil
		panic("bad emitter")
	}
	p.collector.Record(s, line, partial, now)
}

type warnings struct {
	mu sync.Mutex
	w  []string
}

func (l *warnings) Warnf(format string, args ...any) {
	l.mu.Lock()
	l.w = append(l.w, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}
func (l *warnings) Debugf(string, ...any) {}

// A panic in the idle flush is reported and loses that pending line only: the lock is
// released and the stream goes on (docs/lifecycle.md §13.1).
func TestIdleFlushPanicDropsLine(t *testing.T) {
	diag.ProductionPanics(t.Cleanup)
	var mu sync.Mutex
	e := &panicky{fired: make(chan struct{})}
	fired := e.fired
	log := &warnings{}
	a := New(&mu, e, log)
	mu.Lock()
	a.Write(ptyio.Stdout, []byte("lost"), time.Now())
	mu.Unlock()
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("no idle flush")
	}
	mu.Lock() // released by the timer's run despite the panic
	defer mu.Unlock()
	l := &a.st[0]
	if l.n != 0 || l.armed {
		t.Fatalf("after the panic: %d pending bytes, armed %v", l.n, l.armed)
	}
	a.Write(ptyio.Stdout, []byte("next\n"), time.Now())
	if len(e.recs) != 1 || e.recs[0].line != "next\n" {
		t.Fatalf("records %+v", e.recs)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.w) != 1 || !strings.HasPrefix(log.w[0], "internal error in idle flush of the container log: bad emitter\n") {
		t.Fatalf("warnings %q", log.w)
	}
}
