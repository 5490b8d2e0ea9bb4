// Command bench measures a monitor against the reference conmon, side by side in one run
// (`make bench`): create latency, idle footprint, log throughput (k8s-file and journald),
// exec-sync cost, podman's detached exec, one long line and attach throughput, driven
// through conmon's CLI and fds as CRI-O (podman for the detached exec) does. Runs are
// interleaved (each round runs every participant once, in a shuffled order) so machine
// noise hits both, and a runtime's first cgroup write finds the kernel's cgroup lock in
// the same state in every round (quietCgroups); each figure prints medians, the ratio
// monitor/reference and, where docs/differences.md §6 sets one, its target.
//
//	go run ./hack/bench -monitor /abs/bin/conmon-go [-reference /usr/bin/conmon] [-only log,journald]
package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio/journald/journaldtest"
	"github.com/conmon-go/conmon-go/seqpacket"
)

const (
	createPairs     = 200 // rounds of floor + 2 monitors x 2 start-byte timings
	idleCount       = 10  // containers per monitor
	logPairs        = 3
	journaldPairs   = 3
	execPairs       = 100
	podmanExecPairs = 200 // rounds, as createPairs: per-round differences spread ±6 ms here
	linePairs       = 3
	attachPairs     = 2

	// 70 characters + '\n' = one 71-byte line.
	line70    = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567"
	logLines  = 2953735 // 71 * 2953735 = 209715185 bytes, the whole lines that fit in 200 MiB
	logBytes  = 71 * logLines
	attachLen = 100 << 20
	marker    = "BENCH-DONE\n" // last line of a workload: the log is complete

	// journald takes far fewer lines per second than a file: 100000 lines, 6.8 MiB.
	journaldLines = 100000
	journaldMiB   = 71 * journaldLines / float64(1<<20)
)

// row is one line of the printed table.
type row struct{ name, a, b, ratio, target, verdict string }

type bench struct {
	e        *env
	mons     [2]*monitor // monitor under test, reference
	rows     []row
	idleAnon [2]float64 // from the idle figure, for the after-burst target
}

func main() {
	monPath := flag.String("monitor", "", "absolute path of the monitor under test (required)")
	refPath := flag.String("reference", "/usr/bin/conmon", "reference monitor")
	only := flag.String("only", "", "comma-separated figures to run: create,idle,log,journald,exec,podman-exec,line,attach (default all)")
	flag.Parse()
	if err := execute(*monPath, *refPath, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if err == errInterrupted {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func execute(monPath, refPath, only string) error {
	if monPath == "" {
		return errors.New("-monitor is required")
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: the containers run under runc")
	}
	// The monitors get only the fds an engine gives them, not what the bench inherited
	// (a monitor passes every inherited fd on, at its number, to its daemon and runtime).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return fmt.Errorf("needs runc: %w", err)
	}
	if runc, err = filepath.Abs(runc); err != nil {
		return err
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		return fmt.Errorf("needs busybox (busybox-static): %w", err)
	}
	mkbundle, err := findMkbundle()
	if err != nil {
		return err
	}
	var b bench
	figures := []figure{
		{"create", b.createFigure}, {"idle", b.idleFigure}, {"log", b.logFigure},
		{"journald", b.journaldFigure}, {"exec", b.execFigure}, {"podman-exec", b.podmanExecFigure},
		{"line", b.lineFigure},
		{"attach", b.attachFigure},
	}
	for _, name := range strings.Split(only, ",") {
		if name != "" && !slices.ContainsFunc(figures, func(f figure) bool { return f.name == name }) {
			return fmt.Errorf("-only: unknown figure %q", name)
		}
	}
	for i, p := range []string{monPath, refPath} {
		exe, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
		if exe, err = filepath.Abs(exe); err != nil {
			return err
		}
		b.mons[i] = &monitor{label: []string{"monitor", "reference"}[i], path: p, exe: exe}
	}
	started := time.Now()
	printHeader(b.mons, runc)

	b.e, err = newEnv(runc, mkbundle)
	if b.e == nil {
		return err
	}
	// The first signal stops the bench between runs: every later run fails at once, and
	// the clean-up below runs when nothing else touches the work directory any more. A
	// second signal, for a run that hangs, cleans up at once and exits.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "bench: interrupted, stopping after the current run (again to stop at once)")
		b.e.interrupt()
		<-sigs
		b.e.cleanup()
		os.Exit(130)
	}()
	defer b.e.cleanup()
	if err != nil {
		return err
	}

	b.binaryRow()
	for _, f := range figures {
		if only != "" && !strings.Contains(","+only+",", ","+f.name+",") {
			continue
		}
		if b.e.interrupted() {
			return errInterrupted
		}
		fmt.Fprintf(os.Stderr, "bench: %s...\n", f.name)
		if err := guard(f.fn); err != nil {
			b.rows = append(b.rows, row{name: f.name, a: errCell(err), verdict: "ERROR"})
		}
	}
	if b.e.interrupted() {
		return errInterrupted
	}
	b.printTable()
	fmt.Printf("\ntotal bench time %.0f s\n", time.Since(started).Seconds())
	return nil
}

type figure struct {
	name string
	fn   func() error
}

// guard turns a panic in a figure into an error row instead of aborting the run.
func guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

// findMkbundle looks for hack/mkbundle.sh from the working directory upwards (make runs
// the bench from the module root).
func findMkbundle() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "hack", "mkbundle.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("hack/mkbundle.sh not found above the working directory")
		}
		dir = parent
	}
}

