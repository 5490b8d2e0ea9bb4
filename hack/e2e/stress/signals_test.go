package stress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// SIGTERM and SIGINT are forwarded to the container (which dies of them, sharing the
// host's pid namespace); SIGHUP, SIGPIPE and SIGUSR2 are not (the container traps them and
// would say so) and the monitor lives on to forward the SIGINT that follows.
func TestSignalsToMonitor(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		sig  unix.Signal
		want string
	}{{unix.SIGTERM, "143"}, {unix.SIGINT, "130"}} {
		t.Run("forward-"+unix.SignalName(tc.sig), func(t *testing.T) {
			t.Parallel()
			c := newGroup(t).mustCtr(t, false, hostPidNS, "sh", "-c", "echo ready; exec sleep 1000")
			mon := c.run(t)
			c.waitLog(t, "stdout", "ready\n", 10*time.Second)
			if err := unix.PidfdSendSignal(mon.fd, tc.sig, nil, 0); err != nil {
				t.Fatal(err)
			}
			if err := c.finish(tc.want); err != nil {
				t.Errorf("%v to the monitor: %v", tc.sig, err)
			}
		})
	}
	t.Run("ignore-HUP-PIPE-USR2", func(t *testing.T) {
		requireConmonGo(t) // conmon dies of SIGHUP and SIGUSR2, orphaning the container
		t.Parallel()
		c := newGroup(t).mustCtr(t, false, nil, "sh", "-c",
			`for s in HUP PIPE USR2; do trap "echo got $s" $s; done; trap "echo got INT; exit 5" INT; echo ready; while :; do sleep 0.05; done`)
		mon := c.run(t)
		c.waitLog(t, "stdout", "ready\n", 10*time.Second)
		ignored := []unix.Signal{unix.SIGHUP, unix.SIGPIPE, unix.SIGUSR2}
		for _, sig := range ignored {
			if err := unix.PidfdSendSignal(mon.fd, sig, nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		// Once the kernel has delivered them, the SIGINT comes after them.
		waitDelivered(t, mon.pid, ignored)
		if !mon.alive() {
			t.Fatal("the monitor died of SIGHUP, SIGPIPE or SIGUSR2")
		}
		if err := unix.PidfdSendSignal(mon.fd, unix.SIGINT, nil, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e2eutil.AwaitFile(c.exitFile(), 10*time.Second, e2eutil.NonEmpty); err != nil {
			t.Fatal(err)
		}
		if text := c.waitLog(t, "stdout", "got INT\n", time.Second); text != "ready\ngot INT\n" {
			t.Errorf("the container saw %q, want only the SIGINT", text)
		}
		if err := c.finish("5"); err != nil {
			t.Fatal(err)
		}
	})
}

// SIGTERM reaches the monitor at a different moment of each create: before the runtime
// runs (the monitor leaves: no pid, no exit file), while it runs (it is forwarded to the
// runtime: the create fails and is reported) or once the container exists (forwarded to
// it or dropped). Whatever the moment, a create that reported a pid ends with an exit file,
// and no monitor stays behind.
func TestSignalDuringCreate(t *testing.T) {
	setup(t)
	t.Cleanup(func() { checkNoStrays(t) })
	n := size(30, 300)
	outcomes := map[string]int{}
	g := newGroup(t)
	for i := range n {
		// Every tenth signal goes out as soon as the conmon pid file names the monitor.
		delay := time.Duration(i%30)*3*time.Millisecond - time.Duration(min(i%10, 1)-1)
		outcome, err := signalledCreate(g, i, delay)
		if err != nil {
			t.Errorf("create %d: %v", i, err)
			continue
		}
		outcomes[outcome]++
	}
	reapOrphanedInits(t)
	g.checkEmpty(t)
	var parts []string
	for _, k := range []string{"monitor left before the runtime", "create failed", "container killed", "container ran"} {
		parts = append(parts, fmt.Sprintf("%s %d", k, outcomes[k]))
	}
	report(t, "SIGTERM during create", "%d creates: %s", n, strings.Join(parts, ", "))
}

// signalledCreate creates a container and sends SIGTERM to its monitor delay after the
// launcher exited, or with a negative delay as soon as the conmon pid file exists; it
// returns what happened.
func signalledCreate(g *group, i int, delay time.Duration) (string, error) {
	c, err := g.newCtr(false, hostPidNS, "sh", "-c", "exit 3")
	if err != nil {
		return "", err
	}
	s := c.spec(monitorPath)
	c.bin = s.Bin
	m, err := e2eutil.StartMonitor(s)
	if err != nil {
		return "", err
	}
	defer m.CloseFiles()
	if err := m.WriteStart(); err != nil {
		return "", err
	}
	signal := func() error {
		mon, err := c.monitor()
		if err == nil {
			err = unix.PidfdSendSignal(mon.fd, unix.SIGTERM, nil, 0)
		}
		return err
	}
	if delay < 0 {
		if _, err := e2eutil.AwaitFile(c.ConmonPid, 20*time.Second, e2eutil.NonEmpty); err != nil {
			return "", c.abandon(err)
		}
		if err := signal(); err != nil {
			return "", c.abandon(err)
		}
	}
	code, err := m.Wait(20 * time.Second)
	switch {
	case err == nil && code == 1 && delay < 0:
		// The monitor died before the launcher released it (the default action of a
		// signal that came before its handlers): the launcher reports the failure.
		if !strings.Contains(m.Stderr.String(), "Failed to release monitor") {
			return "", c.abandon(fmt.Errorf("launcher exit status 1: %s", m.Stderr.String()))
		}
		return "monitor left before the runtime", c.cleanFailed()
	case err != nil || code != 0:
		return "", c.abandon(fmt.Errorf("launcher exit status %d (%v): %s", code, err, m.Stderr.String()))
	}
	if delay >= 0 {
		time.Sleep(delay) // not a wait for anything: it spreads the signal over the create
		if err := signal(); err != nil && err != unix.ESRCH {
			return "", c.abandon(err)
		}
	}
	msg, err := m.ReadSync(30 * time.Second)
	pid, _ := msg.Int("pid")
	switch {
	case errors.Is(err, io.EOF):
		// The monitor left before starting the runtime: there is no container.
		if rerr := c.runc("state", c.ID); rerr == nil {
			return "", c.abandon(fmt.Errorf("no sync message, but a container exists"))
		}
		return "monitor left before the runtime", c.cleanFailed()
	case err != nil:
		return "", c.abandon(err)
	case pid == -1:
		// Forwarded to the runtime, which died of it: reported; the engine deletes.
		if msg.Message() == "" {
			return "", c.abandon(fmt.Errorf("failure without a message: %q", msg.Raw))
		}
		return "create failed", c.cleanFailed()
	case pid > 0:
		// The container exists: the engine starts it (which fails if the signal killed
		// it already). The signal may also reach it after the start.
		_ = c.runc("start", c.ID)
		got, err := e2eutil.AwaitFile(c.exitFile(), 20*time.Second, e2eutil.NonEmpty)
		if err != nil {
			return "", c.abandon(err)
		}
		outcome := map[string]string{"3": "container ran", "143": "container killed"}[string(got)]
		if outcome == "" {
			return "", c.abandon(fmt.Errorf("exit file %q, want 3 or 143", got))
		}
		return outcome, c.finish(string(got))
	}
	return "", c.abandon(fmt.Errorf("sync message %q", msg.Raw))
}

// cleanFailed checks a create that reported no pid: the monitor ends without exit files
// and without leaving its attach socket, link or console socket, and the engine deletes
// what the runtime may have made.
func (c *ctr) cleanFailed() error {
	errs := []error{c.endMonitor()}
	if pid, err := e2eutil.ReadPidFile(c.PidFile); err == nil {
		// A container the monitor killed must not be left to its parent as a zombie.
		if s, err := readStat(pid); err == nil && s.state == 'Z' && s.ppid == os.Getpid() {
			errs = append(errs, fmt.Errorf("the monitor left its container %d (%s) unreaped", pid, s.comm))
		}
	}
	_ = c.runc("delete", "--force", c.ID)
	for _, f := range []string{c.exitFile(), filepath.Join(c.PersistDir, "exit")} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("exit file %s after a failed create: %v", f, err))
		}
	}
	errs = append(errs, c.bundleLeftovers())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(c.dir)
}

