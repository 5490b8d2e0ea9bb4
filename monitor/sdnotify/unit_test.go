package sdnotify

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestNotifyReady(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := NotifyReady(1); sent || err != nil {
		t.Fatalf("unset NOTIFY_SOCKET: sent %v, %v", sent, err)
	}

	hostPath := filepath.Join(t.TempDir(), "notify")
	host := hostSocket(t, hostPath)
	t.Setenv("NOTIFY_SOCKET", hostPath)
	if sent, err := NotifyReady(4242); !sent || err != nil {
		t.Fatalf("sent %v, %v", sent, err)
	}
	if got := recvString(t, host); got != "READY=1\nMAINPID=4242" {
		t.Fatalf("got %q", got)
	}

	abstract := "@conmon-go-test-" + strconv.Itoa(os.Getpid())
	host2 := hostSocket(t, abstract)
	t.Setenv("NOTIFY_SOCKET", abstract)
	if _, err := NotifyReady(7); err != nil {
		t.Fatal(err)
	}
	if got := recvString(t, host2); got != "READY=1\nMAINPID=7" {
		t.Fatalf("abstract: got %q", got)
	}

	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if _, err := NotifyReady(7); err == nil {
		t.Fatal("NotifyReady to a missing socket succeeded")
	}
}

func TestWatchdog(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	if d, err := Watchdog(); d != 0 || err != nil {
		t.Errorf("without WATCHDOG_USEC: %v, %v", d, err)
	}
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d, err := Watchdog(); d != 3*time.Second || err != nil {
		t.Errorf("for this process: %v, %v, want 3s", d, err)
	}
	// After a re-exec the variables name the launcher, not this process.
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d, err := Watchdog(); d != 0 || err != nil {
		t.Errorf("for another process: %v, %v, want 0", d, err)
	}
}

func TestKeepAlive(t *testing.T) {
	hostPath := filepath.Join(t.TempDir(), "notify")
	host := hostSocket(t, hostPath)
	t.Setenv("NOTIFY_SOCKET", hostPath)
	stop, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		KeepAlive(20*time.Millisecond, stop, testLogger{t})
	}()
	for range 2 {
		if got := recvString(t, host); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	close(stop)
	<-ended

	// A unit that went away ends the pings instead of failing every half interval.
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	log := &warnCounter{}
	KeepAlive(2*time.Millisecond, nil, log)
	if log.n != 1 {
		t.Errorf("%d warnings, want 1", log.n)
	}
}

type warnCounter struct{ n int }

func (w *warnCounter) Warnf(string, ...any) { w.n++ }

func (w *warnCounter) Debugf(string, ...any) {}

func TestNotifyStopping(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := NotifyStopping(); sent || err != nil {
		t.Fatalf("unset NOTIFY_SOCKET: sent %v, %v", sent, err)
	}
	hostPath := filepath.Join(t.TempDir(), "notify")
	host := hostSocket(t, hostPath)
	t.Setenv("NOTIFY_SOCKET", hostPath)
	if sent, err := NotifyStopping(); !sent || err != nil {
		t.Fatalf("sent %v, %v", sent, err)
	}
	if got := recvString(t, host); got != "STOPPING=1" {
		t.Fatalf("got %q", got)
	}
}
