package main

// The monitor's own share of a create. A create's time is mostly the runtime's, whose
// run-to-run spread (several ms on a small VM) hides sub-millisecond differences between
// monitors. The kernel's process events connector (cn_proc: every fork, exec and exit,
// stamped with CLOCK_MONOTONIC) tells when the runtime was executed and when its last
// thread ended, so a round splits into
//
//	before: the launcher's exec (or the start byte, after a pause) -> the runtime's exec
//	after:  the runtime's last thread exit -> the pid read from the sync pipe
//
// and their sum is the part of the round the monitor is responsible for. Root only.
//
// A datagram from the connector (native endian), possibly several messages:
//
//	nlmsghdr    len u32 | type u16 | flags u16 | seq u32 | port u32         16 bytes
//	cn_msg      idx u32 | val u32 | seq u32 | ack u32 | len u16 | flags u16  20 bytes
//	proc_event  what u32 | cpu u32 | timestamp_ns u64                        16 bytes
//	  fork      parent_pid u32 | parent_tgid u32 | child_pid u32 | child_tgid u32
//	  exec      process_pid u32 | process_tgid u32
//	  exit      process_pid u32 | process_tgid u32 | exit_code u32 | ...
//
// Subscribing is one message to the kernel: nlmsghdr, cn_msg{idx, val: CN_IDX_PROC,
// CN_VAL_PROC; len 4} and the u32 PROC_CN_MCAST_LISTEN.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventFork     = 0x1
	procEventExec     = 0x2
	procEventExit     = 0x80000000
	nlmsgHdrLen       = 16
	cnMsgHdrLen       = 20
	procEventHdrLen   = 16
)

// procEvent is one fork, exec or exit. For a fork, pid and tgid are the child's.
type procEvent struct {
	what       uint32
	ts         int64 // CLOCK_MONOTONIC, ns
	pid, tgid  int32
	parentTgid int32  // fork only
	exe        string // exec only: /proc/<pid>/exe, read as the event arrived
}

// procWatch collects process events until it is closed. Only its loop touches events and
// err until done is closed.
type procWatch struct {
	f      *os.File // the netlink socket, non-blocking, on the runtime poller
	done   chan struct{}
	events []procEvent
	err    error // the first receive error (ENOBUFS: events were lost)
}

func watchProcs() (*procWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector socket: %w", err)
	}
	// Every thread of every process on the machine is reported: leave room.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector bind: %w", err)
	}
	msg := make([]byte, nlmsgHdrLen+cnMsgHdrLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], uint32(os.Getpid()))
	ne.PutUint32(msg[16:], cnIdxProc)
	ne.PutUint32(msg[20:], cnValProc)
	ne.PutUint16(msg[32:], 4)
	ne.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector subscribe: %w", err)
	}
	w := &procWatch{f: os.NewFile(uintptr(fd), "proc-connector"), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *procWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				if w.err == nil {
					w.err = fmt.Errorf("proc connector: %w", err)
				}
				if errors.Is(err, unix.ENOBUFS) {
					continue
				}
			}
			return
		}
		first := len(w.events)
		w.events = parseProcEvents(buf[:n], w.events)
		for i := first; i < len(w.events); i++ {
			if e := &w.events[i]; e.what == procEventExec {
				e.exe, _ = os.Readlink("/proc/" + strconv.Itoa(int(e.pid)) + "/exe")
			}
		}
	}
}

// close stops the watch and returns the events, in time order, and whether any were lost.
func (w *procWatch) close() ([]procEvent, error) {
	w.f.Close()
	<-w.done
	sort.SliceStable(w.events, func(i, j int) bool { return w.events[i].ts < w.events[j].ts })
	return w.events, w.err
}

// parseProcEvents appends the fork, exec and exit events of one datagram to out.
func parseProcEvents(b []byte, out []procEvent) []procEvent {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			break
		}
		m := b[nlmsgHdrLen:l]
		b = b[(l+3)&^3:]
		if len(m) < cnMsgHdrLen+procEventHdrLen || ne.Uint32(m) != cnIdxProc || ne.Uint32(m[4:]) != cnValProc {
			continue
		}
		ev := m[cnMsgHdrLen:]
		e := procEvent{what: ne.Uint32(ev), ts: int64(ne.Uint64(ev[8:]))}
		d := ev[procEventHdrLen:]
		u := func(i int) int32 { return int32(ne.Uint32(d[4*i:])) }
		switch {
		case e.what == procEventFork && len(d) >= 16:
			e.parentTgid, e.pid, e.tgid = u(1), u(2), u(3)
		case (e.what == procEventExec || e.what == procEventExit) && len(d) >= 8:
			e.pid, e.tgid = u(0), u(1)
		default:
			continue
		}
		out = append(out, e)
	}
	return out
}

// monotonicNow is CLOCK_MONOTONIC in ns, the connector's clock.
func monotonicNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// roundMark is what a round of a monitor records for the split (CLOCK_MONOTONIC ns).
type roundMark struct {
	launcher int   // the process the bench executed
	started  int64 // just before it was started
	byteAt   int64 // when the start byte was written after a pause; 0 when at once
	pidRead  int64 // when the pid was read from the sync pipe
	// CPU time (ns) the monitor had used when the pid was read: the launcher's, from its
	// rusage, and the threads' of the monitor named by -P, from their schedstat; only
	// create reads it (podman's exec has no -P)
	cpu int64
}

