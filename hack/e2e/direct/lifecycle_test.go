package direct

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// engineStyle selects the argv, sync transport and key of podman (API 1) or CRI-O (API 0).
type engineStyle struct {
	name  string
	api1  bool
	sync  transport
	start transport
}

var (
	podmanStyle = engineStyle{name: "podman", api1: true, sync: seqPacket, start: seqPacket}
	crioStyle   = engineStyle{name: "crio", api1: false, sync: streamSock, start: streamSock}
)

func (e engineStyle) key() string {
	if e.api1 {
		return "data"
	}
	return "pid"
}

// create starts a monitor for c in the engine's style (podman with podman 5's --persist-dir)
// and returns it with the first sync message.
func (e engineStyle) create(t *testing.T, c *container, extra ...string) (*monitor, syncMsg) {
	t.Helper()
	m := startMonitor(t, e.spec(c, extra...))
	return m, m.launch()
}

// spec is the monitor of a create in the engine's style.
func (e engineStyle) spec(c *container, extra ...string) monitorSpec {
	var args []string
	dir := c.bundle
	if e.api1 {
		args = c.podmanArgs(append([]string{"--persist-dir", c.persistDir}, extra...)...)
		dir = c.dir // podman's own cwd
	} else {
		args = c.crioArgs(extra...)
	}
	return monitorSpec{args: args, sync: e.sync, start: e.start, dir: dir, pidCue: c.conmonPid, ctr: c}
}

// firstAppearance returns the order in which the final names first appeared
// (IN_CREATE or IN_MOVED_TO), reading events until all were seen or the deadline.
func firstAppearance(t *testing.T, w *inotify, want []fsEvent, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pos := make([]int, len(want))
	for i := range pos {
		pos[i] = -1
	}
	seen, idx := 0, 0
	for seen < len(want) {
		evs, err := w.next(deadline)
		if err != nil {
			t.Fatalf("inotify: waiting for %v: %v", want, err)
		}
		for _, ev := range evs {
			idx++
			if ev.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) == 0 {
				continue
			}
			for i, wv := range want {
				if pos[i] < 0 && ev.dir == wv.dir && ev.name == wv.name {
					pos[i] = idx
					seen++
				}
			}
		}
	}
	return pos
}

func TestCreateStartExitCodes(t *testing.T) {
	setup(t)
	cases := []struct {
		name string
		args []string
		kill string // signal sent with `runc kill` once the container printed "ready"
		want string
	}{
		{"exit0", []string{"sh", "-c", "echo ready"}, "", "0"},
		{"exit3", []string{"sh", "-c", "echo ready; exit 3"}, "", "3"},
		{"selfkill137", []string{"sh", "-c", "echo ready; kill -9 $$"}, "", "137"},
		{"runckill143", []string{"sh", "-c", "echo ready; exec sleep 100"}, "TERM", "143"},
	}
	for _, e := range []engineStyle{podmanStyle, crioStyle} {
		for _, tc := range cases {
			t.Run(e.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				// No pid namespace: the init process is then an ordinary process that
				// SIGKILL/SIGTERM really kill.
				c := newContainer(t, bundleOpts{noPidNS: true}, tc.args...)
				w := watchDirs(t, c.persistDir, c.exitDir)
				m, msg := e.create(t, c)
				pid := msg.mustInt(t, e.key())
				if want, err := readPidFile(c.pidFile); err != nil || pid != want {
					t.Fatalf("sync %q: pid %d, container pid file %d (%v)", msg.raw, pid, want, err)
				}
				if e.api1 && msg.raw != "{\"data\": "+strconv.Itoa(pid)+"}\n" {
					t.Errorf("sync message %q, want exactly {\"data\": %d}\\n", msg.raw, pid)
				}
				for _, f := range []string{"attach", "ctl", "winsz"} {
					if _, err := os.Lstat(filepath.Join(c.bundle, f)); err != nil {
						t.Errorf("%s must exist when the pid is reported: %v", f, err)
					}
				}
				mon, err := readPidFile(c.conmonPid)
				if err != nil {
					t.Fatal(err)
				}
				if mon == m.cmd.Process.Pid || !pidAlive(mon) {
					t.Fatalf("conmon pid file names %d (launcher %d): want the live monitor", mon, m.cmd.Process.Pid)
				}

				c.start()
				if tc.kill != "" {
					waitLog(t, c.logPath, "stdout", "ready\n", 10*time.Second)
					c.mustRunc("kill", c.id, tc.kill)
				}
				got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty)
				if string(got) != tc.want {
					t.Errorf("exit file %q, want %q", got, tc.want)
				}
				pos := firstAppearance(t, w, []fsEvent{{dir: c.persistDir, name: "exit"}, {dir: c.exitDir, name: c.id}}, 5*time.Second)
				if pos[0] > pos[1] {
					t.Errorf("<persist-dir>/exit appeared after <exit-dir>/<cid> (event order %v)", pos)
				}
				if p, err := os.ReadFile(filepath.Join(c.persistDir, "exit")); err != nil || string(p) != tc.want {
					t.Errorf("persist exit file %q (%v), want %q", p, err, tc.want)
				}
				if !e2eutil.WaitPidGone(mon, 10*time.Second) {
					t.Fatalf("monitor %d still running 10 s after the exit file", mon)
				}
				if _, err := os.Stat(filepath.Join(c.bundle, "attach")); !os.IsNotExist(err) {
					t.Errorf("attach socket left behind after a normal exit: %v", err)
				}
			})
		}
	}
}

