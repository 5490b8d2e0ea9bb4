package seqpacket

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/ptyio"
)

// Whatever an earlier run or someone else left at <bundle>/attach or at the socket-dir link
// is removed, never followed: the socket is created in the bundle (mode 0700), the link
// in the socket directory, and nothing outside them changes. A directory in the socket's
// way is a clear error.
func TestAttachPathPlanted(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(outside+"/victim", []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(outside+"/dir", 0o700); err != nil {
		t.Fatal(err)
	}
	plants := map[string]func(string) error{
		"file":      func(p string) error { return os.WriteFile(p, []byte("stale"), 0o666) },
		"fifo":      func(p string) error { return unix.Mkfifo(p, 0o666) },
		"link-file": func(p string) error { return os.Symlink(outside+"/victim", p) },
		"link-dir":  func(p string) error { return os.Symlink(outside+"/dir", p) },
		"dangling":  func(p string) error { return os.Symlink(outside+"/new", p) },
	}
	for name, plant := range plants {
		t.Run(name, func(t *testing.T) {
			bundle, sockDir := t.TempDir(), t.TempDir()
			if err := plant(bundle + "/attach"); err != nil {
				t.Fatal(err)
			}
			if err := plant(sockDir + "/cuuid"); err != nil {
				t.Fatal(err)
			}
			s, log := startServer(t, Config{Bundle: bundle, SocketDir: sockDir, CUUID: "cuuid"})
			assertSocket(t, bundle+"/attach")
			if dst, err := os.Readlink(sockDir + "/cuuid"); err != nil || dst != bundle {
				t.Fatalf("link -> %q, %v", dst, err)
			}
			roundTrip(t, s, log, sockDir+"/cuuid/attach")
			s.Shutdown(time.Second)
			s.Remove()
			assertEmpty(t, bundle)
			assertEmpty(t, sockDir)
		})
	}
	if got, err := os.ReadFile(outside + "/victim"); err != nil || string(got) != "precious" {
		t.Errorf("victim %q, %v", got, err)
	}
	assertEmpty(t, outside+"/dir")
	if entries, _ := os.ReadDir(outside); len(entries) != 2 {
		t.Errorf("outside directory holds %v", entries)
	}

	bundle := t.TempDir()
	if err := os.Mkdir(bundle+"/attach", 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(Config{Bundle: bundle})
	if err == nil || !strings.HasPrefix(err.Error(), "Failed to remove existing socket: "+bundle+"/attach: ") {
		t.Fatalf("a directory at attach: %v", err)
	}
}

// panicStdin panics on the first datagram.
type panicStdin struct{}

func (panicStdin) WriteStdin([]byte) error { panic("bad stdin") }
func (panicStdin) ClientInputClosed()      {}

// A panic in a client's goroutine is reported and disconnects that client only: the others
// keep receiving output, and the server says it failed, so that the monitor does not call
// Shutdown, which could wait for a lock the panic left held (docs/lifecycle.md §13.1).
func TestClientPanicDisconnectsIt(t *testing.T) {
	diag.ProductionPanics(t.Cleanup)
	bundle := t.TempDir()
	s, log := startServer(t, Config{Bundle: bundle, Stdin: panicStdin{}})
	bad := connect(t, log, bundle+"/attach", 1)
	good := startReader(connect(t, log, bundle+"/attach", 2), true, nil)
	if _, err := unix.Write(bad, []byte("boom")); err != nil {
		t.Fatal(err)
	}
	log.waitFor("internal error in attach client: bad stdin", 1)
	buf := make([]byte, 16)
	if n, err := unix.Read(bad, buf); n != 0 || err != nil {
		t.Fatalf("the failed client read %q, %v; want EOF", buf[:n], err)
	}
	if !s.Failed() {
		t.Error("Failed() is false after a panic")
	}
	s.Broadcast(ptyio.Stdout, []byte("still here"))
	good.waitGot(t, int64(len("still here")))
}
