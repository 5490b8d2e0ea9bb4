package cgroups

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		line, hierarchy, path string
		ok                    bool
	}{
		{"0::/", "0:", "/", true},
		{"0::/user.slice/a.scope", "0:", "/user.slice/a.scope", true},
		{"9:name=systemd:/machine.slice", "9:name=systemd", "/machine.slice", true},
		{"4:cpu,cpuacct:/a:b", "4:cpu,cpuacct", "/a:b", true},
		{"4:memory", "", "", false},
		{"garbage", "", "", false},
		{"1:cpu:relative", "1:cpu", "relative", false},
	} {
		h, p, ok := split(tc.line)
		if ok != tc.ok || ok && (h != tc.hierarchy || p != tc.path) {
			t.Errorf("split(%q) = %q, %q, %v; want %q, %q, %v", tc.line, h, p, ok, tc.hierarchy, tc.path, tc.ok)
		}
	}
}

func TestHierarchyDir(t *testing.T) {
	for _, tc := range []struct {
		hierarchy string
		onlyV2    bool
		want      string
	}{
		{"0:", true, "/sys/fs/cgroup"},
		{"0:", false, "/sys/fs/cgroup/unified"},
		{"9:name=systemd", false, "/sys/fs/cgroup/systemd"},
		{"4:cpu,cpuacct", false, "/sys/fs/cgroup/cpu,cpuacct"},
		{"8:pids", false, "/sys/fs/cgroup/pids"},
	} {
		if got := hierarchyDir(tc.hierarchy, tc.onlyV2); got != tc.want {
			t.Errorf("hierarchyDir(%q, %v) = %q, want %q", tc.hierarchy, tc.onlyV2, got, tc.want)
		}
	}
}

// A child moved away into another cgroup of one hierarchy comes back into ours.
func TestJoinMovesBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: moves a process between cgroups")
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	ownLines := lines(string(own))
	for _, line := range ownLines {
		if h, path, ok := split(line); ok && (strings.HasSuffix(h, ":name=systemd") || len(ownLines) == 1) {
			dir = filepath.Join(hierarchyDir(h, len(ownLines) == 1), path, "cgroups-test-"+strconv.Itoa(os.Getpid()))
		}
	}
	if dir == "" {
		t.Skip("needs a name=systemd hierarchy or cgroup v2")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup here: %v", err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
		if err := os.Remove(dir); err != nil {
			t.Error(err)
		}
	})
	if err := writePid(filepath.Join(dir, "cgroup.procs"), child.Process.Pid); err != nil {
		t.Fatal(err)
	}
	theirs := "/proc/" + strconv.Itoa(child.Process.Pid) + "/cgroup"
	if moved, _ := os.ReadFile(theirs); string(moved) == string(own) {
		t.Fatalf("child not moved away: %q", moved)
	}
	if err := Join(child.Process.Pid, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if back, _ := os.ReadFile(theirs); string(back) != string(own) {
		t.Errorf("%s = %q, want ours %q", theirs, back, own)
	}
}

func TestJoinMissingProcess(t *testing.T) {
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	err = Join(pidMax, os.Getpid()) // pids stay below pid_max
	if err == nil || !strings.Contains(err.Error(), "/proc/"+strconv.Itoa(pidMax)+"/cgroup") {
		t.Errorf("Join of a pid that cannot exist: %v, want an error naming its /proc file", err)
	}
}
