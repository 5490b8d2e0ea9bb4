package monitor

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/ctl"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/oom"
	"github.com/conmon-go/conmon-go/monitor/sdnotify"
	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/seqpacket"
)

// monitor is one container's (or exec's) monitor: its options, the parts it set up, and
// its progress.
type monitor struct {
	opts    *cli.Options
	log     *diag.Printer
	signals chan os.Signal
	// quietOnce registers quietSignals (catchQuietSignals).
	quietOnce sync.Once
	reaper    *reaper
	spawner   *spawner

	sync       *syncPipe
	attachPipe *syncPipe // nil unless --exec-attach, and once its one message is sent
	startFD    int       // kept only for --exec-attach's second read
	inherited  []int

	runtimePath string
	runtimeArgs []string
	trustRecord string // record to remove at exit

	pipes   *ptyio.Pipes
	console *ptyio.ConsoleSocket
	drivers []ptyio.LogDriver
	attach  *seqpacket.Server
	fifos   *ctl.FIFOs
	notify  *sdnotify.Proxy
	oomw    *oom.Watcher
	stdin   *stdinGate

	output *ptyio.Output // the pumps' consumers, set up with the logs and the attach socket

	// The monitor's own progress, for afterPanic (docs/lifecycle.md §13.1). Only the
	// monitor's own goroutine touches these: run, and afterPanic, which runs on it after a
	// panic there.
	// exited receives the container's status from the reaper. It is set as the pid is
	// reported: afterPanic tells the start-up from supervision by it.
	exited      <-chan unix.WaitStatus
	gone        <-chan struct{} // closed when the container process is gone
	status      int             // the container's status, once statusKnown
	statusKnown bool
	timedOut    bool
	step        int // the last exit step done (stepNone …)

	mu             sync.Mutex // guards the fields below, shared with the signal loop
	runtimeStarted bool
	runtimePid     int
	containerPid   int
	pidfd          int
	term           *ptyio.Terminal
	pendingSize    [2]int
	hasPendingSize bool
}

func newMonitor(opts *cli.Options, log *diag.Printer, signals chan os.Signal, syncFD, startFD, attachFD int) *monitor {
	m := &monitor{
		opts:    opts,
		log:     log,
		signals: signals,
		reaper:  newReaper(),
		startFD: startFD,
		pidfd:   -1,
	}
	m.spawner = &spawner{reaper: m.reaper, replaceLPID: opts.ReplaceListenPID}
	// The engine's notification fds must not leak into the runtime or the container.
	for _, fd := range []int{syncFD, startFD, attachFD} {
		if fd >= 0 {
			unix.CloseOnExec(fd)
		}
	}
	m.sync = newSyncPipe(syncFD, log)
	if attachFD >= 0 {
		m.attachPipe = newSyncPipe(attachFD, log)
	}
	m.inherited = inheritedFDs(syncFD, startFD, attachFD)
	return m
}

// prepare takes the process-wide settings of M2 and M3 (docs/lifecycle.md §2): neither
// creates anything nor depends on the cgroups, so a daemon does it before its release.
func (m *monitor) prepare() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return errors.New("Failed to set as subreaper: " + diag.Strerror(err))
	}
	m.spawner.lowerOOMScore(m.log)
	return nil
}

// run is the monitor proper after prepare (docs/lifecycle.md §2 M4–M19). It returns the
// process exit status.
func (m *monitor) run() int {
	opts := m.opts
	m.catchStopSignals()
	go m.signalLoop()
	m.runtimePath, m.runtimeArgs = opts.Runtime, opts.RuntimeArgs
	if opts.Trust.Active {
		d, err := selectRuntime(opts, m.log, false)
		if err != nil {
			return m.fail(err.Error())
		}
		m.runtimePath, m.runtimeArgs, m.trustRecord = d.path, d.args, d.recordDir
	}
	if opts.SdNotifySocket != "" && opts.Bundle != "" {
		p, err := sdnotify.NewProxy(opts.Bundle, opts.SdNotifySocket, m.log)
		if err != nil {
			return m.fail(err.Error())
		}
		m.notify = p
		p.Start()
	}
	if err := m.setupStdio(); err != nil {
		return m.fail(err.Error())
	}
	if m.attachPipe == nil {
		// The log and the attach socket need only exist when the pid is reported:
		// they are set up while the runtime works (its own start-up takes longer).
		return m.runRuntime(m.setupOutput)
	}
	// podman's exec attaches before the exec starts.
	if err := m.setupOutput(); err != nil {
		return m.fail(err.Error())
	}
	m.attachPipe.send("data", 0, "")
	// Open until the second byte, which podman writes after it read the message: a
	// non-blocking reader could see EOF ahead of a message followed at once by the close
	// (docs/protocol.md §4). Without a start pipe it stays open, as conmon keeps it.
	sent := m.attachPipe
	m.attachPipe = nil
	if m.startFD >= 0 {
		// podman writes the second byte once its attach client is connected.
		err := readStartPipe(m.startFD)
		sent.close()
		if err != nil {
			return m.fail("start-pipe read failed " + diag.Strerror(err))
		}
	}
	return m.runRuntime(nil)
}
