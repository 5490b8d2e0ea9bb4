package person

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// defaultConfig is what `runc spec` writes, the common ground of OCI runtimes: a read-only
// root, its own network namespace (no network), a minimal set of capabilities. Args,
// terminal, root path, hostname and rlimits are filled in by writeConfig.
const defaultConfig = `{
	"ociVersion": "1.0.2",
	"process": {
		"terminal": false,
		"user": {"uid": 0, "gid": 0},
		"args": [],
		"env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
		"cwd": "/",
		"capabilities": {
			"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
		},
		"rlimits": [],
		"noNewPrivileges": true
	},
	"root": {"path": "", "readonly": true},
	"hostname": "",
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
		{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
	],
	"linux": {
		"resources": {"devices": [{"allow": false, "access": "rwm"}]},
		"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
		"maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
		"readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
	}
}`

// defaultRlimit is the soft and hard value of RLIMIT_NOFILE and RLIMIT_NPROC in the
// default configuration, lowered to the machine's hard limit: the runtime cannot raise a
// hard limit without CAP_SYS_RESOURCE and fails the container.
const defaultRlimit = 1024

// bundleSpec says where the container's configuration comes from and what to change.
type bundleSpec struct {
	Bundle   string   // a bundle directory whose config.json is used; or
	Rootfs   string   // a root filesystem for the default configuration
	Args     []string // replaces process.args when not empty
	Terminal bool     // forces process.terminal on
	Hostname string   // for the default configuration
}

// writeConfig writes <dir>/config.json, the bundle the monitor is given, and reports
// whether the process has a terminal. A given bundle's configuration is copied with its
// relative paths (root, bind mount sources) made absolute, so the bundle itself is never
// written to and several containers can run from it at once.
func writeConfig(dir string, b bundleSpec) (terminal bool, err error) {
	var data []byte
	base := b.Bundle
	if b.Bundle != "" {
		path := filepath.Join(b.Bundle, "config.json")
		if data, err = os.ReadFile(path); err != nil {
			return false, fail("bundle %s: %w", b.Bundle, err)
		}
	} else {
		if base, err = filepath.Abs(b.Rootfs); err != nil {
			return false, fail("rootfs %s: %w", b.Rootfs, err)
		}
		if st, err := os.Stat(base); err != nil || !st.IsDir() {
			return false, fail("rootfs %s: not a directory", b.Rootfs)
		}
		data = []byte(defaultConfig)
	}
	cfg, err := decodeConfig(data)
	if err != nil {
		return false, fail("bundle %s: config.json: %w", b.Bundle, err)
	}
	process, _ := cfg["process"].(map[string]any)
	root, _ := cfg["root"].(map[string]any)
	if process == nil || root == nil {
		return false, fail("bundle %s: config.json has no process or no root", b.Bundle)
	}
	if len(b.Args) > 0 {
		process["args"] = b.Args
	}
	if args, _ := process["args"].([]any); len(args) == 0 && len(b.Args) == 0 {
		return false, fail("no command: give one after --, e.g. -- sh -c 'echo hello'")
	}
	if b.Terminal {
		process["terminal"] = true
	}
	terminal, _ = process["terminal"].(bool)
	if b.Bundle == "" {
		root["path"] = base
		cfg["hostname"] = b.Hostname
		process["rlimits"] = machineRlimits()
	} else {
		absolutize(cfg, root, base)
	}
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return false, fail("encode config.json: %w", err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return false, fail("%w", err)
	}
	return terminal, nil
}

// decodeConfig decodes a config.json keeping numbers exactly as written (uid mappings,
// rlimits and memory limits may not fit a float64).
func decodeConfig(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errors.New("not a JSON object")
	}
	return cfg, nil
}

// absolutize resolves the paths the runtime would take relative to the bundle directory.
func absolutize(cfg, root map[string]any, base string) {
	if p, _ := root["path"].(string); p != "" && !filepath.IsAbs(p) {
		root["path"] = filepath.Join(base, p)
	}
	mounts, _ := cfg["mounts"].([]any)
	for _, m := range mounts {
		mount, _ := m.(map[string]any)
		src, _ := mount["source"].(string)
		if src == "" || filepath.IsAbs(src) || !isBind(mount) {
			continue
		}
		mount["source"] = filepath.Join(base, src)
	}
}

func isBind(mount map[string]any) bool {
	if mount["type"] == "bind" {
		return true
	}
	opts, _ := mount["options"].([]any)
	return slices.Contains(opts, any("bind")) || slices.Contains(opts, any("rbind"))
}

// machineRlimits are the default configuration's rlimits, within this machine's hard
// limits.
func machineRlimits() []any {
	var out []any
	for _, r := range []struct {
		name     string
		resource int
	}{{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE}, {"RLIMIT_NPROC", unix.RLIMIT_NPROC}} {
		v := uint64(defaultRlimit)
		var lim unix.Rlimit
		if unix.Getrlimit(r.resource, &lim) == nil {
			v = min(v, lim.Max)
		}
		out = append(out, map[string]any{"type": r.name, "hard": v, "soft": v})
	}
	return out
}
