package person

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// writers are the monitors whose logs `conmon-go logs` must read.
func writers(t *testing.T, env logsEnv) map[string]string {
	m := map[string]string{"conmon-go": env.bin}
	if _, err := os.Stat(conmonPath); err == nil {
		m["conmon"] = conmonPath
	} else {
		t.Logf("no %s: only logs written by conmon-go are read", conmonPath)
	}
	return m
}

// A line written in two writes 300 ms apart and a 20000-byte line are stored as several
// records by both monitors (conmon: one per read; conmon-go: the idle flush and its
// 16 KiB bound); logs joins them back and keeps the streams apart.
const mixedScript = `echo out1; echo err1 >&2; printf part; sleep 0.3; echo ial; ` +
	`head -c 20000 /dev/zero | tr '\0' y; echo; printf end; exit 3`

func TestLogsJoinsRecordsOfBothMonitors(t *testing.T) {
	env := setupLogs(t)
	long := strings.Repeat("y", 20000)
	for name, monitor := range writers(t, env) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := runMonitored(t, env, monitor, []string{"sh", "-c", mixedScript})
			if got := c.exitStatus(); got != "3" {
				t.Fatalf("exit file %q, want 3", got)
			}
			data, err := os.ReadFile(c.log)
			if err != nil {
				t.Fatal(err)
			}
			// At least the long line is cut (the short one too, unless a loaded machine
			// delays the shell more than conmon-go's 100 ms idle flush).
			if n := strings.Count(string(data), " stdout P "); n < 1 {
				t.Fatalf("the log has no stdout P record, want the joins to be tested:\n%s", data)
			}

			wantOut := "out1\npartial\n" + long + "\nend"
			if code, out, errOut := runLogs(t, env.bin, c.log); code != 0 || out != wantOut || errOut != "err1\n" {
				t.Errorf("logs: status %d\nstdout %.80q (%d bytes, want %d)\nstderr %q", code, out, len(out), len(wantOut), errOut)
			}
			// The monitor has exited: -f shows the same and ends.
			if code, out, errOut := runLogs(t, env.bin, "-f", c.log); code != 0 || out != wantOut || errOut != "err1\n" {
				t.Errorf("logs -f: status %d, stdout %d bytes, stderr %q", code, len(out), errOut)
			}

			// The last two lines, each with the timestamp of its first record.
			code, out, errOut := runLogs(t, env.bin, "--tail", "2", "--timestamps", c.log)
			lines := strings.Split(out, "\n")
			if code != 0 || errOut != "" || len(lines) != 2 {
				t.Fatalf("--tail 2 --timestamps: status %d, stdout %.100q, stderr %q", code, out, errOut)
			}
			for i, want := range []string{long, "end"} {
				stamp, content, _ := strings.Cut(lines[i], " ")
				if content != want {
					t.Errorf("line %d: %.40q, want %.40q", i, content, want)
				}
				// The first record holding the line's beginning carries this stamp.
				if !strings.Contains(string(data), stamp+" stdout P "+want[:3]) {
					t.Errorf("line %d: timestamp %q is not that of the line's first record", i, stamp)
				}
				if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil {
					t.Errorf("line %d: %v", i, err)
				}
			}
		})
	}
}

// echoScript answers each stdin line on both streams.
var echoScript = []string{"sh", "-c", `while read l; do echo "out $l"; echo "err $l" >&2; done`}

// kubelet's rotation: rename the log, then ask the monitor to reopen it ("2 0 0" on ctl).
// `logs -f` shows what the monitor wrote into the renamed file and then the new file's
// lines, and ends when the container (and with it the monitor) exits.
func TestLogsFollowAcrossReopen(t *testing.T) {
	env := setupLogs(t)
	for name, monitor := range writers(t, env) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := runMonitored(t, env, monitor, echoScript, "-i")
			stdin := c.dial()
			say := func(s string) {
				t.Helper()
				if _, err := stdin.Write([]byte(s + "\n")); err != nil {
					t.Fatal(err)
				}
			}
			say("a")
			logs := startLogs(t, env.bin, "-f", c.log)
			logs.expect(0, "out a")
			logs.expect(1, "err a")

			if err := os.Rename(c.log, c.log+".20261127"); err != nil {
				t.Fatal(err)
			}
			say("b")
			logs.expect(0, "out b")
			logs.expect(1, "err b")
			c.ctl("2 0 0\n")
			e2eutil.WaitFile(t, c.log, 10*time.Second, nil) // c goes to the new file
			say("c")
			logs.expect(0, "out c")
			logs.expect(1, "err c")

			if err := stdin.CloseWrite(); err != nil { // -i: stdin closes, the loop ends
				t.Fatal(err)
			}
			if got := c.exitStatus(); got != "0" {
				t.Errorf("exit file %q", got)
			}
			if code, out, errOut := logs.wait(20 * time.Second); code != 0 || out != "" || errOut != "" {
				t.Errorf("logs -f after the exit: status %d, more stdout %q, stderr %q", code, out, errOut)
			}
			for path, want := range map[string]string{c.log + ".20261127": "out b", c.log: "out c"} {
				if data, _ := os.ReadFile(path); !strings.Contains(string(data), want) {
					t.Errorf("%s does not hold %q: the reopen did not happen as the test assumes:\n%s", path, want, data)
				}
			}
		})
	}
}

