package person

// What the logs tests share: the binary under test, containers run under a monitor
// (conmon-go or conmon) started the way CRI-O starts it, minus the sync and start pipes,
// and a `conmon-go logs` process whose outputs are read line by line.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// conmonPath is the reference monitor, whose logs must read as well as conmon-go's.
const conmonPath = "/usr/bin/conmon"

type logsEnv struct {
	bin      string // conmon-go under test: the monitor and the logs client
	runc     string
	mkbundle string
}

// setupLogs skips unless the machine can run containers and the binary under test is
// conmon-go ($CONMON_BINARY, or built into the test's directory).
func setupLogs(t *testing.T) logsEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tests run runc containers")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skipf("needs runc in PATH: %v", err)
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skipf("needs busybox (busybox-static) in PATH: %v", err)
	}
	root, err := e2eutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := e2eutil.MonitorBinary(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", bin, err)
	}
	if !strings.Contains(string(out), "conmon-go") {
		t.Skipf("the logs subcommand is conmon-go's: %s --version does not name conmon-go", bin)
	}
	if runc, err = filepath.Abs(runc); err != nil {
		t.Fatal(err)
	}
	return logsEnv{bin: bin, runc: runc, mkbundle: filepath.Join(root, "hack", "mkbundle.sh")}
}

// needConmon skips without the reference monitor.
func needConmon(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(conmonPath); err != nil {
		t.Skipf("needs %s (apt-get install conmon): %v", conmonPath, err)
	}
}

// monitored is a container under a monitor, with the paths the monitor was given.
type monitored struct {
	t                         *testing.T
	env                       logsEnv
	id, bundle, root, exitDir string
	attach, log, conmonPid    string
}

// runMonitored starts monitor (a binary path) for a busybox container running cmd, with
// the extra monitor arguments, waits until the container is created and starts it.
func runMonitored(t *testing.T, env logsEnv, monitor string, cmd []string, extra ...string) *monitored {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "sd") // short: the attach socket's path must fit sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	b := make([]byte, 16)
	rand.Read(b)
	m := &monitored{t: t, env: env, id: hex.EncodeToString(b), bundle: filepath.Join(dir, "bundle"),
		root: filepath.Join(dir, "runc"), exitDir: filepath.Join(dir, "exits"), log: filepath.Join(dir, "ctr.log"),
		conmonPid: filepath.Join(dir, "conmon.pid")}
	m.attach = filepath.Join(sockDir, m.id, "attach")
	for _, d := range []string{m.root, m.exitDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := e2eutil.MakeBundle(env.mkbundle, "", append([]string{m.bundle}, cmd...)...); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pidfile")
	args := append([]string{"-b", m.bundle, "-c", m.id, "-u", m.id, "--exit-dir", m.exitDir, "-l", m.log,
		"-n", "k8s_logs_pod_ns_uid_0", "-P", m.conmonPid, "-p", pidFile, "-r", env.runc,
		"--runtime-arg", "--root=" + m.root, "--socket-dir-path", sockDir}, extra...)
	launcher := exec.Command(monitor, args...)
	launcher.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	t.Cleanup(m.cleanup)
	// The launcher returns once the monitor has daemonised; it has then created the
	// container when the runtime's pid file appears.
	if out, err := launcher.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", monitor, err, out)
	}
	e2eutil.WaitFile(t, pidFile, 20*time.Second, e2eutil.NonEmpty)
	if out, err := exec.Command(env.runc, "--root", m.root, "start", m.id).CombinedOutput(); err != nil {
		t.Fatalf("runc start: %v: %s", err, out)
	}
	return m
}

// cleanup removes the container and waits for its monitor to end.
func (m *monitored) cleanup() {
	exec.Command(m.env.runc, "--root", m.root, "delete", "--force", m.id).Run()
	data, err := os.ReadFile(m.conmonPid)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && !e2eutil.WaitPidGone(pid, 10*time.Second) {
		m.t.Errorf("monitor %d still running at the end of the test; killed", pid)
		unix.Kill(pid, unix.SIGKILL)
	}
}

// exitStatus waits for the exit file and returns its content.
func (m *monitored) exitStatus() string {
	m.t.Helper()
	return string(e2eutil.WaitFile(m.t, filepath.Join(m.exitDir, m.id), 20*time.Second, e2eutil.NonEmpty))
}

// dial connects to the attach socket the way CRI-O does; what is written there is the
// container's stdin (-i).
func (m *monitored) dial() *net.UnixConn {
	m.t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: m.attach, Net: "unixpacket"})
	if err != nil {
		m.t.Fatalf("dial %s: %v", m.attach, err)
	}
	m.t.Cleanup(func() { c.Close() })
	return c
}

// ctl writes one line to the ctl FIFO the way podman does (O_NONBLOCK: a missing reader
// is an error, not a hang).
func (m *monitored) ctl(line string) {
	m.t.Helper()
	f, err := os.OpenFile(filepath.Join(m.bundle, "ctl"), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		m.t.Fatalf("open ctl: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		m.t.Fatalf("write ctl: %v", err)
	}
}

// logsProc is a running `conmon-go logs`.
type logsProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	pipes    [2]*os.File // our ends of its stdout and stderr
	r        [2]*bufio.Reader
	done     chan struct{}
	finished bool
}

func startLogs(t *testing.T, bin string, args ...string) *logsProc {
	t.Helper()
	p := &logsProc{t: t, cmd: exec.Command(bin, append([]string{"logs"}, args...)...), done: make(chan struct{})}
	var theirs [2]*os.File
	for i := range p.pipes {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p.pipes[i], theirs[i], p.r[i] = r, w, bufio.NewReader(r)
	}
	p.cmd.Stdout, p.cmd.Stderr = theirs[0], theirs[1]
	err := p.cmd.Start()
	theirs[0].Close()
	theirs[1].Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.finished {
			p.cmd.Process.Kill()
			<-p.done
		}
		p.pipes[0].Close()
		p.pipes[1].Close()
	})
	return p
}

// expect reads the next lines of its stdout (stream 0) or stderr (1).
func (p *logsProc) expect(stream int, lines ...string) {
	p.t.Helper()
	p.pipes[stream].SetReadDeadline(time.Now().Add(20 * time.Second))
	for _, want := range lines {
		got, err := p.r[stream].ReadString('\n')
		if err != nil || got != want+"\n" {
			p.t.Fatalf("logs %s: read %q (%v), want %q", []string{"stdout", "stderr"}[stream], got, err, want+"\n")
		}
	}
}

// wait waits for the process to exit and returns its status and the rest of its output.
func (p *logsProc) wait(timeout time.Duration) (code int, stdout, stderr string) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%v still running after %v", p.cmd.Args, timeout)
	}
	p.finished = true
	var rest [2]bytes.Buffer
	for i := range p.pipes {
		p.pipes[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		rest[i].ReadFrom(p.r[i])
	}
	return p.cmd.ProcessState.ExitCode(), rest[0].String(), rest[1].String()
}

// runLogs runs `conmon-go logs args...` to its end.
func runLogs(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return startLogs(t, bin, args...).wait(20 * time.Second)
}
