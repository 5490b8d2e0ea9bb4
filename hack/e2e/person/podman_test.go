package person

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const refConmon = "/usr/bin/conmon"

// podmanEnv is a private podman (own root, runroot, tmpdir, configuration) whose
// containers run from a busybox rootfs of their own under the given monitor.
type podmanEnv struct {
	t                           *testing.T
	monitor                     string
	root, runroot, tmpdir, conf string
	rootfs                      string
}

func newPodman(t *testing.T, monitor string) *podmanEnv {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("needs podman: " + err.Error())
	}
	if _, err := os.Stat(monitor); err != nil {
		t.Skip("needs " + monitor + ": " + err.Error())
	}
	dir, err := os.MkdirTemp(tmpRoot, "pm-")
	if err != nil {
		t.Fatal(err)
	}
	p := &podmanEnv{t: t, monitor: monitor, root: dir + "/root", runroot: dir + "/runroot", tmpdir: dir + "/tmp",
		conf: dir + "/containers.conf", rootfs: dir + "/bundle/rootfs"}
	if err := os.WriteFile(p.conf, []byte(e2eutil.ContainersConf(monitor, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	// podman --rootfs adds files to the rootfs: not the one the other tests share.
	if err := e2eutil.MakeBundle(mkbundlePath, "", dir+"/bundle"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := p.cmd("rm", "-af", "-t", "0").CombinedOutput(); err != nil {
			t.Logf("podman rm -af: %v\n%s", err, out)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return p
}

func (p *podmanEnv) args(args ...string) []string {
	return append([]string{"podman", "--root", p.root, "--runroot", p.runroot, "--tmpdir", p.tmpdir,
		"--storage-driver", "vfs", "--conmon", p.monitor}, args...)
}

func (p *podmanEnv) cmd(args ...string) *exec.Cmd {
	a := p.args(args...)
	cmd := exec.Command(a[0], a[1:]...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONTAINERS_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CONTAINERS_CONF="+p.conf)
	return cmd
}

// must runs podman and returns its trimmed stdout.
func (p *podmanEnv) must(args ...string) string {
	p.t.Helper()
	var stderr strings.Builder
	cmd := p.cmd(args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		p.t.Fatalf("podman %q: %v\n%s%s", args, err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// userdata is the container's bundle directory, which holds the attach socket.
func (p *podmanEnv) userdata(id string) string {
	return filepath.Dir(p.must("inspect", "--format", "{{.OCIConfigPath}}", id))
}

// underEachMonitor runs test, in parallel, with a private podman whose containers are
// monitored by conmon-go, then by conmon.
func underEachMonitor(t *testing.T, test func(t *testing.T, p *podmanEnv)) {
	setup(t)
	for _, m := range []struct{ name, path string }{{"conmon-go", bin}, {"conmon", refConmon}} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			test(t, newPodman(t, m.path))
		})
	}
}

// attach to a container without a terminal started by podman under conmon-go and under
// conmon: the input arrives, stdout and stderr stay apart, the status is the container's.
func TestAttachPodmanNoTerminal(t *testing.T) {
	underEachMonitor(t, func(t *testing.T, p *podmanEnv) {
		id := p.must("run", "-d", "-i", "--rootfs", p.rootfs, "sh", "-c",
			`(while :; do echo tick; sleep 0.2; done) & read l; kill $!; echo got:$l; echo err:$l >&2; exit 9`)
		r := conmonGo(t, nil, "hello\n", "attach", p.userdata(id))
		if r.code != 9 || !strings.Contains(r.stdout, "got:hello\n") || strings.Contains(r.stdout, "err:") || !strings.Contains(r.stderr, "err:hello\n") {
			t.Fatalf("want exit 9, got:hello on stdout, err:hello on stderr: %v", r)
		}
	})
}

// attach to a podman container with a terminal: raw mode, the window size through the
// monitor's ctl FIFO (conmon relays it through winsz), the container's status at the end.
func TestAttachPodmanTerminal(t *testing.T) {
	underEachMonitor(t, func(t *testing.T, p *podmanEnv) {
		id := p.must("run", "-dit", "--rootfs", p.rootfs, "sh")
		pane := newPane(t)
		pane.line(fmt.Sprintf("%s attach %s", bin, p.userdata(id)))
		pane.containerSize(24, 80)
		pane.resize(100, 30)
		pane.containerSize(30, 100)
		pane.line("exit 3")
		if st := pane.shellStatus(); st != 3 {
			t.Fatalf("attach exited %d; want the container's 3", st)
		}
	})
}
