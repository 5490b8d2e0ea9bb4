package journald

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/journald/journaldtest"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

type logRec struct {
	mu            sync.Mutex
	warns, debugs []string
}

func (l *logRec) Warnf(f string, a ...any) {
	l.mu.Lock()
	l.warns = append(l.warns, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}

func (l *logRec) Debugf(f string, a ...any) {
	l.mu.Lock()
	l.debugs = append(l.debugs, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}

func (l *logRec) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.warns)
}

// newCID returns a container id no other test run uses, so journalctl finds only ours.
func newCID() string {
	id := strconv.FormatInt(time.Now().UnixNano(), 16)
	return id + strings.Repeat("c", 64-len(id))
}

// setup starts a Writer on the real journald for a fresh container id. Call it once per
// test: a second journaldtest.Ensure in one test would wait for the first one's lock.
func setup(t *testing.T, cfg Config) (*Writer, string) {
	t.Helper()
	t.Cleanup(journaldtest.Ensure(t))
	cfg.CID = newCID()
	if cfg.Log == nil {
		cfg.Log = &logRec{}
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, cfg.CID
}

// read closes w, so every entry was handed to journald, and returns exactly the want
// entries of cid that journald stored.
func read(t *testing.T, w *Writer, cid string, want int) []map[string]string {
	t.Helper()
	w.Close()
	if n := w.drops.count(); n != 0 {
		t.Fatalf("%d entries dropped", n)
	}
	got := journaldtest.Entries(t, cid, want)
	if len(got) != want {
		t.Fatalf("journal holds %d entries for %s, want %d: %v", len(got), cid, want, got)
	}
	return got
}

// names lists the entry's fields sent by the client, sorted (journald adds the trusted
// ones starting with '_' and journalctl its own starting with "__"; neither keeps the
// order a client sent).
func names(e map[string]string) string {
	var n []string
	for k := range e {
		if !strings.HasPrefix(k, "_") {
			n = append(n, k)
		}
	}
	slices.Sort(n)
	return strings.Join(n, ",")
}

func sorted(list string) string {
	n := strings.Split(list, ",")
	slices.Sort(n)
	return strings.Join(n, ",")
}

func check(t *testing.T, e map[string]string, fields string, want map[string]string) {
	t.Helper()
	if got, w := names(e), sorted(fields); got != w {
		t.Errorf("fields %s, want %s", got, w)
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %q, want %q", k, e[k], v)
		}
	}
}

const (
	plainFields   = "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER"
	partialFields = plainFields + ",CONTAINER_PARTIAL_MESSAGE"
)

func TestFields(t *testing.T) {
	w, cid := setup(t, Config{Name: "web", Tag: "mytag", Labels: []string{"A=1", "B_2=x=y", "_HIDDEN=1", "CONTAINER_ID=label"}})
	now := time.Now()
	w.Write(ptyio.Stdout, []byte("jout1\n"), now)
	w.Write(ptyio.Stderr, []byte("jerr1\n"), now)
	got := read(t, w, cid, 2)
	all := plainFields + ",CONTAINER_TAG,CONTAINER_NAME,A,B_2"
	check(t, got[0], all, map[string]string{
		"MESSAGE": "jout1\n", "CONTAINER_ID_FULL": cid, "PRIORITY": "6",
		"CONTAINER_ID": cid[:12], "CONTAINER_TAG": "mytag", "CONTAINER_NAME": "web",
		"SYSLOG_IDENTIFIER": "mytag", "A": "1", "B_2": "x=y",
	})
	check(t, got[1], all, map[string]string{"MESSAGE": "jerr1\n", "PRIORITY": "3"})
}

func TestSyslogIdentifierFallback(t *testing.T) {
	t.Run("name", func(t *testing.T) {
		w, cid := setup(t, Config{Name: "web"})
		w.Write(ptyio.Stdout, []byte("x\n"), time.Now())
		check(t, read(t, w, cid, 1)[0], plainFields+",CONTAINER_NAME", map[string]string{"SYSLOG_IDENTIFIER": "web"})
	})
	t.Run("id", func(t *testing.T) {
		w, cid := setup(t, Config{})
		w.Write(ptyio.Stdout, []byte("x\n"), time.Now())
		check(t, read(t, w, cid, 1)[0], plainFields, map[string]string{"SYSLOG_IDENTIFIER": cid[:12]})
	})

	if _, err := New(Config{CID: "0123456789ab"}); err == nil || err.Error() != "Container ID must be longer than 12 characters" {
		t.Fatalf("12-byte CID: %v", err)
	}
}

