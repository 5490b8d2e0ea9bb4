package direct

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"

	"golang.org/x/sys/unix"
)

// A client that never reads must not slow the container down (docs/differences.md
// §1.1), while a reading client gets every byte. Not parallel: it compares two timings.
func TestClientNeverReads(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon blocks on a client that does not read
	// 50-byte lines.
	const line = "0123456789012345678901234567890123456789012345678"
	const total = 50 << 20
	script := "yes " + line + " | head -c " + strconv.Itoa(total)
	run := func(clients bool) (time.Duration, int64, error) {
		c := newContainer(t, bundleOpts{}, "sh", "-c", script)
		podmanStyle.createOK(t, c)
		got := make(chan readResult, 1)
		if clients {
			if err := dialPodman(t, c.bundle).CloseWrite(); err != nil { // connected, never reads
				t.Fatal(err)
			}
			reader := dialPodman(t, c.bundle)
			go func() { got <- readAll(reader, line) }()
		}
		c.start()
		started := time.Now()
		if s := e2eutil.WaitFile(t, c.exitFile(), 60*time.Second, e2eutil.NonEmpty); string(s) != "0" {
			t.Fatalf("exit file %q", s)
		}
		elapsed := time.Since(started)
		var size int64
		scanLog(t, c.logPath, func(r record) { size += int64(len(r.content)) })
		if size != total {
			t.Errorf("clients=%v: log holds %d bytes, want %d", clients, size, total)
		}
		if !clients {
			return elapsed, 0, nil
		}
		select {
		case r := <-got:
			return elapsed, r.n, r.err
		case <-time.After(10 * time.Second):
			t.Fatal("reading client did not see the end of the stream")
		}
		return 0, 0, nil
	}
	base, _, _ := run(false)
	withClients, n, err := run(true)
	if withClients > base+1500*time.Millisecond {
		t.Errorf("container took %v with a client that never reads, %v without", withClients, base)
	}
	if err != nil || n != total {
		t.Errorf("reading client received %d bytes (%v), want all %d", n, err, total)
	}
}

type readResult struct {
	n   int64
	err error
}

// readAll reads stdout frames until EOF, checking them against the repeated line.
func readAll(c *net.UnixConn, line string) readResult {
	pattern := []byte(strings.Repeat(line+"\n", 65536/len(line)+2))
	buf := make([]byte, 65536)
	var res readResult
	_ = c.SetReadDeadline(time.Now().Add(90 * time.Second))
	for {
		k, err := c.Read(buf)
		if k == 0 && (err == nil || err == io.EOF || errors.Is(err, unix.ECONNRESET)) {
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
		off := int(res.n % int64(len(line)+1))
		if buf[0] != 2 || !bytes.Equal(buf[1:k], pattern[off:off+k-1]) {
			res.err = errors.New("wrong frame at offset " + strconv.FormatInt(res.n, 10))
			return res
		}
		res.n += int64(k - 1)
	}
}
