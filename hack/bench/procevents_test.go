package main

import (
	"encoding/binary"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// connectorMsg builds one netlink message of the proc connector: a proc_event of kind what
// at ts, with data words.
func connectorMsg(what uint32, ts uint64, data ...uint32) []byte {
	ne := binary.NativeEndian
	m := make([]byte, nlmsgHdrLen+cnMsgHdrLen+procEventHdrLen+4*len(data))
	ne.PutUint32(m, uint32(len(m)))
	ne.PutUint32(m[16:], cnIdxProc)
	ne.PutUint32(m[20:], cnValProc)
	ev := m[nlmsgHdrLen+cnMsgHdrLen:]
	ne.PutUint32(ev, what)
	ne.PutUint64(ev[8:], ts)
	for i, d := range data {
		ne.PutUint32(ev[procEventHdrLen+4*i:], d)
	}
	return m
}

func TestParseProcEvents(t *testing.T) {
	var dgram []byte
	dgram = append(dgram, connectorMsg(procEventFork, 10, 1, 1, 2, 2)...)
	dgram = append(dgram, connectorMsg(procEventExec, 20, 2, 2)...)
	dgram = append(dgram, connectorMsg(procEventExit, 30, 3, 2, 0, 17)...)
	dgram = append(dgram, connectorMsg(0x4, 40, 2, 2)...)     // uid change: not kept
	dgram = append(dgram, connectorMsg(procEventExec, 50)...) // too short: skipped
	got := parseProcEvents(dgram, nil)
	want := []procEvent{
		{what: procEventFork, ts: 10, pid: 2, tgid: 2, parentTgid: 1},
		{what: procEventExec, ts: 20, pid: 2, tgid: 2},
		{what: procEventExit, ts: 30, pid: 3, tgid: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := parseProcEvents(dgram[:nlmsgHdrLen+3], nil); len(got) != 0 {
		t.Errorf("a truncated datagram gave %+v", got)
	}
}

// The launcher 100 forks the monitor 101 (and a thread of it, 150), which forks 102 and
// executes the runtime there; 102's threads end at 1000 and 1200; the pid is read at
// 1500. A runtime executed outside the tree (200) does not count.
func TestMonitorShare(t *testing.T) {
	evs := []procEvent{
		{what: procEventExec, ts: 90, pid: 200, tgid: 200, exe: "/sbin/runc"},
		{what: procEventExec, ts: 100, pid: 100, tgid: 100, exe: "/bin/conmon-go"},
		{what: procEventFork, ts: 200, pid: 101, tgid: 101, parentTgid: 100},
		{what: procEventFork, ts: 250, pid: 150, tgid: 101, parentTgid: 101},
		{what: procEventFork, ts: 300, pid: 102, tgid: 102, parentTgid: 101},
		{what: procEventExec, ts: 400, pid: 102, tgid: 102, exe: "/sbin/runc"},
		{what: procEventExit, ts: 1000, pid: 102, tgid: 102},
		{what: procEventExit, ts: 1100, pid: 200, tgid: 200},
		{what: procEventExit, ts: 1200, pid: 103, tgid: 102},
	}
	m := roundMark{launcher: 100, started: 50, pidRead: 1500}
	before, runtime, after, err := monitorShare(evs, m, "/sbin/runc")
	if err != nil || before != 300 || runtime != 800 || after != 300 {
		t.Errorf("at once: before %d runtime %d after %d (%v), want 300 800 300", before, runtime, after, err)
	}
	m.byteAt = 150
	if before, _, _, err := monitorShare(evs, m, "/sbin/runc"); err != nil || before != 250 {
		t.Errorf("after a pause: before %d (%v), want 250 (from the start byte)", before, err)
	}
	if _, _, _, err := monitorShare(evs, m, "/sbin/crun"); err == nil {
		t.Error("a round without the runtime's exec was split")
	}
}

// The bench's own threads: the CPU a busy loop burns shows in their sum. The loop runs
// until its thread has used the CPU time, not the wall time: under go test ./... other
// packages' tests share the CPUs.
func TestThreadsCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	threadCPU := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	before, err := threadsCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	const burn = 30 * time.Millisecond
	for start := threadCPU(); threadCPU()-start < burn; {
	}
	after, err := threadsCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(after - before); d < burn/2 {
		t.Errorf("threads' CPU grew by %v over a busy loop of %v", d, burn)
	}
	if _, err := threadsCPU(1 << 30); err == nil {
		t.Error("no error for a pid that cannot exist")
	}
}