func printHeader(mons [2]*monitor, runc string) {
	osrelease, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	fmt.Printf("machine: nproc %d, kernel %s, cpu %s\n", runtime.NumCPU(),
		strings.TrimSpace(string(osrelease)), cpuModel(cpuinfo))
	for _, m := range mons {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, m.path, "--version").Output()
		cancel()
		v := strings.Join(strings.Split(strings.TrimSpace(string(out)), "\n"), "; ")
		if err != nil {
			v = "--version failed: " + err.Error()
		}
		fmt.Printf("%-9s %s: %s\n", m.label, m.path, v)
	}
	if out, err := exec.Command(runc, "--version").Output(); err == nil {
		fmt.Printf("runtime   %s: %s\n", runc, strings.SplitN(string(out), "\n", 2)[0])
	}
	fmt.Println()
}

// interleave runs each participant n times, once per round, so that machine noise hits
// all of them alike. The kernel finishes a run's clean-up (namespaces, cgroups, the
// monitor's exit) while the next one runs, so a participant's figure depends on which one
// ran before it: the rounds follow a Williams design (williams), in which each participant
// directly precedes each other one equally often, its rows in an order shuffled anew (with
// a fixed seed) for every pass through them. Each run returns one sample (a few metrics).
// A participant that fails is not run again in this figure.
func interleave(n int, fns ...func() ([]float64, error)) ([][][]float64, []error) {
	samples := make([][][]float64, len(fns))
	errs := make([]error, len(fns))
	rows := williams(len(fns))
	rng := rand.New(rand.NewPCG(1, uint64(len(fns))))
	var pass []int
	for i := 0; i < n; i++ {
		if i%len(rows) == 0 {
			pass = rng.Perm(len(rows))
		}
		for _, j := range rows[pass[i%len(rows)]] {
			if errs[j] != nil {
				continue
			}
			s, err := guardSample(fns[j])
			if err != nil {
				errs[j] = err
				continue
			}
			samples[j] = append(samples[j], s)
		}
	}
	return samples, errs
}

// williams returns the orders of a Williams design for k participants: rows of a Latin
// square (two of them for an odd k) in which every participant directly precedes every
// other one equally often. The first row is 0, 1, k-1, 2, k-2, ...; row i adds i to each
// entry (mod k); for an odd k the reversed rows follow.
func williams(k int) [][]int {
	first := make([]int, k)
	for j := 1; j < k; j++ {
		if j%2 == 1 {
			first[j] = (j + 1) / 2
		} else {
			first[j] = k - j/2
		}
	}
	var rows [][]int
	for i := range k {
		row := make([]int, k)
		for j, v := range first {
			row[j] = (v + i) % k
		}
		rows = append(rows, row)
	}
	if k%2 == 1 {
		for i := range k {
			rev := slices.Clone(rows[i])
			slices.Reverse(rev)
			rows = append(rows, rev)
		}
	}
	return rows
}

func guardSample(fn func() ([]float64, error)) (s []float64, err error) {
	err = guard(func() error {
		s, err = fn()
		return err
	})
	return s, err
}

// metric is the median of column k of a participant's samples.
type metric struct {
	v   float64
	err error
}

func med(samples [][]float64, err error, k int) metric {
	if err != nil {
		return metric{err: err}
	}
	col := make([]float64, len(samples))
	for i, s := range samples {
		col[i] = s[k]
	}
	return metric{v: median(col)}
}

func (m metric) cell(format func(float64) string) string {
	if m.err != nil {
		return errCell(m.err)
	}
	return format(m.v)
}

// goal is a target: a limit on the monitor's value alone, or relative to the reference's.
type goal struct {
	text     string
	relative bool
	pass     func(a, r float64) bool
}

func atMost(limit float64, text string) *goal {
	return &goal{text: text, pass: func(a, _ float64) bool { return a <= limit }}
}

func relative(text string, pass func(a, r float64) bool) *goal {
	return &goal{text: text, relative: true, pass: pass}
}

// compare adds a row for a metric of both monitors; g nil means information only.
func (b *bench) compare(name string, x, y metric, format func(float64) string, g *goal) {
	r := row{name: name, a: x.cell(format), b: y.cell(format)}
	if x.err == nil && y.err == nil && y.v != 0 {
		r.ratio = fmt.Sprintf("%.2fx", x.v/y.v)
	}
	if g != nil {
		r.target = g.text
		switch {
		case x.err != nil || (g.relative && y.err != nil):
			r.verdict = "ERROR"
		case g.pass(x.v, y.v):
			r.verdict = "PASS"
		default:
			r.verdict = "MISS"
		}
	}
	b.rows = append(b.rows, r)
}

