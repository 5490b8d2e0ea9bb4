package logview

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/k8sfile"
)

func stamp(sec int) string {
	return fmt.Sprintf("2026-11-27T12:%02d:%02d.000000001+01:00", 38+sec/60, sec%60)
}

func writeFile(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctr.log")
	if err := os.WriteFile(path, []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func show(t *testing.T, path string, o Options) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Show(path, o, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestShowJoinsAndSeparates(t *testing.T) {
	path := writeFile(t, stamp(1)+" stdout P hel\n"+
		stamp(2)+" stderr F oops\r\n"+
		stamp(3)+" stdout F lo\n"+
		stamp(4)+" stdout F \n"+
		stamp(5)+" stderr P prompt> ")
	out, errOut, err := show(t, path, Options{Tail: -1})
	if err != nil || out != "hello\n\n" || errOut != "oops\r\nprompt> " {
		t.Fatalf("stdout %q stderr %q err %v", out, errOut, err)
	}
	out, errOut, err = show(t, path, Options{Tail: -1, Timestamps: true})
	if err != nil || out != stamp(1)+" hello\n"+stamp(4)+" \n" || errOut != stamp(2)+" oops\r\n"+stamp(5)+" prompt> " {
		t.Fatalf("--timestamps: stdout %q stderr %q err %v", out, errOut, err)
	}
	since, _ := time.Parse(time.RFC3339, stamp(2))
	out, errOut, err = show(t, path, Options{Tail: -1, Since: since})
	if err != nil || out != "\n" || errOut != "oops\r\nprompt> " {
		t.Fatalf("--since: stdout %q stderr %q err %v", out, errOut, err)
	}
	out, errOut, err = show(t, path, Options{Tail: 2})
	if err != nil || out != "\n" || errOut != "prompt> " {
		t.Fatalf("--tail 2: stdout %q stderr %q err %v", out, errOut, err)
	}
}

func TestShowBadInput(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{"just some text\n", "is not a k8s-file log"},
		{"no newline at all", "is not a k8s-file log"},
		{stamp(1) + " stdout F fine\nthen garbage\n", "byte 50: not a k8s-file record"},
	} {
		path := writeFile(t, c.data)
		if _, _, err := show(t, path, Options{Tail: -1}); err == nil || !strings.Contains(err.Error(), c.want) ||
			!strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line naming the file and %q", c.data, err, c.want)
		}
	}
	if _, _, err := show(t, filepath.Join(t.TempDir(), "missing"), Options{Tail: -1}); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	// A torn last line is tolerated: what parses of it shows, else it is left out.
	path := writeFile(t, stamp(1)+" stdout F one\n"+stamp(2)+" std")
	if out, _, err := show(t, path, Options{Tail: -1}); err != nil || out != "one\n" {
		t.Errorf("torn prefix: %q %v", out, err)
	}
}

// model is what Show must print: every line joined, in the order lines end (unfinished
// ones last, earlier first), filtered and cut like --since and --tail.
func model(t *testing.T, data []byte, o Options) (out [2]string) {
	type line struct {
		off    int64
		time   time.Time
		stamp  string
		stream ptyio.Stream
		text   []byte
	}
	var done []*line
	var open [2]*line
	sc := k8sfile.NewScanner(bytes.NewReader(data), 0)
	for {
		r, err := sc.Next()
		if err != nil {
			break
		}
		i := r.Stream & 1
		if open[i] == nil {
			open[i] = &line{off: r.Offset, time: r.Time, stamp: string(r.Stamp), stream: r.Stream}
		}
		open[i].text = append(open[i].text, r.Content...)
		if !r.Partial {
			open[i].text = append(open[i].text, '\n')
			done = append(done, open[i])
			open[i] = nil
		}
	}
	if open[0] != nil && open[1] != nil && open[1].off < open[0].off {
		open[0], open[1] = open[1], open[0]
	}
	for _, l := range open {
		if l != nil {
			done = append(done, l)
		}
	}
	var kept []*line
	for _, l := range done {
		if !l.time.Before(o.Since) {
			kept = append(kept, l)
		}
	}
	if o.Tail >= 0 && len(kept) > o.Tail {
		kept = kept[len(kept)-o.Tail:]
	}
	var b [2]strings.Builder
	for _, l := range kept {
		if o.Timestamps {
			b[l.stream&1].WriteString(l.stamp + " ")
		}
		b[l.stream&1].Write(l.text)
	}
	return [2]string{b[0].String(), b[1].String()}
}

// randomLog interleaves stdout and stderr lines of random lengths, some of them cut into
// many P records (longer than the first tail window), some unfinished at the end.
func randomLog(rng *rand.Rand, records int) []byte {
	var b bytes.Buffer
	for k := range records {
		s := []string{"stdout", "stderr"}[rng.Intn(2)]
		tag := "F"
		if rng.Intn(3) == 0 {
			tag = "P"
		}
		n := rng.Intn(80)
		if rng.Intn(200) == 0 {
			n = 20000 + rng.Intn(20000)
		}
		fmt.Fprintf(&b, "%s %s %s %s\n", stamp(k/100), s, tag, strings.Repeat(string(rune('a'+k%26)), n))
	}
	return b.Bytes()
}

func TestTailAndSinceMatchModel(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for round := range 12 {
		data := randomLog(rng, 1000+rng.Intn(6000))
		path := writeFile(t, string(data))
		for _, o := range []Options{
			{Tail: 0}, {Tail: 1}, {Tail: 7}, {Tail: 300}, {Tail: 5000}, {Tail: 100000},
			{Tail: -1, Since: mustTime(t, stamp(20))}, {Tail: 50, Since: mustTime(t, stamp(40)), Timestamps: true},
			{Tail: 4000, Since: mustTime(t, stamp(3))},
		} {
			out, errOut, err := show(t, path, o)
			want := model(t, data, o)
			if err != nil || out != want[0] || errOut != want[1] {
				t.Fatalf("round %d, %+v: err %v; stdout %d bytes (want %d), stderr %d bytes (want %d)",
					round, o, err, len(out), len(want[0]), len(errOut), len(want[1]))
			}
		}
	}
}

// A stderr line that began long before the last window and ends last is one of the last
// lines: it is shown whole.
func TestTailLineBegunBeforeTheWindow(t *testing.T) {
	var b strings.Builder
	b.WriteString(stamp(0) + " stderr P begun \n")
	for i := range 5000 {
		fmt.Fprintf(&b, "%s stdout F line%d\n", stamp(1), i)
	}
	b.WriteString(stamp(2) + " stderr F ended\n")
	path := writeFile(t, b.String())
	out, errOut, err := show(t, path, Options{Tail: 2})
	if err != nil || out != "line4999\n" || errOut != "begun ended\n" {
		t.Fatalf("stdout %q stderr %q err %v", out, errOut, err)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// ---- following ----

// follow runs Show with Follow; the outputs are pipes read line by line.
type follow struct {
	t        *testing.T
	out, err *bufio.Reader
	pipes    []*os.File
	done     chan error
}

func startFollow(t *testing.T, path string, o Options) *follow {
	t.Helper()
	o.Follow = true
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	f := &follow{t: t, out: bufio.NewReader(outR), err: bufio.NewReader(errR), pipes: []*os.File{outR, errR}, done: make(chan error, 1)}
	go func() {
		f.done <- Show(path, o, outW, errW)
		outW.Close()
		errW.Close()
	}()
	t.Cleanup(func() { outR.Close(); errR.Close() })
	return f
}

// expect reads the next lines of stdout (stream 0) or stderr (1).
func (f *follow) expect(stream int, lines ...string) {
	f.t.Helper()
	f.pipes[stream].SetReadDeadline(time.Now().Add(10 * time.Second))
	r := []*bufio.Reader{f.out, f.err}[stream]
	for _, want := range lines {
		got, err := r.ReadString('\n')
		if err != nil || got != want+"\n" {
			f.t.Fatalf("stream %d: read %q, %v; want %q", stream, got, err, want)
		}
	}
}

func (f *follow) end() {
	f.t.Helper()
	select {
	case err := <-f.done:
		if err != nil {
			f.t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		f.t.Fatal("following did not end after the writer exited")
	}
	for i, r := range []*bufio.Reader{f.out, f.err} {
		if rest, _ := r.ReadString(0); rest != "" {
			f.t.Errorf("stream %d: unexpected %q at the end", i, rest)
		}
	}
}

// monitoredLog is a log in a new directory written by w, with a stand-in for its monitor: a
// process holding the file open for writing. Following ends once stop has ended it.
func monitoredLog(t *testing.T, cfg k8sfile.Config) (path string, w *k8sfile.Writer, stop func()) {
	t.Helper()
	cfg.Path = filepath.Join(t.TempDir(), "ctr.log")
	w, err := k8sfile.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sleep", "600")
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() { cmd.Process.Kill(); <-done }
	t.Cleanup(stop)
	return cfg.Path, w, stop
}

func say(w *k8sfile.Writer, s ptyio.Stream, text string) { w.Write(s, []byte(text), time.Now()) }

func TestFollowEndsWhenTheWriterExits(t *testing.T) {
	path, w, stop := monitoredLog(t, k8sfile.Config{})
	say(w, ptyio.Stdout, "before\n")
	f := startFollow(t, path, Options{Tail: -1})
	f.expect(0, "before")
	say(w, ptyio.Stderr, "err1\n")
	f.expect(1, "err1")
	say(w, ptyio.Stdout, "half ")
	w.Flush() // an unfinished line shows as it grows
	if got, _ := f.out.Peek(5); string(got) != "half " {
		t.Fatalf("unfinished line: %q", got)
	}
	say(w, ptyio.Stdout, "done\n")
	f.expect(0, "half done")
	say(w, ptyio.Stdout, "last\n")
	stop()
	f.expect(0, "last")
	f.end()
}

func TestFollowWithoutWriterEnds(t *testing.T) {
	path := writeFile(t, stamp(1)+" stdout F only\n")
	f := startFollow(t, path, Options{Tail: -1})
	f.expect(0, "only")
	f.end()
}

// kubelet renames the log, the monitor goes on writing into the renamed file until it is
// asked to reopen, then writes to a new file at the path.
func TestFollowAcrossRenameAndReopen(t *testing.T) {
	path, w, stop := monitoredLog(t, k8sfile.Config{})
	say(w, ptyio.Stdout, "one\n")
	f := startFollow(t, path, Options{Tail: -1})
	f.expect(0, "one")
	if err := os.Rename(path, path+".20261127"); err != nil {
		t.Fatal(err)
	}
	say(w, ptyio.Stdout, "two\n")
	f.expect(0, "two")
	say(w, ptyio.Stdout, "three\n")
	w.Reopen()
	say(w, ptyio.Stdout, "four\n")
	f.expect(0, "three", "four")
	stop()
	f.end()
}

func TestFollowAcrossRotationAndTruncation(t *testing.T) {
	for _, rotate := range []bool{true, false} {
		t.Run(fmt.Sprint("rotate=", rotate), func(t *testing.T) {
			// 200 bytes hold three records: the file is replaced before every third line.
			path, w, stop := monitoredLog(t, k8sfile.Config{SizeMax: 200, Rotate: rotate, MaxFiles: 1})
			f := startFollow(t, path, Options{Tail: -1})
			for i := range 12 {
				say(w, ptyio.Stream(2+i%2), fmt.Sprintf("line%02d\n", i))
				f.expect(i%2, fmt.Sprintf("line%02d", i))
			}
			_, err := os.Stat(path + ".1")
			if rotate == os.IsNotExist(err) {
				t.Fatalf("backup %s.1: %v", path, err)
			}
			stop()
			f.end()
		})
	}
}

func TestFollowTruncatedInPlace(t *testing.T) {
	path, w, stop := monitoredLog(t, k8sfile.Config{})
	say(w, ptyio.Stdout, "a long first line\n")
	f := startFollow(t, path, Options{Tail: 1})
	f.expect(0, "a long first line")
	say(w, ptyio.Stdout, "new\n")
	f.expect(0, "new")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	say(w, ptyio.Stdout, "after\n")
	f.expect(0, "after")
	stop()
	f.end()
}

func TestFollowTail(t *testing.T) {
	path, w, stop := monitoredLog(t, k8sfile.Config{})
	for i := range 5 {
		say(w, ptyio.Stdout, fmt.Sprintf("old%d\n", i))
	}
	f := startFollow(t, path, Options{Tail: 2})
	f.expect(0, "old3", "old4")
	say(w, ptyio.Stdout, "new\n")
	f.expect(0, "new")
	stop()
	f.end()
}
