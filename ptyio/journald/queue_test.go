package journald

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

// message i of n bytes, recognisable after wrap-arounds.
func message(i, n int) []byte {
	return bytes.Repeat([]byte{byte('a' + i%26)}, n)
}

// TestQueueFIFO pushes and pops messages of random sizes in random order: every message
// comes out once, in order and intact, and the queue never refuses a message while empty
// or while it holds fewer bytes than a third of its size (a skipped tail wastes at most
// one message).
func TestQueueFIFO(t *testing.T) {
	q := newQueue()
	rng := rand.New(rand.NewPCG(1, 2))
	type want struct {
		i, n    int
		prio    byte
		partial bool
	}
	var fifo []want
	queued, pushed := 0, 0
	for step := 0; step < 200000; step++ {
		if rng.IntN(2) == 0 || len(fifo) == 0 {
			n := rng.IntN(linebuf.MaxLine + 1)
			if rng.IntN(4) > 0 {
				n = rng.IntN(200)
			}
			w := want{pushed, n, byte('0' + pushed%8), pushed%3 == 0}
			ok, stalled := q.tryPush(message(w.i, n), w.prio, w.partial)
			if stalled {
				t.Fatal("stalled without a wait")
			}
			if !ok {
				if len(fifo) == 0 || (len(fifo) < queueEntries && queued+n < queueBytes/3) {
					t.Fatalf("step %d: %d bytes refused with %d entries of %d bytes queued", step, n, len(fifo), queued)
				}
				continue
			}
			fifo = append(fifo, w)
			queued += n
			pushed++
			continue
		}
		msg, e, ok := q.front()
		if !ok {
			t.Fatal("front on an open queue")
		}
		w := fifo[0]
		if !bytes.Equal(msg, message(w.i, w.n)) || e.prio != w.prio || e.partial != w.partial {
			t.Fatalf("step %d: message %d: got %d bytes prio %c partial %v, want %d %c %v",
				step, w.i, len(msg), e.prio, e.partial, w.n, w.prio, w.partial)
		}
		q.pop()
		fifo = fifo[1:]
		queued -= w.n
	}
	if pushed < 50000 {
		t.Fatalf("only %d messages went through", pushed)
	}
}

func TestQueueBounds(t *testing.T) {
	q := newQueue()
	for i := range queueEntries {
		if ok, _ := q.tryPush(nil, '6', false); !ok {
			t.Fatalf("empty entry %d refused", i)
		}
	}
	if ok, _ := q.tryPush(nil, '6', false); ok {
		t.Fatal("more entries than queueEntries")
	}

	q = newQueue()
	long := message(0, linebuf.MaxLine)
	for i := range queueBytes / linebuf.MaxLine {
		if ok, _ := q.tryPush(long, '6', false); !ok {
			t.Fatalf("line %d of %d bytes refused", i, len(long))
		}
	}
	if ok, _ := q.tryPush([]byte("x"), '6', false); ok {
		t.Fatal("more bytes than queueBytes")
	}
	// Room freed at the start of the ring is used for the next message.
	q.pop()
	if ok, _ := q.tryPush(long, '6', false); !ok {
		t.Fatal("freed room not reused")
	}
}

// fullQueue returns a queue full of one-byte entries and a stopped timer for its waits.
func fullQueue() (*queue, *time.Timer) {
	q := newQueue()
	for range queueEntries {
		q.tryPush([]byte("x"), '6', false)
	}
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	return q, tm
}

// TestQueueStall: a wait for room that runs out marks the queue stalled until the sender
// has taken half of it; a drain that runs out is not repeated until the sender progresses.
func TestQueueStall(t *testing.T) {
	q, tm := fullQueue()
	start := time.Now()
	if q.waitRoom(tm, 10*time.Millisecond, time.Time{}) {
		t.Fatal("room without a sender")
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Fatalf("waitRoom returned after %v", d)
	}
	if ok, stalled := q.tryPush([]byte("y"), '6', false); ok || !stalled {
		t.Fatalf("full queue after a wait ran out: pushed %v, stalled %v", ok, stalled)
	}
	if q.drain(tm, time.Now().Add(10*time.Millisecond)) {
		t.Fatal("drained without a sender")
	}
	start = time.Now()
	if q.drain(tm, start.Add(time.Second)) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("second drain waited %v", time.Since(start))
	}
	for q.count > queueEntries/2+1 {
		q.pop()
		if !q.stalled {
			t.Fatalf("not stalled any more with %d entries queued", q.count)
		}
	}
	q.pop()
	if q.stalled {
		t.Fatalf("still stalled with %d entries queued", q.count)
	}
	go func() {
		for range q.count {
			q.front()
			q.pop()
		}
	}()
	if !q.drain(tm, time.Now().Add(5*time.Second)) {
		t.Fatal("drain with a sender ran out")
	}
	if n := q.close(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
	if _, _, ok := q.front(); ok {
		t.Fatal("front after close")
	}
}

// TestQueueSlowSender: while the sender takes entries, however slowly, a wait for room
// goes on past the stall window; it ends when a quarter of the queue is free.
func TestQueueSlowSender(t *testing.T) {
	q, tm := fullQueue()
	// One entry at 0 and 200 ms, a quarter of the queue at 400 ms: never 300 ms without
	// progress, but more than 300 ms in all.
	go func() {
		q.pop()
		time.Sleep(200 * time.Millisecond)
		q.pop()
		time.Sleep(200 * time.Millisecond)
		for range queueEntries / 4 {
			q.pop()
		}
	}()
	start := time.Now()
	if !q.waitRoom(tm, 300*time.Millisecond, time.Time{}) {
		t.Fatalf("wait for room failed after %v although the sender progressed", time.Since(start))
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("woken after %v, before a quarter of the queue was free", d)
	}
	if ok, stalled := q.tryPush([]byte("y"), '6', false); !ok || stalled {
		t.Fatalf("push after the wait: %v, stalled %v", ok, stalled)
	}
}
