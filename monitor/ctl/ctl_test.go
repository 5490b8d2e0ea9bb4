package ctl

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const waitLimit = 20 * time.Second

// recorder is the Handler and Logger of the tests: every call becomes an event.
type recorder struct {
	events chan string
	mu     sync.Mutex
	warns  []string
}

func (r *recorder) Resize(rows, cols int) { r.events <- fmt.Sprintf("resize %dx%d", rows, cols) }
func (r *recorder) Reopen()               { r.events <- "reopen" }
func (r *recorder) Warnf(format string, args ...any) {
	r.mu.Lock()
	r.warns = append(r.warns, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}
func (r *recorder) Debugf(string, ...any) {}

func (r *recorder) takeWarns() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.warns
	r.warns = nil
	return w
}

// until collects events up to and including the sentinel event.
func (r *recorder) until(t *testing.T, sentinel string) []string {
	t.Helper()
	var got []string
	for {
		select {
		case e := <-r.events:
			got = append(got, e)
			if e == sentinel {
				return got
			}
		case <-time.After(waitLimit):
			t.Fatalf("timed out; events so far %q", got)
		}
	}
}

func setup(t *testing.T) (string, *recorder) {
	t.Helper()
	bundle := t.TempDir()
	r := &recorder{events: make(chan string, 1000)}
	f, err := Create(bundle, r, r)
	if err != nil {
		t.Fatal(err)
	}
	f.Start()
	t.Cleanup(f.Close)
	return bundle, r
}

