package surface

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"

	"golang.org/x/sys/unix"
)

// A container allocating past its 32 MiB limit is OOM-killed: exit 137 and both oom files.
func TestOOMKill(t *testing.T) {
	c := newCtr(t, false, "dd", "if=/dev/zero", "bs=64M", "count=1", "of=/dev/null")
	const limit = 32 << 20
	c.editConfig(func(cfg map[string]any) {
		linux := cfg["linux"].(map[string]any)
		mem := map[string]any{"limit": limit}
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
			mem["swap"] = limit // no escape into swap
		}
		linux["resources"] = map[string]any{"memory": mem}
	})
	if got := c.run(launch{args: c.args()}); got != 137 {
		t.Errorf("exit status %d, want 137", got)
	}
	for _, p := range []string{filepath.Join(c.bundle, "oom"), filepath.Join(c.persistDir, "oom")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("oom file: %v", err)
		}
	}
}

// Without an OOM kill there is no oom file.
func TestNoOOMWithoutKill(t *testing.T) {
	c := newCtr(t, false, "true")
	if got := c.run(launch{args: c.args()}); got != 0 {
		t.Errorf("exit status %d, want 0", got)
	}
	if _, err := os.Stat(filepath.Join(c.bundle, "oom")); !os.IsNotExist(err) {
		t.Errorf("<bundle>/oom: %v, want absent", err)
	}
}

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

