package direct

// Hostile paths and ids: ids that would name files outside the engine's directories are
// refused, links planted where the monitor creates its files are never followed, and every
// file keeps a mode nobody else may write (docs/differences.md §1.13). A NUL byte cannot reach
// the monitor through argv; exitfile's tests cover it.

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// snapshot describes every entry under dir: type and mode, and a regular file's content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[p] += " " + strconv.Quote(string(data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for p, v := range want {
		if got[p] != v {
			t.Errorf("%s: %s is %q, was %q", what, p, got[p], v)
		}
	}
	for p, v := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s (%s) appeared", what, p, v)
		}
	}
}

// An id or uuid that would name a file outside the exit directory or the socket directory
// is refused before anything is created: conmon writes the exit file there, and replaces
// whatever is at <socket-dir>/<cuuid> with its link.
func TestHostileIDsRefused(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	t.Parallel()
	id := e2eutil.NewID()
	cases := []struct{ name, cid, cuuid, want string }{
		{"uuid leaves the socket dir", id, "../victim", `Container UUID cannot be used as a file name: "../victim"`},
		{"id leaves the exit dir", "../victim", id, `Container ID cannot be used as a file name: "../victim"`},
		{"id with a slash", "exits/x", id, `Container ID cannot be used as a file name: "exits/x"`},
		{"id dot-dot", "..", id, `Container ID cannot be used as a file name: ".."`},
		{"id of 4 KiB", strings.Repeat("a", 4096), id, `Container ID cannot be used as a file name: "` + strings.Repeat("a", 64) + `"... (4096 bytes)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{})
			sockDir := filepath.Join(c.dir, "sd")
			if err := os.Mkdir(sockDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.dir, "victim"), []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, c.dir)
			args := []string{"-b", c.bundle, "-c", tc.cid, "-u", tc.cuuid, "--exit-dir", c.exitDir, "-l", c.logPath,
				"-P", c.conmonPid, "-p", c.pidFile, "--persist-dir", c.persistDir, "-r", runcPath,
				"--runtime-arg", "--root=" + c.root, "--socket-dir-path", sockDir}
			m := startMonitor(t, monitorSpec{args: args, sync: streamSock, start: streamSock, dir: c.bundle})
			if code := m.wait(10 * time.Second); code != 1 {
				t.Fatalf("launcher exit status %d, want 1; stderr %q", code, m.stderr.String())
			}
			if got := m.stderr.String(); got != "[conmon:e]: "+tc.want+"\n" {
				t.Errorf("stderr %q, want %q", got, "[conmon:e]: "+tc.want+"\n")
			}
			sameSnapshot(t, "test directory", snapshot(t, c.dir), before)
		})
	}
}

// Links planted at every name the monitor (or the runtime, for the pid file) creates, in
// the exit and persist directories, the socket directory, the bundle and next to the log,
// point outside. The container runs, its log is reopened through ctl, and it exits 3: the
// links are replaced by the real files, nothing outside changes, and even with the caller's
// umask 0 no file is writable by others.
func TestHostilePlantedLinks(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	t.Parallel()
	c := newContainer(t, bundleOpts{}, "sh", "-c", "echo before; read x; echo after; exit 3")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(outside, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	plants := map[string]string{ // planted name -> link target in outside
		c.exitFile():                        "victim",
		filepath.Join(c.persistDir, "exit"): "victim",
		filepath.Join(c.persistDir, "oom"):  "new-oom",
		filepath.Join(c.bundle, "attach"):   "victim",
		filepath.Join(c.bundle, "ctl"):      "fifo",
		filepath.Join(c.bundle, "winsz"):    "dir",
		filepath.Join(c.bundle, "oom"):      "new-oom",
		c.pidFile:                           "victim",
		c.conmonPid:                         "victim",
		filepath.Join(c.sockDir, c.id):      "dir",
		c.logPath + ".tmp":                  "victim",
	}
	for name, target := range plants {
		if err := os.Symlink(filepath.Join(outside, target), name); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, outside)

	args := append([]string{"-c", `umask 0; exec "$0" "$@"`, monitorPath}, c.crioArgs("-i")...)
	m := startMonitor(t, monitorSpec{args: args, bin: "/bin/sh", sync: streamSock, start: streamSock, dir: c.bundle, pidCue: c.conmonPid, ctr: c})
	if msg := m.launch(); msg.mustInt(t, "pid") <= 0 {
		t.Fatalf("create failed: %q", msg.raw)
	}
	for name, want := range map[string]os.FileMode{
		filepath.Join(c.bundle, "attach"): os.ModeSocket | 0o700,
		filepath.Join(c.bundle, "ctl"):    os.ModeNamedPipe | 0o640,
		filepath.Join(c.bundle, "winsz"):  os.ModeNamedPipe | 0o640,
		c.logPath:                         0o640,
		c.conmonPid:                       0o644,
	} {
		if fi, err := os.Lstat(name); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v (%v), want %v", name, fi.Mode(), err, want)
		}
	}
	if dst, err := os.Readlink(filepath.Join(c.sockDir, c.id)); err != nil || dst != c.bundle {
		t.Errorf("socket link -> %q (%v), want the bundle", dst, err)
	}
	client := dialCRIO(t, filepath.Join(c.sockDir, c.id, "attach"))
	logDir := watchDirs(t, c.dir)
	c.start()
	waitLog(t, c.logPath, "stdout", "before\n", 10*time.Second)
	writeCtl(t, c.bundle, "2 0 0\n")
	deadline := time.Now().Add(10 * time.Second)
	for reopened := false; !reopened; {
		evs, err := logDir.next(deadline)
		if err != nil {
			t.Fatalf("waiting for the reopen: %v", err)
		}
		for _, ev := range evs {
			reopened = reopened || ev.name == filepath.Base(c.logPath) && ev.mask&unix.IN_MOVED_TO != 0
		}
	}
	if _, err := client.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	isStatus := func(b []byte) bool { _, err := strconv.Atoi(string(b)); return err == nil }
	if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, isStatus); string(got) != "3" {
		t.Fatalf("exit file %q, want 3", got)
	}
	if got := joined(readLog(t, c.logPath), "stdout"); string(got) != "after\n" {
		t.Errorf("log after the reopen holds %q, want %q", got, "after\n")
	}
	for _, name := range []string{c.exitFile(), filepath.Join(c.persistDir, "exit")} {
		fi, err := os.Lstat(name)
		data, _ := os.ReadFile(name)
		if err != nil || fi.Mode() != 0o644 || string(data) != "3" {
			t.Errorf("%s: %v %q (%v), want a regular file 0644 holding 3", name, fi.Mode(), data, err)
		}
	}
	m.cleanup()
	sameSnapshot(t, "outside", snapshot(t, outside), before)
	for _, dir := range []string{c.dir, c.sockDir} {
		for p, mode := range snapshot(t, dir) {
			if !strings.HasPrefix(mode, "L") && !strings.HasPrefix(mode, "d") && mode[8] == 'w' {
				t.Errorf("%s is writable by others: %s", p, mode)
			}
		}
	}
}