// differenceRow adds, for latencies measured in interleaved rounds, the row of their
// per-round difference monitor - reference (perRound).
func (b *bench) differenceRow(name string, x, y [][]float64, errs ...error) {
	if err := errors.Join(errs...); err != nil {
		b.rows = append(b.rows, row{name: name, a: errCell(err)})
		return
	}
	b.rows = append(b.rows, perRound(name, x, y, 1))
}

// Where a per-round difference stands: its median's 95% interval below zero, spanning it,
// or above it.
const (
	pairedTarget = "95% interval vs 0"
	pairedBelow  = "BELOW"
	pairedLevel  = "LEVEL"
	pairedAbove  = "ABOVE"
)

// perRound is the row of the per-round differences x - y (column 0), in ms with the given
// decimals: their median, their middle half (how much one round says) and the 95% interval
// of the median (how much the run says). Its verdict is where that interval lies: one that
// spans zero says the two are level within this machine's noise.
func perRound(name string, x, y [][]float64, decimals int) row {
	d := make([]float64, min(len(x), len(y)))
	for i := range d {
		d[i] = x[i][0] - y[i][0]
	}
	p25, p50, p75 := quartiles(d)
	lo, hi := medianInterval(d)
	ms := func(v float64) string { return fmt.Sprintf("%+.*f", decimals, v*1e3) }
	r := row{name: name, target: pairedTarget, verdict: pairedLevel,
		a: ms(p50) + " ms (middle half " + ms(p25) + " .. " + ms(p75) + "; median's 95% interval " + ms(lo) + " .. " + ms(hi) + ")"}
	switch {
	case len(d) == 0:
		r.target, r.verdict = "", ""
	case hi < 0:
		r.verdict = pairedBelow
	case lo > 0:
		r.verdict = pairedAbove
	}
	return r
}

func (b *bench) binaryRow() {
	var cells [2]string
	var ok bool
	for i, m := range b.mons {
		fi, err := os.Stat(m.exe)
		if err != nil {
			cells[i] = errCell(err)
			continue
		}
		static, stripped, err := elfKind(m.exe)
		if err != nil {
			cells[i] = errCell(err)
			continue
		}
		kind := map[bool]string{true: "static", false: "dynamic"}[static] + ", " +
			map[bool]string{true: "stripped", false: "not stripped"}[stripped]
		cells[i] = fmt.Sprintf("%s (%s)", mb(float64(fi.Size())), kind)
		if i == 0 {
			ok = static && stripped && fi.Size() <= 4<<20 // cmd/conmon-go's budget test
		}
	}
	b.rows = append(b.rows, row{name: "binary size", a: cells[0], b: cells[1],
		target: "<= 4 MiB static stripped", verdict: map[bool]string{true: "PASS", false: "MISS"}[ok]})
}

// elfKind: static = no program interpreter; stripped = no symbol table.
func elfKind(path string) (static, stripped bool, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	static = true
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			static = false
		}
	}
	return static, f.Section(".symtab") == nil, nil
}

// createFigure: exec of the monitor -> container pid on the sync pipe, against bare
// `runc create`; every container is started and its exit file awaited. Each round runs
// the floor and both monitors twice: with the start byte written at once (CRI-O, whose
// cgroup move is quick) and after enginePause (podman's systemd scope over D-Bus), less
// the pause.
func (b *bench) createFigure() error {
	tpl, err := b.e.template("true", "true")
	if err != nil {
		return err
	}
	floor := func() ([]float64, error) {
		r, err := b.e.newRun(nil, tpl)
		if err != nil {
			return nil, err
		}
		defer b.e.destroy(r)
		d, err := b.e.bareCreate(r)
		return []float64{d.Seconds()}, err
	}
	withMonitor := func(m *monitor, pause time.Duration) (roundMark, float64, error) {
		r, err := b.e.newRun(m, tpl)
		if err != nil {
			return roundMark{}, 0, err
		}
		defer b.e.destroy(r)
		d, err := b.e.create(r, pause)
		if err != nil {
			return roundMark{}, 0, err
		}
		if err := b.e.runcCmd(r, "start", r.id); err != nil {
			return roundMark{}, 0, err
		}
		if err := waitFile(r.exitFile(), 10*time.Second, nil); err != nil {
			return roundMark{}, 0, err
		}
		return r.mark, d.Seconds(), nil
	}
	t := b.timedRounds(createPairs, floor, withMonitor)
	t.cpu = true
	x, y := med(t.s[1], t.errs[1], 0), med(t.s[2], t.errs[2], 0)
	b.compare(fmt.Sprintf("create latency, exec -> pid (%d rounds)", createPairs), x, y, ms, nil)
	b.floorRow("bare runc create (floor)", t.s[0], t.errs[0])
	b.timedRows("create", t)
	return nil
}

