package monitor

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// spawner starts the monitor's children. Go cannot run code between fork and exec, so the
// two per-child settings are arranged around the fork instead (docs/lifecycle.md §5.3):
//   - oom_score_adj: the monitor runs at -1000 and children must get the value it had
//     before; starts are serialised and the value is switched back and forth around the fork.
//   - LISTEN_PID: when set, a trampoline (this binary in a hidden mode) applies the rule with
//     its own pid and then execs the real program, keeping that pid.
type spawner struct {
	mu          sync.Mutex
	oomScore    string // the value found at start; "" if it could not be read
	oomLowered  bool
	reaper      *reaper
	replaceLPID bool
}

// lowerOOMScore remembers the monitor's oom_score_adj and sets -1000: the monitor must
// outlive its container to report the exit. Failure (no CAP_SYS_RESOURCE) is harmless.
func (s *spawner) lowerOOMScore(log diag.Logger) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		log.Debugf("failed to read /proc/self/oom_score_adj: %v", err)
		return
	}
	s.oomScore = strings.TrimSpace(string(data))
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Debugf("failed to write to /proc/self/oom_score_adj: %v", err)
		return
	}
	s.oomLowered = s.oomScore != "-1000"
}

func setOOMScore(v string) {
	os.WriteFile("/proc/self/oom_score_adj", []byte(v), 0)
}

// child describes one process to start.
type child struct {
	argv  []string
	env   []string
	files []uintptr // fds 0, 1, 2 (and more) of the child
	dir   string
	// pdeathsig kills the child when the monitor dies; the signal is tied to the forking
	// thread, so the caller must keep that thread locked until the child is reaped.
	pdeathsig bool
	// setpgid puts the child into a process group of its own. The container init or exec
	// process inherits it, so -T can kill exactly that tree (docs/lifecycle.md §15) without
	// ever hitting the monitor's own group.
	setpgid bool
	// pidfd, if not nil, receives a pidfd of the child (CLONE_PIDFD), or -1.
	pidfd *int
}

// start forks and execs c and returns its pid. A trampoline is used when the environment
// carries LISTEN_PID, so that the rule of docs/lifecycle.md §7 applies to the final process.
func (s *spawner) start(c child) (int, error) {
	path := c.argv[0]
	argv := c.argv
	env := c.env
	if hasEnv(env, "LISTEN_PID") {
		path = "/proc/self/exe"
		argv = append([]string{c.argv[0]}, c.argv...)
		flag := "0"
		if s.replaceLPID {
			flag = "1"
		}
		env = append(env[:len(env):len(env)], envTrampoline+"="+flag)
	}
	attr := &syscall.ProcAttr{
		Dir:   c.dir,
		Env:   env,
		Files: c.files,
		Sys:   &syscall.SysProcAttr{},
	}
	if c.pdeathsig {
		attr.Sys.Pdeathsig = syscall.SIGKILL
	}
	attr.Sys.Setpgid = c.setpgid
	attr.Sys.PidFD = c.pidfd
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oomLowered {
		setOOMScore(s.oomScore)
		defer setOOMScore("-1000")
	}
	return syscall.ForkExec(path, argv, attr)
}

// startPinned starts c with PDEATHSIG, which is tied to the thread that forks it. The
// main thread lives as long as the process: forked from there, the child needs no thread
// kept for it. Otherwise startLocked keeps one.
func (s *spawner) startPinned(c child) (lockedChild, error) {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		runtime.UnlockOSThread()
		return s.startLocked(c)
	}
	defer runtime.UnlockOSThread()
	lc := lockedChild{pidfd: -1, release: func() {}}
	c.pdeathsig = true
	c.pidfd = &lc.pidfd
	var err error
	lc.pid, err = s.start(c)
	return lc, err
}

// lockedChild is a child started by startPinned or startLocked.
type lockedChild struct {
	pid   int
	pidfd int // readable once the child exited; -1 if the kernel gave none
	// release unlocks the thread kept for the child (if any) once the child has been
	// reaped, and returns when that is done.
	release func()
}

// startLocked starts c with PDEATHSIG from a thread that stays locked until release. The
// thread is then unlocked, not ended with its goroutine: it may be the main thread, which
// Go never ends but parks for good. retireSpareThreads ends the spare threads.
func (s *spawner) startLocked(c child) (lockedChild, error) {
	type result struct {
		lc  lockedChild
		err error
	}
	started := make(chan result, 1)
	done := make(chan struct{})
	unlocked := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer func() {
			runtime.UnlockOSThread()
			close(unlocked)
		}()
		c.pdeathsig = true
		lc := lockedChild{pidfd: -1, release: func() {
			close(done)
			<-unlocked
		}}
		c.pidfd = &lc.pidfd
		var err error
		lc.pid, err = s.start(c)
		started <- result{lc, err}
		if err == nil {
			<-done
		}
	}()
	r := <-started
	return r.lc, r.err
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}
