package dispatch

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/trust"
)

// The test binary doubles as the dispatcher: Main execs, so it runs in a child process.
func TestMain(m *testing.M) {
	if os.Getenv("DISPATCH_TEST_MAIN") == "1" {
		confPath = os.Getenv("DISPATCH_TEST_CONF")
		if p := os.Getenv("DISPATCH_TEST_SYSLOG"); p != "" {
			syslogPath = p
		}
		os.Exit(Main(os.Args))
	}
	os.Exit(m.Run())
}

// fixture: two fake runtimes that record their argv ($0 first) into <name>.argv.
type fixture struct {
	dir, state, bin  string
	trusted, untrust string
	env              map[string]string
}

const fakeRuntime = `#!/bin/sh
printf '%s\n' "$0" "$@" > "$0.argv"
exit ${FAKE_EXIT:-0}
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, state: filepath.Join(dir, "state"), bin: filepath.Join(dir, "bin")}
	for _, d := range []string{f.state, f.bin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.trusted = filepath.Join(f.bin, "runc") // found through PATH when CONMON_GO_RUNTIME_TRUSTED is unset
	f.untrust = filepath.Join(f.bin, "vm-runtime")
	for _, p := range []string{f.trusted, f.untrust} {
		if err := os.WriteFile(p, []byte(fakeRuntime), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.env = map[string]string{
		"PATH":                        f.bin + ":/usr/bin:/bin",
		"DISPATCH_TEST_MAIN":          "1",
		"DISPATCH_TEST_CONF":          filepath.Join(dir, "trust.conf"), // absent unless a test writes it
		"CONMON_GO_RUNTIME_UNTRUSTED": f.untrust,
		"CONMON_GO_TRUST_STATE_DIR":   f.state,
	}
	return f
}

// bundle writes a config.json with the given TrustedSandbox hint and its own namespaces.
func (f *fixture) bundle(t *testing.T, hint string) string {
	t.Helper()
	b, err := os.MkdirTemp(f.dir, "bundle")
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"annotations":{"io.kubernetes.cri-o.TrustedSandbox":"` + hint + `"},` +
		`"linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"}]}}`
	if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// run executes the dispatcher with argv[1:] = args and returns which fake runtime ran
// with which argv (nil if none), the exit status and stderr.
func (f *fixture) run(t *testing.T, args ...string) (ran string, argv []string, status int, stderr string) {
	t.Helper()
	for _, p := range []string{f.trusted, f.untrust} {
		os.Remove(p + ".argv")
	}
	cmd := exec.Command(os.Args[0], args...)
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.trusted, f.untrust} {
		data, err := os.ReadFile(p + ".argv")
		if err == nil {
			if ran != "" {
				t.Fatal("both runtimes ran")
			}
			ran, argv = p, strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		}
	}
	return ran, argv, status, errb.String()
}

func (f *fixture) expect(t *testing.T, wantRan string, wantStatus int, args ...string) {
	t.Helper()
	ran, argv, status, stderr := f.run(t, args...)
	if ran != wantRan || status != wantStatus {
		t.Fatalf("%q: ran %q status %d (stderr %q), want %q status %d", args, ran, status, stderr, wantRan, wantStatus)
	}
	if want := append([]string{wantRan}, args...); !reflect.DeepEqual(argv, want) {
		t.Fatalf("argv %q, want %q", argv, want)
	}
}

