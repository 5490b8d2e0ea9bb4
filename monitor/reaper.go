package monitor

import (
	"sync"

	"golang.org/x/sys/unix"
)

// maxCachedStatuses bounds the statuses kept for pids nobody waits for yet: an exec or
// restored process can exit before its pid file has been read, and its status must then
// be found when the monitor starts waiting for it.
const maxCachedStatuses = 1024

// reaper is the single owner of every wait in the monitor. The monitor is a child
// subreaper, so the container init and every orphaned descendant become its children;
// a second waiter (os/exec's Cmd.Wait, os.Process.Wait) would race with the wildcard
// wait4 below and lose statuses. Children are therefore started with syscall.ForkExec and
// their statuses collected here.
type reaper struct {
	// reapMu serialises reap: when one caller returns, every status collected so far,
	// also by a concurrent caller, has been delivered.
	reapMu  sync.Mutex
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	cache   map[int]unix.WaitStatus
	order   []int // cache insertion order, oldest first
}

func newReaper() *reaper {
	return &reaper{
		waiters: make(map[int]chan unix.WaitStatus),
		cache:   make(map[int]unix.WaitStatus),
	}
}

// wait returns a channel that receives pid's wait status once. The status may already
// be cached.
func (r *reaper) wait(pid int) <-chan unix.WaitStatus {
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ws, ok := r.cache[pid]; ok {
		delete(r.cache, pid)
		ch <- ws
		return ch
	}
	r.waiters[pid] = ch
	return ch
}

// reap collects every exited child without blocking. It runs on every SIGCHLD (signals
// coalesce, so one delivery can stand for many exits) and on explicit triggers.
func (r *reaper) reap() {
	r.reapMu.Lock()
	defer r.reapMu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ws.Stopped() || ws.Continued() {
			continue
		}
		r.deliver(pid, ws)
	}
}

// reapOne collects pid alone, if it has exited, and leaves other children to reap: the
// runtime's status is on the create path, and reaping an exec's process that ended before
// the runtime costs as much again (the kernel's release of a task). Under reapMu, as reap.
func (r *reaper) reapOne(pid int) {
	r.reapMu.Lock()
	defer r.reapMu.Unlock()
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	for err == unix.EINTR {
		got, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
	if err == nil && got == pid {
		r.deliver(pid, ws)
	}
}

func (r *reaper) deliver(pid int, ws unix.WaitStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- ws
		return
	}
	if _, dup := r.cache[pid]; !dup {
		if len(r.order) >= maxCachedStatuses {
			delete(r.cache, r.order[0])
			r.order = r.order[1:]
		}
		r.order = append(r.order, pid)
	}
	r.cache[pid] = ws
}

// forget drops the cached statuses: once the container pid is known, statuses of other
// processes (orphaned descendants) are of no interest.
func (r *reaper) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.cache)
	r.order = r.order[:0]
}

// statusCode maps a wait status to the value engines expect (docs/exit.md §1): the exit code,
// 128+signal for a signal death, -1 otherwise.
func statusCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}
