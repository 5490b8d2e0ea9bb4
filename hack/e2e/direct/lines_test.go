package direct

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// Line assembly through the monitor (docs/logging.md §3.2, docs/differences.md §1.2).
func TestLineAssembly(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon writes one record per read
	cases := []struct {
		name, script string
		want         []record // stream and timestamp ignored
	}{
		// busybox's printf builtin flushes once per call: ten 1 KiB writes, one line.
		{"10KiB-in-10-writes", `s=$(head -c 1024 /dev/zero | tr '\0' a); for i in 1 2 3 4 5 6 7 8 9 10; do printf %s "$s"; done; echo`,
			[]record{{content: []byte(strings.Repeat("a", 10240) + "\n")}}},
		{"20KiB-line", `s=$(head -c 20480 /dev/zero | tr '\0' b); printf '%s\n' "$s"`,
			[]record{{partial: true, content: []byte(strings.Repeat("b", 16384))}, {content: []byte(strings.Repeat("b", 4096) + "\n")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "sh", "-c", tc.script)
			if got := runToExit(t, c, "", 10*time.Second); got != "0" {
				t.Fatalf("exit file %q", got)
			}
			recs := readLog(t, c.logPath)
			if len(recs) != len(tc.want) {
				t.Fatalf("%d records %s, want %d", len(recs), masked(recs, "stdout"), len(tc.want))
			}
			for i, r := range recs {
				if r.partial != tc.want[i].partial || !bytes.Equal(r.content, tc.want[i].content) {
					t.Errorf("record %d: partial=%v %d bytes %q, want partial=%v %d bytes", i, r.partial, len(r.content), trunc(r.content), tc.want[i].partial, len(tc.want[i].content))
				}
			}
		})
	}
}

// A prompt is logged as P about 100 ms after it was written, while the container runs.
func TestLinePromptVisibleWhileRunning(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", `printf 'name? '; read x; echo "hi $x"`)
	crioStyle.createOK(t, c, "-i")
	client := dialCRIO(t, c.sockDir+"/"+c.id+"/attach")
	c.start()
	started := time.Now()
	recs := waitLog(t, c.logPath, "stdout", "name? ", 10*time.Second)
	if d := time.Since(started); d > time.Second {
		t.Errorf("prompt logged %v after start, want within about 1 s", d)
	}
	if len(recs) != 1 || !recs[0].partial {
		t.Errorf("records %s: want one P record", masked(recs, "stdout"))
	}
	if _, err := client.Write([]byte("bob\n")); err != nil {
		t.Fatal(err)
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Fatalf("exit file %q", got)
	}
	if s := masked(readLog(t, c.logPath), "stdout"); s != "TS stdout P \"name? \"\nTS stdout F \"hi bob\\n\"\n" {
		t.Errorf("records:\n%s", s)
	}
}

// Arbitrary bytes (invalid UTF-8, NUL, CR, lines longer than 16 KiB) pass through P/F
// reassembly unchanged; the input ends without a newline, as a final P record.
func TestLineBinarySurvives(t *testing.T) {
	setup(t)
	t.Parallel()
	in := make([]byte, 100_000)
	if _, err := rand.Read(in); err != nil {
		t.Fatal(err)
	}
	copy(in[50_000:], "\xff\xfe\x00\r\n\xc3\x28\n")
	in[len(in)-1] = 0x80
	c := newContainer(t, bundleOpts{}, "cat")
	crioStyle.createOK(t, c, "-i")
	client := dialCRIO(t, c.sockDir+"/"+c.id+"/attach")
	c.start()
	for p := in; len(p) > 0; {
		n := min(len(p), 32<<10) // CRI-O's CopyDetachable chunks
		if _, err := client.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := client.CloseWrite(); err != nil { // -i: cat sees EOF
		t.Fatal(err)
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Fatalf("exit file %q", got)
	}
	recs := readLog(t, c.logPath)
	if out := joined(recs, "stdout"); !bytes.Equal(out, in) {
		t.Fatalf("reassembled %d bytes, want the %d bytes written (first difference at %d)", len(out), len(in), firstDiff(out, in))
	}
	if last := recs[len(recs)-1]; !last.partial {
		t.Errorf("last record is F, want P for the unterminated tail")
	}
}