func TestPriorityPrefix(t *testing.T) {
	w, cid := setup(t, Config{})
	now := time.Now()
	// Every line of one read is examined on its own.
	w.Write(ptyio.Stdout, []byte("<3>err\n<8>eight\n<a>x\n<1\na<2>mid\n<7>\n<0>zero\n"), now)
	// A prefix arriving while partial data is pending is plain text.
	w.Write(ptyio.Stderr, []byte("<4>abc"), now)
	w.Write(ptyio.Stderr, []byte("<2>def\n"), now)
	// The continuation of a line cut at MaxLine is no line start: it keeps the line's
	// priority and its text.
	long := "<5>" + strings.Repeat("x", linebuf.MaxLine-3)
	w.Write(ptyio.Stdout, []byte(long+"<1>tail\n"), now)
	// The next line starts afresh.
	w.Write(ptyio.Stdout, []byte("plain\n"), now)

	got := read(t, w, cid, 11)
	for i, c := range []struct{ msg, prio string }{
		{"err\n", "3"}, {"<8>eight\n", "6"}, {"<a>x\n", "6"}, {"<1\n", "6"},
		{"a<2>mid\n", "6"}, {"\n", "7"}, {"zero\n", "0"},
	} {
		if m := got[i]["MESSAGE"]; m != c.msg {
			t.Errorf("MESSAGE %q, want %q", m, c.msg)
		}
		if p := got[i]["PRIORITY"]; p != c.prio {
			t.Errorf("%q: PRIORITY %s, want %s", c.msg, p, c.prio)
		}
	}
	check(t, got[7], plainFields, map[string]string{"MESSAGE": "abc<2>def\n", "PRIORITY": "4"})
	if m := got[8]["MESSAGE"]; m != long[3:] {
		t.Errorf("first part %d bytes", len(m))
	}
	check(t, got[8], partialFields, map[string]string{"PRIORITY": "5", "CONTAINER_PARTIAL_MESSAGE": "true"})
	check(t, got[9], plainFields, map[string]string{"MESSAGE": "<1>tail\n", "PRIORITY": "5"})
	check(t, got[10], plainFields, map[string]string{"MESSAGE": "plain\n", "PRIORITY": "6"})
}

func TestPartialEntries(t *testing.T) {
	w, cid := setup(t, Config{Labels: []string{"L=v"}})
	now := time.Now()
	// Pieces of one line are joined; Flush sends them as one partial entry.
	w.Write(ptyio.Stdout, []byte("<5>par"), now)
	w.Write(ptyio.Stdout, []byte("tial"), now)
	w.Flush()
	w.Flush() // nothing pending: no empty entry
	// A prompt without newline goes out after the idle time.
	start := time.Now()
	w.Write(ptyio.Stderr, []byte("password: "), start)
	journaldtest.Entries(t, cid, 2) // before Close would flush it
	got := read(t, w, cid, 2)
	check(t, got[0], partialFields+",L", map[string]string{"MESSAGE": "partial", "PRIORITY": "5", "CONTAINER_PARTIAL_MESSAGE": "true", "L": "v"})
	check(t, got[1], partialFields+",L", map[string]string{"MESSAGE": "password: ", "PRIORITY": "3"})
	us, _ := strconv.ParseInt(got[1]["__REALTIME_TIMESTAMP"], 10, 64)
	if d := time.UnixMicro(us).Sub(start); d < linebuf.Idle {
		t.Errorf("idle partial entry received %v after the write, want >= %v", d, linebuf.Idle)
	}
}

func TestNoPartialFlag(t *testing.T) {
	w, cid := setup(t, Config{NoPartialFlag: true})
	w.Write(ptyio.Stdout, []byte("abc"), time.Now())
	check(t, read(t, w, cid, 1)[0], plainFields, map[string]string{"MESSAGE": "abc"})
}

// TestLargeEntry sends entries larger than any datagram: journal.Send then passes them in
// a file (/dev/shm) with SCM_RIGHTS, and journald must store them whole.
func TestLargeEntry(t *testing.T) {
	// A datagram cannot exceed the sender's socket buffer, wmem_default for the client
	// socket of journal.Send.
	data, err := os.ReadFile("/proc/sys/net/core/wmem_default")
	if err != nil {
		t.Fatal(err)
	}
	sndbuf, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("L", sndbuf)
	w, cid := setup(t, Config{Labels: []string{"BIG=" + big}})
	line := strings.Repeat("m", linebuf.MaxLine-1) + "\n"
	w.Write(ptyio.Stdout, []byte(line), time.Now())
	w.Write(ptyio.Stderr, []byte("small\n"), time.Now())
	got := read(t, w, cid, 2)
	if got[0]["MESSAGE"] != line || got[0]["BIG"] != big || got[0]["PRIORITY"] != "6" {
		t.Errorf("large entry: MESSAGE of %d bytes, BIG of %d bytes, PRIORITY %q", len(got[0]["MESSAGE"]), len(got[0]["BIG"]), got[0]["PRIORITY"])
	}
	if got[1]["MESSAGE"] != "small\n" || got[1]["BIG"] != big {
		t.Errorf("second entry: MESSAGE %q, BIG of %d bytes", got[1]["MESSAGE"], len(got[1]["BIG"]))
	}
}

