package direct

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// podmanClient connects like `podman attach`; without stdin it half-closes at once.
func podmanClient(t *testing.T, c *container, stdin bool) (*net.UnixConn, *attachReader) {
	t.Helper()
	conn := dialPodman(t, c.bundle)
	if !stdin {
		if err := conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	return conn, newAttachReader(t, conn)
}

func TestAttachTwoClients(t *testing.T) {
	setup(t)
	t.Parallel()
	// The container ticks until stdin says go, so the test knows both clients have been
	// accepted (each saw a tick) before the output that is compared is written.
	c := newContainer(t, bundleOpts{}, "sh", "-c",
		"until read -t 0.1 x; do echo tick; done; echo out; echo err >&2; seq 1 500")
	podmanStyle.create(t, c, "-i")
	conn1, r1 := podmanClient(t, c, true)
	_, r2 := podmanClient(t, c, true)
	c.start()
	for _, r := range []*attachReader{r1, r2} {
		r.readUntil(func() bool { return strings.Contains(r.out.String(), "tick\n") }, 10*time.Second)
	}
	if _, err := conn1.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	want := "out\n"
	for i := 1; i <= 500; i++ {
		want += strconv.Itoa(i) + "\n"
	}
	for i, r := range []*attachReader{r1, r2} {
		r.readToEOF(10 * time.Second)
		if out := strings.ReplaceAll(r.out.String(), "tick\n", ""); out != want || r.err.String() != "err\n" {
			t.Errorf("client %d: stdout %q stderr %q", i+1, trunc([]byte(out)), r.err.String())
		}
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Errorf("exit file %q", got)
	}
}

func TestAttachStdinPipe(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "cat")
	podmanStyle.create(t, c, "-i")
	conn, r := podmanClient(t, c, true)
	c.start()
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	r.readUntil(func() bool { return r.out.String() == "hello\n" }, 10*time.Second)
	// podman: stdin ended -> shutdown(SHUT_WR) -> the container's stdin closes (-i).
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.readToEOF(10 * time.Second)
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Errorf("exit file %q: cat should end on stdin EOF", got)
	}
}

func TestAttachStdinTTY(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{tty: true}, "cat")
	podmanStyle.create(t, c, "-t")
	conn, r := podmanClient(t, c, true)
	c.start()
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	// The tty echoes the line, then cat writes it: both end in \r\n (ONLCR).
	r.readUntil(func() bool { return strings.Count(r.out.String(), "hello\r\n") == 2 }, 10*time.Second)
	if _, err := conn.Write([]byte{4}); err != nil { // ^D: EOF for cat
		t.Fatal(err)
	}
	r.readToEOF(10 * time.Second)
	if r.err.Len() != 0 {
		t.Errorf("terminal output on stream 3: %q", r.err.String())
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Errorf("exit file %q", got)
	}
	if s := string(joined(readLog(t, c.logPath), "stdout")); !strings.Contains(s, "hello\r\n") {
		t.Errorf("log %q lacks the terminal output", s)
	}
}

func TestAttachStdinEOF(t *testing.T) {
	setup(t)
	const script = "cat; echo done"
	t.Run("close-on-eof", func(t *testing.T) {
		t.Parallel()
		c := newContainer(t, bundleOpts{}, "sh", "-c", script)
		podmanStyle.create(t, c, "-i")
		conn, r := podmanClient(t, c, true)
		c.start()
		if _, err := conn.Write([]byte("x\n")); err != nil {
			t.Fatal(err)
		}
		if err := conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		r.readToEOF(10 * time.Second)
		if r.out.String() != "x\ndone\n" {
			t.Errorf("stdout %q, want x, then done after stdin closed", r.out.String())
		}
	})
	t.Run("leave-stdin-open", func(t *testing.T) {
		t.Parallel()
		c := newContainer(t, bundleOpts{}, "sh", "-c", script)
		crioStyle.create(t, c, "--leave-stdin-open", "-i")
		path := c.sockDir + "/" + c.id + "/attach"
		conn1 := dialCRIO(t, path)
		r1 := newAttachReader(t, conn1)
		c.start()
		if _, err := conn1.Write([]byte("a\n")); err != nil {
			t.Fatal(err)
		}
		if err := conn1.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		r1.readUntil(func() bool { return r1.out.String() == "a\n" }, 10*time.Second)
		// A later client still reaches the container's stdin.
		conn2 := dialCRIO(t, path)
		r2 := newAttachReader(t, conn2)
		if _, err := conn2.Write([]byte("b\n")); err != nil {
			t.Fatal(err)
		}
		r2.readUntil(func() bool { return r2.out.String() == "b\n" }, 10*time.Second)
		r1.readUntil(func() bool { return r1.out.String() == "a\nb\n" }, 10*time.Second)
		c.mustRunc("kill", c.id, "KILL")
		if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "137" {
			t.Errorf("exit file %q, want 137 (stdin must have stayed open)", got)
		}
		if s := string(joined(readLog(t, c.logPath), "stdout")); s != "a\nb\n" {
			t.Errorf("log %q, want a b and no done", s)
		}
	})
}

func TestAttachFrameSize(t *testing.T) {
	setup(t)
	t.Parallel()
	// Big reads from the container, but less in total than conmon-go's 256 KiB client queue,
	// so a reader slowed down by a busy machine is never disconnected as too slow.
	c := newContainer(t, bundleOpts{}, "sh", "-c",
		`head -c 200000 /dev/zero | tr '\0' x; head -c 50000 /dev/zero | tr '\0' y >&2`)
	podmanStyle.create(t, c)
	_, r := podmanClient(t, c, false)
	c.start()
	r.readToEOF(30 * time.Second)
	if r.maxFrame > 8193 {
		t.Errorf("largest attach frame %d bytes: podman reads 8193 and would truncate it", r.maxFrame)
	}
	if r.out.String() != strings.Repeat("x", 200000) || r.err.String() != strings.Repeat("y", 50000) {
		t.Errorf("received %d stdout / %d stderr bytes, want 200000 x / 50000 y", r.out.Len(), r.err.Len())
	}
}

