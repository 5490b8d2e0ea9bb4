package direct

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A terminal container's records carry the pty's \r\n, all on stdout, exactly as conmon's.
func TestTTYRecordsGoldenAgainstConmon(t *testing.T) {
	setup(t)
	if _, err := os.Stat(refConmon); err != nil {
		t.Skipf("needs the reference %s: %v", refConmon, err)
	}
	t.Parallel()
	const script = `echo one; printf 'two\tthree\n'; echo; seq 1 5; echo err >&2; exit 3`
	const want = "one\r\ntwo\tthree\r\n\r\n1\r\n2\r\n3\r\n4\r\n5\r\nerr\r\n"
	results := map[string][]record{}
	for _, bin := range []string{monitorPath, refConmon} {
		c := newContainer(t, bundleOpts{tty: true}, "sh", "-c", script)
		if got := runToExit(t, c, bin, 10*time.Second, "-t"); got != "3" {
			t.Fatalf("%s: exit file %q, want 3", bin, got)
		}
		recs := readLog(t, c.logPath)
		if s := string(joined(recs, "stdout")); s != want {
			t.Errorf("%s: stdout %q, want %q", bin, s, want)
		}
		for _, r := range recs {
			if r.stream != "stdout" || r.partial || !strings.HasSuffix(string(r.content), "\r\n") {
				t.Errorf("%s: record %s partial=%v %q: want stdout F records ending in \\r\\n", bin, r.stream, r.partial, r.content)
			}
		}
		results[bin] = recs
	}
	if g, r := masked(results[monitorPath], "stdout"), masked(results[refConmon], "stdout"); g != r {
		t.Errorf("records differ from %s:\n%s\nreference:\n%s", refConmon, g, r)
	}
}
