package podman

import (
	"strings"
	"testing"
	"time"
)

// Every podman exec runs its own monitor (-e --exec-attach, docs/engines.md §2.1).
func TestExec(t *testing.T) {
	need(t)
	id := runDetached(t, image, "sleep", "1000")

	for _, c := range []struct {
		cmd    []string
		code   int
		stdout string
	}{
		{[]string{"sh", "-c", "echo exec-out; echo exec-err >&2"}, 0, "exec-out\n"},
		{[]string{"false"}, 1, ""},
		{[]string{"sh", "-c", "exit 42"}, 42, ""},
		{[]string{"no-such-command"}, 127, ""},
	} {
		r := podman(t, append([]string{"exec", id}, c.cmd...)...)
		if r.code != c.code || r.stdout != c.stdout {
			t.Errorf("want exit %d stdout %q: %s", c.code, c.stdout, r)
		}
		if c.code == 0 && r.stderr != "exec-err\n" {
			t.Errorf("want stderr exec-err: %s", r)
		}
	}

	r := podmanWith(t, opts{stdin: strings.NewReader("line1\nline2\n")}, "exec", "-i", id, "cat")
	if r.code != 0 || r.stdout != "line1\nline2\n" {
		t.Errorf("exec -i cat: %s", r)
	}

	// -t without a terminal of our own: the exec still gets a pty; podman's pty output has CRLF.
	r = podman(t, "exec", "-t", id, "sh", "-c", "tty; exit 3")
	if r.code != 3 || !strings.HasPrefix(r.stdout, "/dev/pts/") {
		t.Errorf("exec -t: want exit 3 and a /dev/pts tty: %s", r)
	}

	// exec -d: the exit command collects the exec's exit.
	mustPodman(t, "exec", "-d", id, "sh", "-c", "sleep 0.2; touch /tmp/exec-d-done")
	waitUntil(t, 10*time.Second, "the detached exec to run", func() bool {
		return podman(t, "exec", id, "test", "-e", "/tmp/exec-d-done").code == 0
	})

	// The container is unaffected by its execs.
	if got := inspect(t, id, "{{.State.Running}}"); got != "true" {
		t.Errorf("container Running=%s after execs", got)
	}
	name := inspect(t, id, "{{.Name}}")
	waitUntil(t, 10*time.Second, "the exec monitors to end", func() bool { return len(monitorsNamed(name, false)) == 1 })
}

// exec -it under a real terminal: input, the terminal size, and the exit code.
func TestExecTTY(t *testing.T) {
	need(t)
	id := runDetached(t, image, "sleep", "1000")
	tm := startTerm(t, 33, 101, "exec", "-it", id, "sh")
	tm.expect("# ", 20*time.Second)
	tm.send("stty size; echo exec-$((6*7))\r")
	tm.expect("33 101", 10*time.Second)
	tm.expect("exec-42", 10*time.Second)
	tm.send("exit 9\r")
	if code := tm.wait(20 * time.Second); code != 9 {
		t.Fatalf("exec -it exit %d, want 9", code)
	}
}

// healthcheck run: an exec monitor without exit command; its exit code is the verdict.
func TestHealthcheck(t *testing.T) {
	need(t)
	id := runDetached(t, "--health-cmd", "test -e /tmp/ok", "--health-interval", "disable", image, "sleep", "1000")
	if r := podman(t, "healthcheck", "run", id); r.code != 1 || !strings.Contains(r.stdout, "unhealthy") {
		t.Fatalf("want exit 1 unhealthy: %s", r)
	}
	mustPodman(t, "exec", id, "touch", "/tmp/ok")
	if r := podman(t, "healthcheck", "run", id); r.code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	if got := inspect(t, id, "{{.State.Health.Status}}"); got != "healthy" {
		t.Fatalf("Health.Status %q, want healthy", got)
	}
}
