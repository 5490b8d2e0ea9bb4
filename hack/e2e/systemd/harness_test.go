// Package systemd tests conmon-go under a real systemd: systemd 252 as PID 1 of a podman
// container whose root is made of this machine's own /usr, booted to a target of its own
// that starts journald and nothing else. Tests install units into it, start them with
// systemctl and read journalctl.
//
// The container is not privileged: /proc/sys stays read-only, so nothing systemd does at
// boot reaches the host's kernel settings. It has every capability (runc inside needs
// them), the cgroup v1 controllers podman mounts read-only are remounted writable (runc
// creates the containers' cgroups there, below the container's own).
package systemd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const systemdBinary = "/usr/lib/systemd/systemd"

var (
	skipReason   string // non-empty: every test skips with it
	monitorPath  string // conmon-go under test, on the host
	mkbundlePath string
	tmpRoot      string

	bootOnce sync.Once
	booted   *machine
	bootErr  error
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse()
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root: podman, systemd and runc"
	default:
		for _, tool := range []string{"podman", "runc", "busybox"} {
			if _, err := exec.LookPath(tool); err != nil {
				skipReason = fmt.Sprintf("needs %s in PATH (hack/setup.sh installs it): %v", tool, err)
			}
		}
		if _, err := os.Stat(systemdBinary); err != nil {
			skipReason = fmt.Sprintf("needs systemd (%s): %v", systemdBinary, err)
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
	mkbundlePath = filepath.Join(root, "hack", "mkbundle.sh")
	if tmpRoot, err = os.MkdirTemp("", "e2e-systemd-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	if monitorPath, err = e2eutil.MonitorBinary(root, tmpRoot); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if booted != nil {
		if err := booted.shutdown(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	unmountUnder(tmpRoot)
	return code
}

// unmountUnder detaches whatever a failed podman left mounted below dir, deepest first,
// so that it can be removed.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		// id parent major:minor root mount-point ...
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	slices.Reverse(points)
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "umount %s: %v\n", p, err)
		}
	}
}

// machine is the booted container.
type machine struct {
	name   string
	dir    string // podman's storage and configuration
	rootfs string
}

// boot returns the machine, booting it for the first test that needs it.
func boot(t *testing.T) *machine {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	bootOnce.Do(func() { booted, bootErr = newMachine() })
	if bootErr != nil {
		t.Fatalf("booting systemd in a podman container: %v", bootErr)
	}
	return booted
}

// Only journald: units started by tests use DefaultDependencies=no, so nothing else of
// the host's installation (sysinit.target and what it pulls in) is ever started.
const bootTarget = `[Unit]
Description=conmon-go e2e: journald and nothing else
Requires=systemd-journald.socket systemd-journald-dev-log.socket
Wants=systemd-journald.service
AllowIsolate=yes
`

// masked are units that touch the machine rather than the container, should anything pull them in.
var masked = []string{"systemd-sysctl.service", "systemd-binfmt.service", "systemd-modules-load.service",
	"systemd-udevd.service", "systemd-udev-trigger.service", "systemd-firstboot.service", "systemd-remount-fs.service"}

