// Package oom watches the container's memory cgroup for OOM kills
// (docs/lifecycle.md §16): cgroup v1 through memory.oom_control and an eventfd,
// cgroup v2 through memory.events and inotify.
package oom

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// config holds the host paths, replaceable in tests.
type config struct {
	procRoot   string // normally /proc
	cgroupRoot string // normally /sys/fs/cgroup
	v2         bool
}

// Watcher reports OOM kills in one cgroup. A zero Watcher watches nothing.
type Watcher struct {
	onOOM func()
	log   diag.Logger

	// mu makes "read a counter or event, then call onOOM" atomic, so that
	// Final returns only after every event seen so far has been reported.
	mu sync.Mutex

	f    *os.File // eventfd (v1) or inotify fd (v2), non-blocking
	rc   syscall.RawConn
	done chan struct{}

	// v1
	eventControl string // <cg>/cgroup.event_control, to tell removal from OOM
	oomControl   string // <cg>/memory.oom_control, "" if it has no oom_kill counter
	v1Kills      uint64 // its oom_kill counter at Prepare, then at the last report

	// v2
	events  string // <cg>/memory.events; set on v2 only
	last    counters
	readBuf []byte

	cgroup string // the cgroup's directory; "" when there is nothing to watch

	closing   atomic.Bool // set before f.Close, so the loop ends quietly
	closeOnce sync.Once
	failed    atomic.Bool // the watch panicked: Final does nothing (docs/lifecycle.md §13.1)
}

// fail switches the watch off after a panic; mu may still be held.
func (w *Watcher) fail() { w.failed.Store(true) }

// Prepare finds the memory cgroup of pid and reads its OOM kill counters, without
// watching yet; onOOM is called (from the watcher's goroutine, from Start or from Final)
// each time a new OOM kill is seen. A kill between Prepare and Start is reported by
// Start, so the registration can wait until the pid is reported. Missing cgroup support
// is not an error: the Watcher then watches nothing.
func Prepare(pid int, onOOM func(), log diag.Logger) (*Watcher, error) {
	cfg := config{procRoot: "/proc", cgroupRoot: "/sys/fs/cgroup"}
	var st unix.Statfs_t
	if err := unix.Statfs(cfg.cgroupRoot, &st); err != nil {
		return nil, &os.PathError{Op: "statfs", Path: cfg.cgroupRoot, Err: err}
	}
	cfg.v2 = st.Type == unix.CGROUP2_SUPER_MAGIC
	return prepare(pid, onOOM, log, cfg)
}

func prepare(pid int, onOOM func(), log diag.Logger, cfg config) (*Watcher, error) {
	if log == nil {
		log = diag.Discard
	}
	procFile := cfg.procRoot + "/" + strconv.Itoa(pid) + "/cgroup"
	data, err := os.ReadFile(procFile)
	if err != nil {
		return nil, fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	w := &Watcher{onOOM: onOOM, log: log, done: make(chan struct{})}
	if cfg.v2 {
		path, ok := v2Path(data)
		if !ok {
			return nil, fmt.Errorf("no cgroup v2 entry (0::) in %s", procFile)
		}
		w.prepareV2(cfg.cgroupRoot + path)
		return w, nil
	}
	dir, ok := v1Path(data)
	if !ok {
		return nil, fmt.Errorf("no memory controller entry in %s", procFile)
	}
	w.prepareV1(cfg.cgroupRoot + "/" + dir)
	return w, nil
}

// Start watches the cgroup found by Prepare, then reports a kill counted since Prepare.
func (w *Watcher) Start() error {
	if w.cgroup == "" {
		return nil
	}
	if w.events != "" {
		return w.startV2()
	}
	return w.startV1()
}

// v2Path returns the path of the "0::" line of /proc/<pid>/cgroup (not the
// first line: on hybrid hosts v1 controller lines come first).
func v2Path(data []byte) (string, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, true
		}
	}
	return "", false
}

// v1Path returns "<controllers><path>" of the line whose controller list
// contains memory (e.g. "memory/x" or "cpu,memory/x").
func v1Path(data []byte) (string, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return f[1] + f[2], true
			}
		}
	}
	return "", false
}

// ---- cgroup v1 ----

// prepareV1 reads the baseline: Linux ≥ 4.13 counts kills in oom_control, which lets
// Start and Final see a kill that happened before the eventfd was registered (an exec or a
// restored process runs before its pid is known). Older kernels have only the eventfd.
func (w *Watcher) prepareV1(cg string) {
	w.cgroup = cg
	ctlPath := cg + "/memory.oom_control"
	if n, ok := readOOMKills(ctlPath); ok {
		w.oomControl, w.v1Kills = ctlPath, n
	}
}

func (w *Watcher) startV1() error {
	ctlPath := w.cgroup + "/memory.oom_control"
	ctl, err := unix.Open(ctlPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: ctlPath, Err: err}
	}
	// The kernel keeps no reference to oom_control after registration.
	defer unix.Close(ctl)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	f := os.NewFile(uintptr(efd), "oom eventfd")
	w.eventControl = w.cgroup + "/cgroup.event_control"
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(ctl)
	if err := os.WriteFile(w.eventControl, []byte(reg), 0); err != nil {
		// PREEMPT_RT kernels disable the interface: a warning, not a failure.
		f.Close()
		w.log.Warnf("cannot watch for OOM kills: %v", err)
		return nil
	}
	w.start(f, w.readEventfd)
	w.checkV1Counter()
	return nil
}

// checkV1Counter reports a kill the oom_kill counter shows and no report covered yet.
func (w *Watcher) checkV1Counter() {
	if w.oomControl == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := readOOMKills(w.oomControl); ok && n > w.v1Kills {
		w.v1Kills = n
		w.report()
	}
}

