package diag

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseLevel(t *testing.T) {
	cases := []struct {
		in   string
		want Level
		ok   bool
	}{
		{"error", Error, true}, {"FATAL", Error, true}, {"Panic", Error, true},
		{"warn", Warning, true}, {"WARNING", Warning, true},
		{"info", Info, true}, {"Debug", Debug, true}, {"tRaCe", Trace, true},
		{"", 0, false}, {"foo", 0, false}, {"warnings", 0, false}, {"\u212Aelvin", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseLevel(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func emitAll(l *Printer) {
	l.Errorf("e %d", 1)
	l.Warnf("w %s", "x")
	l.Infof("i")
	l.Debugf("d")
	l.Tracef("t")
}

func TestPrefixesAndFiltering(t *testing.T) {
	all := []string{"[conmon:e]: e 1\n", "[conmon:w]: w x\n", "[conmon:i]: i\n", "[conmon:d]: d\n", "[conmon:d]: t\n"}
	for lv := Error; lv <= Trace; lv++ {
		var buf bytes.Buffer
		emitAll(New(lv, &buf, false, "cid", ""))
		if want := strings.Join(all[:lv+1], ""); buf.String() != want {
			t.Errorf("level %d: got %q, want %q", lv, buf.String(), want)
		}
	}
}

func TestErrnofAndStrerror(t *testing.T) {
	var buf bytes.Buffer
	l := New(Warning, &buf, false, "cid", "")
	l.Errnof(Warning, &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, "Failed to open %s", "/x")
	l.Errnof(Info, syscall.EACCES, "hidden")
	if want := "[conmon:w]: Failed to open /x No such file or directory\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
	if got := Strerror(syscall.EACCES); got != "Permission denied" {
		t.Errorf("Strerror(EACCES) = %q", got)
	}
	if got := Strerror(errors.New("plain")); got != "plain" {
		t.Errorf("Strerror(plain) = %q", got)
	}
}

func TestSetStderrAndNil(t *testing.T) {
	var a, b bytes.Buffer
	l := New(Info, &a, false, "cid", "")
	l.Infof("one")
	l.SetStderr(&b)
	l.Infof("two")
	l.SetStderr(nil)
	l.Infof("three")
	if a.String() != "[conmon:i]: one\n" || b.String() != "[conmon:i]: two\n" {
		t.Errorf("a=%q b=%q", a.String(), b.String())
	}
	var nl *Printer
	nl.Errorf("x")
	nl.Record(Error, "x")
	nl.SetStderr(&a)
}

func TestConcurrent(t *testing.T) {
	var buf bytes.Buffer
	l := New(Info, &buf, false, "cid", "")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				l.Infof("0123456789")
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("got %d lines", len(lines))
	}
	for _, ln := range lines {
		if ln != "[conmon:i]: 0123456789" {
			t.Fatalf("interleaved line %q", ln)
		}
	}
}

// listen binds a datagram socket that stands in for /dev/log.
func listen(t *testing.T) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return fd, path
}

// recv returns the queued datagrams: AF_UNIX delivery is synchronous, so everything sent
// is already there and EAGAIN means "no more".
func recv(t *testing.T, fd int) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EAGAIN {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(buf[:n]))
	}
}

// toSocket points p's syslog copies at path.
func toSocket(p *Printer, path string) {
	p.sys = NewSyslog(filepath.Base(os.Args[0]), path)
}

// sent waits for p's syslog messages to leave and returns what the socket received.
func sent(t *testing.T, p *Printer, fd int) []string {
	t.Helper()
	if !p.sys.Flush() {
		t.Fatal("syslog messages still queued")
	}
	return recv(t, fd)
}

