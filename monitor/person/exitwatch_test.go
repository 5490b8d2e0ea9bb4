package person

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The command lines of podman 4.3, podman 5 and CRI-O name the exit files.
func TestExitFiles(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want []string
	}{
		{[]string{"conmon", "--api-version", "1", "-c", "abc", "-u", "abc", "--exit-dir", "/run/libpod/exits", "--full-attach"},
			[]string{"/run/libpod/exits/abc"}},
		{[]string{"conmon", "--api-version", "1", "--cid=abc", "--exit-dir=/x/exits", "--persist-dir", "/x/persist/abc"},
			[]string{"/x/exits/abc", "/x/persist/abc/exit"}},
		{[]string{"/usr/bin/conmon", "-b", "/b", "-c", "abc", "--exit-dir", "/var/run/crio/exits", "-l", "/l", "--persist-dir", "/p"},
			[]string{"/var/run/crio/exits/abc", "/p/exit"}},
		{[]string{"conmon", "-c", "abc"}, nil},
		{[]string{"sleep", "--bogus-option"}, nil},
		{[]string{"conmon"}, nil},
	} {
		if got := exitFiles(tc.argv); !slices.Equal(got, tc.want) {
			t.Errorf("exitFiles(%q) = %q; want %q", tc.argv, got, tc.want)
		}
	}
}

// The status is read as soon as the file is renamed into place, as monitors write it.
func TestExitWatchSeesRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exits", "id")
	os.Mkdir(filepath.Dir(path), 0o700)
	w := newExitWatch([]string{path, filepath.Join(dir, "exit")}, 0)
	defer w.close()
	result := make(chan error, 1)
	var status int
	go func() {
		var err error
		status, err = w.wait(20 * time.Second)
		result <- err
	}()
	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte("137"), 0o644)
	os.Rename(tmp, path)
	if err := <-result; err != nil || status != 137 {
		t.Fatalf("wait = %d, %v; want 137", status, err)
	}
}

// A monitor that ends without an exit file ends the wait at once.
func TestExitWatchMonitorGone(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	w := newExitWatch([]string{filepath.Join(t.TempDir(), "exit")}, cmd.Process.Pid)
	defer w.close()
	if w.waitMonitor(0) {
		t.Fatal("waitMonitor saw a running process end")
	}
	go cmd.Wait()
	start := time.Now()
	if _, err := w.wait(20 * time.Second); !errors.Is(err, errNoExitFile) {
		t.Fatalf("wait = %v; want errNoExitFile", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("wait did not end with the monitor")
	}
	if !w.waitMonitor(0) {
		t.Fatal("waitMonitor did not see the process end")
	}
}