// exitCommandArgs makes the exit command write its args to <out>.args, then (exec'd ls,
// no shell-saved fds) the fds it inherited to out: "0 1 2" plus ls's own directory fd 3.
func exitCommandArgs(out string) []string {
	return []string{"--exit-command", "/bin/sh",
		"--exit-command-arg", "-c", "--exit-command-arg", `echo "$@" > "$1.args"; exec ls /proc/self/fd > "$1"`,
		"--exit-command-arg", "sh", "--exit-command-arg", out,
		"--exit-command-arg", "a1", "--exit-command-arg", "a 2"}
}

func TestCreateFailureNonexistent(t *testing.T) {
	setup(t)
	for _, e := range []engineStyle{podmanStyle, crioStyle} {
		for _, delay := range []int{0, 1} {
			t.Run(e.name+"/delay"+strconv.Itoa(delay), func(t *testing.T) {
				t.Parallel()
				c := newContainer(t, bundleOpts{}, "/nonexistent")
				out := filepath.Join(c.dir, "exit-command.out")
				extra := exitCommandArgs(out)
				if delay > 0 {
					extra = append(extra, "--exit-delay", strconv.Itoa(delay))
				}
				_, msg := e.create(t, c, extra...)
				sent := time.Now()
				if n := msg.mustInt(t, e.key()); n != -1 {
					t.Fatalf("sync %q: want %s -1", msg.raw, e.key())
				}
				if txt := msg.message(); !strings.Contains(txt, "/nonexistent") || !strings.Contains(txt, "no such file or directory") {
					t.Errorf("failure message %q does not carry runc's error", txt)
				}
				mon, err := readPidFile(c.conmonPid)
				if err != nil {
					t.Fatal(err)
				}
				got := string(e2eutil.WaitFile(t, out, 10*time.Second+time.Duration(delay)*time.Second, e2eutil.NonEmpty))
				if delay > 0 {
					if el := time.Since(sent); el < time.Duration(delay)*time.Second-100*time.Millisecond {
						t.Errorf("exit command ran %v after the failure message, want >= %ds (--exit-delay)", el, delay)
					}
				}
				if got != "0\n1\n2\n3\n" {
					t.Errorf("exit command inherited fds %q, want only 0-2 (3 is ls's own)", got)
				}
				if args, err := os.ReadFile(out + ".args"); err != nil || string(args) != out+" a1 a 2\n" {
					t.Errorf("exit command args %q (%v), want %q", args, err, out+" a1 a 2\n")
				}
				if !e2eutil.WaitPidGone(mon, 10*time.Second) {
					t.Fatalf("monitor %d still running after the exit command", mon)
				}
				for _, f := range []string{c.exitFile(), filepath.Join(c.persistDir, "exit")} {
					if _, err := os.Stat(f); !os.IsNotExist(err) {
						t.Errorf("exit file %s written although the runtime failed: %v", f, err)
					}
				}
			})
		}
	}
}

