package journald

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/ptyio"
	"github.com/conmon-go/conmon-go/ptyio/linebuf"
)

const testCID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type field struct{ name, value string }

type entry struct {
	fields []field
	binMsg bool // MESSAGE used the length-prefixed form
	memfd  bool
}

func (e entry) get(name string) (string, bool) {
	for _, f := range e.fields {
		if f.name == name {
			return f.value, true
		}
	}
	return "", false
}

func (e entry) names() string {
	var n []string
	for _, f := range e.fields {
		n = append(n, f.name)
	}
	return strings.Join(n, ",")
}

// decode parses a native-protocol datagram.
func decode(t *testing.T, b []byte) entry {
	t.Helper()
	var e entry
	for len(b) > 0 {
		i := bytes.IndexAny(b, "=\n")
		if i < 0 {
			t.Fatalf("field without terminator: %q", b)
		}
		name := string(b[:i])
		if b[i] == '=' {
			j := bytes.IndexByte(b, '\n')
			e.fields = append(e.fields, field{name, string(b[i+1 : j])})
			b = b[j+1:]
			continue
		}
		b = b[i+1:]
		if len(b) < 8 {
			t.Fatalf("short binary field %s", name)
		}
		n := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < n+1 || b[n] != '\n' {
			t.Fatalf("bad binary field %s (len %d)", name, n)
		}
		e.fields = append(e.fields, field{name, string(b[:n])})
		if name == "MESSAGE" {
			e.binMsg = true
		}
		b = b[n+1:]
	}
	return e
}

// journal is a datagram socket standing in for journald's.
type journal struct {
	t    *testing.T
	path string
	fd   int
}

func newJournal(t *testing.T, path string) *journal {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	j := &journal{t, path, fd}
	t.Cleanup(j.close)
	return j
}

func (j *journal) close() {
	if j.fd >= 0 {
		unix.Close(j.fd)
		os.Remove(j.path)
		j.fd = -1
	}
}