// timed holds the rounds of a latency figure: participant 0 is the floor, 1 and 2 the
// monitor and the reference with the start byte at once, 3 and 4 the same after
// enginePause; marks and the process events split the monitors' rounds (procevents.go).
type timed struct {
	s        [][][]float64
	errs     []error
	marks    [5][]roundMark
	evs      []procEvent
	watchErr error
	cpu      bool // the rounds read the monitors' CPU time (roundMark.cpu)
}

// timedRounds runs n rounds of the floor and of round for each monitor and start-byte
// timing, watching the process events meanwhile.
func (b *bench) timedRounds(n int, floor func() ([]float64, error),
	round func(m *monitor, pause time.Duration) (roundMark, float64, error)) *timed {
	t := &timed{}
	participant := func(m *monitor, pause time.Duration, marks *[]roundMark) func() ([]float64, error) {
		return func() ([]float64, error) {
			mark, seconds, err := round(m, pause)
			if err != nil {
				return nil, err
			}
			*marks = append(*marks, mark)
			return []float64{seconds}, nil
		}
	}
	// The floor and the runs at once start with the cgroup lock idle; in the runs after
	// the pause the engine's move has just written a cgroup, as podman's does.
	watch, watchErr := watchProcs()
	t.s, t.errs = interleave(n, quiet(floor), quiet(participant(b.mons[0], 0, &t.marks[1])),
		quiet(participant(b.mons[1], 0, &t.marks[2])),
		participant(b.mons[0], enginePause, &t.marks[3]), participant(b.mons[1], enginePause, &t.marks[4]))
	t.watchErr = watchErr
	if watch != nil {
		t.evs, t.watchErr = watch.close()
	}
	return t
}

// timedRows adds the overhead and own-time rows of what, at once and after the pause.
func (b *bench) timedRows(what string, t *timed) {
	for _, v := range []struct {
		label string
		i, j  int
	}{{"", 1, 2}, {pauseLabel, 3, 4}} {
		b.overheadRows(what, v.label, t.s, t.errs, v.i, v.j)
		b.ownRows(what, v.label, t.evs, t.marks[v.i], t.marks[v.j], t.watchErr, t.errs[v.i], t.errs[v.j])
		if t.cpu {
			b.cpuRows(what, v.label, t.marks[v.i], t.marks[v.j], t.errs[v.i], t.errs[v.j])
		}
	}
}

// memBarrierGlobal is MEMBARRIER_CMD_GLOBAL: membarrier(2) returns after an RCU grace
// period (the kernel's synchronize_rcu).
const memBarrierGlobal = 1

// quietCgroups returns once the kernel's cgroup write lock is idle. A write to a
// cgroup.procs (runc writes one per hierarchy, the engine's move one) takes
// cgroup_threadgroup_rwsem for writing, and when no cgroup was written during the last RCU
// grace period that write first waits for a new one: 8-16 ms on this machine's kernel.
// Back to back, whether a run paid it depended on how close it followed the previous run's
// writes: about half the runc exec rounds did, beside either monitor alike, a swing of
// ±13 ms that neither monitor causes and that decided single verdicts. The lock's fast
// path ends one or two grace periods after its last writer; after three, a run pays the
// wait (59 of 60 bare runc execs here), as on a node where no container started in the
// last few tens of milliseconds.
func quietCgroups() error {
	for range 3 {
		if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, memBarrierGlobal, 0, 0); errno != 0 {
			return fmt.Errorf("membarrier(MEMBARRIER_CMD_GLOBAL), the wait for a quiet cgroup lock: %w", errno)
		}
	}
	return nil
}

// quiet runs fn once the cgroup lock is idle (quietCgroups).
func quiet(fn func() ([]float64, error)) func() ([]float64, error) {
	return func() ([]float64, error) {
		if err := quietCgroups(); err != nil {
			return nil, err
		}
		return fn()
	}
}

// enginePause stands for the engine's work between the launcher's exec and the start
// byte (the cgroup move); pauseLabel names the rows measured with it. Their overhead
// over the floor can be below zero: the runtime then starts on CPUs the monitor's
// start-up has kept busy, while bare runc (and the runtime of a start byte written at
// once) often starts on CPUs that were idle; and the runtime's first cgroup write follows
// the move's, where the floor's waits for a grace period (quietCgroups).
const (
	enginePause = 5 * time.Millisecond
	pauseLabel  = ", start byte after 5 ms"
)

// floorRow adds the median of a floor, the same for both monitors.
func (b *bench) floorRow(name string, samples [][]float64, err error) {
	fl := med(samples, err, 0)
	b.rows = append(b.rows, row{name: name, a: fl.cell(ms), b: fl.cell(ms)})
}