// notifyHelper builds a static program that sends "MAINPID=1\nREADY=1\nSTATUS=<arg1>" to
// $NOTIFY_SOCKET.
func notifyHelper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir := filepath.Join(tmpRoot, "notify-helper")
		os.MkdirAll(dir, 0o755)
		src := `package main

import (
	"os"
	"syscall"
)

func main() {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
	if err == nil {
		msg := "MAINPID=1\nREADY=1\nSTATUS=" + os.Args[1]
		err = syscall.Sendto(fd, []byte(msg), 0, &syscall.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")})
	}
	if err != nil {
		os.Stderr.WriteString("notify: " + err.Error() + "\n")
		os.Exit(1)
	}
}
`
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module notifyhelper\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
		helperPath = filepath.Join(dir, "notify-helper")
		cmd := exec.Command("go", "build", "-o", helperPath, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = err
			helperPath = string(out)
		}
	})
	if helperErr != nil {
		t.Fatalf("building the notify helper: %v\n%s", helperErr, helperPath)
	}
	return helperPath
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// The relay forwards READY=1 and STATUS= from <bundle>/notify/notify.sock (bind-mounted
// into the container as podman does) to the host socket, and drops MAINPID=.
func TestSdNotifyRelay(t *testing.T) {
	c := newCtr(t, true, "/notify-helper", "relay-ok")
	copyFile(t, notifyHelper(t), filepath.Join(c.bundle, "rootfs", "notify-helper"), 0o755)
	if err := os.Mkdir(filepath.Join(c.bundle, "notify"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.editConfig(func(cfg map[string]any) {
		proc := cfg["process"].(map[string]any)
		proc["env"] = append(proc["env"].([]any), "NOTIFY_SOCKET=/run/notify/notify.sock")
		cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{"destination": "/run/notify",
			"type": "bind", "source": filepath.Join(c.bundle, "notify"), "options": []any{"bind"}})
	})
	host := unixgram(t, filepath.Join(c.dir, "host.sock"))
	if got := c.run(launch{args: c.args("--sdnotify-socket", host.Name())}); got != 0 {
		t.Fatalf("exit status %d, want 0 (log: %s)", got, readLog(c))
	}
	got := recvUntil(t, host, 5*time.Second, func(string) bool { return true })
	if got[0] != "READY=1\nSTATUS=relay-ok" {
		t.Errorf("host socket received %q, want %q", got[0], "READY=1\nSTATUS=relay-ok")
	}
}

func readLog(c *ctr) string {
	data, _ := os.ReadFile(c.logPath)
	return string(data)
}

// Under a systemd-style NOTIFY_SOCKET the monitor itself sends READY=1 with its own pid once
// the container pid is known. A unit with WatchdogSec= (WATCHDOG_USEC without WATCHDOG_PID:
// meant for whoever reads it) then gets WATCHDOG=1 from the monitor while the container lives.
func TestNotifyOwnUnit(t *testing.T) {
	c := newCtr(t, false, "true")
	dir, err := os.MkdirTemp("", "ns") // short: sun_path
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	unit := unixgram(t, filepath.Join(dir, "notify"))
	m := c.startMonitor(launch{args: c.args(), env: []string{"NOTIFY_SOCKET=" + unit.Name(), "WATCHDOG_USEC=200000"}})
	if pid, msg := m.readSync(10 * time.Second); pid <= 0 {
		t.Fatalf("sync: %d %q", pid, msg)
	}
	got := recvUntil(t, unit, 5*time.Second, func(s string) bool { return strings.Contains(s, "READY=1") })
	want := "READY=1\nMAINPID=" + strconv.Itoa(c.daemonPid)
	if got[len(got)-1] != want {
		t.Errorf("unit socket received %q, want %q last", got, want)
	}
	for range 2 {
		if got := recvUntil(t, unit, 5*time.Second, func(string) bool { return true }); got[0] != "WATCHDOG=1" {
			t.Fatalf("unit socket received %q after READY=1, want WATCHDOG=1", got)
		}
	}
	c.start()
	if st := c.waitExit(20 * time.Second); st != 0 {
		t.Errorf("exit status %d", st)
	}
}

// --restore runs `<runtime> [--systemd-cgroup] <runtime-args> restore ... --detach
// --image-path <ckpt> --work-path <bundle> <runtime-opts/restore-args> <cid>`
// (docs/lifecycle.md §5.1); without CRIU (or systemd) runc fails and the monitor reports -1
// and no exit file.
func TestRestoreArgv(t *testing.T) {
	c := newCtr(t, false, "true")
	c.runtime = recorder(t, c.dir)
	ckpt := filepath.Join(c.bundle, "checkpoint")
	os.Mkdir(ckpt, 0o755)
	m := c.startMonitor(launch{args: c.args("--restore", ckpt, "-s", "--no-pivot", "--no-new-keyring",
		"--runtime-opt", "--tcp-established", "--restore-arg", "--file-locks")})
	pid, msg := m.readSync(20 * time.Second)
	argv, err := os.ReadFile(filepath.Join(c.dir, "rec.argv"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--systemd-cgroup", "--root=" + c.root, "restore", "--bundle", c.bundle,
		"--pid-file", c.pidFile, "--no-pivot", "--no-new-keyring", "--detach", "--image-path", ckpt, "--work-path", c.bundle, "--tcp-established", "--file-locks", c.id}
	if got := lines(string(argv)); !slices.Equal(got, want) {
		t.Errorf("runtime argv\n got %q\nwant %q", got, want)
	}
	if _, err := exec.LookPath("criu"); err != nil {
		if pid != -1 || msg == "" {
			t.Errorf("without criu: sync %d %q, want -1 with runc's error", pid, msg)
		}
		if _, err := os.Stat(filepath.Join(c.exitDir, c.id)); !os.IsNotExist(err) {
			t.Errorf("exit file after a failed restore: %v", err)
		}
	}
}

// podman --preserve-fds 1: fd 3 reaches the container, the _OCI_* fds follow it, and a
// later inherited fd (a port reservation) reaches neither the container nor the exit
// command and is closed before the exit file is written.
func TestPreservedAndInheritedFDs(t *testing.T) {
	c := newCtr(t, false, "sh", "-c",
		`for n in 4 5 6 7 8 9; do [ -e /proc/$$/fd/$n ] && echo leak$n >&3; done; echo preserved >&3`)
	presR, presW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer presR.Close()
	resR, resW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer resR.Close()
	out := filepath.Join(c.dir, "exitcmd")
	args := c.args("--runtime-opt", "--preserve-fds", "--runtime-opt", "1",
		"--exit-command", "/bin/sh", "--exit-command-arg", "-c",
		"--exit-command-arg", "exec >"+out+".fds; ls -l /proc/$$/fd; echo done >"+out)
	m := c.startMonitor(launch{args: args, preserved: []*os.File{presW}, after: []*os.File{resW}})
	presW.Close()
	resW.Close()
	if pid, msg := m.readSync(10 * time.Second); pid <= 0 {
		t.Fatalf("sync: %d %q", pid, msg)
	}
	c.start()
	if st := c.waitExit(20 * time.Second); st != 0 {
		t.Errorf("exit status %d", st)
	}
	// The exit file exists: the reservation must already be closed everywhere.
	unix.SetNonblock(int(resR.Fd()), true)
	var b [16]byte
	if n, err := unix.Read(int(resR.Fd()), b[:]); n != 0 || err != nil {
		t.Errorf("inherited fd still open when the exit file appeared: read %d, %v", n, err)
	}
	presR.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(presR)
	if err != nil {
		t.Errorf("preserved fd not closed by everyone: %v", err)
	}
	if string(got) != "preserved\n" {
		t.Errorf("container wrote %q on its fd 3, want %q (leakN: an fd beyond the preserved one)", got, "preserved\n")
	}
	e2eutil.WaitFile(t, out, 10*time.Second, e2eutil.NonEmpty)
	fds, _ := os.ReadFile(out + ".fds")
	if got := fdNames(string(fds)); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("exit command fds %q, want 0 1 2:\n%s", got, fds)
	}
}

// The monitor runs at -1000; the runtime and the exit command get the value it started with.
func TestOOMScoreAdj(t *testing.T) {
	c := newCtr(t, false, "sleep", "30")
	c.runtime = recorder(t, c.dir)
	out := filepath.Join(c.dir, "exitcmd")
	args := c.args("--exit-command", "/bin/sh", "--exit-command-arg", "-c",
		"--exit-command-arg", "cat /proc/$$/oom_score_adj > "+out)
	m := c.startMonitor(launch{args: args, shell: "echo 123 > /proc/self/oom_score_adj"})
	if pid, msg := m.readSync(10 * time.Second); pid <= 0 {
		t.Fatalf("sync: %d %q", pid, msg)
	}
	got := readTrim(t, "/proc/"+strconv.Itoa(c.daemonPid)+"/oom_score_adj")
	switch {
	case hasCapSysResource(t) && got != "-1000":
		t.Errorf("monitor oom_score_adj %s, want -1000", got)
	case !hasCapSysResource(t):
		t.Logf("no CAP_SYS_RESOURCE here: the monitor cannot lower its oom_score_adj (it is %s)", got)
	}
	if env := readTrim(t, filepath.Join(c.dir, "rec.env")); !strings.HasSuffix(env, " oom=123") {
		t.Errorf("runtime: %s, want oom=123", env)
	}
	c.start()
	if out, err := exec.Command(runcPath, "--root", c.root, "kill", c.id, "KILL").CombinedOutput(); err != nil {
		t.Fatalf("runc kill: %v %s", err, out)
	}
	if st := c.waitExit(20 * time.Second); st != 137 {
		t.Errorf("exit status %d, want 137", st)
	}
	if got := strings.TrimSpace(string(e2eutil.WaitFile(t, out, 10*time.Second, e2eutil.NonEmpty))); got != "123" {
		t.Errorf("exit command oom_score_adj %s, want 123", got)
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// LISTEN_PID in the runtime process (docs/lifecycle.md §7).
func TestListenPID(t *testing.T) {
	cases := []struct {
		name    string
		value   string // "" = set by the shell to the monitor's own pid (with --sync)
		replace bool
		want    string // "" = the runtime's own pid
		invalid string
	}{
		{name: "other value passes", value: "4242", want: "4242"},
		{name: "replace", value: "4242", replace: true},
		{name: "monitor pid replaced"},
		{name: "invalid", value: "abcdefghijklmnop", invalid: "Invalid LISTEN_PID abcdefghij"},
		{name: "zero", value: "0", invalid: "Invalid LISTEN_PID 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCtr(t, false, "true")
			c.runtime = recorder(t, c.dir)
			l := launch{args: c.args()}
			if tc.replace {
				l.args = append(l.args, "--replace-listen-pid")
			}
			if tc.value == "" {
				l.shell, l.sync = "export LISTEN_PID=$$", true
				l.args = append(l.args, "--sync")
			} else {
				l.env = []string{"LISTEN_PID=" + tc.value}
			}
			m := c.startMonitor(l)
			pid, msg := m.readSync(10 * time.Second)
			if tc.invalid != "" {
				if pid != -1 || !strings.Contains(msg, tc.invalid) {
					t.Errorf("sync %d %q, want -1 with %q", pid, msg, tc.invalid)
				}
				return
			}
			if pid <= 0 {
				t.Fatalf("sync: %d %q", pid, msg)
			}
			env := strings.Fields(readTrim(t, filepath.Join(c.dir, "rec.env")))
			own := strings.TrimPrefix(env[0], "pid=")
			want := tc.want
			if want == "" {
				want = own
			}
			if env[1] != "listen_pid="+want {
				t.Errorf("runtime (pid %s) saw %s, want listen_pid=%s", own, env[1], want)
			}
			c.start()
			c.waitExit(20 * time.Second)
		})
	}
}

// --log-level debug --syslog: the monitor's messages reach /dev/log in conmon's format.
func TestSyslog(t *testing.T) {
	setup(t)
	if _, err := os.Lstat("/dev/log"); err == nil {
		t.Skip("/dev/log exists: a syslog daemon owns it, its messages cannot be read here")
	}
	c := newCtr(t, false, "true")
	logSock := unixgram(t, "/dev/log")
	args := c.args("--syslog", "--log-level", "debug")
	if got := c.run(launch{args: args}); got != 0 {
		t.Fatalf("exit status %d", got)
	}
	prefix := "conmon " + c.id[:20] + " <ndebug>: "
	got := recvUntil(t, logSock, 5*time.Second, func(s string) bool { return strings.Contains(s, prefix) })
	last := got[len(got)-1]
	if !strings.HasPrefix(last, "<14>") {
		t.Errorf("debug message %q: want priority <14> (user.info)", last)
	}

	// A failed validation reaches syslog too, at user.err.
	// sync: the harness leaves the exit status to the test.
	m := c.startMonitor(launch{args: c.args("--syslog", "--log-level", "bogus"), sync: true})
	<-m.done
	if code := m.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("invalid log level: exit status %d, want 1", code)
	}
	invalid := "conmon " + c.id[:20] + " <error>: No such log level bogus"
	got = recvUntil(t, logSock, 5*time.Second, func(s string) bool { return strings.Contains(s, invalid) })
	if last := got[len(got)-1]; !strings.HasPrefix(last, "<11>") {
		t.Errorf("validation error %q: want priority <11> (user.err)", last)
	}
}

// fdNames takes the fd numbers out of `ls -l /proc/PID/fd` ("... 3 -> target").
func fdNames(ls string) []string {
	var fds []string
	for _, l := range lines(ls) {
		if f := strings.Fields(l); len(f) > 2 && f[len(f)-2] == "->" {
			fds = append(fds, f[len(f)-3])
		}
	}
	slices.Sort(fds)
	return fds
}

// hasCapSysResource reports whether this process may lower oom_score_adj below its minimum.
func hasCapSysResource(t *testing.T) bool {
	t.Helper()
	for _, l := range lines(readTrim(t, "/proc/self/status")) {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return false
}