// monitorShare splits one round (events sorted by time): the time from the launcher's exec
// (or the start byte) to the exec of runtimeExe by a process of the launcher's tree, the
// runtime's own time to the end of its last thread, and from there to the pid read.
func monitorShare(evs []procEvent, m roundMark, runtimeExe string) (before, runtime, after int64, err error) {
	i := sort.Search(len(evs), func(i int) bool { return evs[i].ts >= m.started })
	var launched, runtimeExec, runtimeEnd int64
	tree := map[int32]bool{int32(m.launcher): true}
	runtimePid := int32(-1)
	for ; i < len(evs) && evs[i].ts <= m.pidRead; i++ {
		e := &evs[i]
		switch e.what {
		case procEventExec:
			if e.pid == int32(m.launcher) && launched == 0 {
				launched = e.ts
			} else if runtimePid < 0 && tree[e.tgid] && e.exe == runtimeExe {
				runtimePid, runtimeExec = e.tgid, e.ts
			}
		case procEventFork:
			if tree[e.parentTgid] && e.pid == e.tgid {
				tree[e.tgid] = true
			}
		case procEventExit:
			if e.tgid == runtimePid {
				runtimeEnd = max(runtimeEnd, e.ts)
			}
		}
	}
	switch {
	case launched == 0:
		return 0, 0, 0, fmt.Errorf("no exec event of the launcher %d", m.launcher)
	case runtimePid < 0:
		return 0, 0, 0, fmt.Errorf("no exec of %s under the launcher %d", runtimeExe, m.launcher)
	case runtimeEnd == 0:
		return 0, 0, 0, fmt.Errorf("no exit event of the runtime %d", runtimePid)
	}
	from := launched
	if m.byteAt != 0 {
		from = m.byteAt
	}
	return runtimeExec - from, runtimeEnd - runtimeExec, m.pidRead - runtimeEnd, nil
}

// shares is monitorShare for every round of one participant, in seconds: before + after,
// before, after, the runtime.
func shares(evs []procEvent, marks []roundMark, runtimeExe string) ([][]float64, error) {
	out := make([][]float64, 0, len(marks))
	for _, m := range marks {
		b, rt, a, err := monitorShare(evs, m, runtimeExe)
		if err != nil {
			return nil, err
		}
		out = append(out, []float64{float64(b+a) / 1e9, float64(b) / 1e9, float64(a) / 1e9, float64(rt) / 1e9})
	}
	return out, nil
}

// ownRows adds, for one variant of a figure, the monitor's own time of both monitors
// (median of before + after, and each part) and its per-round difference, and the
// runtime's time beside each monitor. The own time's spread is a fraction of the whole
// round's, so it takes two decimals.
func (b *bench) ownRows(what, variant string, evs []procEvent, x, y []roundMark, errs ...error) {
	name := what + ", the monitor's own time (before + after the runtime)" + variant
	sx, errX := shares(evs, x, b.e.runcExe)
	sy, errY := shares(evs, y, b.e.runcExe)
	if err := errors.Join(append(errs, errX, errY)...); err != nil {
		b.rows = append(b.rows, row{name: name, a: errCell(err)})
		return
	}
	cell := func(s [][]float64) string {
		return fmt.Sprintf("%s (%s + %s)", ms2(med(s, nil, 0).v), ms2(med(s, nil, 1).v), ms2(med(s, nil, 2).v))
	}
	r := row{name: name, a: cell(sx), b: cell(sy)}
	if vy := med(sy, nil, 0).v; vy != 0 {
		r.ratio = fmt.Sprintf("%.2fx", med(sx, nil, 0).v/vy)
	}
	b.rows = append(b.rows, r, perRound(what+", own time, monitor - reference per round"+variant, sx, sy, 2))
	rx, ry := med(sx, nil, 3), med(sy, nil, 3)
	b.compare(what+", the runtime's own time beside the monitor"+variant, rx, ry, ms, nil)
}

// cpuRows adds, for one variant of a figure whose rounds read the monitors' CPU time (create),
// that time of both monitors and its per-round difference.
func (b *bench) cpuRows(what, variant string, x, y []roundMark, errs ...error) {
	name := what + ", the monitor's CPU time until the pid" + variant
	if err := errors.Join(errs...); err != nil {
		b.rows = append(b.rows, row{name: name, a: errCell(err)})
		return
	}
	cx, cy := cpuTimes(x), cpuTimes(y)
	b.compare(name, med(cx, nil, 0), med(cy, nil, 0), ms2, nil)
	b.rows = append(b.rows, perRound(what+", CPU time, monitor - reference per round"+variant, cx, cy, 2))
}

// cpuTimes lists the rounds' CPU times in seconds, in the shape med and perRound take.
func cpuTimes(marks []roundMark) [][]float64 {
	out := make([][]float64, len(marks))
	for i, m := range marks {
		out[i] = []float64{float64(m.cpu) / 1e9}
	}
	return out
}

// threadsCPU sums the time on CPU of pid's threads (the first field of their schedstat, in
// ns). A running thread counts up to its last tick, and threads that have exited
// are not seen: the monitors start none that ends before the pid is out.
func threadsCPU(pid int) (int64, error) {
	stats, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	if len(stats) == 0 {
		return 0, fmt.Errorf("no threads of %d in /proc", pid)
	}
	var sum int64
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("%s: %q", p, b)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		sum += ns
	}
	return sum, nil
}
