package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// pod is a private podman installation whose runtime is the dispatcher.
type pod struct {
	t                           *testing.T
	dir                         string
	root, runroot, tmpdir, conf string
	driver                      string
	env                         []string // podman's environment
	stateDir, wrapper, wrapLog  string
	runtime                     string // podman's --runtime: sets the trust variables, execs the dispatcher
}

func quoteAll(kvs []string) []string {
	var q []string
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		q = append(q, k+"="+strconv.Quote(v))
	}
	return q
}

const podImage = "localhost/e2e-trust-busybox:latest"

// podmanSetup isolates podman from the machine's configuration: private storage, a
// containers.conf with cgroupfs, ulimits below the hard RLIMIT_NOFILE of 20000, no
// network. The trust options reach the monitor through conmon_env_vars, as for an
// unchanged engine. With useDispatcher podman's runtime is the dispatcher, else runc.
func podmanSetup(t *testing.T, useDispatcher bool) *pod {
	t.Helper()
	setup(t)
	for _, tool := range []string{"podman", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "e2e-trust-podman-")
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{t: t, dir: dir, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "runroot"),
		tmpdir: filepath.Join(dir, "tmp"), conf: filepath.Join(dir, "containers.conf"),
		stateDir: filepath.Join(dir, "trust"), wrapper: filepath.Join(dir, "untrusted-runc"),
		wrapLog: filepath.Join(dir, "untrusted.log")}
	t.Cleanup(p.teardown)
	if err := os.Mkdir(p.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeWrapper(t, p.wrapper, p.wrapLog, "")
	trustEnv := []string{"CONMON_GO_RUNTIME_TRUSTED=" + runcPath, "CONMON_GO_RUNTIME_UNTRUSTED=" + p.wrapper,
		"CONMON_GO_TRUST_STATE_DIR=" + p.stateDir}
	conf := e2eutil.ContainersConf(binPath, `conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", `+
		strconv.Quote(trustEnv[0])+", "+strconv.Quote(trustEnv[1])+", "+strconv.Quote(trustEnv[2])+"]\n")
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONTAINERS_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "CONMON_GO_") {
			p.env = append(p.env, kv)
		}
	}
	p.env = append(p.env, "CONTAINERS_CONF="+p.conf)
	// podman 4.3 runs start, kill and delete with only PATH and XDG_RUNTIME_DIR in the
	// environment, so the runtime it is given sets the variables and execs the dispatcher.
	if !useDispatcher {
		p.runtime = runcPath
		return p.importImage()
	}
	p.runtime = filepath.Join(dir, "runtime", "conmon-go-runtime")
	script := "#!/bin/sh\nexport " + strings.Join(quoteAll(trustEnv), " ") + "\nexec " + strconv.Quote(dispatcher) + " \"$@\"\n"
	if err := os.Mkdir(filepath.Dir(p.runtime), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.runtime, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p.importImage()
}

// importImage imports the busybox rootfs of hack/mkbundle.sh, on overlay if possible.
func (p *pod) importImage() *pod {
	t, dir := p.t, p.dir
	bundle := filepath.Join(dir, "bundle")
	if err := e2eutil.MakeBundle(mkbundlePath, "", bundle); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", filepath.Join(bundle, "rootfs"), "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	var errs []error
	for _, driver := range []string{"overlay", "vfs"} {
		p.driver = driver
		out, err := p.podman("import", tarball, podImage)
		if err == nil {
			return p
		}
		errs = append(errs, fmt.Errorf("%s: %v: %s", driver, err, out))
		p.wipe()
	}
	t.Fatalf("podman import: %v", errors.Join(errs...))
	return nil
}

// podman runs podman with the isolation flags, the dispatcher and the monitor under test.
func (p *pod) podman(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	global := []string{"--root", p.root, "--runroot", p.runroot, "--tmpdir", p.tmpdir,
		"--storage-driver", p.driver, "--runtime", p.runtime, "--conmon", binPath}
	cmd := exec.CommandContext(ctx, "podman", append(global, args...)...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("podman %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), nil
}

func (p *pod) must(args ...string) string {
	p.t.Helper()
	out, err := p.podman(args...)
	if err != nil {
		p.t.Fatalf("%v: %s", err, out)
	}
	return strings.TrimSpace(out)
}

// untrustedCalls returns the sub-commands the wrapper ran for id, in order.
func (p *pod) untrustedCalls(id string) []string {
	data, err := os.ReadFile(p.wrapLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		p.t.Fatal(err)
	}
	var subs []string
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, id) {
			continue
		}
		for _, sub := range []string{"create", "start", "exec", "kill", "delete"} {
			if slices.Contains(strings.Fields(l), sub) {
				subs = append(subs, sub)
			}
		}
	}
	return subs
}

func (p *pod) teardown() {
	if p.driver != "" {
		if out, err := p.podman("rm", "-af", "-t", "0"); err != nil {
			p.t.Errorf("teardown: %v: %s", err, out)
		}
	}
	p.removeContainers()
	p.wipe()
	if err := os.RemoveAll(p.dir); err != nil {
		p.t.Errorf("teardown: %v", err)
	}
}

