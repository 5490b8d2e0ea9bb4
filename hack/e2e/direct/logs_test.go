package direct

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// goldenScript writes newline-aligned output, so conmon's per-read records and
// conmon-go's assembled lines must be byte-identical (docs/logging.md §3.2).
const goldenScript = `echo out1; echo err1 >&2; printf 'tab\there\n'; echo; printf 'utf8 \303\244 \001\n'; echo '  spaced  '; echo err2 >&2; seq 1 20; printf 'crlf\r\n' >&2; exit 4`

func TestLogGoldenAgainstConmon(t *testing.T) {
	setup(t)
	if _, err := os.Stat(refConmon); err != nil {
		t.Skipf("needs the reference %s: %v", refConmon, err)
	}
	t.Parallel()
	results := map[string][]record{}
	for _, bin := range []string{monitorPath, refConmon} {
		c := newContainer(t, bundleOpts{}, "sh", "-c", goldenScript)
		if got := runToExit(t, c, bin, 10*time.Second); got != "4" {
			t.Fatalf("%s: exit file %q, want 4", bin, got)
		}
		results[bin] = readLog(t, c.logPath)
	}
	got, ref := results[monitorPath], results[refConmon]
	wantOut := "out1\ntab\there\n\nutf8 \303\244 \001\n  spaced  \n"
	for i := 1; i <= 20; i++ {
		wantOut += strconv.Itoa(i) + "\n"
	}
	if s := string(joined(got, "stdout")); s != wantOut {
		t.Errorf("stdout %q, want %q", s, wantOut)
	}
	if s := string(joined(got, "stderr")); s != "err1\nerr2\ncrlf\r\n" {
		t.Errorf("stderr %q", s)
	}
	for _, stream := range []string{"stdout", "stderr"} {
		if g, r := masked(got, stream), masked(ref, stream); g != r {
			t.Errorf("%s records differ from %s:\n%s\nreference:\n%s", stream, refConmon, g, r)
		}
	}
}

func TestLog50MBCompleteBeforeExitFile(t *testing.T) {
	setup(t)
	t.Parallel()
	const line = "0123456789012345678901234567890123456789012345678" // + \n = 50 bytes
	const total = 50 << 20
	c := newContainer(t, bundleOpts{}, "sh", "-c", "yes "+line+" | head -c "+strconv.Itoa(total))
	if got := runToExit(t, c, "", 120*time.Second); got != "0" {
		t.Fatalf("exit file %q, want 0", got)
	}
	// The exit file exists: everything must already be in the log.
	var size, lines int
	var pending []byte
	scanLog(t, c.logPath, func(r record) {
		if r.stream != "stdout" {
			t.Fatalf("unexpected %s record %q", r.stream, r.content)
		}
		size += len(r.content)
		pending = append(pending, r.content...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			if string(pending[:i]) != line {
				t.Fatalf("line %d is %q", lines+1, trunc(pending[:i]))
			}
			lines++
			pending = pending[i+1:]
		}
	})
	if size != total || lines != total/50 || len(pending) != 0 {
		t.Errorf("log holds %d bytes in %d lines (+%d pending), want %d bytes in %d lines", size, lines, len(pending), total, total/50)
	}
}

func TestLog1MiBLine(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", `head -c 1048576 /dev/zero | tr '\0' a; echo`)
	if got := runToExit(t, c, "", 30*time.Second); got != "0" {
		t.Fatalf("exit file %q, want 0", got)
	}
	recs := readLog(t, c.logPath)
	if out := joined(recs, "stdout"); string(out) != strings.Repeat("a", 1<<20)+"\n" {
		t.Fatalf("reassembled line: %d bytes, want 1048577 a...\\n", len(out))
	}
	for i, r := range recs {
		if len(r.content) > 16384 || r.partial != (i < len(recs)-1) {
			t.Fatalf("record %d of %d: %d bytes partial=%v: want P records of <= 16 KiB and one final F", i, len(recs), len(r.content), r.partial)
		}
	}
}

func TestLogPromptWithoutNewline(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", `printf 'prompt> '; exec sleep 100`)
	_, msg := crioStyle.create(t, c)
	msg.mustInt(t, "pid")
	c.start()
	// Visible while the container still waits (logs -f shows prompts).
	waitLog(t, c.logPath, "stdout", "prompt> ", 10*time.Second)
	c.mustRunc("kill", c.id, "KILL")
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "137" {
		t.Errorf("exit file %q, want 137", got)
	}
	recs := readLog(t, c.logPath)
	if len(recs) != 1 || !recs[0].partial || string(recs[0].content) != "prompt> " {
		t.Errorf("records %+v: want exactly one P record `prompt> ` and no terminating empty F", recs)
	}
}

func TestLogLineSplitAcrossWrites(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon writes one record per read
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", `printf abc; sleep 0.02; printf def; sleep 0.02; echo ghi`)
	if got := runToExit(t, c, "", 10*time.Second); got != "0" {
		t.Fatalf("exit file %q", got)
	}
	recs := readLog(t, c.logPath)
	if len(recs) != 1 || recs[0].partial || string(recs[0].content) != "abcdefghi\n" {
		t.Errorf("records %+v: want one F record abcdefghi", recs)
	}
}

func TestLogReopen(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "echo before; read x; echo after")
	_, msg := crioStyle.create(t, c, "-i")
	msg.mustInt(t, "pid")
	client := dialCRIO(t, c.sockDir+"/"+c.id+"/attach")
	c.start()
	waitLog(t, c.logPath, "stdout", "before\n", 10*time.Second)

	// kubelet: rename, then ReopenContainerLog; CRI-O waits for the file at the path.
	if err := os.Rename(c.logPath, c.logPath+".1"); err != nil {
		t.Fatal(err)
	}
	writeCtl(t, c.bundle, "2 0 0\n")
	e2eutil.WaitFile(t, c.logPath, 10*time.Second, nil)

	if _, err := client.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Errorf("exit file %q", got)
	}
	if s := string(joined(readLog(t, c.logPath), "stdout")); s != "after\n" {
		t.Errorf("reopened log holds %q, want after\\n", s)
	}
	if s := string(joined(readLog(t, c.logPath+".1"), "stdout")); s != "before\n" {
		t.Errorf("renamed log holds %q, want before\\n", s)
	}
}
