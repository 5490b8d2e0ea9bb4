package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/monitor/person"
)

func runLogs(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = logs(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const logRecords = "2026-11-27T12:38:19.750087082+00:00 stdout P hel\n" +
	"2026-11-27T12:38:19.750146141+00:00 stderr F err1\n" +
	"2026-11-27T12:38:20.053594664+00:00 stdout F lo\n"

// runStateDir makes the state directory `conmon-go run --name <name>` would use, with a
// name of its own.
func runStateDir(t *testing.T) (name, dir string) {
	t.Helper()
	base, err := person.StateBase()
	if err != nil {
		t.Skip(err)
	}
	name = "logs-test-" + strconv.Itoa(os.Getpid())
	dir = filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return name, dir
}

func TestLogsByPathDirAndName(t *testing.T) {
	name, dir := runStateDir(t)
	if err := os.WriteFile(filepath.Join(dir, "ctr.log"), []byte(logRecords), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{filepath.Join(dir, "ctr.log"), dir, name} {
		if code, out, errOut := runLogs(arg); code != 0 || out != "hello\n" || errOut != "err1\n" {
			t.Errorf("logs %s: status %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
	code, out, _ := runLogs("--timestamps", "--tail", "1", name)
	if code != 0 || out != "2026-11-27T12:38:19.750087082+00:00 hello\n" {
		t.Errorf("--timestamps --tail 1: status %d, stdout %q", code, out)
	}
	code, out, _ = runLogs("--since", "2026-11-27T12:38:19.8Z", name)
	if code != 0 || out != "" {
		t.Errorf("--since after the line began: status %d, stdout %q", code, out)
	}
}

// A name is looked up where `run` keeps its containers (for root /run/conmon-go, whatever
// XDG_RUNTIME_DIR says), as attach looks it up.
func TestLogsNameIsRunsName(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("for other users run keeps its containers in $XDG_RUNTIME_DIR/conmon-go")
	}
	name, dir := runStateDir(t)
	if err := os.WriteFile(filepath.Join(dir, "ctr.log"), []byte(logRecords), 0o640); err != nil {
		t.Fatal(err)
	}
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	other := filepath.Join(xdg, "conmon-go", name)
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "ctr.log"), []byte("2026-11-27T12:38:19.750087082+00:00 stdout F other\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runLogs(name); code != 0 || out != "hello\n" {
		t.Errorf("logs %s: status %d, stdout %q, stderr %q; want the log of %s", name, code, out, errOut, dir)
	}
}

// Bad input and a bad command line: one line on stderr naming the problem, status 125 as for
// every command, nothing on stdout.
func TestLogsBadInput(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	notLog := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notLog, []byte("dear diary\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{notLog}, notLog + " is not a k8s-file log"},
		{[]string{"/nonexistent/ctr.log"}, "/nonexistent/ctr.log: no such file or directory"},
		{[]string{"nosuchid"}, "nosuchid: no such file, directory or container name"},
		{[]string{}, "want one log file"},
		{[]string{"a", "b"}, "got 2 arguments"},
		{[]string{"--tail", "x", notLog}, "invalid argument \"x\""},
		{[]string{"--bogus", notLog}, "unknown flag: --bogus"},
		{[]string{"--since", "yesterday", notLog}, "--since: \"yesterday\" is neither"},
	} {
		code, out, errOut := runLogs(c.args...)
		if code != 125 || out != "" || !strings.HasPrefix(errOut, "conmon-go logs: ") ||
			!strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("logs %q: status %d, stdout %q, stderr %q; want status 125 and one line with %q",
				c.args, code, out, errOut, c.want)
		}
	}
}

func TestLogsHelp(t *testing.T) {
	code, out, errOut := runLogs("--help")
	if code != 0 || errOut != "" || !strings.Contains(out, "Usage: conmon-go logs") || !strings.Contains(out, "--follow") {
		t.Errorf("--help: status %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                            {},
		"10m":                         now.Add(-10 * time.Minute),
		"1h30m":                       now.Add(-90 * time.Minute),
		"2026-11-27T10:00:00Z":        time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		"2026-11-27T10:00:00.5+01:00": time.Date(2026, 11, 27, 9, 0, 0, 5e8, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-5m", "2026-11-27", "soon"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}
