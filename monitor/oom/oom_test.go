package oom

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

// chanLogger forwards debug messages so tests can wait for a decision.
type chanLogger struct {
	t     testing.TB
	debug chan string
}

func (l chanLogger) Warnf(f string, a ...any) { l.t.Logf("warn: "+f, a...) }
func (l chanLogger) Debugf(f string, a ...any) {
	l.t.Logf("debug: "+f, a...)
	select {
	case l.debug <- f:
	default:
	}
}

func newLogger(t testing.TB) chanLogger { return chanLogger{t, make(chan string, 16)} }

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile swaps the file by rename, which raises no IN_MODIFY on the
// watched inode: only an explicit read can notice the new content.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	writeFile(t, path+".new", data)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func expectOOM(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no OOM reported: %s", what)
	}
}

// expectReported fails unless a report is already there.
func expectReported(t *testing.T, ch <-chan struct{}, failure string) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Fatal(failure)
	}
}

func expectNone(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("unexpected OOM report: %s", what)
	default:
	}
}

// fakeCgroupfs lays out a temporary directory like /proc and a cgroup v2
// mount (this host is cgroup v1 hybrid, so v2 logic is tested on plain files
// whose writes raise the same inotify IN_MODIFY events as cgroupfs).
func fakeCgroupfs(t *testing.T, memoryEvents string) (config, string) {
	t.Helper()
	root := t.TempDir()
	cfg := config{procRoot: root + "/proc", cgroupRoot: root + "/cgroup", v2: true}
	if err := os.MkdirAll(cfg.procRoot+"/123", 0o755); err != nil {
		t.Fatal(err)
	}
	// Hybrid layout: v1 lines come first, the v2 path is on the 0:: line.
	writeFile(t, cfg.procRoot+"/123/cgroup", "5:memory:/v1/wrong\n1:name=systemd:/x\n0::/machine.slice/ctr\n")
	cg := cfg.cgroupRoot + "/machine.slice/ctr"
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	if memoryEvents != "" {
		writeFile(t, cg+"/memory.events", memoryEvents)
	}
	writeFile(t, cg+"/cgroup.events", "populated 1\nfrozen 0\n")
	return cfg, cg
}

func events(max, oom, kill int) string {
	return "low 0\nhigh 0\nmax " + strconv.Itoa(max) + "\noom " + strconv.Itoa(oom) +
		"\noom_kill " + strconv.Itoa(kill) + "\noom_group_kill 0\n"
}

// watchConfig is prepare and Start on the layout cfg describes.
func watchConfig(pid int, onOOM func(), log diag.Logger, cfg config) (*Watcher, error) {
	w, err := prepare(pid, onOOM, log, cfg)
	if err != nil {
		return nil, err
	}
	return w, w.Start()
}

