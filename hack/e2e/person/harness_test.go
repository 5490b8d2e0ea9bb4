package person

// The harness: the binary under test, a busybox rootfs, tmux panes as terminals, running
// the binary to completion, finding processes, and a private podman.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const deadline = 30 * time.Second

var (
	bin          string // conmon-go under test
	mkbundlePath string
	rootfs       string // busybox, shared read-only by the containers of `run`
	tmpRoot      string
	skipReason   string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root: the tests run runc containers"
	default:
		for _, tool := range []string{"runc", "busybox", "tmux"} {
			if _, err := exec.LookPath(tool); err != nil {
				skipReason = "needs " + tool + " in PATH: " + err.Error()
			}
		}
	}
	if skipReason != "" {
		return m.Run()
	}
	root, err := e2eutil.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Short: tmux socket paths live below it.
	if tmpRoot, err = os.MkdirTemp("", "e2p-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	mkbundlePath = filepath.Join(root, "hack", "mkbundle.sh")
	if bin, err = e2eutil.MonitorBinary(root, tmpRoot); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if out, err := exec.Command(bin, "help").CombinedOutput(); err != nil {
		skipReason = fmt.Sprintf("%s has no commands for people (help: %v %s)", bin, err, out)
		return m.Run()
	}
	bundle := filepath.Join(tmpRoot, "bundle")
	if err := e2eutil.MakeBundle(mkbundlePath, "", bundle); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rootfs = filepath.Join(bundle, "rootfs")
	return m.Run()
}

func setup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// stateDir is a fresh state directory for one container, removed at the end of the test
// together with the container.
func stateDir(t *testing.T) string {
	dir, err := os.MkdirTemp(tmpRoot, "st-")
	if err != nil {
		t.Fatal(err)
	}
	cleanState(t, dir)
	return dir
}

// cleanState ends, at the end of the test, a container left running in dir by a failed
// test or by design (detached), waits for its monitor and removes dir.
func cleanState(t *testing.T, dir string) {
	t.Cleanup(func() {
		defer os.RemoveAll(dir)
		monitor, err := readInt(filepath.Join(dir, "conmon.pid"))
		if err != nil {
			return
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", monitor))
		if err != nil || !bytes.Contains(cmdline, []byte("\x00"+dir+"\x00")) {
			return // ended
		}
		if pid, err := readInt(filepath.Join(dir, "pidfile")); err == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
		if !e2eutil.WaitPidGone(monitor, deadline) {
			t.Errorf("the monitor of %s did not end", dir)
		}
	})
}

func readInt(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// ---- running the binary to completion ----

type result struct {
	stdout, stderr string
	code           int
	pid            int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// conmonGo runs the binary with args to its end; stdin may be nil.
func conmonGo(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = deadline
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Fatalf("conmon-go %q: %v", args, err)
		}
	case <-time.After(deadline):
		cmd.Process.Kill()
		t.Fatalf("conmon-go %q did not end within %v", args, deadline)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode(), cmd.Process.Pid}
}

// pidOfRun waits for the `conmon-go run` process whose command line names dir.
func pidOfRun(t *testing.T, dir string) int {
	t.Helper()
	return pidOf(t, bin+" run ", dir)
}

// pidOf waits for the process whose command line contains every one of words.
func pidOf(t *testing.T, words ...string) int {
	t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			raw, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			cmdline := strings.ReplaceAll(string(raw), "\x00", " ")
			found := len(raw) > 0
			for _, w := range words {
				found = found && strings.Contains(cmdline, w)
			}
			if found {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond) // no event for "a process appeared"
	}
	t.Fatalf("no process with %q", words)
	return 0
}

// ---- tmux panes ----

// pane is a terminal: a tmux pane of 80x24 running bash, on a tmux server of its own.
type pane struct {
	t    *testing.T
	sock string
	n    int // markers already used
}

func newPane(t *testing.T) *pane {
	t.Helper()
	dir, err := os.MkdirTemp(tmpRoot, "tm-")
	if err != nil {
		t.Fatal(err)
	}
	p := &pane{t: t, sock: filepath.Join(dir, "s")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screen:\n%s", p.capture())
		}
		exec.Command("tmux", "-S", p.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	p.tmux("new-session", "-d", "-x", "80", "-y", "24",
		"env", "PS1=$ ", "TERM=xterm", "bash", "--norc", "--noprofile")
	p.waitFor(`(?m)^\$ ?$`)
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// line types text and Enter.
func (p *pane) line(text string) {
	p.t.Helper()
	p.tmux("send-keys", "-l", text)
	p.tmux("send-keys", "Enter")
}

// keys sends tmux key names (C-p, Enter).
func (p *pane) keys(keys ...string) {
	p.t.Helper()
	p.tmux(append([]string{"send-keys"}, keys...)...)
}

func (p *pane) capture() string {
	out, _ := exec.Command("tmux", "-S", p.sock, "capture-pane", "-p", "-S", "-1000").CombinedOutput()
	return strings.TrimRight(string(out), "\n") // the empty rows below the cursor
}

// waitFor polls the screen (with its history) until re matches; tmux has no event for
// "the screen changed" that a test can wait on.
func (p *pane) waitFor(re string) []string {
	p.t.Helper()
	m := p.poll(re, deadline)
	if m == nil {
		p.t.Fatalf("screen never matched %q", re)
	}
	return m
}

func (p *pane) poll(re string, within time.Duration) []string {
	rx := regexp.MustCompile(re)
	end := time.Now().Add(within)
	for {
		if m := rx.FindStringSubmatch(p.capture()); m != nil {
			return m
		}
		if time.Now().After(end) {
			return nil
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// containerSize types "stty size" into the container's shell until it reports rows and
// cols. A window size travels (SIGWINCH, ctl FIFO, ioctl) apart from the keys (stdin,
// attach socket), so the first command may still see the old size.
func (p *pane) containerSize(rows, cols int) {
	p.t.Helper()
	p.n++
	mark := fmt.Sprintf("SZ%d", p.n)
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		p.line("echo " + mark + " $(stty size)")
		if p.poll(fmt.Sprintf(`(?m)^%s %d %d\r?$`, mark, rows, cols), time.Second) != nil {
			return
		}
	}
	p.t.Fatalf("the container never saw the size %dx%d", rows, cols)
}

// shellStatus waits for the pane's bash to prompt again (keys typed earlier would go to
// the container), types a marker command and returns $?.
func (p *pane) shellStatus() int {
	p.t.Helper()
	p.waitFor(`(^|\n)\$$`)
	p.n++
	mark := fmt.Sprintf("ST%d", p.n)
	p.line("echo " + mark + "=$?")
	m := p.waitFor(`(?m)^` + mark + `=(\d+)$`)
	n, _ := strconv.Atoi(m[1])
	return n
}

// containerPrompt waits for busybox sh's prompt ("~ # ") at the cursor.
func (p *pane) containerPrompt() {
	p.t.Helper()
	p.waitFor(`#$`)
}

// resize sets the window size of the pane.
func (p *pane) resize(cols, rows int) {
	p.t.Helper()
	p.tmux("resize-window", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows))
}
