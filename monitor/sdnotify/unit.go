package sdnotify

import (
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

// NotifyReady tells the systemd unit named by NOTIFY_SOCKET (a path or @abstract name)
// that the container runs and that the monitor is the unit's main process. sent is false
// when the variable is unset. It waits without bound while the unit's socket is full.
func NotifyReady(mainPID int) (sent bool, err error) {
	return daemon.SdNotify(false, daemon.SdNotifyReady+"\nMAINPID="+strconv.Itoa(mainPID))
}

// NotifyStopping tells the systemd unit named by NOTIFY_SOCKET that its service is ending.
// sent is false when the variable is unset.
func NotifyStopping() (sent bool, err error) {
	return daemon.SdNotify(false, daemon.SdNotifyStopping)
}

// Watchdog returns how often the unit wants WATCHDOG=1 from this process (WatchdogSec=),
// or 0 when it does not.
func Watchdog() (time.Duration, error) {
	return daemon.SdWatchdogEnabled(false)
}

// KeepAlive sends WATCHDOG=1 to the unit every half interval, as systemd recommends, until
// stop is closed. It gives up after the first failed ping, with a warning.
func KeepAlive(interval time.Duration, stop <-chan struct{}, log diag.Logger) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
			diag.OrDiscard(log).Warnf("sd_notify watchdog pings stopped: %v", err)
			return
		}
	}
}
