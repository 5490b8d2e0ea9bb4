package person

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func readConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestWriteConfigDefault(t *testing.T) {
	rootfs, state := t.TempDir(), t.TempDir()
	terminal, err := writeConfig(state, bundleSpec{Rootfs: rootfs, Args: []string{"sh", "-c", "echo hi"}, Terminal: true, Hostname: "web"})
	if err != nil || !terminal {
		t.Fatalf("writeConfig = %v, %v", terminal, err)
	}
	cfg := readConfig(t, state)
	process := cfg["process"].(map[string]any)
	if args := process["args"].([]any); len(args) != 3 || args[2] != "echo hi" {
		t.Errorf("args %v", args)
	}
	if process["terminal"] != true || cfg["hostname"] != "web" || cfg["root"].(map[string]any)["path"] != rootfs {
		t.Errorf("terminal %v, hostname %v, root %v", process["terminal"], cfg["hostname"], cfg["root"])
	}
	// Every rlimit is within what this machine allows; a runtime fails a container whose
	// hard limit exceeds it.
	names := map[string]int{"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC}
	rlimits := process["rlimits"].([]any)
	if len(rlimits) != 2 {
		t.Fatalf("rlimits %v", rlimits)
	}
	for _, r := range rlimits {
		r := r.(map[string]any)
		var lim unix.Rlimit
		unix.Getrlimit(names[r["type"].(string)], &lim)
		hard, _ := r["hard"].(json.Number).Int64()
		soft, _ := r["soft"].(json.Number).Int64()
		if uint64(hard) > lim.Max || soft > hard || hard == 0 {
			t.Errorf("%v: soft %d hard %d, machine hard %d", r["type"], soft, hard, lim.Max)
		}
	}
}

// A bundle's configuration is copied with its relative paths made absolute; the bundle
// itself is not written to, and its numbers survive exactly.
func TestWriteConfigBundle(t *testing.T) {
	bundle, state := t.TempDir(), t.TempDir()
	orig := `{"process": {"terminal": true, "args": ["sh"], "user": {"uid": 0, "gid": 0},
		"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 18446744073709551615, "soft": 1024}]},
		"root": {"path": "rootfs"},
		"mounts": [{"destination": "/data", "type": "bind", "source": "data", "options": ["rbind"]},
			{"destination": "/opt", "source": "opt", "options": ["bind", "ro"]},
			{"destination": "/proc", "type": "proc", "source": "proc"},
			{"destination": "/abs", "type": "bind", "source": "/srv/abs"}]}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	terminal, err := writeConfig(state, bundleSpec{Bundle: bundle, Args: []string{"true"}})
	if err != nil || !terminal {
		t.Fatalf("writeConfig = %v, %v", terminal, err)
	}
	cfg := readConfig(t, state)
	if got := cfg["root"].(map[string]any)["path"]; got != filepath.Join(bundle, "rootfs") {
		t.Errorf("root path %v", got)
	}
	var sources []string
	for _, m := range cfg["mounts"].([]any) {
		sources = append(sources, m.(map[string]any)["source"].(string))
	}
	if want := []string{filepath.Join(bundle, "data"), filepath.Join(bundle, "opt"), "proc", "/srv/abs"}; !slices.Equal(sources, want) {
		t.Errorf("mount sources %q; want %q", sources, want)
	}
	data, _ := os.ReadFile(filepath.Join(state, "config.json"))
	if !strings.Contains(string(data), "18446744073709551615") {
		t.Error("a large rlimit lost its exact value")
	}
	if data, _ := os.ReadFile(filepath.Join(bundle, "config.json")); string(data) != orig {
		t.Error("the bundle's config.json was changed")
	}
}

func TestWriteConfigErrors(t *testing.T) {
	state := t.TempDir()
	for name, b := range map[string]bundleSpec{
		"missing bundle":  {Bundle: filepath.Join(state, "nope")},
		"missing rootfs":  {Rootfs: filepath.Join(state, "nope"), Args: []string{"sh"}},
		"rootfs is file":  {Rootfs: "/etc/passwd", Args: []string{"sh"}},
		"no command":      {Rootfs: t.TempDir()},
		"not json bundle": {Bundle: writeFile(t, "config.json", "{")},
	} {
		if _, err := writeConfig(state, b); err == nil || ExitCode(err) != ExitFailure {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
