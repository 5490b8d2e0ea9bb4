package k8sfile

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

type testLog struct {
	mu    sync.Mutex
	warns []string
}

func (l *testLog) Warnf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.warns = append(l.warns, fmt.Sprintf(format, args...))
}

func (l *testLog) Debugf(string, ...any) {}

func (l *testLog) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.warns {
		if strings.Contains(w, sub) {
			n++
		}
	}
	return n
}

func open(t testing.TB, cfg Config) *Writer {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "ctr.log")
	}
	w, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// record builds the expected bytes of one record.
func record(now time.Time, s ptyio.Stream, partial bool, content string) string {
	name, tag, end := "stdout", "F", ""
	if s == ptyio.Stderr {
		name = "stderr"
	}
	if partial {
		tag, end = "P", "\n"
	}
	return now.Local().Format(tsLayout) + " " + name + " " + tag + " " + content + end
}

type parsed struct {
	stream  string
	partial bool
	content string
}

// parse splits a log into records, checking the prefix of each, and returns them.
func parse(t testing.TB, log string) []parsed {
	t.Helper()
	var out []parsed
	for len(log) > 0 {
		i := strings.IndexByte(log, '\n')
		if i < 0 {
			t.Fatalf("unterminated record %q", log)
		}
		r := log[:i+1]
		log = log[i+1:]
		if len(r) < 46 || r[35] != ' ' || r[42] != ' ' || r[44] != ' ' {
			t.Fatalf("malformed record %q", r)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000000Z07:00", r[:35]); err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		p := parsed{stream: r[36:42], partial: r[43] == 'P', content: r[45:]}
		if p.partial {
			p.content = p.content[:len(p.content)-1]
		} else if r[43] != 'F' {
			t.Fatalf("bad tag in %q", r)
		}
		out = append(out, p)
	}
	return out
}

func joined(recs []parsed) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.content)
	}
	return b.String()
}

