package person

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Bad input: one line on stderr saying what is wrong, conmon-go's failure status, never a
// stack trace.
func TestBadInput(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("x"), 0o644)
	stream := filepath.Join(dir, "stream")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: stream}); err != nil {
		t.Fatal(err)
	}
	unix.Listen(fd, 1)

	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run"}, "--bundle DIR or --rootfs DIR"},
		{[]string{"run", "--bundle", dir + "/nope", "--", "true"}, dir + "/nope"},
		{[]string{"run", "--rootfs", dir + "/nope", "--", "true"}, dir + "/nope"},
		{[]string{"run", "--rootfs", rootfs}, "no command"},
		{[]string{"run", "--frob", "--rootfs", rootfs, "--", "true"}, "unknown flag: --frob"},
		{[]string{"run", "--runtime", dir + "/nope", "--rootfs", rootfs, "--", "true"}, "runtime"},
		{[]string{"run", "--name", "../x", "--rootfs", rootfs, "--", "true"}, "invalid name"},
		{[]string{"run", "--detach-keys", "ctrl-", "--rootfs", rootfs, "--state-dir", dir + "/st", "--", "true"}, "invalid detach key"},
		{[]string{"run", "-l", "bogus:x", "--rootfs", rootfs, "--state-dir", dir + "/st", "--", "true"}, "No such log driver bogus"},
		{[]string{"run", "-l", "passthrough", "--rootfs", rootfs, "--state-dir", dir + "/st", "--", "true"}, "-l passthrough"},
		{[]string{"attach"}, "give one container"},
		{[]string{"attach", regular}, "not a socket"},
		{[]string{"attach", stream}, "not an attach socket"},
		{[]string{"attach", dir}, "has no attach socket"},
		{[]string{"attach", "no-such-container"}, "no such file, directory or container name"},
		{[]string{"attach", "--frob", dir}, "unknown flag: --frob"},
		{[]string{"logs"}, "want one log file"},
		{[]string{"logs", "--frob", regular}, "unknown flag: --frob"},
		{[]string{"logs", regular}, "is not a k8s-file log"},
		{[]string{"logs", dir}, "has no ctr.log"},
		{[]string{"logs", "no-such-container"}, "no such file, directory or container name"},
	} {
		r := conmonGo(t, nil, "", tc.args...)
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.says) ||
			strings.Contains(r.stderr, "goroutine") || r.stdout != "" {
			t.Errorf("conmon-go %q: want exit 125 and one line on stderr saying %q: %v", tc.args, tc.says, r)
		}
	}
}

// --help is the monitor's help for engines followed by the commands; help and help run
// explain the rest.
func TestHelp(t *testing.T) {
	setup(t)
	t.Parallel()
	for _, tc := range []struct {
		args []string
		says []string
	}{
		{[]string{"--help"}, []string{"--exit-dir", "--log-global-size-max", "journald", "Commands for people", "attach", "conmon-go run"}},
		{[]string{"help"}, []string{"two faces", "conmon-go --help", "run ", "attach ", "Examples"}},
		{[]string{"help", "run"}, []string{"--rootfs", "--detach-keys", "READY=1", "Exit status"}},
		{[]string{"run", "--help"}, []string{"--rootfs"}},
		{[]string{"help", "attach"}, []string{"--no-stdin", "ctrl-p,ctrl-q"}},
	} {
		r := conmonGo(t, nil, "", tc.args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("conmon-go %q: %v", tc.args, r)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("conmon-go %q does not say %q:\n%s", tc.args, s, r.stdout)
			}
		}
	}
}
