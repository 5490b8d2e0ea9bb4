package direct

// Hostile container output: a huge line without a newline, a flood of 1-byte writes,
// random bytes (invalid UTF-8, NUL, escape sequences) through a terminal. The monitor's
// memory stays flat (resident set at most 1 MiB above its idle size, sampled from /proc
// during the flood), nothing is lost and every k8s-file record is valid.
//
// E2E_FLOOD_BYTES sets the size of the line without a newline (default 64M; suffixes K, M,
// G); the 1-byte flood and the terminal test use 1/64 of it. make stress runs 1G.

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// maxFloodGrowthKB bounds the growth of the monitor's anonymous memory (its buffers) during a
// flood. Resident file pages are not counted: they are the binary's, shared by every
// monitor, and an idle monitor has let go of most of them (docs/lifecycle.md §3.3).
const maxFloodGrowthKB = 1024

// floodBytes is E2E_FLOOD_BYTES, or 64 MiB.
func floodBytes(t *testing.T) int64 {
	t.Helper()
	v := os.Getenv("E2E_FLOOD_BYTES")
	if v == "" {
		return 64 << 20
	}
	shift := map[byte]int{'K': 10, 'M': 20, 'G': 30}[v[len(v)-1]]
	if shift > 0 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("E2E_FLOOD_BYTES=%q: want a positive number with an optional K, M or G", os.Getenv("E2E_FLOOD_BYTES"))
	}
	return n << shift
}

// statusKB reads a "<key> <n> kB" line of /proc/<pid>/status; false once the process is
// gone.
func statusKB(pid int, key string) (int, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	_, rest, ok := strings.Cut(string(data), key)
	if !ok {
		return 0, false
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	return n, err == nil
}

// anonKB reads RssAnon of pid; false once the process is gone.
func anonKB(pid int) (int, bool) { return statusKB(pid, "RssAnon:") }

// anonWatch samples the anonymous memory of pid every 5 ms from now on (a measurement, not a
// synchronisation) and reports the largest sample when stopped.
type anonWatch struct {
	stop chan struct{}
	wg   sync.WaitGroup
	max  int
	n    int
}

func watchAnon(pid int) *anonWatch {
	w := &anonWatch{stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb, ok := anonKB(pid); ok {
				w.max = max(w.max, kb)
				w.n++
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *anonWatch) done() (maxKB, samples int) {
	close(w.stop)
	w.wg.Wait()
	return w.max, w.n
}

// floodRun creates c in CRI-O style (extra flags added), measures the idle monitor, starts
// the container and samples the monitor's memory until the exit file appears.
func floodRun(t *testing.T, c *container, timeout time.Duration, extra ...string) {
	t.Helper()
	crioStyle.createOK(t, c, extra...)
	pid, err := readPidFile(c.conmonPid)
	if err != nil {
		t.Fatal(err)
	}
	idle, ok := anonKB(pid)
	if !ok {
		t.Fatalf("monitor %d gone before the start", pid)
	}
	w := watchAnon(pid)
	start := time.Now()
	c.start()
	got := string(e2eutil.WaitFile(t, c.exitFile(), timeout, e2eutil.NonEmpty))
	peak, samples := w.done()
	t.Logf("monitor %d: idle %d kB, peak %d kB over %d samples in %v", pid, idle, peak, samples, time.Since(start).Round(time.Millisecond))
	if got != "0" {
		t.Fatalf("exit file %q, want 0", got)
	}
	if peak > idle+maxFloodGrowthKB {
		t.Errorf("anonymous memory grew from %d kB to %d kB during the flood (at most %d kB more allowed)", idle, peak, maxFloodGrowthKB)
	}
}

// mountData writes data to a file and bind-mounts it read-only at /data in c's bundle.
func mountData(t *testing.T, c *container, data []byte) {
	t.Helper()
	src := filepath.Join(c.dir, "data")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	editConfig(t, c.bundle, func(cfg map[string]any) {
		cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{
			"destination": "/data", "type": "bind", "source": src, "options": []any{"bind", "ro"},
		})
	})
}

// randomBytes returns n random bytes, with escape sequences and invalid UTF-8 spliced in.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	seq := []byte("\x1b[2J\x1b[31mred\x1b[0m\x1b]0;title\x07\x9b6n\xff\xfe\xc3\x28\x00\r\x1bc")
	for off := 0; off+len(seq) <= n; off += n / 7 {
		copy(b[off:], seq)
	}
	return b
}

// One line of E2E_FLOOD_BYTES without a newline: P records of 16 KiB (shorter ones only
// where the output paused for the idle flush), every byte logged, flat memory.
func TestFloodNoNewline(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon writes a record per read: the shape differs
	t.Parallel()
	n := floodBytes(t)
	c := newContainer(t, bundleOpts{}, "head", "-c", strconv.FormatInt(n, 10), "/dev/zero")
	floodRun(t, c, 60*time.Second+time.Duration(n>>20)*time.Second)
	var total, short int64
	scanLog(t, c.logPath, func(r record) {
		if !r.partial || r.stream != "stdout" {
			t.Fatalf("%s record, partial=%v, in output without a newline", r.stream, r.partial)
		}
		if bytes.IndexFunc(r.content, func(c rune) bool { return c != 0 }) >= 0 {
			t.Fatalf("record at byte %d holds something else than the zeros written", total)
		}
		if len(r.content) < 16384 {
			short++
		}
		total += int64(len(r.content))
	})
	if total != n {
		t.Errorf("records hold %d bytes, want %d", total, n)
	}
	t.Logf("%d bytes in P records, %d shorter than 16 KiB", total, short)
}

// A flood of 1-byte writes of random bytes: the log holds exactly those bytes.
func TestFloodOneByteWrites(t *testing.T) {
	setup(t)
	t.Parallel()
	data := randomBytes(t, int(floodBytes(t)/64))
	c := newContainer(t, bundleOpts{}, "sh", "-c", "dd if=/data bs=1 2>/dev/null")
	mountData(t, c, data)
	floodRun(t, c, 120*time.Second)
	recs := readLog(t, c.logPath)
	if out := joined(recs, "stdout"); !bytes.Equal(out, data) {
		t.Errorf("stdout records join to %d bytes, want the %d written (first difference at %d)", len(out), len(data), firstDiff(out, data))
	}
}

// Random bytes with escape sequences through a terminal: the log holds them as the pty
// delivers them (each \n turned into \r\n), all on stdout.
func TestFloodTerminalEscapes(t *testing.T) {
	setup(t)
	t.Parallel()
	data := randomBytes(t, int(floodBytes(t)/64))
	c := newContainer(t, bundleOpts{tty: true}, "cat", "/data")
	mountData(t, c, data)
	floodRun(t, c, 120*time.Second, "-t")
	recs := readLog(t, c.logPath)
	want := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	if out := joined(recs, "stdout"); !bytes.Equal(out, want) {
		t.Errorf("records join to %d bytes, want %d (first difference at %d)", len(out), len(want), firstDiff(out, want))
	}
	if err := joined(recs, "stderr"); len(err) != 0 {
		t.Errorf("%d bytes on stderr with a terminal", len(err))
	}
}
