package direct

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// runningContainer creates and starts a container that waits until killed.
func runningContainer(t *testing.T) *container {
	t.Helper()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "echo ready; exec sleep 1000")
	_, msg := crioStyle.create(t, c)
	msg.mustInt(t, "pid")
	c.start()
	waitLog(t, c.logPath, "stdout", "ready\n", 10*time.Second)
	return c
}

func TestExecPodman(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	cases := []struct {
		script     string
		status     int
		out, errTx string
	}{
		{"echo hi; echo oops >&2", 0, "hi\n", "oops\n"},
		{"exit 1", 1, "", ""},
		{"kill -9 $$", 137, "", ""},
	}
	for i, tc := range cases {
		res := podmanExec(t, c, "session"+strconv.Itoa(i), execOpts{}, "sh", "-c", tc.script)
		if res.status != tc.status || res.out != tc.out || res.err != tc.errTx {
			t.Errorf("exec %q: status %d stdout %q stderr %q, want %d %q %q", tc.script, res.status, res.out, res.err, tc.status, tc.out, tc.errTx)
		}
	}
}

// execSync is execSyncLog as CRI-O runs it by default (a 16 MiB global log limit, -T when
// timeout > 0), with the log's records.
func execSync(t *testing.T, c *container, timeout int, crio120 bool, args ...string) (syncMsg, int, []record, time.Duration) {
	t.Helper()
	extra := []string{"--log-global-size-max", "16777216"}
	if timeout > 0 {
		extra = append(extra, "-T", strconv.Itoa(timeout))
	}
	msg, code, logPath, elapsed := execSyncLog(t, c, crio120, extra, args...)
	var recs []record
	if data, err := os.ReadFile(logPath); err == nil {
		recs = parseLog(t, data)
	}
	return msg, code, recs, elapsed
}

func TestExecSync(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	for _, crio120 := range []bool{true, false} {
		msg, code, recs, _ := execSync(t, c, 0, crio120, "sh", "-c", "echo out; echo err >&2; exit 5")
		if n := msg.mustInt(t, "exit_code"); n != 5 || msg.message() != "" {
			t.Errorf("crio120=%v: result %q, want {\"exit_code\": 5}", crio120, msg.raw)
		}
		if code != 5 {
			t.Errorf("crio120=%v: --sync monitor exit status %d, want 5", crio120, code)
		}
		if o, e := string(joined(recs, "stdout")), string(joined(recs, "stderr")); o != "out\n" || e != "err\n" {
			t.Errorf("crio120=%v: log stdout %q stderr %q", crio120, o, e)
		}
	}
}

func TestExecSyncTimeout(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	msg, code, _, elapsed := execSync(t, c, 2, false, "sh", "-c", "sleep 100; sh -c 'sleep 100'")
	if n := msg.mustInt(t, "exit_code"); n != -1 || msg.message() != "command timed out" {
		t.Errorf("result %q, want {\"exit_code\": -1, \"message\": \"command timed out\"}", msg.raw)
	}
	if code != 255 {
		t.Errorf("monitor exit status %d, want 255", code)
	}
	if elapsed > 3500*time.Millisecond || elapsed < 2*time.Second {
		t.Errorf("ExecSync with -T 2 took %v, want 2 s .. 3.5 s", elapsed)
	}
	// Everything but the container's init must be gone (zombies count as gone).
	out, err := c.runc("ps", "--format", "json", c.id)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		t.Fatalf("runc ps: %v: %s", err, out)
	}
	initPid, err := readPidFile(c.pidFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if pid != initPid && !e2eutil.WaitPidGone(pid, time.Second) {
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			t.Errorf("process %d (%q) of the timed-out exec still alive", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

func TestExecMissingBinary(t *testing.T) {
	setup(t)
	requireConmonGo(t) // 2.2.x sends nothing for a failed exec; main and conmon-go send -1 + message
	t.Parallel()
	c := runningContainer(t)
	msg, code, _, _ := execSync(t, c, 0, false, "/no/such/binary")
	if n := msg.mustInt(t, "exit_code"); n != -1 || !strings.Contains(msg.message(), "no such file or directory") {
		t.Errorf("result %q, want exit_code -1 with runc's error", msg.raw)
	}
	if code != 1 {
		t.Errorf("monitor exit status %d, want 1", code)
	}
}

func TestExecStoppedContainer(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "true")
	if got := runToExit(t, c, "", 10*time.Second); got != "0" {
		t.Fatalf("exit file %q", got)
	}
	msg, _, _, _ := execSync(t, c, 0, false, "true")
	if n := msg.mustInt(t, "exit_code"); n != -1 || msg.message() == "" {
		t.Errorf("result %q, want exit_code -1 and runc's error text", msg.raw)
	}
}
