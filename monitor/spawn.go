package monitor

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// Markers in the environment select the hidden modes of the binary; they are removed
// before anything else runs, so no child ever sees them.
const (
	envDaemon     = "_CONMON_GO_DAEMON"     // monitor started by the launcher; value: handshake fd
	envTrampoline = "_CONMON_GO_TRAMPOLINE" // value "1": --replace-listen-pid, "0" otherwise
	// envOwnMaxProcs says that GOMAXPROCS was set by the launcher for the monitor alone.
	envOwnMaxProcs = "_CONMON_GO_GOMAXPROCS"
)

// spawner starts the monitor's children. Go cannot run code between fork and exec, so the
// two per-child settings are arranged around the fork instead (lifecycle.md §5.3):
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
	// process inherits it, so -T can kill exactly that tree (lifecycle.md §15) without
	// ever hitting the monitor's own group.
	setpgid bool
	// pidfd, if not nil, receives a pidfd of the child (CLONE_PIDFD), or -1.
	pidfd *int
}

// start forks and execs c and returns its pid. A trampoline is used when the environment
// carries LISTEN_PID, so that the rule of lifecycle.md §7 applies to the final process.
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

// idleThreads is what an idle monitor needs: one thread to run goroutines, sysmon, and the
// three os/signal keeps (its signal-mask thread, the template thread, the receiver).
const idleThreads = 5

// retireSpareThreads ends the threads setup left idle. Go never ends an idle thread, only
// the thread of a goroutine that exits while locked to it; setup's blocking calls and the
// runtime-start thread leave one or two spares. A retirement gains only when
// an idle thread can take over; otherwise Go starts a new one, hence the bound. (On the
// main thread the goroutine would park it instead: no harm, no gain.)
func retireSpareThreads() {
	for range 3 {
		if n, err := threadCount(); err != nil || n <= idleThreads {
			return
		}
		done := make(chan struct{})
		go func() {
			defer diag.Recover(nil, "thread retirement", nil)
			runtime.LockOSThread()
			close(done)
		}()
		<-done
	}
}

// threadCount reads the number of threads in /proc/self/stat.
func threadCount() (int, error) {
	var buf [512]byte
	fd, err := unix.Open("/proc/self/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return 0, err
	}
	return parseThreadCount(string(buf[:n]))
}

// parseThreadCount returns num_threads, field 20 of a /proc/<pid>/stat line. The command
// name (field 2) may hold spaces and parentheses; it ends with the line's last ')'.
func parseThreadCount(stat string) (int, error) {
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(fields) < 18 {
		return 0, errors.New("short stat line")
	}
	return strconv.Atoi(fields[17]) // fields[0] is field 3, the state
}

// trampolineMain runs in the process started by start when LISTEN_PID is set: argv[1] is
// the program, argv[1:] its argv. It applies the LISTEN_PID rule and execs the program.
func trampolineMain(args []string, replace bool) int {
	env := os.Environ()
	if v, ok := os.LookupEnv("LISTEN_PID"); ok {
		n := 0
		digits := 0
		for digits < len(v) && v[digits] >= '0' && v[digits] <= '9' {
			n = n*10 + int(v[digits]-'0')
			digits++
		}
		if digits == 0 || n <= 0 {
			short := v
			if len(short) > 10 {
				short = short[:10]
			}
			os.Stderr.WriteString("Invalid LISTEN_PID " + short + "\n")
			return 1
		}
		if replace || n == os.Getppid() {
			env = setEnv(env, "LISTEN_PID", strconv.Itoa(os.Getpid()))
		}
	}
	if len(args) < 2 {
		return 1
	}
	err := unix.Exec(args[1], args[1:], env)
	os.Stderr.WriteString("exec " + args[1] + ": " + err.Error() + "\n")
	return 127
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

func setEnv(env []string, key, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
