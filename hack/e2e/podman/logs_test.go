package podman

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/ptyio/journald/journaldtest"
)

// k8s-file (podman's default): podman logs splits the streams again and honours --tail.
func TestLogs(t *testing.T) {
	need(t)
	r := run(t, "--name", "logs-basic", image, "sh", "-c", "echo out1; echo err1 >&2; echo out2")
	t.Cleanup(func() { podman(t, "rm", "-f", "logs-basic") })
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	r = podman(t, "logs", "logs-basic")
	if r.code != 0 || r.stdout != "out1\nout2\n" || r.stderr != "err1\n" {
		t.Fatalf("podman logs: %s", r)
	}
	// --tail counts records of both streams, whose relative order depends on scheduling:
	// use one stream.
	id := runDetached(t, image, "seq", "1", "10")
	mustPodman(t, "wait", id)
	if got := mustPodman(t, "logs", "--tail", "2", id); got != "9\n10" {
		t.Fatalf("podman logs --tail 2: %q", got)
	}
}

// logs -f ends when the container ends, with every line in order.
func TestLogsFollow(t *testing.T) {
	need(t)
	const n = 50
	id := runDetached(t, image, "sh", "-c", fmt.Sprintf("for i in $(seq 1 %d); do echo line$i; sleep 0.02; done", n))
	r := podmanWith(t, opts{timeout: 30 * time.Second}, "logs", "-f", id)
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "line%d\n", i)
	}
	if r.code != 0 || r.stdout != want.String() {
		t.Fatalf("podman logs -f: want line1..line%d: %s", n, r)
	}
	if got := inspect(t, id, "{{.State.Status}}"); got != "exited" {
		t.Errorf("logs -f returned while the container is %s", got)
	}
}

// Lines longer than every buffer on the way come out whole, attached and in the log.
func TestLongLines(t *testing.T) {
	need(t)
	const size = 20 * 1024
	script := fmt.Sprintf(`echo before; head -c %d /dev/zero | tr '\0' x; echo; echo after`, size)
	r := run(t, "--name", "long-lines", image, "sh", "-c", script)
	t.Cleanup(func() { podman(t, "rm", "-f", "long-lines") })
	want := "before\n" + strings.Repeat("x", size) + "\nafter\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("attached output differs: %s", r)
	}
	if got := podman(t, "logs", "long-lines"); got.stdout != want {
		t.Fatalf("podman logs differs: %s", got)
	}
}

// lineChecker counts lines and checks each equals want, without keeping 50 MB in memory.
type lineChecker struct {
	want    string
	partial []byte
	lines   int
	bad     int
}

func (c *lineChecker) Write(p []byte) (int, error) {
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.partial = append(c.partial, p...)
			return n, nil
		}
		c.partial = append(c.partial, p[:i]...)
		if string(c.partial) != c.want {
			c.bad++
		}
		c.lines++
		c.partial = c.partial[:0]
		p = p[i+1:]
	}
}

// 50 MiB of output: nothing lost between the container, the monitor and the k8s-file log.
func TestLargeOutput(t *testing.T) {
	need(t)
	const line = "0123456789012345678901234567890123456789012345678" // 49 bytes + '\n' = 50
	const lines = 50 * 1024 * 1024 / 50
	id := runDetached(t, image, "sh", "-c", fmt.Sprintf("yes %s | head -n %d", line, lines))
	if got := podmanWith(t, opts{timeout: 120 * time.Second}, "wait", id); strings.TrimSpace(got.stdout) != "0" {
		t.Fatalf("podman wait: %s", got)
	}
	c := &lineChecker{want: line}
	r := podmanWith(t, opts{timeout: 120 * time.Second, stdout: c}, "logs", id)
	if r.code != 0 || c.lines != lines || c.bad != 0 || len(c.partial) != 0 {
		t.Fatalf("podman logs: %d lines (%d wrong, %d bytes unterminated), want %d: %s",
			c.lines, c.bad, len(c.partial), lines, r)
	}
}

