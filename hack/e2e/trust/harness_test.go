package trust

// The harness: builds the binary and the dispatcher link, makes bundles and the recording
// wrapper, and runs the monitor with podman's create fds (SOCK_SEQPACKET sync socketpair,
// start pipe) or CRI-O's ExecSync fds (sync pipe, --sync).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const runcPath = e2eutil.RuncPath

var (
	binPath      string // monitor under test
	dispatcher   string // symlink named conmon-go-runtime to binPath
	mkbundlePath string
	sharedRootfs string
	skipReason   string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "needs root: the tests run runc containers"
		return m.Run()
	}
	for _, tool := range []string{runcPath, "busybox", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipReason = "needs " + tool + ": " + err.Error()
			return m.Run()
		}
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		return fail(err)
	}
	mkbundlePath = filepath.Join(root, "hack", "mkbundle.sh")
	tmp, err := os.MkdirTemp("", "e2e-trust-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	tmpl := filepath.Join(tmp, "template")
	if err := e2eutil.MakeBundle(mkbundlePath, "", tmpl); err != nil {
		return fail(err)
	}
	sharedRootfs = filepath.Join(tmpl, "rootfs")
	if binPath, err = e2eutil.MonitorBinary(root, tmp); err != nil {
		return fail(err)
	}
	dispatcher = filepath.Join(tmp, "bin", "conmon-go-runtime")
	if err := os.Mkdir(filepath.Dir(dispatcher), 0o755); err != nil {
		return fail(err)
	}
	if err := os.Symlink(binPath, dispatcher); err != nil {
		return fail(err)
	}
	return m.Run()
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, err)
	return 1
}

func setup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// ---- per-test world ----

// world is one test's runc root, exit dir, trust state dir and recording wrapper.
type world struct {
	t        *testing.T
	dir      string
	root     string // runc --root shared by both runtimes
	exits    string
	stateDir string // mode 0700: records are honoured
	wrapper  string // the "untrusted runtime"
	wrapLog  string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, dir: dir, root: filepath.Join(dir, "runc"), exits: filepath.Join(dir, "exits"),
		stateDir: filepath.Join(dir, "trust"), wrapper: filepath.Join(dir, "untrusted-runc"),
		wrapLog: filepath.Join(dir, "untrusted.log")}
	for _, d := range []string{w.root, w.exits, w.stateDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeWrapper(t, w.wrapper, w.wrapLog, w.stateDir)
	return w
}