func TestSyncExitStatus(t *testing.T) {
	setup(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "exit 3")
	m := startMonitor(t, monitorSpec{args: c.crioArgs("--sync"), sync: streamSock, start: streamSock, dir: c.bundle, ctr: c})
	m.writeStart()
	msg, err := m.readSync(30 * time.Second)
	if err != nil {
		t.Fatalf("sync pipe: %v", err)
	}
	if pid := msg.mustInt(t, "pid"); pid <= 0 {
		t.Fatalf("sync %q", msg.raw)
	}
	c.start()
	if code := m.wait(20 * time.Second); code != 3 {
		t.Errorf("--sync monitor exit status %d, want the container's 3; stderr %s", code, m.stderr.String())
	}
	if got, err := os.ReadFile(c.exitFile()); err != nil || string(got) != "3" {
		t.Errorf("exit file %q (%v), want 3", got, err)
	}
}

// signalMonitor starts a container that runs until signalled and returns its monitor pid.
func signalMonitor(t *testing.T) (*container, int) {
	t.Helper()
	c, mon, _ := hostPidContainer(t, "echo ready; exec sleep 100", "ready\n")
	return c, mon
}

// hostPidContainer creates and starts a container without a pid namespace that runs the
// shell script, and returns it, its monitor's pid and its stdout records once they contain
// ready.
func hostPidContainer(t *testing.T, script, ready string) (*container, int, []record) {
	t.Helper()
	c := newContainer(t, bundleOpts{noPidNS: true}, "sh", "-c", script)
	_, msg := crioStyle.create(t, c)
	msg.mustInt(t, "pid")
	mon, err := readPidFile(c.conmonPid)
	if err != nil {
		t.Fatal(err)
	}
	c.start()
	return c, mon, waitLog(t, c.logPath, "stdout", ready, 10*time.Second)
}

func TestMonitorForwardsSIGTERM(t *testing.T) {
	setup(t)
	t.Parallel()
	c, mon := signalMonitor(t)
	if err := unix.Kill(mon, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "143" {
		t.Errorf("exit file %q, want 143 (SIGTERM forwarded to the container)", got)
	}
}

// SIGHUP, SIGUSR2 and SIGPIPE leave the monitor running. The monitor catches SIGHUP and
// SIGPIPE rather than ignoring them (the launcher ignores them, and an ignored signal
// would stay ignored in the exit command and other children).
func TestMonitorSurvivesSIGHUP(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon 2.x dies from SIGHUP and orphans the container
	t.Parallel()
	c, mon := signalMonitor(t)
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGUSR2, unix.SIGPIPE} {
		if err := unix.Kill(mon, sig); err != nil {
			t.Fatal(err)
		}
	}
	status := "/proc/" + strconv.Itoa(mon) + "/status"
	ignored, caught := procHex(t, status, "SigIgn:"), procHex(t, status, "SigCgt:")
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGPIPE} {
		if bit := uint64(1) << (sig - 1); ignored&bit != 0 || caught&bit == 0 {
			t.Errorf("monitor: %v not caught (SigIgn %x, SigCgt %x)", sig, ignored, caught)
		}
	}
	// Only a surviving monitor can report the exit that follows.
	c.mustRunc("kill", c.id, "KILL")
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "137" {
		t.Errorf("exit file %q, want 137 after signals to the monitor and SIGKILL to the container", got)
	}
}

// Before its start the monitor has caught only the signals whose default action in Go
// ends a process (SIGHUP among them); Go drops SIGUSR1, SIGPIPE and SIGCHLD until they are
// caught once the pid is reported (docs/lifecycle.md §9.1). None of them may end a monitor
// that waits for its start byte with its files made.
func TestMonitorSurvivesSignalsBeforeStart(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon dies from SIGHUP
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "echo", "hi")
	m, monitorPid := waitingMonitor(t, c) // the files are made after the signals are caught
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGPIPE, unix.SIGCHLD, unix.SIGUSR2} {
		if err := unix.Kill(monitorPid, sig); err != nil {
			t.Fatalf("%v to the monitor: %v", sig, err)
		}
	}
	if pid := m.launch().mustInt(t, "pid"); pid <= 0 {
		t.Fatalf("create failed after signals before the start: pid %d", pid)
	}
	c.start()
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
		t.Errorf("exit file %q, want 0", got)
	}
}

