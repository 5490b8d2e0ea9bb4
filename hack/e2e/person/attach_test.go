package person

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A container without a terminal started with run -d: a viewer attached with --no-stdin
// and a second client that sends a line both see the output, stdout and stderr apart, and
// both end with the container's status.
func TestAttachDetachedNoTerminal(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := stateDir(t)
	r := conmonGo(t, nil, "", "run", "-d", "-i", "-q", "--name", "ticker", "--state-dir", dir, "--rootfs", rootfs, "--",
		"sh", "-c", `(while :; do echo tick; sleep 0.2; done) & read l; kill $!; echo got:$l; echo err:$l >&2; exit 5`)
	if r.code != 0 || r.stdout != "ticker\n" {
		t.Fatalf("run -d: want exit 0 and the name: %v", r)
	}
	viewer := exec.Command(bin, "attach", "--no-stdin", dir+"/attach")
	var vstderr bytes.Buffer
	viewer.Stderr = &vstderr
	vout, err := viewer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := viewer.Start(); err != nil {
		t.Fatal(err)
	}
	defer viewer.Process.Kill()
	lines := bufio.NewScanner(vout)
	if !lines.Scan() || lines.Text() != "tick" {
		t.Fatalf("viewer: first line %q; want tick", lines.Text())
	}

	r = conmonGo(t, nil, "hello\n", "attach", dir)
	if r.code != 5 || !strings.Contains(r.stdout, "got:hello\n") || strings.Contains(r.stdout, "err:") || !strings.Contains(r.stderr, "err:hello\n") {
		t.Fatalf("attach: want exit 5, got:hello on stdout, err:hello on stderr: %v", r)
	}
	var rest []string
	for lines.Scan() {
		rest = append(rest, lines.Text())
	}
	viewer.Wait()
	if viewer.ProcessState.ExitCode() != 5 || rest[len(rest)-1] != "got:hello" {
		t.Fatalf("viewer: exit %d, lines %q, stderr %q; want 5 ending with got:hello", viewer.ProcessState.ExitCode(), rest, vstderr.String())
	}
	if !strings.Contains(vstderr.String(), "err:hello") {
		t.Fatalf("viewer: stderr %q", vstderr.String())
	}
}

// SIGINT detaches attach and leaves the container running.
func TestAttachSignalDetaches(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := stateDir(t)
	r := conmonGo(t, nil, "", "run", "-d", "-q", "--state-dir", dir, "--rootfs", rootfs, "--", "sh", "-c", "while :; do echo tick; sleep 0.1; done")
	if r.code != 0 {
		t.Fatalf("run -d: %v", r)
	}
	a := exec.Command(bin, "attach", dir)
	out, _ := a.StdoutPipe()
	var stderr bytes.Buffer
	a.Stderr = &stderr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	lines.Scan()
	a.Process.Signal(unix.SIGINT)
	for lines.Scan() {
	}
	a.Wait()
	if a.ProcessState.ExitCode() != 0 || !strings.Contains(stderr.String(), "detached") {
		t.Fatalf("attach after SIGINT: exit %d, stderr %q; want 0, detached", a.ProcessState.ExitCode(), stderr.String())
	}
	// Still running: another client still gets ticks.
	again := exec.Command(bin, "attach", "--no-stdin", dir)
	out2, _ := again.StdoutPipe()
	again.Start()
	defer func() { again.Process.Kill(); again.Wait() }()
	got := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out2)
		s.Scan()
		got <- s.Text()
	}()
	select {
	case l := <-got:
		if l != "tick" {
			t.Fatalf("second attach read %q", l)
		}
	case <-time.After(deadline):
		t.Fatal("the container stopped after attach was interrupted")
	}
}

// A monitor that accepts nobody (stopped, its listen backlog full): attach waits for it, and
// ctrl-c ends the wait (exit 128+SIGINT) instead of leaving attach stuck in connect.
func TestAttachInterruptedWhileConnecting(t *testing.T) {
	setup(t)
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "attach")
	l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l)
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 0); err != nil { // room for one connection, never accepted
		t.Fatal(err)
	}
	filler, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(filler)
	if err := unix.Connect(filler, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}

	a := exec.Command(bin, "attach", "--no-stdin", sock)
	var stderr bytes.Buffer
	a.Stderr = &stderr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { a.Wait(); close(done) }()
	defer func() { a.Process.Kill(); <-done }()
	waitConnecting(t, a.Process.Pid)
	a.Process.Signal(unix.SIGINT)
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatalf("attach to a monitor that accepts nobody ignored SIGINT (stderr %q)", stderr.String())
	}
	if code := a.ProcessState.ExitCode(); code != 128+int(unix.SIGINT) || stderr.Len() != 0 {
		t.Fatalf("attach interrupted while connecting: exit %d, stderr %q; want %d, nothing", code, stderr.String(), 128+int(unix.SIGINT))
	}
}

// waitConnecting waits until process pid has a socket open: attach connects only after
// it caught the signals (the Go runtime catches SIGINT from its start, so the signal mask
// in /proc does not tell). Nothing announces a new fd: /proc is looked at every 10 ms.
func waitConnecting(t *testing.T, pid int) {
	t.Helper()
	fds := "/proc/" + strconv.Itoa(pid) + "/fd"
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	end := time.After(deadline)
	for {
		entries, err := os.ReadDir(fds)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if target, _ := os.Readlink(filepath.Join(fds, e.Name())); strings.HasPrefix(target, "socket:") {
				return
			}
		}
		select {
		case <-tick.C:
		case <-end:
			t.Fatalf("process %d opened no socket", pid)
		}
	}
}