func TestV2FakeCgroupfs(t *testing.T) {
	// Earlier OOM kills in the cgroup (an exec joining it) are the baseline.
	cfg, cg := fakeCgroupfs(t, events(3, 2, 1))
	ch := make(chan struct{}, 8)
	w, err := watchConfig(123, func() { ch <- struct{}{} }, newLogger(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.events != cg+"/memory.events" {
		t.Fatalf("watching %q, want the 0:: path", w.events)
	}
	w.Final()
	expectNone(t, ch, "baseline counters")

	// A modification without a new OOM: nothing, and the watch stays.
	writeFile(t, cg+"/memory.events", events(4, 2, 1))
	w.Final()
	expectNone(t, ch, "only max changed")

	writeFile(t, cg+"/memory.events", events(4, 3, 1))
	expectOOM(t, ch, "oom 2 -> 3 through inotify")

	// oom_kill is tracked on its own.
	writeFile(t, cg+"/memory.events", events(4, 3, 2))
	expectOOM(t, ch, "oom_kill 1 -> 2")

	// populated 0 triggers a read even when memory.events raised no event.
	replaceFile(t, cg+"/memory.events", events(4, 3, 3))
	writeFile(t, cg+"/cgroup.events", "populated 0\nfrozen 0\n")
	expectOOM(t, ch, "read at populated 0")

	// The cgroup disappears: the final read keeps the last values.
	if err := os.RemoveAll(cg); err != nil {
		t.Fatal(err)
	}
	w.Final()
	expectNone(t, ch, "final read without memory.events")
	if w.last != (counters{oom: 3, oomKill: 3}) {
		t.Fatalf("last values %+v, want oom 3 oom_kill 3", w.last)
	}
	w.Close()
	w.Close()
}

// A kill between Prepare and Start (while the pid is being reported) is reported by Start.
func TestV2KillBeforeStart(t *testing.T) {
	cfg, cg := fakeCgroupfs(t, events(0, 0, 0))
	ch := make(chan struct{}, 8)
	w, err := prepare(123, func() { ch <- struct{}{} }, newLogger(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeFile(t, cg+"/memory.events", events(1, 1, 1))
	expectNone(t, ch, "not watching before Start")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	expectReported(t, ch, "Start did not report the kill counted since Prepare")
	w.Final()
	expectNone(t, ch, "the kill was reported once")
}

func TestV2FakeCgroupfsFinalRead(t *testing.T) {
	cfg, cg := fakeCgroupfs(t, events(0, 0, 0))
	n := 0
	w, err := watchConfig(123, func() { n++ }, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// No inotify event: only Final can see this change, and reports it once.
	replaceFile(t, cg+"/memory.events", events(1, 1, 1))
	w.Final()
	w.Final()
	if n != 1 {
		t.Fatalf("Final reported %d times, want 1", n)
	}
}

func TestV2FakeCgroupfsNoMemoryEvents(t *testing.T) {
	cfg, _ := fakeCgroupfs(t, "")
	log := newLogger(t)
	w, err := watchConfig(123, func() { t.Error("OOM reported without memory.events") }, log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-log.debug:
		if !strings.Contains(msg, "no OOM monitoring") {
			t.Fatalf("debug %q", msg)
		}
	default:
		t.Fatal("no debug message for a missing memory.events")
	}
	w.Final()
	w.Close()
}

func TestMissingProcess(t *testing.T) {
	cfg, _ := fakeCgroupfs(t, events(0, 0, 0))
	if _, err := watchConfig(99999999, nil, nil, cfg); err == nil {
		t.Fatal("watch of a missing pid succeeded")
	}
}

func TestPaths(t *testing.T) {
	data := []byte("12:pids:/a\n4:cpu,memory:/kube/x:y\n0::/v2/path\n")
	if p, ok := v1Path(data); !ok || p != "cpu,memory/kube/x:y" {
		t.Fatalf("v1Path = %q, %v", p, ok)
	}
	if p, ok := v2Path(data); !ok || p != "/v2/path" {
		t.Fatalf("v2Path = %q, %v", p, ok)
	}
	if _, ok := v1Path([]byte("0::/\n3:memoryx:/a\n")); ok {
		t.Fatal("v1Path matched a non-memory controller")
	}
	if _, ok := v2Path([]byte("4:memory:/a\n")); ok {
		t.Fatal("v2Path matched a v1 line")
	}
}

func TestParseEvents(t *testing.T) {
	got := parseEvents([]byte("oom 7\noom_kill 9\noom_group_kill 1"), counters{})
	if got != (counters{7, 9}) {
		t.Fatalf("got %+v", got)
	}
	// Missing or garbled keys keep the previous values.
	got = parseEvents([]byte("oom x\noom_kill\nmax 3\n"), counters{1, 2})
	if got != (counters{1, 2}) {
		t.Fatalf("got %+v", got)
	}
}

func FuzzParseEvents(f *testing.F) {
	f.Add([]byte(events(1, 2, 3)))
	f.Add([]byte("oom 18446744073709551615\n\n oom 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseEvents(data, counters{})
	})
}

// memoryCgroupV1 creates a temporary v1 memory cgroup with a 16 MiB limit.
func memoryCgroupV1(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a memory cgroup")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skip("needs a cgroup v1 host")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.oom_control"); err != nil {
		t.Skip("needs the v1 memory controller at /sys/fs/cgroup/memory")
	}
	cg := filepath.Join("/sys/fs/cgroup/memory", "conmon-go-oomtest-"+strconv.Itoa(os.Getpid())+"-"+t.Name())
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot create a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove cgroup %s: %v", cg, err)
		}
	})
	writeFile(t, cg+"/memory.limit_in_bytes", strconv.Itoa(16<<20))
	if _, err := os.Stat(cg + "/memory.memsw.limit_in_bytes"); err == nil {
		writeFile(t, cg+"/memory.memsw.limit_in_bytes", strconv.Itoa(16<<20))
	}
	return cg
}

// startInCgroup starts a shell that waits for a line on stdin, then runs cmd,
// and moves it into cg first.
func startInCgroup(t *testing.T, cg, cmd string) (*exec.Cmd, *os.File) {
	t.Helper()
	sh, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(sh, "sh", "-c", "read x; exec "+cmd)
	c.Stdin = r
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() {
		w.Close()
		c.Process.Kill()
		c.Wait()
	})
	writeFile(t, cg+"/cgroup.procs", strconv.Itoa(c.Process.Pid))
	return c, w
}