func newMachine() (*machine, error) {
	b := make([]byte, 6)
	rand.Read(b)
	m := &machine{name: "conmon-go-e2e-systemd-" + hex.EncodeToString(b), dir: filepath.Join(tmpRoot, "podman"),
		rootfs: filepath.Join(tmpRoot, "rootfs")}
	if err := m.makeRootfs(); err != nil {
		return nil, err
	}
	conf := `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
runc = ["` + e2eutil.RuncPath + `"]
`
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(m.dir, "containers.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	args := []string{"run", "-d", "--name", m.name, "--systemd=always", "--sdnotify=container", "--network", "none",
		"--cap-add=all", "-v", "/usr:/usr:ro", "-v", monitorPath + ":/opt/conmon-go/conmon-go:ro"}
	for _, d := range hostTopDirs() {
		args = append(args, "-v", "/"+d+":/"+d+":ro")
	}
	args = append(args, "--rootfs", m.rootfs, systemdBinary)
	// systemd tells its container manager when it has booted: podman hands the container
	// a socket for that (--sdnotify=container) and passes the message on to ours.
	ready, err := listenNotify(filepath.Join(m.dir, "notify"))
	if err != nil {
		return nil, err
	}
	defer ready.Close()
	if _, err := m.podmanEnv(60*time.Second, []string{"NOTIFY_SOCKET=" + ready.LocalAddr().String()}, args...); err != nil {
		m.shutdown()
		return nil, err
	}
	if err := waitReady(ready, 60*time.Second); err != nil {
		failed := m.mustExec("systemctl", "--failed", "--no-pager")
		m.shutdown()
		return nil, fmt.Errorf("systemd did not report READY=1: %v; failed units: %s", err, failed)
	}
	if _, err := m.exec(30*time.Second, "sh", "-c", `for d in /sys/fs/cgroup/*/; do
		case $(findmnt -no FSTYPE "$d") in cgroup) mount -o remount,bind,rw "$d" ;; esac
	done`); err != nil {
		m.shutdown()
		return nil, err
	}
	return m, nil
}

// listenNotify opens a NOTIFY_SOCKET at path.
func listenNotify(path string) (*net.UnixConn, error) {
	return net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
}

// waitReady reads sd_notify messages until one says READY=1.
func waitReady(c *net.UnixConn, timeout time.Duration) error {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
			return nil
		}
	}
}

// hostTopDirs are the top-level directories that are not merged into /usr on this
// machine (on a merged-/usr system, none): they are bound into the container.
func hostTopDirs() []string {
	var dirs []string
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if st, err := os.Lstat("/" + d); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// makeRootfs builds the container's root: /usr and the merged-/usr links of the host, and
// an /etc of its own with a machine id (so this is no first boot, when systemd would
// enable every installed unit) and the boot target.
func (m *machine) makeRootfs() error {
	r := m.rootfs
	for _, d := range []string{"usr", "proc", "sys", "dev", "run", "tmp", "var/log/journal", "root", "srv",
		"opt/conmon-go", "etc/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if target, err := os.Readlink("/" + d); err == nil {
			if err := os.Symlink(target, filepath.Join(r, d)); err != nil {
				return err
			}
		} else if st, err := os.Stat("/" + d); err == nil && st.IsDir() {
			os.MkdirAll(filepath.Join(r, d), 0o755)
		}
	}
	for _, f := range []string{"passwd", "group", "shadow", "nsswitch.conf"} {
		data, err := os.ReadFile("/etc/" + f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(r, "etc", f), data, 0o644); err != nil {
			return err
		}
	}
	id := make([]byte, 16)
	rand.Read(id)
	etc := map[string]string{
		"machine-id":                     hex.EncodeToString(id) + "\n",
		"systemd/system/e2e-boot.target": bootTarget,
	}
	for name, content := range etc {
		if err := os.WriteFile(filepath.Join(r, "etc", name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// The bind mount of the binary needs a file to mount on.
	if err := os.WriteFile(filepath.Join(r, "opt/conmon-go/conmon-go"), nil, 0o755); err != nil {
		return err
	}
	links := map[string]string{"etc/os-release": "../usr/lib/os-release",
		"etc/systemd/system/default.target": "e2e-boot.target"}
	for _, u := range masked {
		links["etc/systemd/system/"+u] = "/dev/null"
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(r, name)); err != nil {
			return err
		}
	}
	return nil
}

// podman runs podman with the machine's private storage and configuration.
func (m *machine) podman(timeout time.Duration, args ...string) (string, error) {
	return m.podmanEnv(timeout, nil, args...)
}

func (m *machine) podmanEnv(timeout time.Duration, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := m.podmanCmd(ctx, args...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// podmanCmd is podman with private storage (vfs: nothing is mounted for it, the container
// has a root of its own) and configuration.
func (m *machine) podmanCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "podman", append([]string{"--storage-driver", "vfs",
		"--root", filepath.Join(m.dir, "root"), "--runroot", filepath.Join(m.dir, "runroot"),
		"--tmpdir", filepath.Join(m.dir, "tmp")}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(m.dir, "containers.conf"))
	return cmd
}

// exec runs a command in the machine.
func (m *machine) exec(timeout time.Duration, args ...string) (string, error) {
	return m.podman(timeout, append([]string{"exec", m.name}, args...)...)
}

func (m *machine) mustExec(args ...string) string {
	out, err := m.exec(30*time.Second, args...)
	if err != nil {
		return err.Error()
	}
	return out
}

func (m *machine) shutdown() error {
	// podman stop sends systemd SIGRTMIN+3: it stops every unit and halts.
	_, err := m.podman(60*time.Second, "stop", "-t", "30", m.name)
	if _, rmErr := m.podman(60*time.Second, "rm", "-f", m.name); err == nil {
		err = rmErr
	}
	return err
}

// install writes a unit file into the machine and reloads systemd; the unit is stopped
// (and its state reset) when the test ends.
func (m *machine) install(t *testing.T, name, unit string) {
	t.Helper()
	path := filepath.Join(m.rootfs, "etc/systemd/system", name)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.exec(30*time.Second, "systemctl", "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.exec(60*time.Second, "systemctl", "stop", name)
		m.exec(30*time.Second, "systemctl", "reset-failed", name)
		os.Remove(path)
		m.exec(30*time.Second, "systemctl", "daemon-reload")
	})
}

// systemctl runs systemctl in the machine; a failure includes the unit's status and journal.
func (m *machine) systemctl(t *testing.T, verb, unit string) string {
	t.Helper()
	out, err := m.exec(60*time.Second, "systemctl", verb, unit)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, m.mustExec("systemctl", "status", "--no-pager", unit), m.journal(unit))
	}
	return strings.TrimSpace(out)
}