// Once the pid is reported the monitor reaps on SIGCHLD (docs/lifecycle.md §9.1, §9.2): a
// container process orphaned into the monitor (no pid namespace: the monitor is the
// nearest subreaper) is reaped when it ends, not left a zombie until the container exits.
func TestMonitorReapsOrphans(t *testing.T) {
	setup(t)
	t.Parallel()
	_, mon, recs := hostPidContainer(t, `sh -c 'sleep 600 & echo orphan $!'; exec sleep 600`, "\n")
	var orphan int
	if _, err := fmt.Sscanf(string(joined(recs, "stdout")), "orphan %d", &orphan); err != nil {
		t.Fatalf("no orphan pid in the log: %v", err)
	}
	if err := unix.Kill(orphan, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Nothing tells a third process that a zombie was reaped: its /proc entry is watched.
	stat := "/proc/" + strconv.Itoa(orphan) + "/stat"
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(stat)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d of monitor %d not reaped within 10 s: %s", orphan, mon, data)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCreateRuntimeFailsSilently(t *testing.T) {
	setup(t)
	requireConmonGo(t) // 2.1.6 sends nothing, 2.2.x a bare -1
	for _, e := range []engineStyle{podmanStyle, crioStyle} {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "true")
			var args []string
			if e.api1 {
				args = c.podmanArgs()
			} else {
				args = c.crioArgs()
			}
			for i := range args {
				if args[i] == runcPath {
					args[i] = "/bin/false" // exits 1 without a word on stderr
				}
			}
			m := startMonitor(t, monitorSpec{args: args, sync: e.sync, start: e.start, dir: c.dir, pidCue: c.conmonPid})
			msg := m.launch()
			want := "{\"" + e.key() + "\": -1, \"message\": \"runtime exited with status 1\"}"
			if strings.TrimSuffix(msg.raw, "\n") != want {
				t.Errorf("sync message %q, want %s", msg.raw, want)
			}
		})
	}
}

// A setup failure before the runtime runs (here: --sdnotify-socket without the bundle's
// notify/ directory) reaches the engine as -1 and a message instead of a bare EOF, no
// container is created, and nothing the monitor made is left in the bundle.
func TestSetupFailureReported(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon exits 1 without a sync message
	c := newContainer(t, bundleOpts{}, "true")
	m := startMonitor(t, monitorSpec{args: c.podmanArgs("--sdnotify-socket", filepath.Join(c.dir, "host.sock")),
		sync: seqPacket, start: seqPacket, dir: c.dir, pidCue: c.conmonPid})
	msg := m.launch()
	if n, _ := msg.int("data"); n != -1 || !strings.Contains(msg.message(), "notify") {
		t.Fatalf("sync message %q, want -1 with the notify socket error", msg.raw)
	}
	if out, err := c.runc("state", c.id); err == nil {
		t.Errorf("a container was created: %s", out)
	}
}

// The attach socket and the ctl/winsz FIFOs are made while the runtime creates the
// container. When that fails (here: <bundle>/ctl is a directory that cannot be replaced by
// a FIFO), the engine gets -1 and conmon's message, and the container the runtime made
// does not run on without a monitor.
func TestSetupFailureWhileRuntimeRuns(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	c := newContainer(t, bundleOpts{}, "sleep", "100")
	if err := os.MkdirAll(filepath.Join(c.bundle, "ctl", "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := startMonitor(t, monitorSpec{args: c.podmanArgs(), sync: seqPacket, start: seqPacket, dir: c.dir, pidCue: c.conmonPid})
	msg := m.launch()
	if n, _ := msg.int("data"); n != -1 || !strings.HasPrefix(msg.message(), "Failed to mkfifo at "+filepath.Join(c.bundle, "ctl")) {
		t.Fatalf("sync message %q, want -1 with Failed to mkfifo at <bundle>/ctl", msg.raw)
	}
	if out, err := c.runc("state", c.id); err == nil && !strings.Contains(string(out), `"status": "stopped"`) {
		t.Errorf("the container outlived the failed monitor: %s", out)
	}
}