// writeWrapper writes the untrusted runtime: it logs its argv ("argv: ...") and, when
// stateDir is set, the trust records present when it runs ("records: ..."), then execs runc.
func writeWrapper(t *testing.T, path, log, stateDir string) {
	t.Helper()
	script := "#!/bin/sh\necho \"argv: $0 $*\" >>" + strconv.Quote(log) + "\n"
	if stateDir != "" {
		script += "echo \"records: $(ls -A " + strconv.Quote(stateDir) + " | tr '\\n' ' ')\" >>" + strconv.Quote(log) + "\n"
	}
	script += "exec " + runcPath + " \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// wrapperLines returns the wrapper log's lines starting with prefix.
func (w *world) wrapperLines(prefix string) []string {
	data, err := os.ReadFile(w.wrapLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		w.t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// ranUntrusted reports whether the wrapper ran sub-command sub for id.
func (w *world) ranUntrusted(sub, id string) bool {
	for _, l := range w.wrapperLines("argv: ") {
		f := strings.Fields(l)
		if len(f) > 2 && f[len(f)-1] == id && slices.Contains(f, sub) {
			return true
		}
	}
	return false
}

func (w *world) runc(root string, args ...string) (string, error) {
	out, err := exec.Command(runcPath, append([]string{"--root", root}, args...)...).CombinedOutput()
	return string(out), err
}

// bundle makes a busybox bundle running args and applies edit to its config.json.
func (w *world) bundle(name string, edit func(cfg map[string]any), args ...string) string {
	w.t.Helper()
	dir := filepath.Join(w.dir, name)
	if err := e2eutil.MakeBundle(mkbundlePath, sharedRootfs, append([]string{dir}, args...)...); err != nil {
		w.t.Fatal(err)
	}
	if edit != nil {
		path := filepath.Join(dir, "config.json")
		data, err := os.ReadFile(path)
		if err != nil {
			w.t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(data, &cfg); err != nil {
			w.t.Fatal(err)
		}
		edit(cfg)
		if data, err = json.Marshal(cfg); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	return dir
}

// annotate returns an edit setting the given io.kubernetes.cri-o.* annotations (short keys).
func annotate(kv ...string) func(map[string]any) {
	return func(cfg map[string]any) {
		ann, _ := cfg["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			ann["io.kubernetes.cri-o."+kv[i]] = kv[i+1]
		}
		cfg["annotations"] = ann
	}
}

// setNamespace drops the namespace of type typ (host's), or sets its path when path != "".
func setNamespace(typ, path string) func(map[string]any) {
	return func(cfg map[string]any) {
		linux := cfg["linux"].(map[string]any)
		var kept []any
		for _, ns := range linux["namespaces"].([]any) {
			m := ns.(map[string]any)
			if m["type"] == typ {
				if path == "" {
					continue
				}
				m["path"] = path
			}
			kept = append(kept, m)
		}
		linux["namespaces"] = kept
	}
}

func edits(fs ...func(map[string]any)) func(map[string]any) {
	return func(cfg map[string]any) {
		for _, f := range fs {
			f(cfg)
		}
	}
}

// ---- the create monitor ----

// ctr is one container created through the monitor with podman's create protocol.
type ctr struct {
	w         *world
	id        string
	bundle    string
	root      string // runc root the chosen runtime uses
	code      int    // launcher exit status
	stderr    string // launcher stderr
	pid       int    // the sync message's data: container pid, -1 on failure, 0 without a message
	conmonPid string
	syncEOF   bool // the sync pipe ended without a message
}

type launchOpts struct {
	args   []string // extra monitor arguments (trust flags)
	env    []string // extra environment
	root   string   // runc root the chosen runtime will use; default w.root
	devDir string   // non-empty: run in a private mount namespace with this directory as /dev
}

// create runs the monitor like podman 4.3.1 (API 1): start byte, launcher exit, then the
// container pid on the sync socket (or EOF when the launcher failed).
func (w *world) create(id, bundle string, o launchOpts) *ctr {
	w.t.Helper()
	c := &ctr{w: w, id: id, bundle: bundle, root: o.root, conmonPid: filepath.Join(w.dir, id[:12]+".conmon.pid")}
	if c.root == "" {
		c.root = w.root
	}
	argv := append([]string{"--api-version", "1", "-c", id, "-u", id, "-r", runcPath, "-b", bundle,
		"-p", filepath.Join(w.dir, id[:12]+".pid"), "-n", "e2e-" + id[:8], "--exit-dir", w.exits,
		"--full-attach", "-l", "k8s-file:" + filepath.Join(w.dir, id[:12]+".log"), "--log-level", "info",
		"--runtime-arg", "--root=" + w.root, "--conmon-pidfile", c.conmonPid}, o.args...)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		w.t.Fatal(err)
	}
	syncF, syncChild := os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync-child")
	defer syncF.Close()
	w.t.Cleanup(c.cleanup)
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, o.env...)
	c.code, c.stderr = w.launch(argv, o.devDir, env, syncChild, 15*time.Second)
	if err := syncF.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		w.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := syncF.Read(buf)
	if err != nil {
		if c.code != 0 && errors.Is(err, io.EOF) {
			c.syncEOF = true
			return c
		}
		w.t.Fatalf("sync socket: %v; launcher exit %d stderr %q", err, c.code, c.stderr)
	}
	var msg struct {
		Data    int    `json:"data"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(buf[:n], &msg); err != nil {
		w.t.Fatalf("sync message %q: %v; launcher stderr %q", buf[:n], err, c.stderr)
	}
	c.pid = msg.Data
	return c
}

// mustCreate is create for a container that must come up.
func (w *world) mustCreate(id, bundle string, o launchOpts) *ctr {
	w.t.Helper()
	c := w.create(id, bundle, o)
	if c.code != 0 || c.pid <= 0 {
		w.t.Fatalf("create: launcher exit %d, container pid %d, sync EOF %v; stderr %q", c.code, c.pid, c.syncEOF, c.stderr)
	}
	return c
}

// monitorCommand runs bin, in a private mount namespace with devDir over /dev when
// devDir is set (e2eutil.DevDir).
func monitorCommand(bin string, argv []string, devDir string) *exec.Cmd {
	cmd := exec.Command(bin, argv...)
	if devDir != "" {
		cmd = exec.Command("unshare", e2eutil.PrivateDevArgs(devDir, bin, argv)...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func waitCmd(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %v", cmd.Path, timeout)
	}
	return cmd.ProcessState.ExitCode()
}

func (c *ctr) start() {
	c.w.t.Helper()
	if out, err := c.w.runc(c.root, "start", c.id); err != nil {
		c.w.t.Fatalf("runc start: %v: %s", err, out)
	}
}

// waitExit waits for the exit file, then for the monitor to end, and returns the status.
func (c *ctr) waitExit() int {
	c.w.t.Helper()
	data := e2eutil.WaitFile(c.w.t, filepath.Join(c.w.exits, c.id), 20*time.Second, e2eutil.NonEmpty)
	if pid, err := readPid(c.conmonPid); err == nil && !e2eutil.WaitPidGone(pid, 10*time.Second) {
		c.w.t.Fatalf("monitor %d still running 10s after the exit file", pid)
	}
	n, err := strconv.Atoi(string(data))
	if err != nil {
		c.w.t.Fatalf("exit file %q: %v", data, err)
	}
	return n
}

func (c *ctr) kill() {
	c.w.t.Helper()
	if out, err := c.w.runc(c.root, "kill", c.id, "KILL"); err != nil {
		c.w.t.Fatalf("runc kill: %v: %s", err, out)
	}
}

func (c *ctr) cleanup() {
	_, _ = c.w.runc(c.root, "delete", "--force", c.id)
	if pid, err := readPid(c.conmonPid); err == nil && !e2eutil.WaitPidGone(pid, 5*time.Second) {
		c.w.t.Errorf("monitor %d still running at the end of the test; killed", pid)
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// decisionLines returns the launcher's stderr lines carrying a runtime selection.
func (c *ctr) decisionLines() []string {
	var out []string
	for _, l := range strings.Split(c.stderr, "\n") {
		if strings.Contains(l, "runtime selection:") {
			out = append(out, l)
		}
	}
	return out
}

// ---- exec ----

// execSync runs `sh -c script` in container id like CRI-O's ExecSync (--sync, sync pipe,
// start pipe) and returns the monitor's exit status (the command's) and its stderr.
func (w *world) execSync(id string, extra []string, script string) (int, string) {
	w.t.Helper()
	dir := w.t.TempDir()
	spec, err := json.Marshal(map[string]any{"args": []string{"sh", "-c", script}, "cwd": "/",
		"env": []string{"PATH=/bin"}, "user": map[string]any{"uid": 0, "gid": 0}})
	if err != nil {
		w.t.Fatal(err)
	}
	specPath := filepath.Join(dir, "process.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		w.t.Fatal(err)
	}
	argv := append([]string{"-c", id, "-u", id, "-r", runcPath, "-p", filepath.Join(dir, "pid"), "-e",
		"-l", filepath.Join(dir, "exec.log"), "--log-level", "info", "--sync",
		"--exec-process-spec", specPath, "--runtime-arg", "--root=" + w.root}, extra...)
	syncR, syncW, err := os.Pipe()
	if err != nil {
		w.t.Fatal(err)
	}
	defer syncR.Close()
	return w.launch(argv, "", []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, syncW, 20*time.Second)
}

// launch runs the monitor the way an engine does: sync at fd 3 (closed here once passed),
// a start pipe at fd 4 whose byte is written at once; it returns the launcher's exit
// status and stderr.
func (w *world) launch(argv []string, devDir string, env []string, sync *os.File, timeout time.Duration) (int, string) {
	w.t.Helper()
	startR, startW, err := os.Pipe()
	if err != nil {
		sync.Close()
		w.t.Fatal(err)
	}
	cmd := monitorCommand(binPath, argv, devDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Env = append(env, "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4")
	cmd.ExtraFiles = []*os.File{sync, startR}
	err = cmd.Start()
	sync.Close()
	startR.Close()
	if err != nil {
		startW.Close()
		w.t.Fatal(err)
	}
	_, _ = startW.Write([]byte{0}) // EPIPE when the launcher already failed
	startW.Close()
	return waitCmd(w.t, cmd, timeout), stderr.String()
}

// ---- files and processes ----

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(data))
}