// journald: podman reads CONTAINER_ID_FULL, PRIORITY 6/3 and CONTAINER_PARTIAL_MESSAGE
// (docs/logging.md §9.2); a 20 KiB line crosses every datagram and buffer bound.
func TestLogDriverJournald(t *testing.T) {
	need(t)
	t.Cleanup(journaldtest.Ensure(t))
	long := strings.Repeat("y", 20*1024)
	script := fmt.Sprintf(`echo jout1; echo jerr1 >&2; head -c %d /dev/zero | tr '\0' y; echo; echo jout2`, len(long))
	r := run(t, "--name", "journal-ctr", "--log-driver", "journald", "--log-opt", "tag=jtag", image, "sh", "-c", script)
	t.Cleanup(func() { podman(t, "rm", "-f", "journal-ctr") })
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	r = podman(t, "logs", "journal-ctr")
	if r.code != 0 || r.stdout != "jout1\n"+long+"\njout2\n" || r.stderr != "jerr1\n" {
		t.Fatalf("podman logs from the journal: %s", r)
	}

	id := inspect(t, "journal-ctr", "{{.ID}}")
	var sawOut, sawErr bool
	for _, e := range journaldtest.Entries(t, id, 0) {
		msg := e["MESSAGE"]
		for field, want := range map[string]string{
			"CONTAINER_ID": id[:12], "CONTAINER_NAME": "journal-ctr",
			"CONTAINER_TAG": "jtag", "SYSLOG_IDENTIFIER": "jtag",
		} {
			if e[field] != want {
				t.Errorf("entry %q: %s=%v, want %s", clip(msg), field, e[field], want)
			}
		}
		switch strings.TrimSuffix(msg, "\n") {
		case "jout1":
			sawOut = e["PRIORITY"] == "6"
		case "jerr1":
			sawErr = e["PRIORITY"] == "3"
		}
	}
	if !sawOut || !sawErr {
		t.Errorf("want jout1 with PRIORITY 6 and jerr1 with PRIORITY 3 in the journal (found: %v, %v)", sawOut, sawErr)
	}
}

// A `<N>` prefix sets the journal priority and is stripped [2.2.0+] (docs/logging.md §9.3).
func TestJournaldPriorityPrefix(t *testing.T) {
	requireConmonGo(t)
	t.Cleanup(journaldtest.Ensure(t))
	r := run(t, "--name", "journal-prio", "--log-driver", "journald", image, "sh", "-c", `echo "<3>boom"; echo "<6>fine"; echo "<8>plain"`)
	t.Cleanup(func() { podman(t, "rm", "-f", "journal-prio") })
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	r = podman(t, "logs", "journal-prio")
	if r.code != 0 || r.stdout != "fine\n<8>plain\n" || r.stderr != "boom\n" {
		t.Fatalf("podman logs: want boom on stderr, fine and <8>plain on stdout: %s", r)
	}
}

// none: output still reaches the attached client, nothing is stored.
func TestLogDriverNone(t *testing.T) {
	need(t)
	r := run(t, "--name", "log-none", "--log-driver", "none", image, "sh", "-c", "echo none-out; echo none-err >&2")
	t.Cleanup(func() { podman(t, "rm", "-f", "log-none") })
	if r.code != 0 || r.stdout != "none-out\n" || r.stderr != "none-err\n" {
		t.Fatalf("attached output with -l none: %s", r)
	}
	if r := podman(t, "logs", "log-none"); r.code == 0 || strings.Contains(r.stdout, "none-out") {
		t.Fatalf("podman logs must fail without stored output: %s", r)
	}
}

// passthrough: the container writes straight to podman's own stdout and stderr.
func TestLogDriverPassthrough(t *testing.T) {
	need(t)
	r := run(t, "--rm", "--log-driver", "passthrough", image, "sh", "-c",
		"echo pt-out; echo pt-err >&2; readlink /proc/self/fd/1; exit 2")
	if r.code != 2 || !strings.HasPrefix(r.stdout, "pt-out\npipe:[") || r.stderr != "pt-err\n" {
		t.Fatalf("want pt-out then podman's own stdout pipe, pt-err, exit 2: %s", r)
	}
}

// --log-opt max-size: the k8s-file never grows past the limit, the newest output survives.
func TestLogMaxSize(t *testing.T) {
	need(t)
	const limit = 16 * 1024
	script := `i=0; while [ $i -lt 200 ]; do i=$((i+1)); printf "line%03d %0500d\n" $i 0; done`
	id := runDetached(t, "--log-opt", fmt.Sprintf("max-size=%d", limit), image, "sh", "-c", script)
	mustPodman(t, "wait", id)
	path := inspect(t, id, "{{.HostConfig.LogConfig.Path}}")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// One record may cross the limit before the monitor truncates.
	if st.Size() > limit+600 {
		t.Errorf("%s is %d bytes, limit %d", path, st.Size(), limit)
	}
	out := mustPodman(t, "logs", id)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if len(got) == 0 || len(got) >= 200 || !strings.HasPrefix(got[len(got)-1], "line200 ") {
		t.Fatalf("podman logs with max-size: %d lines, want a tail ending at line200; last: %q", len(got), clip(out[max(0, len(out)-600):]))
	}
}

// --log-opt tag with k8s-file only: the monitor refuses, podman reports it (docs/engines.md
// §2.5).
func TestLogTagK8sFile(t *testing.T) {
	requireConmonGo(t)
	r := run(t, "--rm", "--log-driver", "k8s-file", "--log-opt", "tag=x", image, "true")
	if r.code != 126 {
		t.Fatalf("want exit 126: %s", r)
	}
}
