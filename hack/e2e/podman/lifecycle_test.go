package podman

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// stop: a process that dies of SIGTERM reports 143; one that ignores it (busybox sleep as
// PID 1 of its namespace has no handler) is killed after --time and reports 137.
func TestStop(t *testing.T) {
	need(t)
	t.Run("term", func(t *testing.T) {
		id := runDetached(t, "--pid", "host", image, "sleep", "1000")
		start := time.Now()
		mustPodman(t, "stop", "--time", "10", id)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("stop took %v: SIGTERM should have ended it at once", d)
		}
		if got := inspectInt(t, id, "{{.State.ExitCode}}"); got != 143 {
			t.Errorf("ExitCode %d, want 143", got)
		}
	})
	t.Run("kill-after-timeout", func(t *testing.T) {
		id := runDetached(t, image, "sleep", "1000")
		start := time.Now()
		mustPodman(t, "stop", "--time", "1", id)
		if d := time.Since(start); d < time.Second || d > 8*time.Second {
			t.Errorf("stop --time 1 took %v", d)
		}
		if got := inspectInt(t, id, "{{.State.ExitCode}}"); got != 137 {
			t.Errorf("ExitCode %d, want 137", got)
		}
		if got := inspect(t, id, "{{.State.Status}}"); got != "exited" {
			t.Errorf("Status %s, want exited", got)
		}
	})
}

func TestKill(t *testing.T) {
	need(t)
	id := runDetached(t, image, "sleep", "1000")
	mustPodman(t, "kill", id)
	if got := mustPodman(t, "wait", id); got != "137" {
		t.Fatalf("podman wait after kill: %q, want 137", got)
	}
	id = runDetached(t, "--pid", "host", image, "sleep", "1000")
	mustPodman(t, "kill", "--signal", "USR1", id)
	if got := mustPodman(t, "wait", id); got != "138" {
		t.Fatalf("podman wait after kill -s USR1: %q, want 138", got)
	}
}

// run --timeout N: the monitor kills the container after N seconds and reports -1
// (docs/exit.md §5), which podman turns into 255.
func TestRunTimeout(t *testing.T) {
	need(t)
	start := time.Now()
	r := run(t, "--name", "timeout-ctr", "--timeout", "2", image, "sleep", "100")
	t.Cleanup(func() { podman(t, "rm", "-f", "timeout-ctr") })
	d := time.Since(start)
	if r.code != 255 {
		t.Errorf("want exit 255: %s", r)
	}
	if d < 2*time.Second || d > 15*time.Second {
		t.Errorf("run --timeout 2 took %v", d)
	}
	if got := inspect(t, "timeout-ctr", "{{.State.Status}}"); got != "exited" {
		t.Errorf("Status %s, want exited", got)
	}
}

func TestWait(t *testing.T) {
	need(t)
	id := runDetached(t, image, "sh", "-c", "sleep 0.5; exit 4")
	start := time.Now()
	if got := mustPodman(t, "wait", id); got != "4" {
		t.Fatalf("podman wait %q, want 4", got)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("podman wait took %v", d)
	}
	// Waiting for an already exited container answers at once with the same code.
	if got := mustPodman(t, "wait", id); got != "4" {
		t.Fatalf("second podman wait %q, want 4", got)
	}
}

// restart ends the monitor and starts a new one; the log keeps both runs.
func TestRestart(t *testing.T) {
	need(t)
	id := runDetached(t, image, "sh", "-c", "echo started; sleep 1000")
	waitUntil(t, 10*time.Second, "first start logged", func() bool {
		return mustPodman(t, "logs", id) == "started"
	})
	pid1 := inspectInt(t, id, "{{.State.ConmonPid}}")
	mustPodman(t, "restart", "-t", "0", id)
	if got := inspect(t, id, "{{.State.Running}}"); got != "true" {
		t.Fatalf("Running=%s after restart", got)
	}
	pid2 := inspectInt(t, id, "{{.State.ConmonPid}}")
	if pid2 <= 0 || pid2 == pid1 {
		t.Errorf("ConmonPid %d after restart, was %d: want a new monitor", pid2, pid1)
	}
	if alive(pid1) {
		t.Errorf("old monitor %d still alive after restart", pid1)
	}
	waitUntil(t, 10*time.Second, "second start logged", func() bool {
		return mustPodman(t, "logs", id) == "started\nstarted"
	})
}