// --log-size-max makes the monitor replace the file every few lines: by rotation
// (--log-rotate: ctr.log -> ctr.log.1, a new ctr.log) or by truncation (a new empty file
// renamed over ctr.log). `logs -f` shows every line.
func TestLogsFollowAcrossRotation(t *testing.T) {
	env := setupLogs(t)
	cases := []struct {
		name, monitor string
		args          []string
	}{
		{"conmon-go/rotate", env.bin, []string{"--log-size-max", "250", "--log-rotate", "--log-max-files", "1"}},
		{"conmon-go/truncate", env.bin, []string{"--log-size-max", "250"}},
		{"conmon/truncate", conmonPath, []string{"--log-size-max", "250"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.monitor == conmonPath {
				needConmon(t)
			}
			t.Parallel()
			c := runMonitored(t, env, tc.monitor, echoScript, append([]string{"-i"}, tc.args...)...)
			stdin := c.dial()
			logs := startLogs(t, env.bin, "--follow", "--timestamps", c.log)
			for i := range 12 {
				line := fmt.Sprintf("%02d", i)
				if _, err := stdin.Write([]byte(line + "\n")); err != nil {
					t.Fatal(err)
				}
				for stream, want := range []string{"out " + line, "err " + line} {
					logs.pipes[stream].SetReadDeadline(time.Now().Add(20 * time.Second))
					got, err := logs.r[stream].ReadString('\n')
					if _, content, _ := strings.Cut(got, " "); err != nil || content != want+"\n" {
						t.Fatalf("line %d: read %q (%v), want a timestamp and %q", i, got, err, want)
					}
				}
			}
			data, err := os.ReadFile(c.log)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "out 00") {
				t.Fatalf("%s still holds the first line: the monitor never replaced it:\n%s", c.log, data)
			}
			if err := stdin.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.exitStatus()
			if code, out, errOut := logs.wait(20 * time.Second); code != 0 || out != "" || errOut != "" {
				t.Errorf("logs -f after the exit: status %d, more stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}

// Bad input: one line on stderr and status 125, no stack trace.
func TestLogsBadInput(t *testing.T) {
	env := setupLogs(t)
	notLog := t.TempDir() + "/config.json"
	if err := os.WriteFile(notLog, []byte("{\n\"ociVersion\": \"1.0.2\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{notLog}, notLog + " is not a k8s-file log"},
		{[]string{"-f", notLog}, notLog + " is not a k8s-file log"},
		{[]string{t.TempDir() + "/none.log"}, "none.log: no such file or directory"},
		{[]string{"--tail=-x", notLog}, `invalid argument "-x" for "--tail"`},
	} {
		code, out, errOut := runLogs(t, env.bin, c.args...)
		if code != 125 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("logs %q: status %d, stdout %q, stderr %q; want status 125 and one line with %q", c.args, code, out, errOut, c.want)
		}
	}
}

// A container started by `conmon-go run -d` is found by its name, and `logs -f` follows it
// until it ends.
func TestLogsOfRunContainerByName(t *testing.T) {
	env := setupLogs(t)
	if out, err := exec.Command(env.bin, "help", "run").CombinedOutput(); err != nil || !strings.Contains(string(out), "conmon-go run") {
		t.Skipf("%s has no run command (`conmon-go run`, docs/cli.md §9.2): `conmon-go help run` gave %v", env.bin, err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := e2eutil.MakeBundle(env.mkbundle, "", bundle); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "e2e-logs-" + hex.EncodeToString(b)
	state := filepath.Join("/run/conmon-go", name)
	t.Cleanup(func() { os.RemoveAll(state) })
	run := exec.Command(env.bin, "run", "-d", "-q", "--name", name, "--rootfs", filepath.Join(bundle, "rootfs"), "--",
		"sh", "-c", "trap 'echo bye; exit 0' TERM; echo one; echo two >&2; while :; do sleep 0.1; done")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", run.Args, err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(e2eutil.WaitFile(t, filepath.Join(state, "pidfile"), 10*time.Second, e2eutil.NonEmpty))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })

	logs := startLogs(t, env.bin, "-f", name)
	logs.expect(0, "one")
	logs.expect(1, "two")
	select {
	case <-logs.done:
		t.Fatal("logs -f ended while the container runs")
	default:
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := logs.wait(20 * time.Second); code != 0 || out != "bye\n" || errOut != "" {
		t.Errorf("logs -f after SIGTERM: status %d, stdout %q, stderr %q; want bye and the end", code, out, errOut)
	}
}
