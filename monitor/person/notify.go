package person

import (
	"sync"

	"github.com/conmon-go/conmon-go/monitor/sdnotify"
)

// unit is the systemd service `run` may be the main process of (Type=notify, where
// NOTIFY_SOCKET is set; without it every call does nothing). It learns when the container
// runs and which process stays with it (READY=1, MAINPID), when the container is on its way
// out (STOPPING=1), and, with WatchdogSec=, that run still serves it (WATCHDOG=1).
type unit struct {
	stopOnce sync.Once
	mu       sync.Mutex
	stop     chan struct{} // closed to end the watchdog pings; nil when none are sent
	pinging  chan struct{} // closed once the pings ended
}

// ready reports that the container runs, under the care of mainPID.
func (u *unit) ready(mainPID int) { sdnotify.NotifyReady(mainPID) }

// stopping reports, once, that the container is ending, and ends the watchdog pings first:
// systemd stops a unit's watchdog when it leaves the running state, so a ping after
// STOPPING=1 says nothing.
func (u *unit) stopping() {
	u.stopWatchdog()
	u.stopOnce.Do(func() { sdnotify.NotifyStopping() })
}

// watchdog sends WATCHDOG=1 at half the unit's watchdog interval until stopWatchdog. run
// stops them when its session ends: the monitor's death ends it (its attach socket
// closes), and systemd then sees a unit whose pings stopped.
func (u *unit) watchdog() {
	interval, err := sdnotify.Watchdog()
	if err != nil || interval <= 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stop != nil {
		return
	}
	u.stop, u.pinging = make(chan struct{}), make(chan struct{})
	go func(stop <-chan struct{}, pinging chan<- struct{}) {
		defer close(pinging)
		sdnotify.KeepAlive(interval, stop, nil)
	}(u.stop, u.pinging)
}

// stopWatchdog ends the pings; none is sent once it returned.
func (u *unit) stopWatchdog() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stop != nil {
		close(u.stop)
		<-u.pinging
		u.stop, u.pinging = nil, nil
	}
}