// TestStoppedJournald stops journald while lines are written: no Write waits longer than
// stallTimeout (plus scheduling slack), what does not fit is dropped, counted and warned
// about, Flush does not hang nor burn CPU, and once journald runs again the queued and
// later entries arrive.
func TestStoppedJournald(t *testing.T) {
	log := &logRec{}
	w, cid := setup(t, Config{Log: log})
	w.Write(ptyio.Stdout, []byte("before\n"), time.Now())
	w.Flush()

	const writes, perWrite = 100, 50 // far more entries than the queue and journald's socket hold
	chunk := []byte(strings.Repeat("stalled line\n", perWrite))
	resume := journaldtest.Pause(t, 5*time.Second)
	var worst time.Duration
	start := time.Now()
	for range writes {
		t0 := time.Now()
		w.Write(ptyio.Stdout, chunk, t0)
		worst = max(worst, time.Since(t0))
	}
	// Flush waits for journald while the sender waits for room in journald's queue:
	// neither may spin meanwhile.
	t0, cpu0 := time.Now(), processCPU(t)
	w.Flush()
	flushed, cpu := time.Since(t0), processCPU(t)-cpu0
	total := time.Since(start)
	dropped := w.drops.count()
	select { // a token left from before the pause
	case <-w.q.room:
	default:
	}
	resume()
	select {
	case <-w.q.room:
	case <-time.After(5 * time.Second):
		t.Fatal("the sender did not progress within 5 s of journald's resumption")
	}

	const slack = 400 * time.Millisecond // a loaded 2-core machine
	if worst > stallTimeout+slack {
		t.Errorf("a Write took %v, want <= %v", worst, stallTimeout)
	}
	if flushed > flushTimeout+slack {
		t.Errorf("Flush took %v with journald stopped, want <= %v", flushed, flushTimeout)
	}
	if cpu > flushed/10 {
		t.Errorf("the process used %v of CPU during a Flush of %v with journald stopped", cpu, flushed)
	}
	// Room for the queue, journald's socket queue (net.unix.max_dgram_qlen, 512 where
	// systemd sets it) and the entry being sent.
	if least := writes*perWrite - queueEntries - 512 - 1; dropped < uint64(least) {
		t.Errorf("%d of %d entries dropped, want at least %d", dropped, writes*perWrite, least)
	}
	t.Logf("journald stopped for %v: slowest Write %v, Flush %v using %v of CPU, %d entries dropped", total, worst, flushed, cpu, dropped)

	w.Flush() // the sender empties the queue
	w.Write(ptyio.Stdout, []byte("after1\nafter2\n"), time.Now())
	written := 1 + writes*perWrite + 2
	got := journaldtest.Entries(t, cid, written-int(dropped))
	w.Close()
	if n := w.drops.count(); n != dropped {
		t.Errorf("%d more entries dropped after journald came back", n-dropped)
	}
	if len(got) != written-int(dropped) {
		t.Fatalf("journal holds %d entries, want %d written - %d dropped", len(got), written, dropped)
	}
	if got[0]["MESSAGE"] != "before\n" || got[len(got)-2]["MESSAGE"] != "after1\n" || got[len(got)-1]["MESSAGE"] != "after2\n" {
		t.Errorf("first entry %q, last two %q %q", got[0]["MESSAGE"], got[len(got)-2]["MESSAGE"], got[len(got)-1]["MESSAGE"])
	}
	// A warning when the drops began; another one at Close only if drops followed it.
	warns := log.warnings()
	want := fmt.Sprintf("journald: dropped %d log entries so far: %v", dropped, errStalled)
	if len(warns) == 0 || len(warns) > 2 || !strings.HasSuffix(warns[0], errStalled.Error()) || warns[len(warns)-1] != want {
		t.Errorf("warnings %q, want one or two, the last %q", warns, want)
	}
}

// inPrivateMounts reports whether the test runs in the private mount namespace it needs;
// if not, it runs the test again in one (as a child of this test binary) and reports false.
func inPrivateMounts(t *testing.T) bool {
	t.Helper()
	const child = "JOURNALD_TEST_CHILD"
	if os.Getenv(child) == t.Name() {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), child+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	return false
}

