package podman

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// podman 4.3.1 probes --version before every command and silently falls back to the conmon
// in $PATH when it dislikes the answer (docs/engines.md §4): every other check would then test
// the wrong monitor. Both the probe result and the live monitor process must be $BIN.
func TestMonitorInUse(t *testing.T) {
	need(t)
	if got := mustPodman(t, "info", "--format", "{{.Host.Conmon.Path}}"); got != s.bin {
		t.Fatalf("podman info: conmon path %q, want %q (podman rejected the --version output and fell back)", got, s.bin)
	}
	id := runDetached(t, image, "sleep", "100")
	pid := inspectInt(t, id, "{{.State.ConmonPid}}")
	if pid <= 0 {
		t.Fatalf("ConmonPid %d", pid)
	}
	want, err := filepath.EvalSymlinks(s.bin)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	if exe != want && argv0 != s.bin {
		t.Fatalf("conmon pid %d runs exe %q argv0 %q, want %s", pid, exe, argv0, s.bin)
	}
	// The monitor names the container in its argv (-c <id>).
	if !strings.Contains(string(cmdline), "\x00-c\x00"+id+"\x00") {
		t.Errorf("monitor %d argv lacks -c %s: %q", pid, id, cmdline)
	}
}

// conmon-go reports `conmon version 2.2.1` then `commit: ...` (docs/cli.md §7,
// docs/engines.md §4).
func TestVersionProbe(t *testing.T) {
	requireConmonGo(t)
	lines := strings.Split(s.version, "\n")
	if len(lines) < 2 || lines[0] != "conmon version 2.2.1" || !strings.HasPrefix(lines[1], "commit: ") {
		t.Fatalf("--version output %q", s.version)
	}
}
