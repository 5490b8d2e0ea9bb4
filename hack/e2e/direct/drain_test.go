package direct

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// A process left behind by the container's main process writes 100 ms after the exit; it
// shares the host pid namespace, so the kernel does not kill it with the init.
func TestDrainLateWriter(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon reads only what is buffered at the exit (docs/differences.md §1.4)
	t.Parallel()
	cases := []struct{ name, script string }{
		// The writer exits after its line: the drain ends at EOF.
		{"exits", `(sleep 0.1; echo late) & echo early`},
		// The writer keeps the pipe open: the drain ends 250 ms after the last byte.
		{"holds-pipe", `(sleep 0.1; echo late; exec sleep 30) & echo early`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{noPidNS: true}, "sh", "-c", tc.script)
			crioStyle.createOK(t, c)
			c.start()
			started := time.Now()
			if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
				t.Fatalf("exit file %q, want 0", got)
			}
			elapsed := time.Since(started)
			// Read the log as soon as the exit file appeared: the drain came before it.
			if s := string(joined(readLog(t, c.logPath), "stdout")); s != "early\nlate\n" {
				t.Errorf("log at exit-file time holds %q, want early\\nlate\\n", s)
			}
			// The drain is bounded (2 s in total): engines give up after about 5 s.
			if elapsed > 4*time.Second {
				t.Errorf("exit file %v after start, want well below the engines' 5 s", elapsed)
			}
		})
	}
}

// Ten megabytes written right before the exit, ending in a partial line: nothing is lost.
func TestDrain10MBAtExit(t *testing.T) {
	setup(t)
	t.Parallel()
	const line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM" // + \n = 50 bytes
	const total = 10 << 20
	c := newContainer(t, bundleOpts{}, "sh", "-c", "yes "+line+" | head -c "+strconv.Itoa(total)+"; printf end; exit 3")
	if got := runToExit(t, c, "", 60*time.Second); got != "3" {
		t.Fatalf("exit file %q, want 3", got)
	}
	want := strings.Repeat(line+"\n", total/50+1)
	want = want[:total] + "end"
	var got bytes.Buffer
	var last record
	scanLog(t, c.logPath, func(r record) {
		if r.stream != "stdout" {
			t.Fatalf("unexpected %s record %q", r.stream, r.content)
		}
		got.Write(r.content)
		last = r
	})
	if got.String() != want {
		t.Fatalf("log holds %d bytes, want %d (first difference at %d)", got.Len(), len(want), firstDiff(got.Bytes(), []byte(want)))
	}
	if !last.partial || !bytes.HasSuffix(last.content, []byte("end")) {
		t.Errorf("last record %q partial=%v: want a P record ending in end, no terminating F", trunc(last.content), last.partial)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
