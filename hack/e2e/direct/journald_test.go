package direct

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio/journald/journaldtest"
)

// The container's lines as journald entries: fields, priorities from the stream or a <N>
// prefix, a partial line at exit; alone (podman -l journald) and next to k8s-file (CRI-O).
func TestJournald(t *testing.T) {
	setup(t)
	t.Cleanup(journaldtest.Ensure(t))
	const script = `echo out1; echo err1 >&2; echo '<3>prio3'; echo '<8>plain'; printf partial`
	type want struct{ prio, partial string }
	wants := map[string]want{"out1\n": {"6", ""}, "err1\n": {"3", ""}, "<8>plain\n": {"6", ""}, "partial": {"6", "true"}}
	if conmonGo { // 2.2.0+: priority prefixes and labels
		wants["prio3\n"] = want{"3", ""}
	} else {
		wants["<3>prio3\n"] = want{"6", ""}
	}
	for _, style := range []string{"podman-journald", "crio-both"} {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "sh", "-c", script)
			extra := []string{"--log-tag", "mytag"}
			if conmonGo {
				extra = append(extra, "--log-label", "A=b")
			}
			name := "k8s_e2e_pod_ns_uid_0"
			if style == "podman-journald" {
				name = "e2e-" + c.id[:8]
				c.logPath = "" // podmanArgs then passes -l journald
				podmanStyle.createOK(t, c, extra...)
			} else {
				crioStyle.createOK(t, c, append(extra, "-l", "journald:")...)
			}
			c.start()
			if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
				t.Fatalf("exit file %q", got)
			}
			entries := journaldtest.Entries(t, c.id, len(wants))
			if len(entries) != len(wants) {
				t.Fatalf("%d journal entries %v, want %d", len(entries), entries, len(wants))
			}
			for _, e := range entries {
				w, ok := wants[e["MESSAGE"]]
				if !ok {
					t.Errorf("unexpected entry MESSAGE %q", e["MESSAGE"])
					continue
				}
				if e["PRIORITY"] != w.prio || e["CONTAINER_PARTIAL_MESSAGE"] != w.partial {
					t.Errorf("MESSAGE %q: PRIORITY %q partial %q, want %q %q", e["MESSAGE"], e["PRIORITY"], e["CONTAINER_PARTIAL_MESSAGE"], w.prio, w.partial)
				}
				fields := map[string]string{"CONTAINER_ID": c.id[:12], "CONTAINER_TAG": "mytag",
					"SYSLOG_IDENTIFIER": "mytag", "CONTAINER_NAME": name}
				if conmonGo {
					fields["A"] = "b"
				}
				for k, v := range fields {
					if e[k] != v {
						t.Errorf("MESSAGE %q: %s=%q, want %q", e["MESSAGE"], k, e[k], v)
					}
				}
			}
			if style == "crio-both" {
				recs := readLog(t, c.logPath)
				if o, e := string(joined(recs, "stdout")), string(joined(recs, "stderr")); o != "out1\n<3>prio3\n<8>plain\npartial" || e != "err1\n" {
					t.Errorf("k8s log stdout %q stderr %q: want the raw lines", o, e)
				}
			}
		})
	}
}

// A stopped journald does not stop the container (conmon blocks in sd_journal_sendv until
// journald reads again): the output goes on into the k8s-file log, journald entries that
// find no room are dropped, and once journald runs again the container's later lines
// arrive. The entries that did arrive are the lines in order, with gaps only until the
// monitor's queue has drained after journald came back.
func TestJournaldStopped(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	t.Cleanup(journaldtest.Ensure(t))
	const lines = 20000 // far more than the monitor's queue and journald's socket hold
	const after = 100   // lines written over a second once journald runs again
	// The container blocks on a FIFO in a bind-mounted directory until journald runs again.
	shared := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(shared, "go"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, bundleOpts{}, "sh", "-c",
		fmt.Sprintf("seq 1 %d; echo burst-done; read x < /tmp/go; for i in $(seq 1 %d); do echo after$i; usleep 10000; done", lines, after))
	editConfig(t, c.bundle, func(cfg map[string]any) {
		cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{
			"destination": "/tmp", "type": "bind", "source": shared, "options": []any{"rbind", "rw"}})
	})
	crioStyle.createOK(t, c, "-l", "journald:")

	resume := journaldtest.Pause(t, 8*time.Second)
	start := time.Now()
	c.start()
	waitLog(t, c.logPath, "stdout", "burst-done\n", 5*time.Second)
	t.Logf("%d lines logged to k8s-file in %v with journald stopped", lines, time.Since(start))
	resume()
	// Let journald take the monitor's blocked entry before the container writes again: it
	// follows at most max_dgram_qlen entries queued in journald's socket.
	data, err := os.ReadFile("/proc/sys/net/unix/max_dgram_qlen")
	if err != nil {
		t.Fatal(err)
	}
	qlen, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(journaldtest.Entries(t, c.id, qlen+2)); n < qlen+2 {
		t.Fatalf("%d journal entries 10 s after journald resumed, want %d", n, qlen+2)
	}

	// Opening read-write never blocks; the container's read gets the line whenever it opens.
	fifo, err := os.OpenFile(filepath.Join(shared, "go"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	if _, err := fifo.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Fatalf("exit file %q", got)
	}
	// (A line may come as P and F records: waiting for room in the journald queue can hold
	// the output path long enough for k8s-file's idle flush.)
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	want.WriteString("burst-done\n")
	for i := 1; i <= after; i++ {
		fmt.Fprintf(&want, "after%d\n", i)
	}
	if got := string(joined(readLog(t, c.logPath), "stdout")); got != want.String() {
		t.Errorf("k8s-file log holds %d bytes of output, want %d", len(got), want.Len())
	}

	// Until the monitor's queue has drained to half, entries may still be dropped; from
	// then on none is.
	entries := journaldtest.EntriesUntil(t, c.id, func(e []map[string]string) bool {
		return len(e) > 0 && e[len(e)-1]["MESSAGE"] == fmt.Sprintf("after%d\n", after)
	})
	if len(entries) == 0 || entries[len(entries)-1]["MESSAGE"] != fmt.Sprintf("after%d\n", after) {
		t.Fatalf("after%d, the last line, is not in the journal (%d entries)", after, len(entries))
	}
	if len(entries) >= lines+1+after {
		t.Fatalf("%d journal entries: nothing was dropped while journald was stopped", len(entries))
	}
	if entries[0]["MESSAGE"] != "1\n" {
		t.Errorf("first entry %q, want the first line", entries[0]["MESSAGE"])
	}
	last := 0
	var afters []int
	for _, e := range entries {
		m := strings.TrimSuffix(e["MESSAGE"], "\n")
		if m == "burst-done" {
			continue
		}
		if a, ok := strings.CutPrefix(m, "after"); ok {
			n, err := strconv.Atoi(a)
			if err != nil || (len(afters) > 0 && n != afters[len(afters)-1]+1) {
				t.Fatalf("entry %q after %v: a line written once journald ran again was lost", m, afters)
			}
			afters = append(afters, n)
			continue
		}
		n, err := strconv.Atoi(m)
		if err != nil || n <= last || n > lines || len(afters) > 0 {
			t.Fatalf("entry %q after line %d", m, last)
		}
		last = n
	}
	t.Logf("journald holds %d of %d lines, after%d to after%d of those written after it resumed",
		len(entries), lines+1+after, afters[0], after)
}