// property returns one property of a unit (systemctl show -p).
func (m *machine) property(t *testing.T, unit, name string) string {
	t.Helper()
	out, err := m.exec(30*time.Second, "systemctl", "show", "-p", name, "--value", unit)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// journal is what the unit logged (journalctl -u, messages only).
func (m *machine) journal(unit string) string {
	return m.mustExec("journalctl", "-u", unit, "--no-pager", "-o", "cat")
}

// debugLog makes PID 1 log at debug level until the test ends, which shows the sd_notify
// messages it receives (notifications). Not while PID 1 starts a process: the new process's
// own first message (logged at debug level before PID 1 moves it into the unit's cgroup)
// would make journald attribute its output to init.scope instead of the unit.
func (m *machine) debugLog(t *testing.T) {
	t.Helper()
	if _, err := m.exec(30*time.Second, "systemd-analyze", "log-level", "debug"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.exec(30*time.Second, "systemd-analyze", "log-level", "info") })
}

// notifications are the sd_notify messages PID 1 received from the unit while logging at
// debug level: "READY=1, MAINPID=42".
func (m *machine) notifications(unit string) []string {
	var msgs []string
	prefix := unit + ": Got notification message from PID "
	for _, line := range strings.Split(m.mustExec("journalctl", "_PID=1", "--no-pager", "-o", "cat"), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			if _, msg, ok := strings.Cut(rest, " ("); ok {
				msgs = append(msgs, strings.TrimSuffix(msg, ")"))
			}
		}
	}
	return msgs
}

// bundle makes a busybox bundle at /srv/<name> in the machine. Its cgroup mount is
// dropped: the machine's cgroup mounts are binds of its own cgroup, which runc cannot
// bind into a nested container.
func (m *machine) bundle(t *testing.T, name string, args ...string) string {
	t.Helper()
	dir := filepath.Join(m.rootfs, "srv", name)
	if err := e2eutil.MakeBundle(mkbundlePath, "", append([]string{dir}, args...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	err := e2eutil.EditConfig(dir, func(cfg map[string]any) {
		var mounts []any
		for _, mnt := range cfg["mounts"].([]any) {
			if mnt.(map[string]any)["type"] != "cgroup" {
				mounts = append(mounts, mnt)
			}
		}
		cfg["mounts"] = mounts
	})
	if err != nil {
		t.Fatal(err)
	}
	return "/srv/" + name
}