func TestAttachClientNeverReads(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon blocks on a client that does not read
	t.Parallel()
	const total = 50 << 20
	c := newContainer(t, bundleOpts{}, "sh", "-c", "yes 0123456789012345678901234567890123456789012345678 | head -c "+strconv.Itoa(total))
	podmanStyle.create(t, c)
	podmanClient(t, c, false) // connected, never read
	c.start()
	if got := e2eutil.WaitFile(t, c.exitFile(), 60*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Fatalf("exit file %q", got)
	}
	size := 0
	scanLog(t, c.logPath, func(r record) { size += len(r.content) })
	if size != total {
		t.Errorf("log holds %d bytes, want %d", size, total)
	}
}

func TestAttachResize(t *testing.T) {
	setup(t)
	t.Parallel()
	// The container polls its own size: no assumption on when the resize is applied.
	c := newContainer(t, bundleOpts{tty: true}, "sh", "-c",
		`while [ "$(stty size 2>/dev/null)" != "20 40" ]; do sleep 0.05; done; stty size`)
	podmanStyle.create(t, c, "-t")
	_, r := podmanClient(t, c, false)
	c.start()
	writeCtl(t, c.bundle, "1 20 40\n")
	r.readToEOF(15 * time.Second)
	if r.out.String() != "20 40\r\n" {
		t.Errorf("terminal output %q, want 20 40\\r\\n", r.out.String())
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Errorf("exit file %q", got)
	}
}

func TestAttachLongBundlePath(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := t.TempDir()
	bundle := dir
	for len(bundle) < 200 {
		bundle = filepath.Join(bundle, strings.Repeat("b", 40))
	}
	c := newContainerIn(t, dir, bundle, bundleOpts{}, "echo", "hi")
	if len(filepath.Join(c.bundle, "attach")) < 200 {
		t.Fatal("bundle path too short")
	}
	podmanStyle.create(t, c)
	_, r := podmanClient(t, c, false)
	c.start()
	r.readToEOF(10 * time.Second)
	if r.out.String() != "hi\n" {
		t.Errorf("stdout %q", r.out.String())
	}
}

func TestAttachSocketDirSymlink(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "echo hi; echo err >&2")
	crioStyle.create(t, c)
	link := filepath.Join(c.sockDir, c.id)
	if target, err := os.Readlink(link); err != nil || target != c.bundle {
		t.Fatalf("socket dir entry %s -> %q (%v), want a symlink to the bundle", link, target, err)
	}
	if _, err := os.Stat(filepath.Join(c.bundle, "attach")); err != nil {
		t.Fatalf("socket file in the bundle: %v", err)
	}
	r := newAttachReader(t, dialCRIO(t, link+"/attach"))
	c.start()
	r.readToEOF(10 * time.Second)
	if r.out.String() != "hi\n" || r.err.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", r.out.String(), r.err.String())
	}
	e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty)
	t.Run("removed-at-exit", func(t *testing.T) {
		requireConmonGo(t) // 2.1.6 leaks the symlink
		mon, err := readPidFile(c.conmonPid)
		if err != nil {
			t.Fatal(err)
		}
		if !e2eutil.WaitPidGone(mon, 10*time.Second) {
			t.Fatal("monitor still running")
		}
		if _, err := os.Lstat(link); !os.IsNotExist(err) {
			t.Errorf("symlink %s left behind: %v", link, err)
		}
	})
}

// A monitor forked at the entry point makes the attach socket, its socket-dir link and the
// FIFOs while it waits for a start byte that is not there yet (docs/lifecycle.md §3.3). A
// client that connects then, before the start, is served once the container runs, and ctl
// can be opened for writing without blocking (its read half is held) before the start.
func TestAttachMadeBeforeStartByte(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "echo hi; echo err >&2")
	m, _ := waitingMonitor(t, c)
	link := filepath.Join(c.sockDir, c.id)
	r := newAttachReader(t, dialCRIO(t, link+"/attach"))
	writeCtl(t, c.bundle, "1 40 100")
	if pid := m.launch().mustInt(t, "pid"); pid <= 0 {
		t.Fatalf("create failed: pid %d", pid)
	}
	c.start()
	r.readToEOF(10 * time.Second)
	if r.out.String() != "hi\n" || r.err.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", r.out.String(), r.err.String())
	}
	e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty)
}

// waitingMonitor starts a CRI-O style monitor for c and returns once the monitor, forked at
// the entry point, waits for its start byte with the attach socket and the FIFOs made
// (docs/lifecycle.md §3.3), and its pid. A re-executed monitor makes nothing before its
// release, so nothing shows that it waits: the test is skipped.
func waitingMonitor(t *testing.T, c *container) (*monitor, int) {
	t.Helper()
	bundle := watchDirs(t, c.bundle)
	m := startMonitor(t, crioStyle.spec(c))
	monitorPid := waitChild(t, m.cmd.Process.Pid)
	if !forkedAtEntry(monitorPid) {
		t.Skip("the monitor was re-executed: it makes nothing before its release")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !exists(filepath.Join(c.bundle, "winsz")) { // the last one made
		if _, err := bundle.next(deadline); err != nil {
			t.Fatalf("no FIFOs in the bundle before the start byte: %v", err)
		}
	}
	return m, monitorPid
}