// readEventfd reads the eventfd once; it reports whether the watch is over.
// Layout of an eventfd read: 8 bytes, host-endian uint64 counter.
func (w *Watcher) readEventfd(fd int) (stop bool, err error) {
	var b [8]byte
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := unix.Read(fd, b[:])
	if err != nil || n != 8 {
		return false, err
	}
	count := binary.NativeEndian.Uint64(b[:])
	if count == 1 {
		if _, err := os.Stat(w.eventControl); errors.Is(err, os.ErrNotExist) {
			// Removing the cgroup signals the eventfd once; nothing can follow.
			w.log.Debugf("memory cgroup removed, OOM watch ends")
			return true, nil
		}
	}
	w.report()
	return false, nil
}

// ---- cgroup v2 ----

type counters struct{ oom, oomKill uint64 }

// prepareV2 reads the baseline of memory.events.
func (w *Watcher) prepareV2(cg string) {
	w.events = cg + "/memory.events"
	w.readBuf = make([]byte, 4096)
	var ok bool
	if w.last, ok = w.readEvents(counters{}); !ok {
		w.log.Debugf("%s not readable: no OOM monitoring", w.events)
		return
	}
	w.cgroup = cg
}

func (w *Watcher) startV2() error {
	cg := w.cgroup
	ifd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("inotify_init1", err)
	}
	f := os.NewFile(uintptr(ifd), "oom inotify")
	if _, err := unix.InotifyAddWatch(ifd, w.events, unix.IN_MODIFY); err != nil {
		f.Close()
		return &os.PathError{Op: "inotify_add_watch", Path: w.events, Err: err}
	}
	// populated 0 is the last moment the cgroup surely exists: read then.
	// Any event triggers a read of memory.events, which covers it.
	if _, err := unix.InotifyAddWatch(ifd, cg+"/cgroup.events", unix.IN_MODIFY); err != nil {
		w.log.Debugf("cannot watch %s/cgroup.events: %v", cg, err)
	}
	w.start(f, w.readInotify)
	w.checkV2()
	return nil
}

// readInotify consumes pending inotify events and re-reads memory.events.
func (w *Watcher) readInotify(fd int) (stop bool, err error) {
	var b [4096]byte
	if _, err := unix.Read(fd, b[:]); err != nil {
		return false, err
	}
	w.checkV2()
	return false, nil
}

func (w *Watcher) checkV2() {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.readEvents(w.last)
	if !ok {
		return // gone with its cgroup: keep the last values read
	}
	// oom and oom_kill are tracked separately; a non-zero counter that moved
	// away from the baseline means a new OOM event.
	changed := (c.oom != 0 && c.oom != w.last.oom) || (c.oomKill != 0 && c.oomKill != w.last.oomKill)
	w.last = c
	if changed {
		w.report()
	}
}

// readEvents reads memory.events; keys missing from the file keep prev.
func (w *Watcher) readEvents(prev counters) (counters, bool) {
	fd, err := unix.Open(w.events, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return prev, false
	}
	defer unix.Close(fd)
	n := 0
	for n < len(w.readBuf) {
		m, err := unix.Read(fd, w.readBuf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return prev, false
		}
		if m == 0 {
			break
		}
		n += m
	}
	return parseEvents(w.readBuf[:n], prev), true
}

// parseEvents parses "key value\n" lines of memory.events.
func parseEvents(data []byte, c counters) counters {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		key, val, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(val), 10, 64)
		if err != nil {
			continue
		}
		switch string(key) {
		case "oom":
			c.oom = n
		case "oom_kill":
			c.oomKill = n
		}
	}
	return c
}

// ---- common ----

func (w *Watcher) report() {
	if w.onOOM != nil {
		w.onOOM()
	}
}

// start runs read in the poller until it reports the end or the fd closes.
func (w *Watcher) start(f *os.File, read func(fd int) (bool, error)) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		w.log.Warnf("OOM watch disabled: %v", err)
		return
	}
	w.f, w.rc = f, rc
	go func() {
		defer close(w.done)
		defer diag.Recover(w.log, "OOM watch", w.fail)
		for {
			var stop bool
			var rerr error
			err := rc.Read(func(fd uintptr) bool {
				stop, rerr = read(int(fd))
				return rerr != unix.EAGAIN
			})
			if err == nil && rerr != nil && rerr != unix.EINTR {
				err = rerr
			}
			if err != nil {
				if !w.closing.Load() {
					w.log.Warnf("OOM watch stopped: %v", err)
				}
				return
			}
			if stop {
				return
			}
		}
	}()
}

// Final makes the last check before the exit files are written: it reports
// an OOM kill not seen yet (v2 re-reads memory.events, v1 drains the eventfd).
func (w *Watcher) Final() {
	if w == nil || w.rc == nil || w.failed.Load() {
		return
	}
	if w.events != "" {
		w.checkV2()
		return
	}
	// Control, not Read: the goroutine parked in Read holds the read lock.
	// An error here only means the fd is closed or nothing is pending.
	_ = w.rc.Control(func(fd uintptr) {
		w.readEventfd(int(fd))
	})
	w.checkV1Counter()
}

// readOOMKills returns the oom_kill counter of a v1 memory.oom_control file:
//
//	oom_kill_disable 0
//	under_oom 0
//	oom_kill 3
func readOOMKills(path string) (uint64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// Close stops the watch and releases its fd.
func (w *Watcher) Close() {
	if w == nil || w.f == nil {
		return
	}
	w.closeOnce.Do(func() {
		w.closing.Store(true)
		w.f.Close()
		<-w.done
	})
}
