package direct

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

func TestExecStdin(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	// -i: the client's bytes reach cat's stdin; its SHUT_WR closes it, so cat ends.
	res := podmanExec(t, c, "stdin", execOpts{stdin: []byte("hello\nworld")}, "cat")
	if res.status != 0 || res.out != "hello\nworld" || res.err != "" {
		t.Errorf("exec -i cat: status %d stdout %q stderr %q, want 0 %q", res.status, res.out, res.err, "hello\nworld")
	}
}

func TestExecTTY(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	res := podmanExec(t, c, "tty", execOpts{tty: true}, "sh", "-c", "echo a; echo b >&2; exit 2")
	if res.status != 2 || res.out != "a\r\nb\r\n" || res.err != "" {
		t.Errorf("exec -t: status %d stdout %q stderr %q, want 2, a\\r\\nb\\r\\n on stdout only", res.status, res.out, res.err)
	}
}

func TestExecSync1MiB(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	const line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM" // + \n = 50 bytes
	msg, code, logPath, _ := execSyncLog(t, c, false, []string{"--log-global-size-max", "16777216"},
		"sh", "-c", "yes "+line+" | head -c 1048576")
	if n := msg.mustInt(t, "exit_code"); n != 0 || code != 0 {
		t.Errorf("result %q, monitor status %d", msg.raw, code)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// CRI-O reads the log back, joining P/F records.
	want := strings.Repeat(line+"\n", 1048576/50+1)[:1048576]
	if out := string(joined(parseLog(t, data), "stdout")); out != want {
		t.Errorf("log holds %d bytes, want %d (first difference at %d)", len(out), len(want), firstDiff([]byte(out), []byte(want)))
	}
}

// Twenty execs of true: every exec monitor ends, and nothing accumulates in the container
// (processes, the init's fds) or in its runc state directory.
func TestExecLoopLeavesNothing(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	initPid, err := readPidFile(c.pidFile)
	if err != nil {
		t.Fatal(err)
	}
	count := func(dir string) int {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	fdDir := "/proc/" + strconv.Itoa(initPid) + "/fd"
	stateDir := filepath.Join(c.root, c.id)
	fds, state := count(fdDir), count(stateDir)
	for i := range 20 {
		res := podmanExec(t, c, "s"+strconv.Itoa(i), execOpts{}, "true")
		if res.status != 0 {
			t.Fatalf("exec %d: status %d", i, res.status)
		}
		if !e2eutil.WaitPidGone(res.monitorPid, 5*time.Second) {
			t.Fatalf("exec %d: monitor %d still running after the exit file", i, res.monitorPid)
		}
	}
	if n := count(fdDir); n != fds {
		t.Errorf("container init has %d fds after 20 execs, %d before", n, fds)
	}
	if n := count(stateDir); n != state {
		t.Errorf("runc state dir has %d entries after 20 execs, %d before", n, state)
	}
	out, err := c.runc("ps", c.id)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n != 1 { // header + init
		t.Errorf("runc ps after the execs:\n%s\nwant only the init", out)
	}
}
