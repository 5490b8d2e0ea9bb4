package person

import (
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// run -it: the container sees the terminal's size and its changes, and the terminal gets
// its settings back when the container ends.
func TestRunTerminalResize(t *testing.T) {
	setup(t)
	t.Parallel()
	p := newPane(t)
	dir := stateDir(t)
	before := filepath.Join(t.TempDir(), "stty")
	p.line("stty -g > " + before)
	p.line(fmt.Sprintf("%s run -it -q --state-dir %s --rootfs %s -- sh", bin, dir, rootfs))
	p.containerPrompt()
	p.containerSize(24, 80)
	p.resize(100, 30)
	p.containerSize(30, 100)
	p.line("exit 4")
	if st := p.shellStatus(); st != 4 {
		t.Fatalf("run exited %d; want the container's 4", st)
	}
	p.line("stty -g | cmp -s - " + before + " && echo SANE || echo INSANE")
	p.waitFor(`(?m)^SANE$`)
}

// run -it killed with SIGTERM: the signal reaches the container; one that ignores it is
// killed after --stop-timeout; either way the terminal is sane again.
func TestRunTerminalKilled(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{"ignored", `echo ready; while :; do sleep 0.1; done`, 137},
		{"trapped", `trap "echo got TERM; exit 3" TERM; echo ready; while :; do sleep 0.1; done`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPane(t)
			dir := stateDir(t)
			before := filepath.Join(t.TempDir(), "stty")
			p.line("stty -g > " + before)
			p.line(fmt.Sprintf("%s run -it -q --stop-timeout 1 --state-dir %s --rootfs %s -- sh -c '%s'", bin, dir, rootfs, tc.script))
			p.waitFor(`(?m)^ready\r?$`)
			if err := unix.Kill(pidOfRun(t, dir), unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if st := p.shellStatus(); st != tc.want {
				t.Fatalf("run exited %d; want %d", st, tc.want)
			}
			p.line("stty -g | cmp -s - " + before + " && echo SANE || echo INSANE")
			p.waitFor(`(?m)^SANE$`)
		})
	}
}

// Detach from run with the default keys, attach by name with other keys and detach again,
// attach by directory: the new window size reaches the container, and attach ends with
// the container's status.
func TestDetachAndAttachTerminal(t *testing.T) {
	setup(t)
	t.Parallel()
	name := uniqueName("e2e")
	dir := filepath.Join("/run/conmon-go", name)
	cleanState(t, dir)
	p := newPane(t)
	p.line(fmt.Sprintf("%s run -it --name %s --rootfs %s -- sh", bin, name, rootfs))
	p.containerPrompt()
	p.line("echo one-$((40+2))")
	p.waitFor(`(?m)^one-42\r?$`)
	p.keys("C-p", "C-q")
	p.waitFor("detached from " + name)
	if st := p.shellStatus(); st != 0 {
		t.Fatalf("run exited %d after detaching; want 0", st)
	}

	p.line(fmt.Sprintf("%s attach --detach-keys ctrl-a,d %s", bin, name))
	p.line("echo two-$((40+2))")
	p.waitFor(`(?m)^two-42\r?$`)
	p.keys("C-a", "d")
	p.waitFor("detached from " + dir + "/attach")
	if st := p.shellStatus(); st != 0 {
		t.Fatalf("attach exited %d after detaching; want 0", st)
	}

	p.resize(90, 20)
	p.line(fmt.Sprintf("%s attach %s", bin, dir))
	p.containerSize(20, 90)
	p.line("exit 7")
	if st := p.shellStatus(); st != 7 {
		t.Fatalf("attach exited %d; want the container's 7", st)
	}
}
