package journald

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/journald/journaldtest"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

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
	big := strings.Repeat("b", linebuf.MaxLine-1) + "\n"
	w.Write(ptyio.Stdout, []byte(big), now)
	w.Close()
	if n := w.drops.count(); n != 0 {
		t.Fatalf("%d entries dropped", n)
	}

	got := journaldtest.Entries(t, cid, 5)
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