// overheadRows adds, for a figure whose rounds ran the floor (column 0) and the two
// monitors (columns i, j), the overhead over the floor with its target and the per-round
// difference monitor - reference. The overhead is the median of each round's difference
// to that round's floor, so that slow and fast moments of the machine cancel out.
func (b *bench) overheadRows(what, variant string, s [][][]float64, errs []error, i, j int) {
	over := func(k int) metric {
		if errs[k] != nil || errs[0] != nil {
			return metric{err: errors.Join(errs[k], errs[0])}
		}
		d := make([]float64, min(len(s[k]), len(s[0])))
		for n := range d {
			d[n] = s[k][n][0] - s[0][n][0]
		}
		return metric{v: median(d)}
	}
	b.compare(what+" overhead over bare runc"+variant, over(i), over(j), ms,
		relative("<= ref (at most 5 ms)", func(a, r float64) bool { return a <= r }))
	b.differenceRow(what+", monitor - reference per round"+variant, s[i], s[j], errs[i], errs[j])
}

// idleFigure: 10 sleeping containers per monitor, started interleaved, measured together.
func (b *bench) idleFigure() error {
	tpl, err := b.e.template("sleep", "sleep", "3600")
	if err != nil {
		return err
	}
	var runs [2][]*run
	defer func() {
		for _, rs := range runs {
			for _, r := range rs {
				b.e.runcCmd(r, "kill", r.id, "KILL")
			}
		}
		for _, rs := range runs {
			for _, r := range rs {
				b.e.destroy(r)
			}
		}
	}()
	var errs [2]error
	for i := 0; i < idleCount; i++ {
		for j, m := range b.mons {
			if errs[j] != nil {
				continue
			}
			r, err := b.e.newRun(m, tpl)
			if err == nil {
				runs[j] = append(runs[j], r)
				if _, err = b.e.create(r, 0); err == nil {
					err = b.e.runcCmd(r, "start", r.id)
				}
			}
			errs[j] = err
		}
	}
	// Let start-up garbage settle, as an idle monitor would.
	time.Sleep(2 * time.Second)
	var mem [2][][]float64
	for j := range b.mons {
		for _, r := range runs[j] {
			if errs[j] != nil {
				break
			}
			m, err := readMem(r.monPid)
			if err != nil {
				errs[j] = fmt.Errorf("monitor %d: %w", r.monPid, err)
				break
			}
			mem[j] = append(mem[j], []float64{float64(m.RSS), float64(m.PSS), float64(m.Anon), float64(m.Threads)})
		}
	}
	metrics := func(k int) (metric, metric) { return med(mem[0], errs[0], k), med(mem[1], errs[1], k) }
	x, y := metrics(0)
	title := fmt.Sprintf("idle %s, %d containers each", "%s", idleCount)
	// RSS is reported, not a target: it counts the binary's text, which every monitor on a
	// node shares and the node pays once.
	b.compare(fmt.Sprintf(title, "RSS"), x, y, mb, nil)
	x, y = metrics(1)
	b.compare(fmt.Sprintf(title, "PSS"), x, y, mb, atMost(1.2e6, "<= 1.2 MB"))
	x, y = metrics(2)
	b.idleAnon = [2]float64{x.v, y.v}
	b.compare(fmt.Sprintf(title, "anonymous"), x, y, mb, atMost(0.85e6, "<= 0.85 MB"))
	x, y = metrics(3)
	b.compare(fmt.Sprintf(title, "threads"), x, y, count, atMost(5, "<= 5"))
	return nil
}

// burst starts a created container whose output ends with the marker line, waits until
// logged says the marker is stored and returns the wall time and the monitor's CPU time
// spent meanwhile (utime+stime of /proc/<monitor>/stat, sampled before `runc start` and
// when the marker is stored: the monitor is still alive, so nothing is lost to its exit).
func (b *bench) burst(r *run, logged func() error) (wall, cpu time.Duration, err error) {
	st0, err := readStat(r.monPid)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := b.e.runcCmd(r, "start", r.id); err != nil {
		return 0, 0, err
	}
	if err := logged(); err != nil {
		return 0, 0, err
	}
	wall = time.Since(t0)
	st1, err := readStat(r.monPid)
	if err != nil {
		return 0, 0, err
	}
	return wall, st1.CPU - st0.CPU, nil
}

// records counts the log's records before the marker line.
func records(r *run) (float64, error) {
	f, err := os.Open(r.log)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := countLines(f)
	return float64(n - 1), err
}

// createdRun makes a run of the template under m and creates its container; the caller
// destroys it.
func (b *bench) createdRun(m *monitor, tpl string) (*run, error) {
	r, err := b.e.newRun(m, tpl)
	if err != nil {
		return nil, err
	}
	if _, err := b.e.create(r, 0); err != nil {
		b.e.destroy(r)
		return nil, err
	}
	return r, nil
}

// burstResult is one run of a workload that writes a burst and then its marker.
type burstResult struct {
	wall, cpu time.Duration // start -> marker logged; the monitor's CPU meanwhile
	mem       memInfo       // the monitor right after the burst
	records   float64       // log records before the marker
}

