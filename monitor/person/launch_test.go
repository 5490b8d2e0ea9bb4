package person

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// Creation failures get podman's exit statuses, with runc's message freed of its log
// format.
func TestCreateError(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		code int
		text string
	}{
		{`time="2026-01-01T00:00:00Z" level=error msg="runc create failed: unable to start container process: exec: \"/nonexist\": stat /nonexist: no such file or directory"` + "\n",
			ExitNotFound, `runc create failed: unable to start container process: exec: "/nonexist": stat /nonexist: no such file or directory`},
		{"exec: \"sh\": executable file not found in $PATH", ExitNotFound, ""},
		{`msg="exec: \"/etc/passwd\": permission denied"`, ExitCannotRun, `exec: "/etc/passwd": permission denied`},
		{"operation not permitted", ExitCannotRun, ""},
		{"something else", ExitFailure, "something else"},
	} {
		err := createError(tc.msg)
		if ExitCode(err) != tc.code {
			t.Errorf("%q: code %d; want %d", tc.msg, ExitCode(err), tc.code)
		}
		if tc.text != "" && err.Error() != "create the container: "+tc.text {
			t.Errorf("%q: message %q", tc.msg, err)
		}
	}
}

func TestLauncherMessage(t *testing.T) {
	got := launcherMessage("[conmon:e]: No such log driver bogus\n[conmon:w]: second\nplain\n\n")
	if got != "No such log driver bogus; second; plain" {
		t.Fatalf("launcherMessage = %q", got)
	}
}

// What belongs to our own unit or to an engine stays with us.
func TestChildEnv(t *testing.T) {
	for _, kv := range []string{"NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1", "WATCHDOG_PID=1",
		"LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=x", "_OCI_SYNCPIPE=3", "KEEP_ME=1"} {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	env := childEnv()
	if !slices.Contains(env, "KEEP_ME=1") || !slices.Contains(env, "PATH="+os.Getenv("PATH")) {
		t.Fatal("childEnv lost an ordinary variable")
	}
	for _, kv := range env {
		for _, p := range privateEnv {
			if strings.HasPrefix(kv, p) {
				t.Errorf("childEnv kept %s", kv)
			}
		}
	}
}