func TestSyslogFormat(t *testing.T) {
	fd, path := listen(t)
	// log/syslog adds the pid to the identifier and ends each message with a newline.
	ident := regexp.QuoteMeta(filepath.Base(os.Args[0])) + `\[` + strconv.Itoa(os.Getpid()) + `\]`
	stamp := `[A-Z][a-z]{2} [ 123][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9]`

	var buf bytes.Buffer
	l := New(Debug, &buf, true, "0123456789abcdef0123456789", "")
	toSocket(l, path)
	emitAll(l)
	l.Errnof(Warning, syscall.ENOSPC, "write failed")
	want := []string{
		`<11>` + stamp + ` ` + ident + `: conmon 0123456789abcdef0123 <error>: e 1\n`,
		`<14>` + stamp + ` ` + ident + `: conmon 0123456789abcdef0123 <nwarn>: w x\n`,
		`<14>` + stamp + ` ` + ident + `: conmon 0123456789abcdef0123 <ninfo>: i\n`,
		`<14>` + stamp + ` ` + ident + `: conmon 0123456789abcdef0123 <ndebug>: d\n`,
		`<14>` + stamp + ` ` + ident + `: conmon 0123456789abcdef0123 <pwarn>: write failed: No space left on device\n`,
	}
	got := sent(t, l, fd)
	if len(got) != len(want) {
		t.Fatalf("got %d datagrams %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !regexp.MustCompile(`^` + want[i] + `$`).MatchString(got[i]) {
			t.Errorf("datagram %d = %q, want /%s/", i, got[i], want[i])
		}
	}

	// --log-tag: the id part is "<cid>: <tag>", still cut at 20 bytes.
	lt := New(Info, nil, true, "abc", "mytag-is-long-enough")
	toSocket(lt, path)
	lt.Infof("x")
	if got := sent(t, lt, fd); len(got) != 1 || !strings.HasSuffix(got[0], ": conmon abc: mytag-is-long-e <ninfo>: x\n") {
		t.Errorf("tagged datagram = %q", got)
	}
}

func TestSyslogForcedAndOff(t *testing.T) {
	fd, path := listen(t)
	l := New(Error, nil, false, "cid", "")
	toSocket(l, path)
	l.Errorf("not sent without --syslog")
	l.Record(Info, "runtime selection: x")
	got := sent(t, l, fd)
	if len(got) != 1 || !strings.HasPrefix(got[0], "<14>") || !strings.HasSuffix(got[0], ": conmon cid <ninfo>: runtime selection: x\n") {
		t.Errorf("got %q", got)
	}

	// Shown and copied with --syslog: the copy is the only one sent.
	var shown bytes.Buffer
	ls := New(Info, &shown, true, "cid", "")
	toSocket(ls, path)
	ls.Record(Info, "runtime selection: y")
	got = sent(t, ls, fd)
	if len(got) != 1 || !strings.HasSuffix(got[0], ": conmon cid <ninfo>: runtime selection: y\n") || shown.String() != "[conmon:i]: runtime selection: y\n" {
		t.Errorf("with --syslog: sent %q, shown %q", got, shown.String())
	}

	// An absent socket is silently ignored.
	toSocket(l, filepath.Join(t.TempDir(), "missing"))
	l.Record(Error, "dropped")
	if !l.sys.Flush() {
		t.Error("a message for an absent socket is still queued")
	}
}

// TestSyslogNeverBlocks: a syslog daemon that stops reading parks the sender, not the
// monitor: Warnf keeps returning, what does not fit in the queue is dropped, and the
// socket is delivered to again once it reads.
func TestSyslogNeverBlocks(t *testing.T) {
	fd, path := listen(t)
	l := New(Warning, nil, true, "cid", "")
	toSocket(l, path)
	// Far more than the socket's queue (net.unix.max_dgram_qlen) and ours hold.
	const n = 5000
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := range n {
			l.Warnf("message %d", i)
		}
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Warnf blocked on a syslog socket that is not read")
	}
	if l.sys.Flush() {
		t.Fatal("the socket took every message: nothing here was ever stuck")
	}
	// The daemon reads again: the sender delivers what it kept, then new messages.
	received := 0
	for tries := 0; ; tries++ {
		received += len(recv(t, fd))
		if l.sys.Flush() {
			break
		}
		if tries == 100 {
			t.Fatal("the sender did not resume once the socket was read")
		}
	}
	received += len(recv(t, fd))
	if received == 0 || received >= n {
		t.Errorf("socket received %d of %d messages, want some and not all", received, n)
	}
	l.Warnf("after")
	if got := sent(t, l, fd); len(got) == 0 || !strings.HasSuffix(got[len(got)-1], "<nwarn>: after\n") {
		t.Errorf("after the stall: %q", got)
	}
}

// A panic of the syslog sender loses what was queued, not syslog: the next message
// starts a new sender.
func TestSyslogSenderPanic(t *testing.T) {
	ProductionPanics(t.Cleanup)
	InjectPanic(t.Cleanup, "syslog sender")
	fd, path := listen(t)
	l := New(Warning, nil, true, "cid", "")
	toSocket(l, path)
	l.Warnf("lost")
	l.sys.Flush()
	if Panicked() == "" {
		t.Fatal("the injected panic did not happen")
	}
	l.Warnf("after")
	got := sent(t, l, fd)
	if len(got) != 1 || !strings.HasSuffix(got[0], "<nwarn>: after\n") {
		t.Fatalf("after the sender's panic: %q", got)
	}
}