// listenDgram stands in for the syslog daemon: a datagram socket read through the poller.
func listenDgram(t *testing.T, path string) *os.File {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path)
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUntrustedLifecycle(t *testing.T) {
	f := newFixture(t)
	logSock := filepath.Join(f.dir, "log")
	syslogd := listenDgram(t, logSock)
	f.env["DISPATCH_TEST_SYSLOG"] = logSock

	b := f.bundle(t, "false")
	f.expect(t, f.untrust, 0, "--root", "/run/x", "--log-format=json", "--systemd-cgroup", "create", "--bundle", b, "--pid-file", "/p", "c1")
	rec, err := trust.ReadRecord(f.state, "c1")
	if err != nil || rec.Runtime != f.untrust || rec.Trusted {
		t.Fatalf("record %+v %v", rec, err)
	}
	syslogd.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := syslogd.Read(buf)
	// log/syslog's local form puts a timestamp before the tag and ends with a newline.
	msg := regexp.MustCompile(`^<14>[A-Z][a-z]{2} [ 123][0-9] [0-9:]{8} conmon-go-runtime\[[0-9]+\]: (.*)\n$`).FindSubmatch(buf[:n])
	if err != nil || msg == nil || string(msg[1]) != rec.Reason {
		t.Errorf("syslog %q %v", buf[:n], err)
	}

	f.expect(t, f.untrust, 0, "--root", "/run/x", "start", "c1")
	f.expect(t, f.untrust, 0, "--root", "/run/x", "kill", "c1", "KILL")
	f.expect(t, f.untrust, 0, "--root=/run/x", "state", "c1")
	f.expect(t, f.untrust, 0, "exec", "--env", "A=1", "-p", "/proc.json", "--tty", "c1", "sh", "-c", "true")

	f.env["FAKE_EXIT"] = "3" // a failed delete keeps the record
	f.expect(t, f.untrust, 3, "delete", "c1")
	if _, err := trust.ReadRecord(f.state, "c1"); err != nil {
		t.Fatalf("record gone after a failed delete: %v", err)
	}
	delete(f.env, "FAKE_EXIT")
	f.expect(t, f.untrust, 0, "--root", "/run/x", "delete", "--force", "c1")
	if _, err := os.Stat(filepath.Join(f.state, "c1.trust")); !os.IsNotExist(err) {
		t.Fatalf("record not removed: %v", err)
	}
	// Without its record the id goes to the trusted runtime.
	f.expect(t, f.trusted, 0, "state", "c1")
}

func TestTrustedAndNoID(t *testing.T) {
	f := newFixture(t)
	f.expect(t, f.trusted, 0, "--root", "/r", "run", "-b", f.bundle(t, "true"), "-d", "c2")
	f.expect(t, f.trusted, 0, "start", "c2")
	f.expect(t, f.trusted, 0, "features")
	f.expect(t, f.trusted, 0, "--version")
	f.expect(t, f.trusted, 0, "list", "--format", "json")
	f.expect(t, f.trusted, 0, "spec", "--bundle", "/b")
	// The bundle defaults to the working directory.
	cmdDir := f.bundle(t, "false")
	cmd := exec.Command(os.Args[0], "create", "c3")
	cmd.Dir = cmdDir
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create in cwd: %v %s", err, out)
	}
	if rec, err := trust.ReadRecord(f.state, "c3"); err != nil || rec.Runtime != f.untrust {
		t.Errorf("cwd bundle record %+v %v", rec, err)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	b := f.bundle(t, "false")

	delete(f.env, "CONMON_GO_TRUST_STATE_DIR")
	if ran, _, status, stderr := f.run(t, "create", "--bundle", b, "c1"); ran != "" || status != 1 ||
		!strings.Contains(stderr, "CONMON_GO_TRUST_STATE_DIR is not set") {
		t.Errorf("unset state dir: ran %q status %d stderr %q", ran, status, stderr)
	}
	f.env["CONMON_GO_TRUST_STATE_DIR"] = filepath.Join(f.dir, "missing")
	if ran, _, status, stderr := f.run(t, "create", "--bundle", b, "c1"); ran != "" || status != 1 ||
		!strings.HasPrefix(stderr, "conmon-go-runtime: trust state dir: ") {
		t.Errorf("missing state dir: ran %q status %d stderr %q", ran, status, stderr)
	}
	f.env["CONMON_GO_TRUST_STATE_DIR"] = f.state

	if ran, _, status, stderr := f.run(t, "create", "--bundle", f.dir, "c1"); ran != "" || status != 1 ||
		stderr != "conmon-go-runtime: Cannot select runtime: "+f.dir+"/config.json: no such file or directory\n" {
		t.Errorf("no config.json: ran %q status %d stderr %q", ran, status, stderr)
	}
	f.env["CONMON_GO_RUNTIME_UNTRUSTED"] = filepath.Join(f.dir, "nope")
	if ran, _, status, stderr := f.run(t, "features"); ran != "" || status != 1 || !strings.Contains(stderr, "untrusted runtime path") {
		t.Errorf("bad untrusted runtime: ran %q status %d stderr %q", ran, status, stderr)
	}
	f.env["CONMON_GO_RUNTIME_UNTRUSTED"] = f.untrust
	f.env["CONMON_GO_DEFAULT_TRUST"] = "yes"
	if ran, _, status, _ := f.run(t, "features"); ran != "" || status != 1 {
		t.Errorf("bad default trust: ran %q status %d", ran, status)
	}
}