func TestInspectState(t *testing.T) {
	need(t)
	id := runDetached(t, image, "sleep", "1000")
	state := inspect(t, id, "{{.State.Status}} {{.State.Running}} {{.State.Pid}} {{.State.ConmonPid}} {{.State.OOMKilled}}")
	var status, running, oom string
	var pid, conmonPid int
	if _, err := fmt.Sscan(state, &status, &running, &pid, &conmonPid, &oom); err != nil {
		t.Fatalf("state %q: %v", state, err)
	}
	if status != "running" || running != "true" || pid <= 0 || conmonPid <= 0 || oom != "false" {
		t.Fatalf("running container state %q", state)
	}
	if !alive(pid) || !alive(conmonPid) {
		t.Fatalf("Pid %d or ConmonPid %d not alive", pid, conmonPid)
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if strings.TrimSpace(string(comm)) != "sleep" {
		t.Errorf("State.Pid %d is %q, want the container's sleep", pid, comm)
	}
	mustPodman(t, "kill", id)
	mustPodman(t, "wait", id)
	state = inspect(t, id, "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Pid}}")
	if state != "exited 137 false 0" {
		t.Fatalf("killed container state %q, want \"exited 137 false 0\"", state)
	}
	if alive(conmonPid) {
		t.Errorf("monitor %d alive after the container exited", conmonPid)
	}
}

// An OOM kill is reported: podman 4.x reads <bundle>/oom, which conmon 2.1.6 wrote into its
// cwd instead [>=2.1.13] (docs/exit.md §3).
func TestOOMKilled(t *testing.T) {
	requireConmonGo(t)
	r := run(t, "--name", "oom-ctr", "--memory", "20m", "--memory-swap", "20m", image, "sh", "-c",
		`x=$(head -c 100000000 /dev/zero | tr '\0' x); echo survived`)
	t.Cleanup(func() { podman(t, "rm", "-f", "oom-ctr") })
	if r.code != 137 {
		t.Fatalf("want exit 137: %s", r)
	}
	if got := inspect(t, "oom-ctr", "{{.State.ExitCode}} {{.State.OOMKilled}}"); got != "137 true" {
		t.Fatalf("state %q, want \"137 true\"", got)
	}
}

// 20 containers, each with its own monitor, running at once, then all stopped.
func TestManyContainers(t *testing.T) {
	need(t)
	const n = 20
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, runDetached(t, "--name", fmt.Sprintf("many-%02d", i), image, "sleep", "1000"))
	}
	if got := len(monitorsNamed("many-", true)); got != n {
		t.Fatalf("%d monitors running, want %d", got, n)
	}
	if out := mustPodman(t, "ps", "-q", "--filter", "name=^many-"); len(strings.Fields(out)) != n {
		t.Fatalf("podman ps shows %d running, want %d", len(strings.Fields(out)), n)
	}
	mustPodman(t, append([]string{"stop", "-t", "0"}, ids...)...)
	out := mustPodman(t, "ps", "-a", "--filter", "name=^many-", "--format", "{{.Names}} {{.Status}}")
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if !strings.Contains(l, "Exited (137)") {
			t.Errorf("after stop: %q", l)
		}
	}
	if len(lines) != n {
		t.Errorf("podman ps -a lists %d, want %d", len(lines), n)
	}
	waitUntil(t, 10*time.Second, "all monitors gone", func() bool { return len(monitorsNamed("many-", true)) == 0 })
}

// 100 sequential run --rm leave no container, monitor process or mount behind.
func TestSequentialRunRm(t *testing.T) {
	need(t)
	const n = 100
	mountsBefore := len(mountsUnder(s.dir))
	start := time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("seq-%03d", i)
		r := run(t, "--rm", "--name", name, image, "sh", "-c", "echo $0", name)
		if r.code != 0 || r.stdout != name+"\n" {
			t.Fatalf("run %d: %s", i, r)
		}
	}
	t.Logf("%d run --rm in %v", n, time.Since(start))
	waitUntil(t, 10*time.Second, "no seq- monitor left", func() bool { return len(monitorsNamed("seq-", true)) == 0 })
	if out := mustPodman(t, "ps", "-a", "-q", "--filter", "name=^seq-"); out != "" {
		t.Errorf("containers left: %s", out)
	}
	if after := len(mountsUnder(s.dir)); after > mountsBefore {
		t.Errorf("%d mounts under %s after the runs, %d before: %v", after, s.dir, mountsBefore, mountsUnder(s.dir))
	}
}

// The exit command (`podman container cleanup`) alone records the exit: with no podman
// command of ours alive, the monitor writes the exit file, runs cleanup, which consumes the
// file and marks the container Exited with the code.
func TestExitCommandWithoutPodman(t *testing.T) {
	need(t)
	id := runDetached(t, image, "sh", "-c", "sleep 2; exit 7")
	conmonPid := inspectInt(t, id, "{{.State.ConmonPid}}")
	podmanAlive := func() []e2eutil.Proc {
		return e2eutil.Processes(func(argv []string) bool {
			return filepath.Base(argv[0]) == "podman" && strings.Contains(strings.Join(argv, " "), s.dir+"/")
		})
	}
	if ps := podmanAlive(); len(ps) != 0 {
		t.Fatalf("podman processes alive before the exit: %v", ps)
	}
	waitUntil(t, 20*time.Second, "the monitor to end", func() bool { return !alive(conmonPid) })
	if ps := podmanAlive(); len(ps) != 0 {
		t.Errorf("podman processes still alive after the monitor ended: %v", ps)
	}
	exitFile := filepath.Join(s.tmpdir, "exits", id)
	if _, err := os.Stat(exitFile); !os.IsNotExist(err) {
		t.Errorf("exit file %s not consumed by the exit command (stat: %v)", exitFile, err)
	}
	// The cleanup process recorded the death and its own run in podman's event log.
	events, err := os.ReadFile(filepath.Join(s.tmpdir, "events", "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	var died, cleanup bool
	for _, l := range strings.Split(string(events), "\n") {
		if !strings.Contains(l, `"ID":"`+id+`"`) {
			continue
		}
		died = died || strings.Contains(l, `"Status":"died"`) && strings.Contains(l, `"ContainerExitCode":7`)
		cleanup = cleanup || strings.Contains(l, `"Status":"cleanup"`)
	}
	if !died || !cleanup {
		t.Errorf("events log: died with code 7 %v, cleanup %v", died, cleanup)
	}
	if out := mustPodman(t, "ps", "-a", "--filter", "id="+id, "--format", "{{.Status}}"); !strings.HasPrefix(out, "Exited (7)") {
		t.Errorf("podman ps -a status %q, want Exited (7)", out)
	}
}
