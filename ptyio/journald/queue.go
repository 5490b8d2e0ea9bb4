package journald

import (
	"sync"
	"time"
)

// Bounds of the queue between the output path and the sender. Everything is allocated
// once; a burst fills the queue and then waits or drops, it never grows it.
const (
	queueBytes   = 64 << 10 // message bytes; holds 4 entries of the longest line
	queueEntries = 256
)

// entry is one queued record; its message is data[off : off+n], after skip bytes left
// free at the end of data because the message did not fit there.
type entry struct {
	off, n, skip int32
	prio         byte // '0'…'7'
	partial      bool
}

// queue carries records from the output path (one producer, under the Writer's lock) to
// the sender goroutine (one consumer). Messages sit contiguously in a byte ring: a message
// that does not fit before the end of data starts again at offset 0, and the bytes it
// skipped count as used until it is sent.
//
//	rd = (wr - used) mod len(data), the start of the oldest message
//	rd <  wr: [ free | oldest … newest | free ]
//	rd >  wr: [ … newest | free | oldest … | skipped ]
//	rd == wr: no bytes used (used == 0) or none free (used == len(data))
type queue struct {
	mu      sync.Mutex
	data    []byte
	ents    []entry
	head    int       // index in ents of the oldest entry
	count   int       // queued entries; the oldest one is being sent
	wr      int       // where the next message goes, if it fits
	used    int       // bytes from rd to wr, skipped ones included
	sentAt  time.Time // when the sender last took an entry off: its progress
	stalled bool      // a wait for room ran out and the queue has not drained to half since
	gaveUp  bool      // a drain ran out and the sender has not progressed since
	closed  bool      // the sender must stop

	ready chan struct{} // producer -> sender: an entry was queued (or closed was set)
	room  chan struct{} // sender -> waiters: the queue is down to three quarters or less
}

func newQueue() *queue {
	return &queue{
		data:  make([]byte, queueBytes),
		ents:  make([]entry, queueEntries),
		ready: make(chan struct{}, 1),
		room:  make(chan struct{}, 1),
	}
}

// signal posts on a one-slot channel without blocking; a pending signal already says it.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// tryPush queues a copy of msg if there is room. Otherwise it reports whether the queue
// is known to be stalled, in which case waiting for room is pointless.
func (q *queue) tryPush(msg []byte, prio byte, partial bool) (ok, stalled bool) {
	q.mu.Lock()
	off, skip, fits := q.place(len(msg))
	if fits {
		copy(q.data[off:], msg)
		q.ents[(q.head+q.count)%len(q.ents)] = entry{off: int32(off), n: int32(len(msg)), skip: int32(skip), prio: prio, partial: partial}
		q.count++
		q.wr = off + len(msg)
		q.used += skip + len(msg)
	}
	stalled = q.stalled
	q.mu.Unlock()
	if fits {
		signal(q.ready)
	}
	return fits, stalled
}

// place finds n contiguous free bytes at wr or, skipping the rest of data, at 0 (mu held).
func (q *queue) place(n int) (off, skip int, fits bool) {
	size := len(q.data)
	rd := (q.wr - q.used + size) % size
	switch {
	case q.count == len(q.ents) || q.used == size:
		return 0, 0, false
	case rd > q.wr:
		return q.wr, 0, n <= rd-q.wr
	case n <= size-q.wr:
		return q.wr, 0, true
	default:
		return 0, size - q.wr, n <= rd
	}
}

// front waits for the oldest entry and returns it without removing it: its bytes stay
// reserved until pop. ok is false once the queue is closed.
func (q *queue) front() (msg []byte, e entry, ok bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, entry{}, false
		}
		if q.count > 0 {
			e = q.ents[q.head]
			q.mu.Unlock()
			return q.data[e.off : e.off+e.n], e, true
		}
		q.mu.Unlock()
		<-q.ready
	}
}

// pop frees the oldest entry: the sender has made progress. Waiters for room are woken
// only once a quarter of the queue is free, so that a producer faster than journald is
// not woken for every entry.
func (q *queue) pop() {
	q.mu.Lock()
	e := q.ents[q.head]
	q.head = (q.head + 1) % len(q.ents)
	q.count--
	q.used -= int(e.skip + e.n)
	if q.count == 0 {
		q.wr, q.used = 0, 0
	}
	q.sentAt = time.Now()
	// After a stall the output path stops waiting until journald has taken half of what
	// piled up: a journald that takes one entry now and then must not hold it up to
	// stallTimeout for each of them.
	if q.count <= len(q.ents)/2 && q.used <= len(q.data)/2 {
		q.stalled = false
	}
	q.gaveUp = false
	low := q.count <= len(q.ents)*3/4 && q.used <= len(q.data)*3/4
	q.mu.Unlock()
	if low {
		signal(q.room)
	}
}

// waitRoom waits for room. It fails once window passed without the sender taking any
// entry, or at deadline if not zero; the queue then counts as stalled until it has drained
// to half. t is the caller's timer, stopped (callers are serialised by the Writer's lock).
func (q *queue) waitRoom(t *time.Timer, window time.Duration, deadline time.Time) bool {
	start := time.Now()
	for {
		q.mu.Lock()
		end := start
		if q.sentAt.After(end) {
			end = q.sentAt
		}
		q.mu.Unlock()
		end = end.Add(window)
		if !deadline.IsZero() && deadline.Before(end) {
			end = deadline
		}
		d := time.Until(end)
		if d <= 0 {
			q.mu.Lock()
			q.stalled = true
			q.mu.Unlock()
			return false
		}
		t.Reset(d)
		select {
		case <-q.room:
			t.Stop()
			return true
		case <-t.C:
		}
	}
}

// drain waits until every queued entry was sent or, at the latest, until the deadline.
// A stall of the output path does not stop it: journald may just have paused. After a
// drain that ran out, the next one does not wait unless the sender progressed meanwhile.
func (q *queue) drain(t *time.Timer, deadline time.Time) bool {
	for {
		q.mu.Lock()
		empty, gaveUp := q.count == 0, q.gaveUp
		q.mu.Unlock()
		if empty {
			return true
		}
		if gaveUp || !q.waitRoom(t, time.Until(deadline), deadline) {
			q.mu.Lock()
			q.gaveUp = true
			q.mu.Unlock()
			return false
		}
	}
}

// close stops the sender after its current entry and returns how many entries it will
// not send.
func (q *queue) close() int {
	q.mu.Lock()
	q.closed = true
	n := q.count
	q.mu.Unlock()
	signal(q.ready)
	return n
}