// TestConfFile: values come from the file unless the environment sets them.
func TestConfFile(t *testing.T) {
	f := newFixture(t)
	delete(f.env, "CONMON_GO_RUNTIME_UNTRUSTED")
	delete(f.env, "CONMON_GO_TRUST_STATE_DIR")
	conf := "# trust\n\nCONMON_GO_RUNTIME_UNTRUSTED = \"" + f.untrust + "\"\nCONMON_GO_TRUST_STATE_DIR=" + f.state +
		"\nCONMON_GO_RUNTIME_TRUSTED=/nonexistent/runc\n"
	if err := os.WriteFile(f.env["DISPATCH_TEST_CONF"], []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	f.env["CONMON_GO_RUNTIME_TRUSTED"] = f.trusted // the environment wins over the bad file value
	f.expect(t, f.untrust, 0, "create", "--bundle="+f.bundle(t, "True"), "c1")
	f.expect(t, f.trusted, 0, "create", "--bundle="+f.bundle(t, "true"), "c2")

	if err := os.WriteFile(f.env["DISPATCH_TEST_CONF"], []byte("CONMON_GO_TRUST_DIR=/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ran, _, status, stderr := f.run(t, "features"); ran != "" || status != 1 || !strings.Contains(stderr, "trust.conf:1:") {
		t.Errorf("misspelt key: ran %q status %d stderr %q", ran, status, stderr)
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args string
		want invocation
	}{
		{"--root /r --log /l --log-format json --debug --systemd-cgroup create --bundle /b --pid-file /p id1", invocation{"create", "id1", "/b"}},
		{"--root=/r --criu=/c --rootless true restore -b /b --image-path /i id2", invocation{"restore", "id2", "/b"}},
		{"run -b=/b -d id3", invocation{"run", "id3", "/b"}},
		{"create id4", invocation{"create", "id4", ""}},
		{"kill --all id5 9", invocation{"kill", "id5", ""}},
		{"exec -e A=1 --cwd / -u 0:0 --tty --process=/j id6 sh -c x", invocation{"exec", "id6", ""}},
		{"exec -- id7 ls", invocation{"exec", "id7", ""}},
		{"ps --format json id8 -ef", invocation{"ps", "id8", ""}},
		{"update --memory 100 id9", invocation{"update", "id9", ""}},
		{"--log /l features", invocation{"features", "", ""}},
		{"-v", invocation{}},
		{"--root /r --help", invocation{}},
		{"list -q", invocation{"list", "", ""}},
		{"state", invocation{"state", "", ""}},
		{"delete --force", invocation{"delete", "", ""}},
	} {
		if got := parseArgs(append([]string{"rt"}, strings.Fields(tc.args)...)); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

// TestInsecureStateDir: create refuses a directory whose records would be ignored;
// other calls ignore the records with a warning and use the trusted runtime.
func TestInsecureStateDir(t *testing.T) {
	f := newFixture(t)
	f.expect(t, f.untrust, 0, "create", "--bundle", f.bundle(t, "false"), "c1")
	if err := os.Chmod(f.state, 0o777); err != nil {
		t.Fatal(err)
	}
	if ran, _, status, stderr := f.run(t, "create", "--bundle", f.bundle(t, "false"), "c2"); ran != "" || status != 1 ||
		!strings.Contains(stderr, "mode 0777") {
		t.Errorf("create: ran %q status %d stderr %q", ran, status, stderr)
	}
	ran, _, status, stderr := f.run(t, "state", "c1")
	if ran != f.trusted || status != 0 || !strings.HasPrefix(stderr, "conmon-go-runtime: warning: ignoring trust records in "+f.state) {
		t.Errorf("state: ran %q status %d stderr %q", ran, status, stderr)
	}
}