// next receives one entry, reading a passed memfd like journald does.
func (j *journal) next() entry {
	j.t.Helper()
	buf := make([]byte, 256<<10)
	oob := make([]byte, 64)
	n, oobn, _, _, err := unix.Recvmsg(j.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		j.t.Fatalf("receive entry: %v", err)
	}
	if oobn == 0 {
		return decode(j.t, buf[:n])
	}
	if n != 0 {
		j.t.Fatalf("memfd datagram carries %d payload bytes", n)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		j.t.Fatalf("control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		j.t.Fatalf("rights: %v %v", fds, err)
	}
	defer unix.Close(fds[0])
	seals, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if err != nil || seals&want != want {
		j.t.Fatalf("memfd seals %#x, %v", seals, err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", fds[0]))
	if err != nil {
		j.t.Fatal(err)
	}
	e := decode(j.t, data)
	e.memfd = true
	return e
}

func (j *journal) expectEmpty() {
	j.t.Helper()
	if _, _, err := unix.Recvfrom(j.fd, make([]byte, 64<<10), unix.MSG_DONTWAIT); err != unix.EAGAIN {
		j.t.Fatalf("unexpected entry (err %v)", err)
	}
}

type logRec struct {
	mu    sync.Mutex
	warns []string
}

func (l *logRec) Warnf(f string, a ...any) {
	l.mu.Lock()
	l.warns = append(l.warns, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}
func (l *logRec) Debugf(string, ...any) {}

func setup(t *testing.T, cfg Config) (*Writer, *journal) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	j := newJournal(t, path)
	if cfg.CID == "" {
		cfg.CID = testCID
	}
	cfg.socket = path
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, j
}

func check(t *testing.T, e entry, names string, want map[string]string) {
	t.Helper()
	if got := e.names(); got != names {
		t.Errorf("fields %s, want %s", got, names)
	}
	for k, v := range want {
		if got, _ := e.get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestFieldsInOrder(t *testing.T) {
	w, j := setup(t, Config{Name: "web", Tag: "mytag", Labels: []string{"A=1", "B_2=x=y"}})
	now := time.Now()
	w.Write(ptyio.Stdout, []byte("jout1\n"), now)
	e := j.next()
	check(t, e, "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,CONTAINER_TAG,CONTAINER_NAME,SYSLOG_IDENTIFIER,A,B_2",
		map[string]string{
			"MESSAGE": "jout1\n", "CONTAINER_ID_FULL": testCID, "PRIORITY": "6",
			"CONTAINER_ID": testCID[:12], "CONTAINER_TAG": "mytag", "CONTAINER_NAME": "web",
			"SYSLOG_IDENTIFIER": "mytag", "A": "1", "B_2": "x=y",
		})
	if !e.binMsg {
		t.Error("MESSAGE with \\n not in the binary length form")
	}
	w.Write(ptyio.Stderr, []byte("jerr1\n"), now)
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,CONTAINER_TAG,CONTAINER_NAME,SYSLOG_IDENTIFIER,A,B_2",
		map[string]string{"MESSAGE": "jerr1\n", "PRIORITY": "3"})
}

func TestSyslogIdentifierFallback(t *testing.T) {
	w, j := setup(t, Config{Name: "web"})
	w.Write(ptyio.Stdout, []byte("x\n"), time.Now())
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,CONTAINER_NAME,SYSLOG_IDENTIFIER",
		map[string]string{"SYSLOG_IDENTIFIER": "web"})

	w, j = setup(t, Config{})
	w.Write(ptyio.Stdout, []byte("x\n"), time.Now())
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER",
		map[string]string{"SYSLOG_IDENTIFIER": testCID[:12]})

	if _, err := New(Config{CID: "0123456789ab"}); err == nil || err.Error() != "Container ID must be longer than 12 characters" {
		t.Fatalf("12-byte CID: %v", err)
	}
}

func TestPriorityPrefix(t *testing.T) {
	w, j := setup(t, Config{})
	now := time.Now()
	// Every line of one read is examined on its own.
	w.Write(ptyio.Stdout, []byte("<3>err\n<8>eight\n<a>x\n<1\na<2>mid\n<7>\n<0>zero\n"), now)
	for _, c := range []struct{ msg, prio string }{
		{"err\n", "3"}, {"<8>eight\n", "6"}, {"<a>x\n", "6"}, {"<1\n", "6"},
		{"a<2>mid\n", "6"}, {"\n", "7"}, {"zero\n", "0"},
	} {
		e := j.next()
		if m, _ := e.get("MESSAGE"); m != c.msg {
			t.Errorf("MESSAGE %q, want %q", m, c.msg)
		}
		if p, _ := e.get("PRIORITY"); p != c.prio {
			t.Errorf("%q: PRIORITY %s, want %s", c.msg, p, c.prio)
		}
	}
	// A prefix arriving while partial data is pending is plain text.
	w.Write(ptyio.Stderr, []byte("<4>abc"), now)
	w.Write(ptyio.Stderr, []byte("<2>def\n"), now)
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER",
		map[string]string{"MESSAGE": "abc<2>def\n", "PRIORITY": "4"})
	// The continuation of a line cut at MaxLine is no line start: it keeps the
	// line's priority and its text.
	long := "<5>" + strings.Repeat("x", linebuf.MaxLine-3)
	w.Write(ptyio.Stdout, []byte(long+"<1>tail\n"), now)
	e := j.next()
	if m, _ := e.get("MESSAGE"); m != long[3:] {
		t.Errorf("first part %d bytes", len(m))
	}
	check(t, e, "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER,CONTAINER_PARTIAL_MESSAGE",
		map[string]string{"PRIORITY": "5", "CONTAINER_PARTIAL_MESSAGE": "true"})
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER",
		map[string]string{"MESSAGE": "<1>tail\n", "PRIORITY": "5"})
	// The next line starts afresh.
	w.Write(ptyio.Stdout, []byte("plain\n"), now)
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER",
		map[string]string{"MESSAGE": "plain\n", "PRIORITY": "6"})
}

func TestPartialEntries(t *testing.T) {
	w, j := setup(t, Config{Labels: []string{"L=v"}})
	now := time.Now()
	w.Write(ptyio.Stdout, []byte("<5>par"), now)
	w.Write(ptyio.Stdout, []byte("tial"), now)
	j.expectEmpty()
	w.Flush()
	e := j.next()
	check(t, e, "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER,CONTAINER_PARTIAL_MESSAGE,L",
		map[string]string{"MESSAGE": "partial", "PRIORITY": "5", "CONTAINER_PARTIAL_MESSAGE": "true", "L": "v"})
	if e.binMsg {
		t.Error("MESSAGE without \\n in the binary form")
	}
	w.Flush()
	j.expectEmpty() // nothing pending: no empty entry

	// A prompt without newline goes out after the idle time.
	start := time.Now()
	w.Write(ptyio.Stderr, []byte("password: "), start)
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER,CONTAINER_PARTIAL_MESSAGE,L",
		map[string]string{"MESSAGE": "password: ", "PRIORITY": "3"})
	if d := time.Since(start); d < linebuf.Idle {
		t.Errorf("idle partial entry after %v", d)
	}
}

func TestNoPartialFlag(t *testing.T) {
	w, j := setup(t, Config{NoPartialFlag: true})
	w.Write(ptyio.Stdout, []byte("abc"), time.Now())
	w.Flush()
	check(t, j.next(), "MESSAGE,CONTAINER_ID_FULL,PRIORITY,CONTAINER_ID,SYSLOG_IDENTIFIER",
		map[string]string{"MESSAGE": "abc"})
}