// burstSample runs the template under m until its marker is in the log.
func (b *bench) burstSample(m *monitor, tpl string, timeout time.Duration) (burstResult, error) {
	var x burstResult
	r, err := b.createdRun(m, tpl)
	if err != nil {
		return x, err
	}
	defer b.e.destroy(r)
	inLog := func() error { return waitFile(r.log, timeout, endsWith(marker)) }
	if x.wall, x.cpu, err = b.burst(r, inLog); err != nil {
		return x, err
	}
	if x.mem, err = readMem(r.monPid); err != nil {
		return x, err
	}
	x.records, err = records(r)
	return x, err
}

// linesWorkload writes size bytes of 71-byte lines to /<name>.txt in the rootfs and returns
// the template of a container that cats them, then runs then.
func (b *bench) linesWorkload(name string, size int, then string) (string, error) {
	if err := writeLinesFile(filepath.Join(b.e.rootfs, name+".txt"), size); err != nil {
		return "", err
	}
	return b.e.template(name, "sh", "-c", "cat /"+name+".txt; "+then)
}

// logFigure: 200 MiB of 71-byte lines into k8s-file. The lines come from a file in the
// rootfs (page cache) through busybox cat, a producer much faster than either monitor, so
// the figure measures the monitor and not `yes | head`.
func (b *bench) logFigure() error {
	tpl, err := b.linesWorkload("burst", logBytes, "echo "+strings.TrimSuffix(marker, "\n")+"; exec sleep 600")
	if err != nil {
		return err
	}
	one := func(m *monitor) func() ([]float64, error) {
		return func() ([]float64, error) {
			x, err := b.burstSample(m, tpl, 120*time.Second)
			return []float64{x.wall.Seconds(), x.cpu.Seconds(), float64(x.mem.RSS), x.records, float64(x.mem.Anon)}, err
		}
	}
	s, errs := interleave(logPairs, one(b.mons[0]), one(b.mons[1]))
	col := func(k int) (metric, metric) { return med(s[0], errs[0], k), med(s[1], errs[1], k) }
	title := fmt.Sprintf("log 200 MiB of 71-byte lines, %s (%d pairs)", "%s", logPairs)
	wx, wy := col(0)
	b.compare(fmt.Sprintf(title, "wall"), wx, wy, ms, nil)
	rate := func(m metric) metric { return metric{v: logLines / m.v, err: m.err} }
	b.compare(fmt.Sprintf(title, "lines/s"), rate(wx), rate(wy), func(v float64) string { return fmt.Sprintf("%.2f M/s", v/1e6) },
		relative(">= 2x ref", func(a, r float64) bool { return a >= 2*r }))
	cx, cy := col(1)
	perMiB := func(m metric) metric { return metric{v: m.v / 200, err: m.err} }
	b.compare(fmt.Sprintf(title, "monitor CPU per MiB"), perMiB(cx), perMiB(cy), ms,
		relative("<= 0.7x ref", func(a, r float64) bool { return a <= 0.7*r }))
	b.compare(fmt.Sprintf(title, "monitor CPU total"), cx, cy, ms, nil)
	rx, ry := col(2)
	// RSS is reported; the target is on anonymous memory (the buffers): an idle monitor has
	// let go of most of the binary's pages, which the burst maps again (docs/lifecycle.md
	// §3.3), and those are shared by every monitor on a node.
	b.compare(fmt.Sprintf(title, "RSS after the burst"), rx, ry, mb, nil)
	ax, ay := col(4)
	var g *goal // the limit needs the idle figure
	if idle := b.idleAnon[0]; idle > 0 {
		g = atMost(idle+0.5e6, fmt.Sprintf("<= idle + 0.5 MB = %s", mb(idle+0.5e6)))
	}
	b.compare(fmt.Sprintf(title, "anonymous after the burst"), ax, ay, mb, g)
	nx, ny := col(3)
	b.compare(fmt.Sprintf(title, fmt.Sprintf("records (%d lines)", logLines)), nx, ny, count, nil)
	return nil
}