// TestJournaldAbsent runs in a mount namespace where /run/systemd/journal is empty: New
// succeeds, entries are dropped without waiting, counted and warned about, as when the
// host has no journald.
func TestJournaldAbsent(t *testing.T) {
	if !inPrivateMounts(t) {
		return
	}
	if _, err := os.Stat("/run/systemd/journal"); err == nil {
		if err := unix.Mount("tmpfs", "/run/systemd/journal", "tmpfs", 0, ""); err != nil {
			t.Fatalf("hide journald: %v", err)
		}
	}
	log := &logRec{}
	w, err := New(Config{CID: newCID(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(log.debugs) != 1 || log.debugs[0] != "journald not reachable yet: connect /run/systemd/journal/socket: no such file or directory" {
		t.Errorf("debug messages %q", log.debugs)
	}
	start := time.Now()
	w.Write(ptyio.Stdout, []byte("one\ntwo\n"), start)
	w.Write(ptyio.Stderr, []byte("three\n"), start)
	w.Close()
	if d := time.Since(start); d > stallTimeout {
		t.Errorf("writing and closing took %v", d)
	}
	if n := w.drops.count(); n != 3 {
		t.Errorf("%d entries dropped, want 3", n)
	}
	warns := log.warnings()
	want := "journald: dropped 3 log entries so far: send to /run/systemd/journal/socket: no such file or directory"
	if len(warns) == 0 || warns[len(warns)-1] != want {
		t.Errorf("warnings %q, want the last one %q", warns, want)
	}
}

func TestCloseIdempotent(t *testing.T) {
	w, cid := setup(t, Config{})
	w.Write(ptyio.Stdout, []byte("pending"), time.Now())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	<-w.senderDone // the sender has stopped: nothing can follow
	w.Write(ptyio.Stdout, []byte("after\n"), time.Now())
	w.Flush()
	if w.Reopen(); w.Sync() != nil {
		t.Fatal("Sync")
	}
	if m := read(t, w, cid, 1)[0]["MESSAGE"]; m != "pending" {
		t.Fatalf("Close did not send the pending line: %q", m)
	}
}

// TestNoAllocsPerLine: the output path copies records into the queue without allocating.
// The sender starts afterwards, so that journal.Send's allocations are not counted.
func TestNoAllocsPerLine(t *testing.T) {
	t.Cleanup(journaldtest.Ensure(t))
	cid := newCID()
	w, err := newWriter(Config{CID: cid, Name: "web", Labels: []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	full := []byte("a complete line of container output\n")
	part1, part2 := []byte("<4>first half "), []byte("second half\n")
	const runs = queueEntries/2 - 1 // two entries each, and a warm-up run: the queue holds them all
	allocs := testing.AllocsPerRun(runs, func() {
		w.Write(ptyio.Stdout, full, now)
		w.Write(ptyio.Stderr, part1, now)
		w.Write(ptyio.Stderr, part2, now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
	go w.send()
	got := read(t, w, cid, 2*(runs+1)) // AllocsPerRun adds a warm-up run
	if m, p := got[1]["MESSAGE"], got[1]["PRIORITY"]; m != "first half second half\n" || p != "4" {
		t.Errorf("second entry %q priority %s", m, p)
	}
}

// processCPU is the CPU time this process used so far, every thread, no children (a
// journald started by journaldtest is one).
func processCPU(b testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSend measures the cost per entry of the whole path, as the monitor pays it: the
// queue, journal.Send with the container's fields and the waits for the real journald.
// cpu-ns/op is this process's CPU time (user and system) per entry.
func BenchmarkSend(b *testing.B) {
	b.Cleanup(journaldtest.Ensure(b))
	w, err := newWriter(Config{CID: newCID(), Name: "bench", Tag: "tag", Labels: []string{"A=1"}})
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 70) + "\n")
	go w.send()
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	cpu := processCPU(b)
	for b.Loop() {
		w.Write(ptyio.Stdout, line, time.Time{})
	}
	w.Close()
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
	if n := w.drops.count(); n != 0 {
		b.Fatalf("%d entries dropped", n)
	}
}

// TestClosedWhileJournaldStuck runs in a mount namespace whose journald socket is never
// read: once the driver is closed, its sender stops instead of retrying a full socket
// without pause.
func TestClosedWhileJournaldStuck(t *testing.T) {
	if !inPrivateMounts(t) {
		return
	}
	if err := os.MkdirAll("/run/systemd/journal", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", "/run/systemd/journal", "tmpfs", 0, ""); err != nil {
		t.Fatalf("hide journald: %v", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: Socket}); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{CID: newCID(), Log: &logRec{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		w.Write(ptyio.Stdout, []byte(fmt.Sprintf("line %d\n", i)), time.Now())
	}
	w.Close()
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	time.Sleep(300 * time.Millisecond) // the interval whose CPU time is measured
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	if cpu > 50*time.Millisecond {
		t.Fatalf("%v of CPU in 300 ms after Close", cpu)
	}
}