// preparedOOMKiller starts, in a fresh v1 memory cgroup, a dd that waits for a line on
// stdin and then fills a 64 MiB buffer from /dev/zero, far past the cgroup's 16 MiB
// limit, and prepares a watch of it whose reports arrive on the channel.
func preparedOOMKiller(t *testing.T) (cg string, dd *exec.Cmd, stdin *os.File, w *Watcher, reports chan struct{}) {
	cg = memoryCgroupV1(t)
	bb, _ := exec.LookPath("busybox")
	dd, stdin = startInCgroup(t, cg, bb+" dd if=/dev/zero of=/dev/null bs=64M count=1")
	reports = make(chan struct{}, 8)
	w, err := Prepare(dd.Process.Pid, func() { reports <- struct{}{} }, newLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return cg, dd, stdin, w, reports
}

func TestV1RealOOMKill(t *testing.T) {
	cg, dd, stdin, w, reports := preparedOOMKiller(t)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if w.eventControl != cg+"/cgroup.event_control" {
		t.Fatalf("watching %q", w.eventControl)
	}
	stdin.Write([]byte("\n"))
	expectOOM(t, reports, "dd past memory.limit_in_bytes")
	if err := dd.Wait(); err == nil {
		t.Fatal("dd survived its OOM")
	}
}

func TestV1RealKillBeforeStart(t *testing.T) {
	_, dd, stdin, w, reports := preparedOOMKiller(t)
	if w.oomControl == "" {
		t.Skip("this kernel's memory.oom_control has no oom_kill counter")
	}
	stdin.Write([]byte("\n"))
	if err := dd.Wait(); err == nil {
		t.Fatal("dd survived its OOM")
	}
	expectNone(t, reports, "not watching before Start")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	expectReported(t, reports, "Start did not report the kill counted since Prepare")
}

func TestV1RealRemovalIsNotOOM(t *testing.T) {
	cg := memoryCgroupV1(t)
	bb, _ := exec.LookPath("busybox")
	c, stdin := startInCgroup(t, cg, bb+" true")
	log := newLogger(t)
	w, err := Prepare(c.Process.Pid, func() { t.Error("cgroup removal reported as OOM") }, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stdin.Write([]byte("\n"))
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cg); err != nil {
		t.Fatal(err)
	}
	// Removal signals the eventfd asynchronously; wait for its verdict.
	for {
		select {
		case msg := <-log.debug:
			if strings.Contains(msg, "removed") {
				w.Final()
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("cgroup removal not seen on the eventfd")
		}
	}
}

func TestReadOOMKills(t *testing.T) {
	path := filepath.Join(t.TempDir(), "memory.oom_control")
	for content, want := range map[string]uint64{
		"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n": 3,
		"oom_kill_disable 0\nunder_oom 1\noom_kill 0\n": 0,
	} {
		os.WriteFile(path, []byte(content), 0o644)
		if n, ok := readOOMKills(path); !ok || n != want {
			t.Errorf("readOOMKills(%q) = %d, %v; want %d", content, n, ok, want)
		}
	}
	// Kernels before 4.13 have no counter: no baseline, the eventfd alone reports.
	os.WriteFile(path, []byte("oom_kill_disable 0\nunder_oom 0\n"), 0o644)
	if _, ok := readOOMKills(path); ok {
		t.Error("a counter was found in an oom_control without oom_kill")
	}
}
