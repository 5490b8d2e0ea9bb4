package person

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// run without a terminal: stdout and stderr stay apart, both are in the k8s-file log, and
// run exits with the container's status, which is also in the exit file it names.
func TestRunExitStatus(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := stateDir(t)
	r := conmonGo(t, nil, "", "run", "--state-dir", dir, "--rootfs", rootfs, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || !strings.Contains(r.stderr, "err\n") {
		t.Fatalf("want exit 3, out on stdout, err on stderr: %v", r)
	}
	m := regexp.MustCompile(`(?m)^  exit: +(\S+)$`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("run did not say where the exit file is: %q", r.stderr)
	}
	if data, err := os.ReadFile(m[1]); err != nil || string(data) != "3" {
		t.Fatalf("exit file %s: %q, %v", m[1], data, err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "ctr.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m) stdout F out$`).Match(log) || !regexp.MustCompile(`(?m) stderr F err$`).Match(log) {
		t.Fatalf("log:\n%s", log)
	}
	if !strings.Contains(r.stderr, "log:    "+filepath.Join(dir, "ctr.log")) || !strings.Contains(r.stderr, "attach: "+filepath.Join(dir, "attach")) {
		t.Fatalf("run did not say where the log and the attach socket are: %q", r.stderr)
	}
}

// --quiet leaves stderr to the container; --rm takes the state directory away; the
// default state directory is named after the container.
func TestRunQuietRemove(t *testing.T) {
	setup(t)
	t.Parallel()
	name := uniqueName("e2e")
	dir := filepath.Join("/run/conmon-go", name)
	cleanState(t, dir)
	r := conmonGo(t, nil, "", "run", "-q", "--rm", "--name", name, "--rootfs", rootfs, "--", "sh", "-c", "echo out; hostname >&2")
	if r.code != 0 || r.stdout != "out\n" || r.stderr != name+"\n" {
		t.Fatalf("want exit 0, out, the hostname %s and nothing else: %v", name, r)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("--rm left %s: %v", dir, err)
	}
}

// A relative --bundle or --rootfs is the caller's path, not one inside the state directory
// the bundle is copied into.
func TestRunRelativePaths(t *testing.T) {
	setup(t)
	t.Parallel()
	bundle := filepath.Dir(rootfs)
	for _, tc := range []struct{ dir, flag, path string }{
		{filepath.Dir(bundle), "--bundle", "./" + filepath.Base(bundle)},
		{bundle, "--rootfs", "./" + filepath.Base(rootfs)},
	} {
		cmd := exec.Command(bin, "run", "-q", "--state-dir", stateDir(t), tc.flag, tc.path, "--", "sh", "-c", "exit 4")
		cmd.Dir = tc.dir
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 4 {
			t.Errorf("run %s %s in %s: exit %d, want 4 (%v): %s", tc.flag, tc.path, tc.dir, code, err, out)
		}
	}
}

// Piped stdin reaches the container with -i, and its end closes the container's stdin.
func TestRunStdin(t *testing.T) {
	setup(t)
	t.Parallel()
	r := conmonGo(t, nil, "one\ntwo\n", "run", "-i", "-q", "--state-dir", stateDir(t), "--rootfs", rootfs, "--", "sh", "-c", "cat; echo end")
	if r.code != 0 || r.stdout != "one\ntwo\nend\n" {
		t.Fatalf("want the input echoed, then end: %v", r)
	}
}

// A SIGTERM to run reaches the container; one that ignores it is killed after
// --stop-timeout, and run reports 128+9.
func TestRunSignal(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := stateDir(t)
	cmd := exec.Command(bin, "run", "-q", "--stop-timeout", "1", "--state-dir", dir, "--rootfs", rootfs, "--", "sh", "-c", "echo ready; exec sleep 100")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		t.Fatalf("first line %q, %v", line, err)
	}
	cmd.Process.Signal(unix.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Fatalf("run exited %d; want 137", code)
	}
}

// A command that does not exist or cannot be executed gets podman's statuses, and leaves
// no state behind.
func TestRunCommandNotFound(t *testing.T) {
	setup(t)
	t.Parallel()
	for cmd, want := range map[string]int{"/nonexistent": 127, "/etc/passwd": 126} {
		dir := filepath.Join(stateDir(t), "state")
		r := conmonGo(t, nil, "", "run", "-q", "--state-dir", dir, "--rootfs", rootfs, "--", cmd)
		if r.code != want || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, cmd) {
			t.Errorf("%s: want exit %d and one line naming it: %v", cmd, want, r)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: the state directory is left: %v", cmd, err)
		}
	}
}

// A reader that stalls makes the monitor drop run as a slow client: run attaches again,
// shows what comes after and ends with the container's status; everything is in the log.
func TestRunResumesAfterSlowStdout(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := stateDir(t)
	cmd := exec.Command(bin, "run", "--state-dir", dir, "--rootfs", rootfs, "--", "sh", "-c", "yes 0123456789 | head -n 400000; sleep 3; echo done; exit 4")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The stall itself: longer than the monitor's 500 ms of patience with a full queue.
	time.Sleep(1500 * time.Millisecond)
	out, _ := io.ReadAll(stdout)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 4 || !strings.Contains(stderr.String(), "dropped this slow client") {
		t.Fatalf("exit %d, stderr %q; want 4 and a reattach", code, stderr.String())
	}
	if !strings.HasSuffix(string(out), "done\n") {
		t.Fatalf("stdout does not end with the output after the reattach: ...%q", out[max(0, len(out)-40):])
	}
	log, err := os.ReadFile(filepath.Join(dir, "ctr.log"))
	if err != nil {
		t.Fatal(err)
	}
	// The stall may cut a line into a P and an F record: join them.
	var joined strings.Builder
	for _, rec := range strings.SplitAfter(string(log), "\n") {
		if _, rest, ok := strings.Cut(rec, " stdout P "); ok {
			joined.WriteString(strings.TrimSuffix(rest, "\n"))
		} else if _, rest, ok := strings.Cut(rec, " stdout F "); ok {
			joined.WriteString(rest)
		}
	}
	if n := strings.Count(joined.String(), "0123456789\n"); n != 400000 {
		t.Fatalf("the log holds %d lines of 400000", n)
	}
}
