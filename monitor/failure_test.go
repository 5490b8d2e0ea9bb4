package monitor

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// killChild signals only children: a pid that names another process (a stale pid file)
// is left alone.
func TestKillChildOnlyChildren(t *testing.T) {
	other := exec.Command("sleep", "10")
	// Started by a shell that exits: sleep is re-parented away from this process.
	sh := exec.Command("sh", "-c", "sleep 10 >/dev/null 2>&1 & echo $!")
	out, err := sh.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("pid %q: %v", out, err)
	}
	defer unix.Kill(pid, unix.SIGKILL)
	if killChild(pid) {
		t.Errorf("killChild signalled %d, which is not a child", pid)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	if !killChild(other.Process.Pid) {
		t.Fatal("killChild did not signal its child")
	}
	done := make(chan error, 1)
	go func() { done <- other.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the child was not killed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the child was not killed")
	}
}