// journaldFigure: 71-byte lines into journald alone (-l journald, as podman passes it).
// Both monitors go at journald's pace (conmon blocks in sd_journal_sendv, conmon-go's queue
// waits for room), so lines/s mostly shows journald and whether entries were lost; the
// monitor CPU per MiB shows the cost of each client: libsystemd against go-systemd's
// journal.Send behind the queue. The end is the first marker `journalctl -f` sees: the
// container writes it to stderr (PRIORITY 3) every 100 ms, as conmon-go may drop one that
// finds its queue stalled. journald must not rate-limit the monitors (it does not where
// their cgroup is no systemd unit).
func (b *bench) journaldFigure() error {
	release, err := journaldtest.Acquire()
	if err != nil {
		return err
	}
	defer release()
	tpl, err := b.linesWorkload("journald", 71*journaldLines,
		"while :; do echo "+strings.TrimSuffix(marker, "\n")+" >&2; usleep 100000; done")
	if err != nil {
		return err
	}
	one := func(m *monitor) func() ([]float64, error) {
		return func() ([]float64, error) {
			r, err := b.e.newRun(m, tpl)
			if err != nil {
				return nil, err
			}
			r.logArg = "journald"
			defer b.e.destroy(r)
			if _, err := b.e.create(r, 0); err != nil {
				return nil, err
			}
			wall, cpu, err := b.journaldBurst(r, 300*time.Second)
			if err != nil {
				return nil, err
			}
			n, err := journaldEntries(r.id)
			return []float64{wall.Seconds(), cpu.Seconds(), n}, err
		}
	}
	s, errs := interleave(journaldPairs, one(b.mons[0]), one(b.mons[1]))
	col := func(k int) (metric, metric) { return med(s[0], errs[0], k), med(s[1], errs[1], k) }
	title := fmt.Sprintf("journald %d lines of 71 bytes, %s (%d pairs)", journaldLines, "%s", journaldPairs)
	wx, wy := col(0)
	b.compare(fmt.Sprintf(title, "wall"), wx, wy, ms, nil)
	rate := func(m metric) metric { return metric{v: journaldLines / m.v, err: m.err} }
	b.compare(fmt.Sprintf(title, "lines/s"), rate(wx), rate(wy), func(v float64) string { return fmt.Sprintf("%.0f k/s", v/1e3) }, nil)
	cx, cy := col(1)
	perMiB := func(m metric) metric { return metric{v: m.v / journaldMiB, err: m.err} }
	b.compare(fmt.Sprintf(title, "monitor CPU per MiB"), perMiB(cx), perMiB(cy), ms, nil)
	nx, ny := col(2)
	b.compare(fmt.Sprintf(title, "entries stored"), nx, ny, count, nil)
	return nil
}

