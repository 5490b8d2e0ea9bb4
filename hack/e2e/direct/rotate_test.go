package direct

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"

	"golang.org/x/sys/unix"
)

// tenLines prints line01..line10: 52-byte records, so a 200-byte limit holds three.
const tenLines = `for i in 01 02 03 04 05 06 07 08 09 10; do echo line$i; done`

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		b.WriteString("line" + strconv.Itoa(i/10) + strconv.Itoa(i%10) + "\n")
	}
	return b.String()
}

func logText(t *testing.T, path string) string {
	t.Helper()
	return string(joined(readLog(t, path), "stdout"))
}

func TestLogSizeMaxTruncates(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", tenLines)
	if got := runToExit(t, c, "", 10*time.Second, "--log-size-max", "200"); got != "0" {
		t.Fatalf("exit file %q", got)
	}
	// Truncated before records 4, 7 and 10 (docs/logging.md §5).
	if s := logText(t, c.logPath); s != "line10\n" {
		t.Errorf("log %q, want only line10", s)
	}
	if _, err := os.Stat(c.logPath + ".1"); !os.IsNotExist(err) {
		t.Errorf("backup %s.1 without --log-rotate: %v", c.logPath, err)
	}
}

func TestLogRotateMaxFiles(t *testing.T) {
	setup(t)
	requireConmonGo(t) // --log-rotate is 2.2.0+
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", tenLines)
	if got := runToExit(t, c, "", 10*time.Second, "--log-size-max", "200", "--log-rotate", "--log-max-files", "2"); got != "0" {
		t.Fatalf("exit file %q", got)
	}
	for path, want := range map[string]string{c.logPath: lines(10, 10), c.logPath + ".1": lines(7, 9), c.logPath + ".2": lines(4, 6)} {
		if s := logText(t, path); s != want {
			t.Errorf("%s holds %q, want %q", filepath.Base(path), s, want)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(c.logPath))
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filepath.Base(c.logPath)) {
			logs = append(logs, e.Name())
		}
	}
	if len(logs) != 3 {
		t.Errorf("log files %v: want the log and exactly 2 backups", logs)
	}
}

// CRI-O's ExecSync (the legacy form without a start pipe) passes a 16 MiB global limit;
// a small one shows the cap: records stop once the counter reached it (docs/logging.md §7).
func TestLogGlobalSizeMaxExecSync(t *testing.T) {
	setup(t)
	t.Parallel()
	c := runningContainer(t)
	msg, code, logPath, _ := execSyncLog(t, c, true, []string{"--log-global-size-max", "1000"}, "seq", "1", "1000")
	if n := msg.mustInt(t, "exit_code"); n != 0 || code != 0 {
		t.Errorf("result %q, monitor status %d: want exit_code 0", msg.raw, code)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// 1..9 cost 47 bytes, 10.. 48: after 22 records (1047 bytes) the counter is >= 1000.
	want := ""
	for i := 1; i <= 22; i++ {
		want += strconv.Itoa(i) + "\n"
	}
	if s := string(joined(parseLog(t, data), "stdout")); s != want || len(data) != 1047 {
		t.Errorf("log of %d bytes holds %q, want 1047 bytes holding 1..22", len(data), s)
	}
}

// kubelet's ReopenContainerLog: rename the log, write "2 0 0" to ctl, then wait (as CRI-O
// does with fsnotify) for a Create on the log path, i.e. IN_CREATE or IN_MOVED_TO.
func TestLogReopenCreateEvent(t *testing.T) {
	setup(t)
	for _, rotate := range []bool{false, true} {
		t.Run("rotate="+strconv.FormatBool(rotate), func(t *testing.T) {
			var extra []string
			if rotate {
				requireConmonGo(t) // 2.2.x rotation finds no file to rotate and creates none
				extra = []string{"--log-rotate"}
			}
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "sh", "-c", `while read l; do echo "$l"; done`)
			crioStyle.createOK(t, c, append(extra, "-i")...)
			client := dialCRIO(t, c.sockDir+"/"+c.id+"/attach")
			c.start()
			if _, err := client.Write([]byte("before\n")); err != nil {
				t.Fatal(err)
			}
			waitLog(t, c.logPath, "stdout", "before\n", 10*time.Second)
			if err := os.Rename(c.logPath, c.logPath+".old"); err != nil {
				t.Fatal(err)
			}
			w := watchDirs(t, filepath.Dir(c.logPath))
			writeCtl(t, c.bundle, "2 0 0\n")
			deadline := time.Now().Add(10 * time.Second)
			for created := false; !created; {
				evs, err := w.next(deadline)
				if err != nil {
					t.Fatalf("no Create event for %s after reopen: %v", c.logPath, err)
				}
				for _, ev := range evs {
					created = created || ev.name == filepath.Base(c.logPath) && ev.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0
				}
			}
			if _, err := client.Write([]byte("after\n")); err != nil {
				t.Fatal(err)
			}
			waitLog(t, c.logPath, "stdout", "after\n", 10*time.Second)
			if err := client.CloseWrite(); err != nil { // -i: stdin closes, the loop ends
				t.Fatal(err)
			}
			if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
				t.Errorf("exit file %q", got)
			}
			if s := logText(t, c.logPath); s != "after\n" {
				t.Errorf("new log holds %q, want after\\n", s)
			}
			if s := logText(t, c.logPath+".old"); s != "before\n" {
				t.Errorf("renamed log holds %q, want before\\n", s)
			}
		})
	}
}
