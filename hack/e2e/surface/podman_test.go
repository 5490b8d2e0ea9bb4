package surface

// podman 4.3.1 with the monitor under test, in a private installation: own --root,
// --runroot, --tmpdir and containers.conf (runc, cgroupfs, ulimits below the hard limit).

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const podmanImage = "localhost/surface-busybox:latest"

var (
	podmanOnce sync.Once
	podmanDir  string
	podmanErr  error
)

// podman runs podman in the private installation.
func podman(env []string, args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--root", filepath.Join(podmanDir, "root"), "--runroot",
		filepath.Join(podmanDir, "runroot"), "--tmpdir", filepath.Join(podmanDir, "tmp"),
		"--storage-driver", "vfs", "--conmon", monitorPath}, args...)
	cmd := exec.CommandContext(ctx, "podman", full...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
		"CONTAINERS_CONF=" + filepath.Join(podmanDir, "containers.conf")}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if _, ok := err.(*exec.ExitError); ok {
		err = nil
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode(), err
}

func needPodman(t *testing.T) {
	t.Helper()
	setup(t)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("needs podman: " + err.Error())
	}
	podmanOnce.Do(func() { podmanErr = podmanSetup() })
	if podmanErr != nil {
		t.Fatalf("podman setup: %v", podmanErr)
	}
}

func podmanSetup() error {
	podmanDir = filepath.Join(tmpRoot, "podman")
	conf := e2eutil.ContainersConf(monitorPath, "")
	if err := os.MkdirAll(podmanDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(podmanDir, "containers.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	tarball := filepath.Join(podmanDir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", sharedRootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	_, e, code, err := podman(nil, "import", "--change", `CMD ["/bin/sh"]`, tarball, podmanImage)
	if err != nil || code != 0 {
		return fmt.Errorf("podman import: %v %d %s", err, code, e)
	}
	// podman 4.3.1 silently falls back to the conmon in $PATH when it dislikes --version.
	out, e, _, err := podman(nil, "info", "--format", "{{.Host.Conmon.Path}}")
	if got := strings.TrimSpace(out); err != nil || got != monitorPath {
		return fmt.Errorf("podman uses conmon %q (%v %s), not %s", got, err, e, monitorPath)
	}
	return nil
}

// podmanTeardown removes the containers and the private store.
func podmanTeardown() {
	if podmanDir == "" {
		return
	}
	podman(nil, "rm", "-af", "-t", "0")
	// Whatever podman left mounted below the store (shm, overlay), deepest first.
	data, _ := os.ReadFile("/proc/self/mounts")
	var mounts []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], podmanDir+"/") {
			mounts = append(mounts, f[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
	os.RemoveAll(podmanDir)
}

func TestPodmanOOMKilled(t *testing.T) {
	needPodman(t)
	name := "surface-oom"
	_, e, code, err := podman(nil, "run", "--name", name, "--network", "none", "--memory", "32m",
		"--memory-swap", "32m", podmanImage, "dd", "if=/dev/zero", "bs=64M", "count=1", "of=/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer podman(nil, "rm", "-f", name)
	if code != 137 {
		t.Errorf("podman run exited %d, want 137; stderr: %s", code, e)
	}
	out, e, _, _ := podman(nil, "inspect", "--format", "{{.State.OOMKilled}} {{.State.ExitCode}}", name)
	if strings.TrimSpace(out) != "true 137" {
		t.Errorf("inspect: %q (stderr %s), want \"true 137\"", out, e)
	}
}

func TestPodmanSdnotifyContainer(t *testing.T) {
	needPodman(t)
	dir, err := os.MkdirTemp("", "ns")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := unixgram(t, filepath.Join(dir, "notify"))
	helper := notifyHelper(t)
	_, e, code, err := podman([]string{"NOTIFY_SOCKET=" + sock.Name()}, "run", "--rm", "--network", "none",
		"--sdnotify=container", "-v", helper+":/notify-helper:ro", podmanImage, "/notify-helper", "podman-ok")
	if err != nil || code != 0 {
		t.Fatalf("podman run: %v %d %s", err, code, e)
	}
	got := recvUntil(t, sock, 5*time.Second, func(s string) bool { return strings.Contains(s, "STATUS=podman-ok") })
	if last := got[len(got)-1]; last != "READY=1\nSTATUS=podman-ok" {
		t.Errorf("relayed %q, want %q", last, "READY=1\nSTATUS=podman-ok")
	}
}
