package direct

// Cgroup placement: the engines move the launcher into the monitor's cgroups before they
// write the start byte, and conmon-go's launcher starts the monitor before that byte. The
// monitor, the runtime and everything started from them must still end up exactly in the
// cgroups the engine chose, and a monitor whose launcher dies first must leave nothing.

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// ownHierarchies returns the test process's cgroup hierarchies.
func ownHierarchies(t *testing.T) []e2eutil.Hierarchy {
	t.Helper()
	hs, err := e2eutil.OwnHierarchies()
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	lines, err := e2eutil.ReadLines(path)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// makePlacement creates an engine's cgroup for a monitor, rel below a directory of the
// test's own, and removes it at the end of the test.
func makePlacement(t *testing.T, rel string, choose func(e2eutil.Hierarchy) bool) *e2eutil.Placement {
	t.Helper()
	p, err := e2eutil.NewPlacement(path.Join("conmon-go-e2e-"+e2eutil.NewID()[:12], rel), choose)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Remove(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// checkCgroups compares the cgroup lines of a process (/proc/<pid>/cgroup, or a copy)
// with want, line by line.
func checkCgroups(t *testing.T, who string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d cgroup lines %q, want %d %q", who, len(got), got, len(want), want)
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: cgroup line %d is %q, want %q", who, i+1, got[i], want[i])
		}
	}
}

// checkPlaced checks that the monitor and the runtime it started (its /proc/self/cgroup
// in record) are in the placement, and that the container then runs to its end.
func checkPlaced(t *testing.T, c *container, p *e2eutil.Placement, monitorPid int, record string) {
	t.Helper()
	checkCgroups(t, "monitor", readLines(t, "/proc/"+strconv.Itoa(monitorPid)+"/cgroup"), p.Want())
	checkCgroups(t, "runtime", readLines(t, record), p.Want())
	c.start()
	if got := string(e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty)); got != "0" {
		t.Errorf("exit file %q, want 0", got)
	}
}

// recordingRuntime is a runtime that writes the output of command (a shell command line)
// to record and then becomes runc.
func recordingRuntime(t *testing.T, dir, command string) (runtime, record string) {
	t.Helper()
	runtime, record = filepath.Join(dir, "runtime"), filepath.Join(dir, "runtime.record")
	script := "#!/bin/sh\n" + command + " >" + record + "\nexec " + runcPath + " \"$@\"\n"
	if err := os.WriteFile(runtime, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return runtime, record
}

// setOption replaces the value after option in args (which must hold it).
func setOption(t *testing.T, args []string, option, value string) []string {
	t.Helper()
	i := slices.Index(args, option)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("%s not in %q", option, args)
	}
	out := slices.Clone(args)
	out[i+1] = value
	return out
}

// waitChild returns the first child of pid once pid runs the monitor binary: the monitor
// a conmon-go launcher starts before the start byte.
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if isProcessOf(pid, monitorPath) {
			tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
			for _, task := range tasks {
				data, _ := os.ReadFile(task)
				if f := strings.Fields(string(data)); len(f) > 0 {
					child, err := strconv.Atoi(f[0])
					if err == nil {
						return child
					}
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("launcher %d started no monitor within 10 s", pid)
	return 0
}

// systemdScope chooses the hierarchies systemd places a scope in with its default
// accounting on a hybrid host: its own, the unified one, memory and pids.
func systemdScope(h e2eutil.Hierarchy) bool {
	return h.Controllers == nil || slices.ContainsFunc(h.Controllers, func(c string) bool {
		return c == "name=systemd" || c == "memory" || c == "pids"
	})
}

func everyHierarchy(e2eutil.Hierarchy) bool { return true }

// The launcher is moved (as the engines do it) after it started the monitor and before
// the start byte: the monitor it started is the one reported in the conmon pid file, and
// it, and the runtime it starts, are in exactly the engine's cgroups.
func TestCgroupPlacementEngineStyles(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	cases := []struct {
		name   string
		style  engineStyle
		rel    string // %s: container id
		choose func(e2eutil.Hierarchy) bool
	}{
		{"podman cgroupfs", podmanStyle, "libpod_parent/conmon", everyHierarchy},
		{"podman systemd", podmanStyle, "machine.slice/libpod-conmon-%s.scope", systemdScope},
		{"CRI-O monitor_cgroup pod", crioStyle, "kubepods/besteffort/pod8f3c/crio-conmon-%s", everyHierarchy},
		{"CRI-O monitor_cgroup system.slice", crioStyle, "system.slice/crio-conmon-%s.scope", systemdScope},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "true")
			runtime, record := recordingRuntime(t, c.dir, "cat /proc/self/cgroup")
			p := makePlacement(t, strings.ReplaceAll(tc.rel, "%s", c.id), tc.choose)
			spec := tc.style.spec(c)
			spec.args = setOption(t, spec.args, "-r", runtime)
			m := startMonitor(t, spec)
			early := waitChild(t, m.cmd.Process.Pid)
			if err := p.Move(m.cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			checkCgroups(t, "launcher after the engine's move", readLines(t, "/proc/"+strconv.Itoa(m.cmd.Process.Pid)+"/cgroup"), p.Want())
			if pid := m.launch().mustInt(t, tc.style.key()); pid <= 0 {
				t.Fatalf("create failed: pid %d", pid)
			}
			monitorPid, err := readPidFile(c.conmonPid)
			if err != nil {
				t.Fatal(err)
			}
			if monitorPid != early {
				t.Errorf("conmon pid file names %d, want %d, the monitor started before the start byte", monitorPid, early)
			}
			checkPlaced(t, c, p, monitorPid, record)
		})
	}
}