func TestMemfdForLargeEntry(t *testing.T) {
	w, j := setup(t, Config{})
	// A small send buffer makes a 16 KiB entry exceed the datagram limit.
	w.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
			t.Fatal(err)
		}
	})
	line := strings.Repeat("m", linebuf.MaxLine-1) + "\n"
	w.Write(ptyio.Stdout, []byte(line), time.Now())
	e := j.next()
	if !e.memfd {
		t.Fatal("large entry not sent as memfd")
	}
	if m, _ := e.get("MESSAGE"); m != line {
		t.Fatalf("MESSAGE of %d bytes", len(m))
	}
	w.Write(ptyio.Stdout, []byte("small\n"), time.Now())
	if e := j.next(); e.memfd {
		t.Fatal("small entry sent as memfd")
	}
}

// fill queues datagrams on the journal socket until it is full.
func fill(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for {
		err := unix.Sendto(fd, []byte("FILL=1\n"), 0, &unix.SockaddrUnix{Name: path})
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFullJournalDropsAndRecovers(t *testing.T) {
	log := &logRec{}
	w, j := setup(t, Config{Log: log})
	fill(t, j.path)

	start := time.Now()
	for i := 0; i < 3; i++ {
		w.Write(ptyio.Stdout, []byte("lost\n"), time.Now())
	}
	d := time.Since(start)
	if d < 3*sendRetry || d > 3*sendRetry+time.Second {
		t.Errorf("3 drops took %v, want about %v", d, 3*sendRetry)
	}
	if w.dropped != 3 {
		t.Errorf("dropped = %d, want 3", w.dropped)
	}
	if len(log.warns) != 1 || !strings.Contains(log.warns[0], "dropped 1 log entries") {
		t.Errorf("warnings %q, want exactly one", log.warns)
	}

	// A waiting send goes through as soon as journald frees a slot.
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Write(ptyio.Stdout, []byte("kept\n"), time.Now())
	}()
	if _, ok := j.next().get("FILL"); !ok {
		t.Fatal("expected a filler datagram first")
	}
	<-done
	var last entry
	for {
		last = j.next()
		if _, ok := last.get("FILL"); !ok {
			break
		}
	}
	if m, _ := last.get("MESSAGE"); m != "kept\n" || w.dropped != 3 {
		t.Fatalf("MESSAGE %q, dropped %d", m, w.dropped)
	}
}

func TestReconnect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socket")
	log := &logRec{}
	// journald absent at start: entries are dropped, not fatal.
	w, err := New(Config{CID: testCID, Log: log, socket: path})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write(ptyio.Stdout, []byte("early\n"), time.Now())
	if w.dropped != 1 {
		t.Fatalf("dropped = %d", w.dropped)
	}
	j := newJournal(t, path)
	w.Write(ptyio.Stdout, []byte("one\n"), time.Now())
	if m, _ := j.next().get("MESSAGE"); m != "one\n" {
		t.Fatalf("got %q", m)
	}
	// journald restarts on the same path.
	j.close()
	j = newJournal(t, path)
	w.Write(ptyio.Stdout, []byte("two\n"), time.Now())
	if m, _ := j.next().get("MESSAGE"); m != "two\n" {
		t.Fatalf("after restart got %q", m)
	}
	if w.dropped != 1 {
		t.Fatalf("dropped = %d after reconnect", w.dropped)
	}
}

func TestCloseIdempotent(t *testing.T) {
	w, j := setup(t, Config{})
	w.Write(ptyio.Stdout, []byte("pending"), time.Now())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if m, _ := j.next().get("MESSAGE"); m != "pending" {
		t.Fatalf("Close did not send the pending line: %q", m)
	}
	w.Write(ptyio.Stdout, []byte("after\n"), time.Now())
	w.Flush()
	j.expectEmpty()
	if w.Reopen(); w.Sync() != nil {
		t.Fatal("Sync")
	}
}

func TestNoAllocsPerLine(t *testing.T) {
	w, j := setup(t, Config{Name: "web", Labels: []string{"A=1"}})
	// Drain concurrently with an allocation-free blocking read.
	fd, drained := j.fd, make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 64<<10)
		for {
			if n, err := unix.Read(fd, buf); err != nil || n == 0 {
				return
			}
		}
	}()
	defer func() { unix.Shutdown(fd, unix.SHUT_RD); <-drained }()
	now := time.Now()
	full := []byte("a complete line of container output\n")
	part1, part2 := []byte("<4>first half "), []byte("second half\n")
	allocs := testing.AllocsPerRun(200, func() {
		w.Write(ptyio.Stdout, full, now)
		w.Write(ptyio.Stderr, part1, now)
		w.Write(ptyio.Stderr, part2, now)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
	if w.dropped != 0 {
		t.Fatalf("%d entries dropped", w.dropped)
	}
}