// reapOrphanedInits reaps the runtimes' init processes that a runtime killed during a
// create left behind: they went to the monitor (a subreaper), then, when it ended, to this
// process. An engine's runtime delete kills them; the engine's own reaper (PID 1 in a
// real set-up) collects them. Anything else is left for checkNoStrays.
func reapOrphanedInits(t *testing.T) {
	t.Helper()
	for _, s := range strays() {
		var pid int
		var comm string
		if _, err := fmt.Sscanf(s, "pid %d (%s", &pid, &comm); err != nil || !strings.HasPrefix(comm, "runc:[2:INIT]") {
			continue
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil {
			t.Logf("reaped the orphaned runtime init %d", pid)
		}
	}
}

// waitDelivered waits until none of sigs is pending for the process.
func waitDelivered(t *testing.T, pid int, sigs []unix.Signal) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pending := uint64(0)
		for _, key := range []string{"ShdPnd:", "SigPnd:"} {
			v, err := e2eutil.ProcValue(fmt.Sprintf("/proc/%d/status", pid), key)
			if err != nil {
				t.Fatal(err)
			}
			mask, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			pending |= mask
		}
		var want uint64
		for _, s := range sigs {
			want |= 1 << (s - 1)
		}
		if pending&want == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("signals %x still pending for %d", pending&want, pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// A terminating signal before the runtime runs (here: a podman exec with a terminal,
// waiting for its second start byte) ends the monitor at once: status 1, no exit file, no
// exec, and the attach socket and console socket it had made are gone.
func TestSignalBeforeRuntime(t *testing.T) {
	setup(t)
	requireConmonGo(t) // conmon waits for the byte in its forked child, without handlers
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			t.Parallel()
			g := newGroup(t)
			c := g.mustCtr(t, false, nil, "sleep", "1000")
			c.run(t)
			dir := filepath.Join(c.dir, "exec")
			if err := os.MkdirAll(filepath.Join(dir, "exit"), 0o755); err != nil {
				t.Fatal(err)
			}
			spec := filepath.Join(dir, "exec-process-1")
			if err := e2eutil.WriteProcessSpec(spec, true, "echo", "ran"); err != nil {
				t.Fatal(err)
			}
			m, err := e2eutil.StartMonitor(e2eutil.MonitorSpec{Bin: monitorPath, Dir: dir,
				Args: append(e2eutil.PodmanExecArgs(runcPath, c.RuncRoot, c.ID, "exec", dir, spec), "-t"),
				Env:  []string{"TMPDIR=" + g.tmp}, Sync: e2eutil.SeqPacket, Start: e2eutil.SeqPacket, Attach: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.CloseFiles()
			if err := m.WriteStart(); err != nil {
				t.Fatal(err)
			}
			if code, err := m.Wait(20 * time.Second); err != nil || code != 0 {
				t.Fatalf("launcher: %d, %v", code, err)
			}
			pid, err := e2eutil.ReadPidFile(filepath.Join(dir, "conmon.pid"))
			if err != nil {
				t.Fatal(err)
			}
			mon, err := openMonitor(pid)
			if err != nil {
				t.Fatal(err)
			}
			defer mon.end()
			if msg, err := m.ReadAttachPipe(10 * time.Second); err != nil || msg.Raw != "{\"data\": 0}\n" {
				t.Fatalf("attach pipe %q (%v)", msg.Raw, err)
			}
			for _, f := range []string{filepath.Join(dir, "attach"), g.tmp} {
				if _, err := os.Stat(f); err != nil {
					t.Fatalf("before the signal: %v", err)
				}
			}
			if err := unix.PidfdSendSignal(mon.fd, sig, nil, 0); err != nil {
				t.Fatal(err)
			}
			ws, err := mon.wait()
			if err != nil {
				t.Fatal(err)
			}
			if !ws.Exited() || ws.ExitStatus() != 1 {
				t.Errorf("monitor wait status %#x after %v, want exit status 1", ws, sig)
			}
			if msg, err := m.ReadSync(5 * time.Second); !errors.Is(err, io.EOF) {
				t.Errorf("sync pipe: %q, %v; want EOF", msg.Raw, err)
			}
			for _, f := range []string{filepath.Join(dir, "attach"), filepath.Join(dir, "exit", c.ID), filepath.Join(dir, "exec_pid")} {
				if _, err := os.Lstat(f); !os.IsNotExist(err) {
					t.Errorf("%s after %v: %v, want none", f, sig, err)
				}
			}
			if entries, _ := os.ReadDir(g.tmp); len(entries) > 0 {
				t.Errorf("console socket left in TMPDIR: %v", entries[0].Name())
			}
		})
	}
}