// waitFor polls the file until it has want, for at most 5 s.
func waitFor(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for read(t, path) != want {
		if time.Now().After(deadline) {
			t.Fatalf("log is %q, want %q", read(t, path), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func setLocal(t *testing.T, loc *time.Location) {
	old := time.Local
	time.Local = loc
	t.Cleanup(func() { time.Local = old })
}

// The docs/logging.md §2 example; the idle flush stands in for conmon's per-read P.
func TestSpecExample(t *testing.T) {
	setLocal(t, time.UTC)
	w := open(t, Config{})
	at := func(s, ns int) time.Time { return time.Date(2026, 11, 27, 12, 38, s, ns, time.UTC) }
	w.Write(ptyio.Stdout, []byte("out1\npartial"), at(19, 750087082))
	want := "2026-11-27T12:38:19.750087082+00:00 stdout F out1\n" +
		"2026-11-27T12:38:19.750087082+00:00 stdout P partial\n"
	waitFor(t, w.cfg.Path, want)
	w.Write(ptyio.Stderr, []byte("err1\n"), at(19, 750146141))
	w.Write(ptyio.Stdout, []byte("\n"), at(20, 53594664))
	w.Flush()
	want += "2026-11-27T12:38:19.750146141+00:00 stderr F err1\n" +
		"2026-11-27T12:38:20.053594664+00:00 stdout F \n"
	if got := read(t, w.cfg.Path); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTimestampOffsetAndTTY(t *testing.T) {
	for _, c := range []struct {
		off  int
		want string
	}{{5*3600 + 30*60 + 15, "2026-01-02T03:04:05.000000006+05:30"}, {-3 * 3600, "2026-01-02T03:04:05.000000006-03:00"}} {
		loc := time.FixedZone("x", c.off)
		setLocal(t, loc)
		w := open(t, Config{})
		w.Write(ptyio.Stdout, []byte("out1\r\n"), time.Date(2026, 1, 2, 3, 4, 5, 6, loc).UTC())
		if got, want := read(t, w.cfg.Path), c.want+" stdout F out1\r\n"; got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
}

// Newline-aligned reads give what conmon 2.2.x writes: one F per line, one timestamp per read.
func TestAlignedLikeConmon(t *testing.T) {
	w := open(t, Config{})
	rng := rand.New(rand.NewSource(2))
	var want strings.Builder
	base := time.Now()
	for i := 0; i < 200; i++ {
		s := ptyio.Stream(2 + rng.Intn(2))
		now := base.Add(time.Duration(i) * time.Microsecond)
		var chunk []byte
		for n := 1 + rng.Intn(5); n > 0; n-- {
			chunk = append(chunk, strings.Repeat(string(rune('a'+rng.Intn(26))), rng.Intn(8000))+"\n"...)
		}
		w.Write(s, chunk, now)
		for _, line := range strings.SplitAfter(string(chunk), "\n") {
			if line != "" {
				want.WriteString(record(now, s, false, line))
			}
		}
	}
	w.Flush()
	if read(t, w.cfg.Path) != want.String() {
		t.Fatal("aligned output differs from conmon's")
	}
}

func writeChunks(w *Writer, s ptyio.Stream, in []byte, size func() int) {
	for len(in) > 0 {
		n := min(size(), len(in))
		w.Write(s, in[:n], time.Now())
		in = in[n:]
	}
}

func TestLongLines(t *testing.T) {
	ten := append(bytes.Repeat([]byte("x"), 10*1024-1), '\n')
	twenty := append(bytes.Repeat([]byte("y"), 20*1024-1), '\n')
	mega := append(bytes.Repeat([]byte("z"), 1<<20), '\n')
	for _, c := range []struct {
		name  string
		in    []byte
		chunk int
		tags  string
	}{
		{"10KiB in 10 writes", ten, 1024, "F"},
		{"20KiB", twenty, 4096, "PF"},
		{"1MiB", mega, 64 << 10, strings.Repeat("P", 64) + "F"},
	} {
		w := open(t, Config{})
		writeChunks(w, ptyio.Stdout, c.in, func() int { return c.chunk })
		recs := parse(t, read(t, w.cfg.Path))
		tags := ""
		for _, r := range recs {
			tags += map[bool]string{true: "P", false: "F"}[r.partial]
			if r.partial && len(r.content) != linebuf.MaxLine {
				t.Fatalf("%s: P record of %d bytes", c.name, len(r.content))
			}
		}
		if tags != c.tags || joined(recs) != string(c.in) {
			t.Fatalf("%s: records %s, content equal %v", c.name, tags, joined(recs) == string(c.in))
		}
	}
}

func TestBinaryReassembles(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	in := make([]byte, 200000)
	rng.Read(in)
	for i := range in {
		if rng.Intn(3000) == 0 {
			in[i] = '\n'
		}
	}
	copy(in[10:], "\xff\xfe\xc3\x28\x00\r")
	w := open(t, Config{})
	writeChunks(w, ptyio.Stderr, in, func() int { return 1 + rng.Intn(9000) })
	w.Flush()
	recs := parse(t, read(t, w.cfg.Path))
	if joined(recs) != string(in) {
		t.Fatal("P..F join differs from the input")
	}
	for _, r := range recs {
		if r.stream != "stderr" {
			t.Fatalf("stream %q", r.stream)
		}
	}
}

func TestIdleFlush(t *testing.T) {
	w := open(t, Config{})
	start := time.Now()
	w.Write(ptyio.Stdout, []byte("prompt> "), start)
	waitFor(t, w.cfg.Path, record(start, ptyio.Stdout, true, "prompt> "))
	if d := time.Since(start); d < linebuf.Idle || d > 2*time.Second {
		t.Fatalf("P record after %v", d)
	}
	now := time.Now()
	w.Write(ptyio.Stdout, []byte("yes\n"), now)
	w.Flush()
	want := record(start, ptyio.Stdout, true, "prompt> ") + record(now, ptyio.Stdout, false, "yes\n")
	if got := read(t, w.cfg.Path); got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestFlushAtExit(t *testing.T) {
	w := open(t, Config{})
	now := time.Now()
	w.Write(ptyio.Stdout, []byte("a\nb"), now)
	w.Flush()
	w.Flush()
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w.Write(ptyio.Stdout, []byte("late\n"), now) // after Close: ignored
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := record(now, ptyio.Stdout, false, "a\n") + record(now, ptyio.Stdout, true, "b")
	if got := read(t, w.cfg.Path); got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestOpenErrorExposesErrno(t *testing.T) {
	_, err := Open(Config{Path: filepath.Join(t.TempDir(), "missing", "ctr.log")})
	var errno unix.Errno
	if !errors.As(err, &errno) || errno != unix.ENOENT {
		t.Fatalf("got %v", err)
	}
}

func TestOpenModeAndAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr.log")
	old := unix.Umask(0)
	defer unix.Umask(old)
	w := open(t, Config{Path: path})
	w.Write(ptyio.Stdout, []byte("a\n"), time.Now())
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	fl, _ := unix.FcntlInt(uintptr(w.fd), unix.F_GETFL, 0)
	if fl&unix.O_APPEND == 0 {
		t.Fatal("not O_APPEND")
	}
}

func lines(w *Writer, from, to int) {
	for i := from; i <= to; i++ {
		w.Write(ptyio.Stdout, fmt.Appendf(nil, "line%02d\n", i), time.Now()) // 52-byte records
	}
}

func contents(t *testing.T, path string) string {
	var out []string
	for _, r := range parse(t, read(t, path)) {
		out = append(out, strings.TrimSpace(r.content))
	}
	return strings.Join(out, " ")
}

func TestSizeMaxTruncates(t *testing.T) {
	w := open(t, Config{SizeMax: 200})
	lines(w, 1, 10)
	if got := contents(t, w.cfg.Path); got != "line10" {
		t.Fatalf("got %q", got)
	}
	if _, err := os.Stat(w.cfg.Path + ".tmp"); !os.IsNotExist(err) {
		t.Fatal(".tmp left behind")
	}
}

func TestCountersStartAtFileSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr.log")
	os.WriteFile(path, bytes.Repeat([]byte("#"), 150), 0o640)
	w := open(t, Config{Path: path, SizeMax: 200})
	lines(w, 1, 1)
	if got := contents(t, path); got != "line01" {
		t.Fatalf("got %q", got)
	}
	os.WriteFile(path, bytes.Repeat([]byte("#"), 180), 0o640)
	g := open(t, Config{Path: path, GlobalSizeMax: 200})
	lines(g, 1, 2)
	if got := read(t, path); len(got) != 180+52 {
		t.Fatalf("global counter did not start at the file size: %d bytes", len(got))
	}
}

// A line already begun follows into the same file; only a line over the limit is split.
func TestSizeCheckAtLineStart(t *testing.T) {
	long := append(bytes.Repeat([]byte("L"), linebuf.MaxLine+99), '\n') // P(16430) + F(145)
	w := open(t, Config{SizeMax: 17000})
	lines(w, 1, 10) // 520 bytes
	w.Write(ptyio.Stdout, long, time.Now())
	recs := parse(t, read(t, w.cfg.Path))
	if len(recs) != 12 || joined(recs[10:]) != string(long) {
		t.Fatalf("line split across files: %d records", len(recs))
	}
	lines(w, 11, 11)
	if got := contents(t, w.cfg.Path); got != "line11" {
		t.Fatalf("got %q", got)
	}

	w = open(t, Config{SizeMax: 16500}) // the line alone exceeds the limit
	lines(w, 1, 1)
	w.Write(ptyio.Stdout, long, time.Now())
	recs = parse(t, read(t, w.cfg.Path))
	if len(recs) != 1 || recs[0].partial || len(recs[0].content) != 100 {
		t.Fatalf("got %d records", len(recs))
	}
}

func TestRotation(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []string // log, .1, .2, ...
	}{
		{1, []string{"line10", "line07 line08 line09"}},
		{2, []string{"line10", "line07 line08 line09", "line04 line05 line06"}},
		{5, []string{"line10", "line07 line08 line09", "line04 line05 line06", "line01 line02 line03"}},
	} {
		w := open(t, Config{SizeMax: 200, Rotate: true, MaxFiles: c.n})
		lines(w, 1, 10)
		for i, want := range c.want {
			name := w.cfg.Path
			if i > 0 {
				name += fmt.Sprintf(".%d", i)
			}
			if got := contents(t, name); got != want {
				t.Fatalf("N=%d %s: got %q want %q", c.n, name, got, want)
			}
		}
		ents, _ := os.ReadDir(filepath.Dir(w.cfg.Path))
		if len(ents) != len(c.want) {
			t.Fatalf("N=%d: %d files, want %d", c.n, len(ents), len(c.want))
		}
	}
}

func TestRotationFallsBackToTruncation(t *testing.T) {
	log := &testLog{}
	w := open(t, Config{SizeMax: 200, Rotate: true, MaxFiles: 1, Log: log})
	os.MkdirAll(w.cfg.Path+".1/x", 0o755) // backup name cannot be replaced
	lines(w, 1, 4)
	if got := contents(t, w.cfg.Path); got != "line04" {
		t.Fatalf("got %q", got)
	}
	if log.count("truncating instead") != 1 {
		t.Fatalf("warnings %q", log.warns)
	}
	if _, err := os.Stat(w.cfg.Path + ".new"); !os.IsNotExist(err) {
		t.Fatal(".new left behind")
	}
}

// kubelet renames the log, then sends reopen: a new file must appear at the path.
func TestRenameThenReopen(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		w := open(t, Config{Rotate: rotate, MaxFiles: 1, SizeMax: 1 << 20})
		w.Write(ptyio.Stdout, []byte("old\npend"), time.Now())
		if err := os.Rename(w.cfg.Path, w.cfg.Path+".20260101"); err != nil {
			t.Fatal(err)
		}
		w.Reopen()
		if got := read(t, w.cfg.Path); got != "" {
			t.Fatalf("rotate=%v: new file has %q", rotate, got)
		}
		w.Write(ptyio.Stdout, []byte("ing\nnew\n"), time.Now())
		if got := contents(t, w.cfg.Path); got != "pending new" {
			t.Fatalf("rotate=%v: got %q", rotate, got)
		}
		if got := contents(t, w.cfg.Path+".20260101"); got != "old" {
			t.Fatalf("rotate=%v: old file %q", rotate, got)
		}
		if _, err := os.Stat(w.cfg.Path + ".1"); !os.IsNotExist(err) {
			t.Fatalf("rotate=%v: a backup was made of nothing", rotate)
		}
	}
}

func TestReopenReplacesFile(t *testing.T) {
	w := open(t, Config{})
	lines(w, 1, 2)
	var before, after unix.Stat_t
	unix.Stat(w.cfg.Path, &before)
	w.Reopen()
	unix.Stat(w.cfg.Path, &after)
	lines(w, 3, 3)
	if got := contents(t, w.cfg.Path); got != "line03" || before.Ino == after.Ino {
		t.Fatalf("got %q, inode %d -> %d", got, before.Ino, after.Ino)
	}
}

func TestReopenFailureRetried(t *testing.T) {
	log := &testLog{}
	dir := t.TempDir()
	w := open(t, Config{Path: filepath.Join(dir, "ctr.log"), Log: log})
	os.Mkdir(w.cfg.Path+".tmp", 0o755) // O_TRUNC open of a directory fails
	os.WriteFile(w.cfg.Path+".tmp/x", nil, 0o644)
	w.Reopen()
	lines(w, 1, 1) // within the retry gap: still the old file
	if log.count("Failed to reopen") != 1 || contents(t, w.cfg.Path) != "line01" {
		t.Fatalf("warnings %q", log.warns)
	}
	os.RemoveAll(w.cfg.Path + ".tmp")
	w.mu.Lock()
	w.retryAt = time.Now() // skip the one-second wait
	w.mu.Unlock()
	lines(w, 2, 2)
	if got := contents(t, w.cfg.Path); got != "line02" {
		t.Fatalf("reopen not retried: %q", got)
	}
}

func TestGlobalMax(t *testing.T) {
	log := &testLog{}
	w := open(t, Config{GlobalSizeMax: 200, Log: log})
	lines(w, 1, 5)
	w.Reopen()
	lines(w, 6, 10)
	w.Flush()
	if got := read(t, w.cfg.Path); got != "" {
		t.Fatalf("written after the global limit: %q", got)
	}
	if _, err := os.Stat(w.cfg.Path); err != nil {
		t.Fatal(err)
	}
	if log.count("global") != 1 {
		t.Fatalf("warnings %q", log.warns)
	}

	w = open(t, Config{GlobalSizeMax: 200})
	lines(w, 1, 10)
	if got := contents(t, w.cfg.Path); got != "line01 line02 line03 line04" {
		t.Fatalf("got %q", got)
	}
}

// openOnTmpfs opens a writer for a log on a 64 KiB tmpfs, unmounted at cleanup.
func openOnTmpfs(t *testing.T, log diag.Logger) (w *Writer, dir string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs")
	}
	dir = t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	w, err := Open(Config{Path: filepath.Join(dir, "ctr.log"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, dir
}

func TestENOSPC(t *testing.T) {
	log := &testLog{}
	w, dir := openOnTmpfs(t, log)
	filler := filepath.Join(dir, "filler")
	f, _ := os.Create(filler)
	f.Write(make([]byte, 60<<10)) // leaves one page: a batch will be written only in part
	f.Close()
	line := []byte(strings.Repeat("x", 999) + "\n")
	for i := 0; i < 50; i++ {
		w.Write(ptyio.Stdout, line, time.Now())
	}
	if log.count("Failed to write") != 1 { // rate-limited
		t.Fatalf("warnings %q", log.warns)
	}
	if n := len(parse(t, read(t, w.cfg.Path))); n == 0 || n == 50 { // whole records only
		t.Fatalf("%d records written", n)
	}
	os.Remove(filler)
	before := len(parse(t, read(t, w.cfg.Path)))
	w.Write(ptyio.Stdout, []byte("after\n"), time.Now())
	recs := parse(t, read(t, w.cfg.Path))
	if len(recs) != before+1 || recs[len(recs)-1].content != "after\n" {
		t.Fatal("writes do not succeed after space was freed")
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

// A line whose beginning is in the file (a P record) and whose rest is lost to ENOSPC is
// ended by an empty F record before the stream's next record, which would otherwise be
// read as the rest of that line.
func TestENOSPCEndsCutLine(t *testing.T) {
	w, dir := openOnTmpfs(t, &testLog{})
	long := strings.Repeat("x", linebuf.MaxLine+5000) // a P record now, more than a page pending
	w.Write(ptyio.Stdout, []byte(long), time.Now())
	w.Write(ptyio.Stderr, []byte("err\n"), time.Now())
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for { // fill the file system up
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	w.Write(ptyio.Stdout, []byte("rest of the long line\n"), time.Now()) // lost
	os.Remove(filler)
	w.Write(ptyio.Stderr, []byte("err2\n"), time.Now()) // stderr's line was not cut
	w.Write(ptyio.Stdout, []byte("next\n"), time.Now())
	w.Write(ptyio.Stdout, []byte("last\n"), time.Now())
	want := []parsed{
		{"stdout", true, long[:linebuf.MaxLine]},
		{"stderr", false, "err\n"},
		{"stderr", false, "err2\n"},
		{"stdout", false, "\n"},
		{"stdout", false, "next\n"},
		{"stdout", false, "last\n"},
	}
	if got := parse(t, read(t, w.cfg.Path)); !slices.Equal(got, want) {
		t.Fatalf("records\n%+v\nwant\n%+v", got, want)
	}
}

func TestSafetyCheck(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		d := filepath.Join(root, name)
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, mode)
		return d
	}
	safe := mk("safe", 0o755)
	saf := mk("saf", 0o755)
	open := mk("open", 0o777)
	os.WriteFile(filepath.Join(open, "exists.log"), nil, 0o640)
	other := mk("other", 0o755)
	os.Symlink(safe, filepath.Join(root, "link"))
	os.Symlink(filepath.Join(safe, "x"), filepath.Join(safe, "sym.log"))
	owned := false
	if os.Geteuid() == 0 {
		owned = os.Chown(other, 12345, 12345) == nil
	}
	for _, c := range []struct {
		path  string
		allow []string
		ok    bool
	}{
		{safe + "/new.log", nil, true},
		{safe + "/../safe/new.log", nil, false},
		{safe + "/sym.log", nil, false},
		{open + "/new.log", nil, false},   // world-writable, file missing
		{open + "/exists.log", nil, true}, // checks apply only to a missing file
		{root + "/nodir/new.log", nil, false},
		{safe + "/new.log", []string{root}, true},
		{safe + "/new.log", []string{safe}, true},
		{safe + "/new.log", []string{saf}, false}, // prefix not at a '/'
		{safe + "/new.log", []string{root + "/missing", safe}, true},
		{safe + "/new.log", []string{other}, false},
		{root + "/link/new.log", []string{safe}, true}, // compared canonically
		{other + "/new.log", nil, !owned},
	} {
		log := &testLog{}
		fd, err := checkRotatable(c.path, c.allow, log)
		if fd >= 0 {
			unix.Close(fd)
		}
		if (err == nil) != c.ok {
			t.Errorf("%s allow %v: err %v", c.path, c.allow, err)
		}
	}
	log := &testLog{}
	checkRotatable(safe+"/new.log", []string{root + "/missing", safe}, log)
	if log.count("Invalid allowlist directory") != 1 {
		t.Fatalf("warnings %q", log.warns)
	}
}

// A safety check failure with --log-rotate still bounds the file, by truncation.
func TestRotationRefusedTruncates(t *testing.T) {
	dir := t.TempDir()
	w := open(t, Config{Path: dir + "/../" + filepath.Base(dir) + "/ctr.log", SizeMax: 200, Rotate: true})
	lines(w, 1, 4)
	if got := contents(t, w.cfg.Path); got != "line04" {
		t.Fatalf("got %q", got)
	}
	if _, err := os.Stat(w.cfg.Path + ".1"); !os.IsNotExist(err) {
		t.Fatal("rotated despite the safety check")
	}
}

func TestConcurrentStreams(t *testing.T) {
	w := open(t, Config{SizeMax: 1 << 20, Rotate: true, MaxFiles: 2})
	var wg sync.WaitGroup
	for _, s := range []ptyio.Stream{ptyio.Stdout, ptyio.Stderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				w.Write(s, []byte("some text\nand a par"), time.Now())
				w.Write(s, []byte("tial line\n"), time.Now())
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			w.Reopen()
		}
	}()
	wg.Wait()
	for _, r := range parse(t, read(t, w.cfg.Path)) {
		if r.partial || (r.content != "some text\n" && r.content != "and a partial line\n") {
			t.Fatalf("record %+v", r)
		}
	}
}

func chunk71() []byte {
	c := make([]byte, 0, 64<<10)
	for i := 0; len(c) < cap(c); i++ {
		line := fmt.Appendf(nil, "%069d\n", i)
		c = append(c, line[:min(len(line), cap(c)-len(c))]...)
	}
	return c
}

func TestNoAllocs(t *testing.T) {
	w := open(t, Config{SizeMax: 1 << 40, GlobalSizeMax: 1 << 40})
	c := chunk71()
	big := bytes.Repeat([]byte("m"), 1<<20)
	now := time.Now()
	w.Write(ptyio.Stdout, c, now) // first use: timer and time zone
	for name, p := range map[string][]byte{"71-byte lines": c, "1 MiB line": big} {
		if n := testing.AllocsPerRun(20, func() {
			now = now.Add(time.Millisecond)
			w.Write(ptyio.Stdout, p, now)
		}); n != 0 {
			t.Errorf("%s: %v allocations per Write", name, n)
		}
	}
}

func BenchmarkWrite71(b *testing.B) {
	w := open(b, Config{SizeMax: 64 << 20}) // bounds the disk use
	c := chunk71()
	b.SetBytes(int64(len(c)))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(ptyio.Stdout, c, time.Now())
	}
}

// Links planted at the temporary names of a reopen and of a rotation are replaced, never
// written through: the file they point to outside the log directory keeps its content.
func TestReopenNeverFollowsPlantedLinks(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	for _, rotate := range []bool{false, true} {
		if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		w := open(t, Config{Rotate: rotate, MaxFiles: 1})
		for _, suffix := range []string{".tmp", ".new"} {
			if err := os.Symlink(victim, w.cfg.Path+suffix); err != nil {
				t.Fatal(err)
			}
		}
		lines(w, 1, 1)
		w.Reopen()
		lines(w, 2, 2)
		if got := contents(t, w.cfg.Path); got != "line02" {
			t.Errorf("rotate=%v: log %q", rotate, got)
		}
		if got, err := os.ReadFile(victim); err != nil || string(got) != "precious" {
			t.Errorf("rotate=%v: victim %q, %v", rotate, got, err)
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 1 {
			t.Errorf("rotate=%v: outside directory holds %v", rotate, entries)
		}
	}
}
