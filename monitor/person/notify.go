package person

import (
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// unit is the systemd service `run` may be the main process of (Type=notify, where
// NOTIFY_SOCKET is set; without it every call does nothing). It learns when the container
// runs and which process stays with it (READY=1, MAINPID), when the container is on its way
// out (STOPPING=1), and, with WatchdogSec=, that the monitor is alive (WATCHDOG=1).
type unit struct {
	stopOnce sync.Once
	mu       sync.Mutex
	ticker   *time.Ticker
	done     chan struct{}
}

func newUnit() *unit { return &unit{} }

// ready reports that the container runs, under the care of mainPID.
func (u *unit) ready(mainPID int) {
	daemon.SdNotify(false, daemon.SdNotifyReady+"\nMAINPID="+strconv.Itoa(mainPID))
}

// stopping reports, once, that the container is ending.
func (u *unit) stopping() {
	u.stopOnce.Do(func() { daemon.SdNotify(false, daemon.SdNotifyStopping) })
}

// watchdog sends WATCHDOG=1 at half the unit's watchdog interval for as long as alive
// reports the monitor running: a monitor that died leaves the container unserved, and
// systemd then restarts the unit.
func (u *unit) watchdog(alive func() bool) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done != nil {
		return
	}
	u.ticker = time.NewTicker(interval / 2)
	u.done = make(chan struct{})
	go func(t *time.Ticker, done <-chan struct{}) {
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if !alive() {
					return
				}
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}(u.ticker, u.done)
}

// stopWatchdog ends the pings.
func (u *unit) stopWatchdog() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done != nil {
		u.ticker.Stop()
		close(u.done)
		u.ticker, u.done = nil, nil
	}
}
