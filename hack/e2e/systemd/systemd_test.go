package systemd

import (
	"bufio"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The harness itself: a Type=notify service written in shell reaches active (running)
// once it says READY=1 (systemctl start returns then), and its output is in its journal.
func TestNotifyShellService(t *testing.T) {
	m := boot(t)
	const unit = "e2e-notify-shell.service"
	// systemd-notify runs in the background of a shell that then becomes sleep, which
	// never reaps it: systemd finds the unit of a message by the sender's cgroup, which a
	// zombie keeps and a reaped process has lost.
	m.install(t, unit, `[Unit]
Description=conmon-go e2e: Type=notify from a shell script
DefaultDependencies=no

[Service]
Type=notify
NotifyAccess=all
TimeoutStartSec=30
ExecStart=/bin/sh -c 'echo starting; systemd-notify --ready & echo ready; exec sleep infinity'
`)
	m.systemctl(t, "start", unit)
	if state := m.systemctl(t, "is-active", unit); state != "active" {
		t.Fatalf("is-active: %q", state)
	}
	if sub := m.property(t, unit, "SubState"); sub != "running" {
		t.Errorf("SubState %q, want running", sub)
	}
	m.waitJournal(t, unit, "starting", "ready")
	m.systemctl(t, "stop", unit)
	if state := m.property(t, unit, "ActiveState"); state != "inactive" {
		t.Errorf("after stop: ActiveState %q", state)
	}
}

// requireRun skips unless the binary under test has the run command (docs/cli.md §9.2).
func requireRun(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, monitorPath, "help", "run").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "conmon-go run") {
		t.Skipf("%s has no run command (`conmon-go run`, docs/cli.md §9.2): `conmon-go help run` gave %v: %.100q",
			monitorPath, err, out)
	}
}

// A container that says hello on both streams and ends with status 0 on SIGTERM.
var ticker = []string{"sh", "-c", `trap 'echo stopping; exit 0' TERM; echo hello from the container; echo warning on stderr >&2; while :; do sleep 0.1; done`}

// `conmon-go run` as ExecStart= of a Type=notify service: started (READY=1) with itself
// as the main process, the container's output in the unit's journal, STOPPING=1 and a
// clean stop on systemctl stop.
func TestConmonGoRunNotifyService(t *testing.T) {
	requireRun(t)
	m := boot(t)
	bundle := m.bundle(t, "ticker", ticker...)
	const unit = "e2e-conmon-go-run.service"
	m.install(t, unit, `[Unit]
Description=conmon-go e2e: a container under conmon-go run
DefaultDependencies=no

[Service]
Type=notify
TimeoutStartSec=30
TimeoutStopSec=30
ExecStart=/opt/conmon-go/conmon-go run --bundle `+bundle+` --name ticker
`)
	m.systemctl(t, "start", unit)
	if state := m.systemctl(t, "is-active", unit); state != "active" {
		t.Fatalf("is-active: %q", state)
	}
	if sub := m.property(t, unit, "SubState"); sub != "running" {
		t.Errorf("SubState %q, want running", sub)
	}
	pid := m.property(t, unit, "MainPID")
	if cmdline := m.mustExec("cat", "/proc/"+pid+"/cmdline"); !strings.Contains(cmdline, "run\x00--bundle") {
		t.Errorf("MainPID %s is %q, not conmon-go run", pid, cmdline)
	}
	m.waitJournal(t, unit, "hello from the container", "warning on stderr")

	m.debugLog(t)
	m.systemctl(t, "stop", unit)
	if state, result := m.property(t, unit, "ActiveState"), m.property(t, unit, "Result"); state != "inactive" || result != "success" {
		t.Errorf("after stop: ActiveState %q Result %q, want inactive and success\n%s", state, result, m.journal(unit))
	}
	if n := m.notifications(unit); !slices.Contains(n, "STOPPING=1") {
		t.Errorf("notifications %q, want STOPPING=1", n)
	}
	m.waitJournal(t, unit, "stopping")
}

// systemd-run around conmon-go run: --scope in the caller's foreground with the
// container's exit status, --unit as a transient Type=notify service.
func TestConmonGoRunUnderSystemdRun(t *testing.T) {
	requireRun(t)
	m := boot(t)
	once := m.bundle(t, "once", "sh", "-c", "echo in a scope; exit 3")
	out, err := m.exec(60*time.Second, "systemd-run", "--scope", "--unit", "e2e-scope",
		"/opt/conmon-go/conmon-go", "run", "--quiet", "--bundle", once, "--name", "scoped")
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(out, "in a scope") {
		t.Errorf("systemd-run --scope: %v, output %q; want the container's output and exit status 3", err, out)
	}

	tick := m.bundle(t, "transient", ticker...)
	const unit = "e2e-transient.service"
	t.Cleanup(func() { m.exec(60*time.Second, "systemctl", "stop", unit) })
	if _, err := m.exec(60*time.Second, "systemd-run", "--unit", unit, "-p", "Type=notify",
		"-p", "DefaultDependencies=no", "-p", "TimeoutStartSec=30",
		"/opt/conmon-go/conmon-go", "run", "--bundle", tick, "--name", "transient"); err != nil {
		t.Fatal(err)
	}
	if state := m.systemctl(t, "is-active", unit); state != "active" {
		t.Fatalf("is-active: %q", state)
	}
	m.waitJournal(t, unit, "hello from the container")
	m.debugLog(t)
	m.systemctl(t, "stop", unit)
	if n := m.notifications(unit); !slices.Contains(n, "STOPPING=1") {
		t.Errorf("notifications %q, want STOPPING=1", n)
	}
}

// waitJournal follows the unit's journal until it has shown every line of want.
func (m *machine) waitJournal(t *testing.T, unit string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := m.podmanCmd(ctx, "exec", m.name, "journalctl", "-u", unit, "--follow", "--no-tail", "-o", "cat")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	missing := slices.Clone(want)
	var seen []string
	sc := bufio.NewScanner(stdout)
	for len(missing) > 0 && sc.Scan() {
		seen = append(seen, sc.Text())
		missing = slices.DeleteFunc(missing, func(w string) bool { return strings.TrimSpace(sc.Text()) == w })
	}
	if len(missing) > 0 {
		t.Fatalf("journal of %s lacks %q after 30 s:\n%s", unit, missing, strings.Join(seen, "\n"))
	}
}