// journaldBurst is burst with the marker seen by journalctl.
func (b *bench) journaldBurst(r *run, timeout time.Duration) (wall, cpu time.Duration, err error) {
	// Only markers match, so whatever journalctl shows, even from before it started, is one.
	jc := exec.Command("journalctl", "--no-pager", "-q", "-f", "-o", "cat", "CONTAINER_ID_FULL="+r.id, "PRIORITY=3")
	out, err := jc.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := jc.Start(); err != nil {
		return 0, 0, fmt.Errorf("journalctl: %w", err)
	}
	defer func() {
		jc.Process.Kill()
		jc.Wait()
	}()
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text()+"\n" == marker {
				close(seen)
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	return b.burst(r, func() error {
		select {
		case <-seen:
			return nil
		case <-time.After(timeout):
			return fmt.Errorf("no %q in the journal after %v", strings.TrimSpace(marker), timeout)
		}
	})
}

// journaldEntries counts the container's stdout lines that journald stored.
func journaldEntries(id string) (float64, error) {
	out, err := exec.Command("journalctl", "--no-pager", "-q", "-o", "cat", "CONTAINER_ID_FULL="+id, "PRIORITY=6").Output()
	if err != nil {
		return 0, fmt.Errorf("journalctl: %w", err)
	}
	return float64(bytes.Count(out, []byte(line70+"\n"))), nil
}

// sleepingContainer runs a container of `sleep 3600` with bare runc, to exec into; the
// caller destroys it (also when err is not nil).
func (b *bench) sleepingContainer() (*run, error) {
	tpl, err := b.e.template("sleep", "sleep", "3600")
	if err != nil {
		return nil, err
	}
	target, err := b.e.newRun(nil, tpl)
	if err != nil {
		return nil, err
	}
	if err := b.e.track(target); err != nil {
		return target, err
	}
	return target, b.e.runcCmd(target, "run", "-d", "--bundle", target.bundle, target.id)
}

// execFigure: CRI-O ExecSync of `true` into a container started with bare runc.
func (b *bench) execFigure() error {
	target, err := b.sleepingContainer()
	if target != nil {
		defer b.e.destroy(target)
	}
	if err != nil {
		return err
	}
	one := func(m *monitor) func() ([]float64, error) {
		return func() ([]float64, error) {
			r, err := b.e.newRun(m, "")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(r.dir)
			d, err := b.e.execSync(r, target)
			return []float64{d.Seconds()}, err
		}
	}
	s, errs := interleave(execPairs, quiet(one(b.mons[0])), quiet(one(b.mons[1])))
	b.compare(fmt.Sprintf("exec-sync `true`, wall (%d pairs)", execPairs), med(s[0], errs[0], 0), med(s[1], errs[1], 0),
		ms, relative("<= ref", func(a, r float64) bool { return a <= r }))
	b.differenceRow("exec-sync, monitor - reference per round", s[0], s[1], errs[0], errs[1])
	return nil
}

// podmanExecFigure: `podman exec -d` of `true` (API 1, --exec-attach, a daemonised
// monitor): exec of the monitor -> exec pid on the sync pipe, against bare `runc exec
// --detach`, with the start byte at once and after enginePause (podman moves the exec's
// launcher into the container's monitor cgroup too), less the pause.
func (b *bench) podmanExecFigure() error {
	target, err := b.sleepingContainer()
	if target != nil {
		defer b.e.destroy(target)
	}
	if err != nil {
		return err
	}
	floor := func() ([]float64, error) {
		r, err := b.e.newRun(nil, "")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(r.dir)
		d, err := b.e.bareExec(r, target)
		return []float64{d.Seconds()}, err
	}
	one := func(m *monitor, pause time.Duration) (roundMark, float64, error) {
		r, err := b.e.newRun(m, "")
		if err != nil {
			return roundMark{}, 0, err
		}
		defer os.RemoveAll(r.dir)
		d, err := b.e.podmanExec(r, target, pause)
		return r.mark, d.Seconds(), err
	}
	t := b.timedRounds(podmanExecPairs, floor, one)
	b.floorRow(fmt.Sprintf("bare runc exec --detach (floor, %d rounds)", podmanExecPairs), t.s[0], t.errs[0])
	b.timedRows("podman exec -d", t)
	return nil
}

// lineFigure: one 1 MiB line, then the marker.
func (b *bench) lineFigure() error {
	tpl, err := b.e.template("line", "sh", "-c",
		"head -c 1048576 /dev/zero | tr '\\000' x; echo; echo "+strings.TrimSuffix(marker, "\n")+"; exec sleep 600")
	if err != nil {
		return err
	}
	one := func(m *monitor) func() ([]float64, error) {
		return func() ([]float64, error) {
			x, err := b.burstSample(m, tpl, 30*time.Second)
			return []float64{x.wall.Seconds(), x.records}, err
		}
	}
	s, errs := interleave(linePairs, one(b.mons[0]), one(b.mons[1]))
	b.compare(fmt.Sprintf("one 1 MiB line, start -> logged (%d pairs)", linePairs), med(s[0], errs[0], 0), med(s[1], errs[1], 0), ms, nil)
	b.compare("one 1 MiB line, records", med(s[0], errs[0], 1), med(s[1], errs[1], 1), count, nil)
	return nil
}

// attachFigure: one client on the attach socket reading 100 MiB of output as fast as it can.
func (b *bench) attachFigure() error {
	tpl, err := b.e.template("attach", "sh", "-c", fmt.Sprintf("yes %s | head -c %d", line70, attachLen))
	if err != nil {
		return err
	}
	one := func(m *monitor) func() ([]float64, error) {
		return func() ([]float64, error) {
			r, err := b.createdRun(m, tpl)
			if err != nil {
				return nil, err
			}
			defer b.e.destroy(r)
			conn, err := dialAttach(filepath.Join(b.e.sockDir, r.id, "attach"))
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(120 * time.Second))
			t0 := time.Now()
			if err := b.e.runcCmd(r, "start", r.id); err != nil {
				return nil, err
			}
			got, err := readAttach(conn, attachLen)
			wall := time.Since(t0)
			if got < attachLen {
				return nil, fmt.Errorf("client got %d of %d bytes: %v", got, attachLen, err)
			}
			return []float64{float64(got) / (1 << 20) / wall.Seconds()}, nil
		}
	}
	s, errs := interleave(attachPairs, one(b.mons[0]), one(b.mons[1]))
	b.compare(fmt.Sprintf("attach, 100 MiB to one client (%d pairs)", attachPairs), med(s[0], errs[0], 0), med(s[1], errs[1], 0),
		func(v float64) string { return fmt.Sprintf("%.0f MiB/s", v) }, nil)
	return nil
}

// dialAttach connects to the attach socket; it exists once the pid was reported, but
// allow the monitor a moment.
func dialAttach(path string) (*net.UnixConn, error) {
	var err error
	for i := 0; i < 100; i++ {
		var c *net.UnixConn
		if c, err = net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"}); err == nil {
			return c, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, fmt.Errorf("attach %s: %w", path, err)
}

// readAttach reads frames (1 byte stream id + payload) until want payload bytes arrived
// or the connection ends.
func readAttach(c *net.UnixConn, want int) (int, error) {
	buf := make([]byte, 8193)
	got := 0
	for got < want {
		n, err := seqpacket.ReadPacket(c, buf)
		if n > 1 {
			got += n - 1
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, errors.New("EOF")
		}
	}
	return got, nil
}

func (b *bench) printTable() {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "figure\t%s\t%s\tratio\ttarget\tverdict\n", filepath.Base(b.mons[0].path)+" (monitor)",
		filepath.Base(b.mons[1].path)+" (reference)")
	for _, r := range b.rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.name, trunc(r.a), trunc(r.b), r.ratio, r.target, r.verdict)
	}
	w.Flush()
}

// errCell puts an error (runtime output may span lines) on one table line.
func errCell(err error) string { return "error: " + strings.Join(strings.Fields(err.Error()), " ") }

// trunc keeps error cells from widening the table beyond reason.
func trunc(s string) string {
	if len(s) > 90 {
		return s[:87] + "..."
	}
	return s
}