// writer opens the FIFO like CRI-O (blocking O_WRONLY).
func writer(t *testing.T, path string) *os.File {
	t.Helper()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func write(t *testing.T, w *os.File, s string) {
	t.Helper()
	if _, err := w.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// drained waits until the reader has consumed everything written so far, so that the
// next write arrives in a separate read. A FIFO offers no event for that: poll FIONREAD (TIOCINQ).
func drained(t *testing.T, w *os.File) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("FIFO not drained")
		}
		time.Sleep(time.Millisecond)
	}
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestCreate(t *testing.T) {
	bundle := t.TempDir()
	// Existing files of any kind are replaced.
	if err := os.WriteFile(bundle+"/ctl", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(bundle+"/winsz", 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(bundle, &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	umask := unix.Umask(0)
	unix.Umask(umask)
	for _, name := range []string{"ctl", "winsz"} {
		var st unix.Stat_t
		if err := unix.Stat(bundle+"/"+name, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o660&^uint32(umask) {
			t.Errorf("%s: mode %o", name, st.Mode)
		}
	}
	f.Close() // without Start
	f.Close()
	if _, err := os.Stat(bundle + "/ctl"); err != nil {
		t.Fatalf("FIFO removed by Close: %v", err)
	}

	_, err = Create(bundle+"/missing", &recorder{}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "Failed to mkfifo at "+bundle+"/missing/ctl: ") {
		t.Fatalf("got %v", err)
	}
}

func TestControlTableThroughFIFO(t *testing.T) {
	bundle, r := setup(t)
	var in strings.Builder
	var want, warns []string
	for _, tc := range controlTable {
		in.WriteString(tc.line + "\n")
		switch {
		case tc.err != "":
			warns = append(warns, tc.err)
		case tc.msg.Type == TypeResize:
			want = append(want, fmt.Sprintf("resize %dx%d", tc.msg.A, tc.msg.B))
		default:
			want = append(want, "reopen")
		}
	}
	in.WriteString("1 999 999\n")
	want = append(want, "resize 999x999")
	// One batched write, longer than the line buffer: lines are split across reads.
	write(t, writer(t, bundle+"/ctl"), in.String())
	equal(t, "events", r.until(t, "resize 999x999"), want)
	equal(t, "warnings", r.takeWarns(), warns)
}

func TestSplitAndBatched(t *testing.T) {
	bundle, r := setup(t)
	w := writer(t, bundle+"/ctl")
	for _, part := range []string{"1 2", "0 30\n2 0", " 0\n", "foo\n1 5 5\n1 6", " 6\n"} {
		write(t, w, part)
		drained(t, w)
	}
	equal(t, "events", r.until(t, "resize 6x6"), []string{"resize 20x30", "reopen", "resize 5x5", "resize 6x6"})
	equal(t, "warnings", r.takeWarns(), []string{"Invalid control message format"})
}

func TestOverlongLine(t *testing.T) {
	bundle, r := setup(t)
	w := writer(t, bundle+"/ctl")
	fits := "1 7 7" + strings.Repeat(" ", lineBuf-2-5) + "\n"    // 199 bytes with newline
	tooLong := "1 8 8" + strings.Repeat(" ", lineBuf-1-5) + "\n" // 200 bytes
	huge := "1 9 9" + strings.Repeat("x", 1000) + "\n"
	write(t, w, fits+tooLong+huge+"1 4 4\n")
	equal(t, "events", r.until(t, "resize 4x4"), []string{"resize 7x7", "resize 4x4"})
	want := "Could not find newline in entire buffer"
	equal(t, "warnings", r.takeWarns(), []string{want, want})

	// The discarded tail may arrive in later writes.
	write(t, w, strings.Repeat("y", 300))
	drained(t, w)
	write(t, w, "1 3 3\n1 2 2\n")
	equal(t, "events", r.until(t, "resize 2x2"), []string{"resize 2x2"})
	equal(t, "warnings", r.takeWarns(), []string{want})
}

func TestWinsz(t *testing.T) {
	bundle, r := setup(t)
	write(t, writer(t, bundle+"/winsz"), "10 20\ngarbage\n1001 5\n0030 0040\n")
	equal(t, "events", r.until(t, "resize 30x40"), []string{"resize 10x20", "resize 30x40"})
	equal(t, "warnings", r.takeWarns(), []string{
		"Failed to parse window size",
		"Invalid window size: 1001x5 (must be between 0 and 1000)",
	})
}

// podman opens ctl O_WRONLY|O_NONBLOCK for the initial resize and closes it after each
// message; the reader must never see EOF.
func TestWritersComeAndGo(t *testing.T) {
	bundle, r := setup(t)
	var want []string
	for i := range 50 {
		fd, err := unix.Open(bundle+"/ctl", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("1 %d %d\n", i, i+1)
		if _, err := unix.Write(fd, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		want = append(want, fmt.Sprintf("resize %dx%d", i, i+1))
	}
	equal(t, "events", r.until(t, "resize 49x50"), want)
	equal(t, "warnings", r.takeWarns(), nil)
}

// Links planted at the FIFOs' names are replaced, never followed: neither a FIFO nor a file
// outside the bundle is opened or changed. A directory in the way is a clear error.
func TestCreateReplacesPlantedLinks(t *testing.T) {
	bundle, outside := t.TempDir(), t.TempDir()
	if err := unix.Mkfifo(outside+"/fifo", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outside+"/file", []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"ctl": "fifo", "winsz": "file"} {
		if err := os.Symlink(outside+"/"+target, bundle+"/"+name); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Create(bundle, &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range []string{"ctl", "winsz"} {
		if st, err := os.Lstat(bundle + "/" + name); err != nil || st.Mode().Type() != os.ModeNamedPipe {
			t.Errorf("%s: %v, %v; want a FIFO", name, st.Mode(), err)
		}
	}
	if got, err := os.ReadFile(outside + "/file"); err != nil || string(got) != "precious" {
		t.Errorf("outside file %q, %v", got, err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 2 {
		t.Errorf("outside directory holds %v", entries)
	}

	dir := t.TempDir()
	if err := os.Mkdir(dir+"/ctl", 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, &recorder{}, nil); err == nil || !strings.HasPrefix(err.Error(), "Failed to mkfifo at "+dir+"/ctl: ") {
		t.Fatalf("a directory at ctl: %v", err)
	}
}
