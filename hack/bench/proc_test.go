package main

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1, 1000, 10}, 10},
	} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("median reordered its input: %v", c.in)
			}
		}
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 37 ticks.
	line := "4242 (con) mon (x)) S 1 4242 4242 0 -1 4194624 120 0 0 0 250 37 0 0 20 0 1 0 99 2600000 600 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.CPU != 2870*time.Millisecond {
		t.Errorf("got state %c cpu %v, want S 2.87s", st.State, st.CPU)
	}
	for _, bad := range []string{"", "1 (x S 1 2", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u 7 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestParseMem(t *testing.T) {
	rollup := `55d0c0000000-7ffd00000000 ---p 00000000 00:00 0                          [rollup]
Rss:                2468 kB
Pss:                 421 kB
Pss_Anon:            300 kB
Anonymous:           332 kB
`
	status := "Name:\tconmon\nVmRSS:\t    2468 kB\nThreads:\t1\n"
	m, err := parseMem([]byte(rollup), []byte(status))
	if err != nil {
		t.Fatal(err)
	}
	want := memInfo{RSS: 2468 << 10, PSS: 421 << 10, Anon: 332 << 10, Threads: 1}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	if _, err := parseMem([]byte("Rss: 1 kB\n"), []byte(status)); err == nil {
		t.Error("rollup without Pss/Anonymous accepted")
	}
	if _, err := parseMem([]byte(rollup), []byte("VmRSS: 1 kB\n")); err == nil {
		t.Error("status without Threads accepted")
	}
}

// The live /proc of this test process parses too. The state read is this thread's, which
// runs while it reads it; the process's (its main thread's) may be S when the test runs
// on another thread.
func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc/self/smaps_rollup: ", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st, err := readStat(unix.Gettid())
	if err != nil || st.State != 'R' {
		t.Errorf("readStat(this thread) = %+v, %v; want state R", st, err)
	}
	m, err := readMem(os.Getpid())
	if err != nil || m.RSS <= 0 || m.PSS <= 0 || m.Threads < 1 {
		t.Errorf("readMem(self) = %+v, %v", m, err)
	}
}

func TestCountLinesAndCPUModel(t *testing.T) {
	n, err := countLines(strings.NewReader(strings.Repeat("x\n", 3<<20) + "tail"))
	if err != nil || n != 3<<20 {
		t.Errorf("countLines = %d, %v; want %d", n, err, 3<<20)
	}
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
	if got := cpuModel([]byte(info)); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
}

func TestVerdicts(t *testing.T) {
	var b bench
	b.compare("abs", metric{v: 0.9e6}, metric{err: os.ErrNotExist}, mb, atMost(1e6, "<= 1 MB"))
	b.compare("rel-miss", metric{v: 3}, metric{v: 2}, ms, relative("<= ref", func(a, r float64) bool { return a <= r }))
	b.compare("rel-ref-err", metric{v: 1}, metric{err: os.ErrNotExist}, ms, relative("<= ref", func(a, r float64) bool { return a <= r }))
	b.compare("info", metric{v: 1}, metric{v: 4}, count, nil)
	want := []struct{ verdict, ratio string }{{"PASS", ""}, {"MISS", "1.50x"}, {"ERROR", ""}, {"", "0.25x"}}
	for i, w := range want {
		if r := b.rows[i]; r.verdict != w.verdict || r.ratio != w.ratio {
			t.Errorf("row %s: verdict %q ratio %q, want %q %q", r.name, r.verdict, r.ratio, w.verdict, w.ratio)
		}
	}
	if !strings.HasPrefix(b.rows[0].b, "error: ") {
		t.Errorf("error cell = %q", b.rows[0].b)
	}
}

func TestElfKind(t *testing.T) {
	if static, _, err := elfKind("/bin/sh"); err != nil || static {
		t.Errorf("elfKind(/bin/sh): static %v, %v; want a dynamic binary", static, err)
	}
	if _, _, err := elfKind("/proc/self/status"); err == nil {
		t.Error("elfKind accepted a text file")
	}
}

func TestQuartiles(t *testing.T) {
	p25, p50, p75 := quartiles([]float64{9, 1, 5, 3, 7})
	if p25 != 3 || p50 != 5 || p75 != 7 {
		t.Errorf("quartiles = %v %v %v, want 3 5 7", p25, p50, p75)
	}
	if p25, p50, p75 := quartiles(nil); p25 != 0 || p50 != 0 || p75 != 0 {
		t.Errorf("quartiles(nil) = %v %v %v", p25, p50, p75)
	}
}

func TestMedianInterval(t *testing.T) {
	// 200 rounds, as the bench's: ranks 100 ∓ 13.9, so the 86th and the 115th value.
	xs := make([]float64, 200)
	for i := range xs {
		xs[i] = float64(200 - i) // unsorted on purpose
	}
	if lo, hi := medianInterval(xs); lo != 86 || hi != 115 {
		t.Errorf("medianInterval(1..200) = %v .. %v, want 86 .. 115", lo, hi)
	}
	if lo, hi := medianInterval([]float64{4, 2, 3}); lo != 2 || hi != 4 {
		t.Errorf("medianInterval(2, 3, 4) = %v .. %v, want the whole range 2 .. 4", lo, hi)
	}
	if lo, hi := medianInterval(nil); lo != 0 || hi != 0 {
		t.Errorf("medianInterval(nil) = %v .. %v", lo, hi)
	}
}