// removeContainers deletes what a failed podman left in runc's default root (podman
// passes no --root) and waits for the monitors of those containers to end.
func (p *pod) removeContainers() {
	out, err := exec.Command(runcPath, "list", "--format", "json").Output()
	if err != nil {
		return
	}
	var list []struct {
		ID     string `json:"id"`
		Bundle string `json:"bundle"`
	}
	if json.Unmarshal(out, &list) != nil {
		return
	}
	for _, c := range list {
		if !strings.HasPrefix(c.Bundle, p.dir+"/") {
			continue
		}
		p.t.Errorf("teardown: container %s left behind; deleted", c.ID)
		_ = exec.Command(runcPath, "delete", "--force", c.ID).Run()
		if pid, err := readPid(filepath.Join(p.runroot, p.driver+"-containers", c.ID, "userdata", "conmon.pid")); err == nil && !e2eutil.WaitPidGone(pid, 5*time.Second) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// wipe unmounts what podman left mounted under the private root and deletes the store.
func (p *pod) wipe() {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil {
		var mps []string
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], p.dir+"/") {
				mps = append(mps, f[4])
			}
		}
		for i := len(mps) - 1; i >= 0; i-- {
			_ = unix.Unmount(mps[i], unix.MNT_DETACH)
		}
	}
	for _, d := range []string{p.root, p.runroot, p.tmpdir} {
		_ = os.RemoveAll(d)
	}
}

// TestPodmanDispatcher: with conmon-go-runtime as podman's runtime, every runtime call for
// an untrusted container (create, start, exec, kill, delete) reaches the untrusted
// runtime, and no call for a trusted container does.
func TestPodmanDispatcher(t *testing.T) {
	p := podmanSetup(t, true)
	if got := p.must("info", "--format", "{{.Host.Conmon.Path}}"); got != binPath {
		t.Fatalf("podman uses conmon %q, not %s", got, binPath)
	}
	run := func(annotation ...string) string {
		args := append([]string{"run", "-d", "--network", "none"}, annotation...)
		return p.must(append(args, podImage, "sleep", "60")...)
	}
	untrusted := run("--annotation", "io.kubernetes.cri-o.TrustedSandbox=false")
	trusted := run()
	for _, id := range []string{untrusted, trusted} {
		if out := p.must("exec", id, "sh", "-c", "echo in-$HOSTNAME"); !strings.HasPrefix(out, "in-") {
			t.Errorf("exec output %q", out)
		}
	}
	if _, err := os.Stat(filepath.Join(p.stateDir, untrusted+".trust")); err != nil {
		t.Errorf("untrusted container's record while it runs: %v", err)
	}
	for _, id := range []string{untrusted, trusted} {
		p.must("kill", id)
		p.must("wait", id)
		p.must("rm", id)
	}
	want := []string{"create", "start", "exec", "kill", "delete"}
	got := p.untrustedCalls(untrusted)
	for _, sub := range want {
		if !slices.Contains(got, sub) {
			t.Errorf("untrusted container: %s did not reach the untrusted runtime (calls %q)", sub, got)
		}
	}
	if calls := p.untrustedCalls(trusted); len(calls) > 0 {
		t.Errorf("trusted container reached the untrusted runtime: %q", calls)
	}
	if ents, _ := os.ReadDir(p.stateDir); len(ents) > 0 {
		t.Errorf("records left after podman rm: %s", ents[0].Name())
	}
}

// TestPodmanEnvFallbacks: podman unchanged (runtime runc), the monitor configured only by
// conmon_env_vars: an untrusted container is created by the untrusted runtime and its exec
// follows the record; a trusted one never reaches it; records go with the monitors.
func TestPodmanEnvFallbacks(t *testing.T) {
	p := podmanSetup(t, false)
	untrusted := p.must("run", "-d", "--network", "none", "--annotation", "io.kubernetes.cri-o.TrustedSandbox=false", podImage, "sleep", "60")
	trusted := p.must("run", "-d", "--network", "none", podImage, "sleep", "60")
	for _, id := range []string{untrusted, trusted} {
		p.must("exec", id, "true")
	}
	if got := p.untrustedCalls(untrusted); !slices.Contains(got, "create") || !slices.Contains(got, "exec") {
		t.Errorf("untrusted container: calls of the untrusted runtime %q, want create and exec", got)
	}
	if calls := p.untrustedCalls(trusted); len(calls) > 0 {
		t.Errorf("trusted container reached the untrusted runtime: %q", calls)
	}
	for _, id := range []string{untrusted, trusted} {
		// The monitor removes its record after the exit files, which podman may see first.
		pid, err := strconv.Atoi(p.must("inspect", "--format", "{{.State.ConmonPid}}", id))
		if err != nil {
			t.Fatal(err)
		}
		p.must("rm", "-f", "-t", "0", id)
		if !e2eutil.WaitPidGone(pid, 10*time.Second) {
			t.Errorf("monitor %d still running after podman rm", pid)
		}
	}
	if ents, _ := os.ReadDir(p.stateDir); len(ents) > 0 {
		t.Errorf("records left after podman rm: %s", ents[0].Name())
	}
}