// A monitor that cannot be moved (here the launcher's mount namespace lacks the
// name=systemd hierarchy, as in a container that mounts only some hierarchies) is ended,
// and the one started after the start byte inherits the placement.
func TestCgroupPlacementFallback(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux): " + err.Error())
	}
	hs := ownHierarchies(t)
	hidden := slices.IndexFunc(hs, func(h e2eutil.Hierarchy) bool { return slices.Contains(h.Controllers, "name=systemd") })
	if hidden < 0 || hs[hidden].Dir == "" {
		t.Skip("needs a cgroup v1 name=systemd hierarchy to hide from the launcher")
	}
	c := newContainer(t, bundleOpts{}, "true")
	runtime, record := recordingRuntime(t, c.dir, "cat /proc/self/cgroup")
	p := makePlacement(t, "libpod_parent/conmon", everyHierarchy)
	spec := podmanStyle.spec(c)
	spec.args = setOption(t, setOption(t, spec.args, "-r", runtime), "--log-level", "debug")
	spec.args = append([]string{"--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none "$1" && shift && exec "$@"`, "sh", hs[hidden].Dir, monitorPath}, spec.args...)
	spec.bin = unshare
	m := startMonitor(t, spec)
	early := waitChild(t, m.cmd.Process.Pid)
	if err := p.Move(m.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pid := m.launch().mustInt(t, "data"); pid <= 0 {
		t.Fatalf("create failed: pid %d", pid)
	}
	if !strings.Contains(m.stderr.String(), "cannot join the cgroups, starting another") {
		t.Errorf("launcher stderr %q does not report the fallback", m.stderr.String())
	}
	monitorPid, err := readPidFile(c.conmonPid)
	if err != nil {
		t.Fatal(err)
	}
	if monitorPid == early {
		t.Errorf("conmon pid file names the monitor started before the start byte (%d)", early)
	}
	if pidAlive(early) {
		t.Errorf("the monitor started before the start byte (%d) is still running", early)
	}
	checkPlaced(t, c, p, monitorPid, record)
}

// The engine kills the launcher between the two starts (after the monitor was started,
// before the start byte): the monitor exits at once and leaves no process and no file,
// not even the conmon pid file written for it, whether it was still starting or already
// waiting for the start byte (or its release). A monitor forked at the entry point has
// made the attach socket, its socket-dir link and the ctl/winsz FIFOs by the time it waits
// (docs/lifecycle.md §3.3): they go too.
func TestLauncherKilledBeforeStartByte(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	for _, waiting := range []bool{false, true} {
		t.Run(map[bool]string{false: "monitor starting", true: "monitor waiting"}[waiting], func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "true")
			m := startMonitor(t, podmanStyle.spec(c))
			early := waitChild(t, m.cmd.Process.Pid)
			// The pid file names the monitor once it is started: written by the monitor
			// forked at the entry point once its checks passed (docs/lifecycle.md §3.3), or
			// by a re-executing launcher as soon as the monitor runs, which then needs
			// about as long again to start.
			deadline := time.Now().Add(10 * time.Second)
			for pid, _ := readPidFile(c.conmonPid); pid != early; pid, _ = readPidFile(c.conmonPid) {
				if time.Now().After(deadline) {
					t.Fatalf("no conmon pid file naming %d within 10 s", early)
				}
				time.Sleep(100 * time.Microsecond)
			}
			if waiting {
				made := filepath.Join(c.bundle, "winsz") // the last one listenEarly makes
				for !waitingForStart(early) || (forkedAtEntry(early) && !exists(made)) {
					if time.Now().After(deadline) {
						t.Fatalf("monitor %d did not start waiting within 10 s", early)
					}
					time.Sleep(time.Millisecond)
				}
			}
			if err := m.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-m.done
			if !e2eutil.WaitPidGone(early, 5*time.Second) {
				unix.Kill(early, unix.SIGKILL)
				t.Fatalf("monitor %d still running 5 s after its launcher was killed", early)
			}
			if _, err := c.runc("state", c.id); err == nil {
				t.Errorf("runc knows container %s", c.id)
			}
			// What the test made, and the k8s log file the launcher creates.
			allowed := []string{"bundle", "bundle/config.json", "ctr.log", "exits", "persist", "runc"}
			filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
				rel, _ := filepath.Rel(c.dir, p)
				if err == nil && rel != "." && !slices.Contains(allowed, rel) {
					t.Errorf("left behind: %s", p)
				}
				return err
			})
			if entries, err := os.ReadDir(c.sockDir); err != nil || len(entries) > 0 {
				t.Errorf("socket dir %s: %v %v", c.sockDir, entries, err)
			}
		})
	}
}

// forkedAtEntry reports whether pid is a monitor forked at the entry point, not re-executed
// (whose environment carries the _CONMON_GO_ markers).
func forkedAtEntry(pid int) bool {
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && !strings.Contains(string(environ), "_CONMON_GO_")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// waitingForStart reports whether the monitor started before the start byte waits for it:
// forked at the entry point, it waits in poll(2) for the start byte or its launcher's end
// (docs/lifecycle.md §3.3); re-executed, for its release on the Go runtime's poller, which
// its first non-blocking fd (the release pipe) creates.
func waitingForStart(pid int) bool {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/syscall")
	for _, task := range tasks {
		data, _ := os.ReadFile(task)
		if f := strings.Fields(string(data)); len(f) > 0 && (f[0] == strconv.Itoa(unix.SYS_POLL) || f[0] == strconv.Itoa(unix.SYS_PPOLL)) {
			return true
		}
	}
	return hasEpoll(pid)
}

// hasEpoll reports whether pid has an epoll instance open.
func hasEpoll(pid int) bool {
	fds, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/fd/*")
	for _, fd := range fds {
		if target, _ := os.Readlink(fd); target == "anon_inode:[eventpoll]" {
			return true
		}
	}
	return false
}
