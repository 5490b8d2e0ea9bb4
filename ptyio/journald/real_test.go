package journald

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/journald/journaldtest"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

// jsonValue decodes a journalctl -o json value: a string, or an array of
// bytes for values journalctl does not consider printable.
func jsonValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b []byte
	var ints []int
	if json.Unmarshal(raw, &ints) == nil {
		for _, i := range ints {
			b = append(b, byte(i))
		}
	}
	return string(b)
}

// readJournal returns the entries of one container, waiting (bounded) until
// journald has written want of them.
func readJournal(t *testing.T, cid string, want int) []map[string]string {
	t.Helper()
	jc, err := exec.LookPath("journalctl")
	if err != nil {
		t.Skip("needs journalctl")
	}
	exec.Command(jc, "--sync").Run() // best effort; the loop below bounds the wait
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(jc, "-a", "-o", "json", "CONTAINER_ID_FULL="+cid).Output()
		if err != nil {
			t.Fatalf("journalctl: %v", err)
		}
		var entries []map[string]string
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
				t.Fatalf("journalctl output: %v", err)
			}
			e := map[string]string{}
			for k, v := range raw {
				e[k] = jsonValue(v)
			}
			entries = append(entries, e)
		}
		if len(entries) >= want || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(50 * time.Millisecond) // journald offers no event for "entry written"
	}
}

func TestRealJournald(t *testing.T) {
	stop := journaldtest.Ensure(t)
	defer stop()
	cid := strconv.FormatInt(time.Now().UnixNano(), 16) + strings.Repeat("c", 48)
	w, err := New(Config{CID: cid, Name: "itest", Labels: []string{"CONMON_GO_TEST=label"}, Log: &logRec{}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	w.Write(ptyio.Stdout, []byte("jout1\n<5>notice\n"), now)
	w.Write(ptyio.Stderr, []byte("jerr1\n"), now)
	w.Write(ptyio.Stdout, []byte("part"), now)
	w.Flush()
	// Force the memfd path with a small send buffer.
	w.rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096) })
	big := strings.Repeat("b", linebuf.MaxLine-1) + "\n"
	w.Write(ptyio.Stdout, []byte(big), now)
	w.Close()
	if w.dropped != 0 {
		t.Fatalf("%d entries dropped", w.dropped)
	}

	got := readJournal(t, cid, 5)
	want := []struct{ msg, prio, partial string }{
		{"jout1\n", "6", ""}, {"notice\n", "5", ""}, {"jerr1\n", "3", ""}, {"part", "6", "true"}, {big, "6", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("journal holds %d entries for %s, want %d", len(got), cid, len(want))
	}
	for i, wt := range want {
		e := got[i]
		if e["MESSAGE"] != wt.msg || e["PRIORITY"] != wt.prio || e["CONTAINER_PARTIAL_MESSAGE"] != wt.partial {
			t.Errorf("entry %d: MESSAGE %.20q PRIORITY %q partial %q, want %.20q %q %q",
				i, e["MESSAGE"], e["PRIORITY"], e["CONTAINER_PARTIAL_MESSAGE"], wt.msg, wt.prio, wt.partial)
		}
		if e["CONTAINER_ID"] != cid[:12] || e["CONTAINER_NAME"] != "itest" ||
			e["SYSLOG_IDENTIFIER"] != "itest" || e["CONMON_GO_TEST"] != "label" {
			t.Errorf("entry %d fields: %v", i, e)
		}
	}
}
