package direct

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// runCLI runs the monitor without any pipes, as a version probe or a failing create.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(monitorPath, args...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// semver is the strict form CRI-O's semver parser accepts (no "v", no leading zeros).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func TestVersion(t *testing.T) {
	setup(t)
	t.Parallel()
	out, errOut, code := runCLI(t, "--version")
	if code != 0 || errOut != "" {
		t.Fatalf("--version: exit %d stderr %q", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 3 || lines[2] != "" || !strings.HasPrefix(lines[1], "commit: ") {
		t.Errorf("--version output %q: want two lines, the second `commit: ...`", out)
	}
	if !strings.HasPrefix(out, "conmon version ") {
		t.Fatalf("--version output %q must start with `conmon version `", out)
	}
	// CRI-O: split stdout on whitespace, field 3 is a strict semver.
	fields := strings.Fields(out)
	if len(fields) < 3 || !semver.MatchString(fields[2]) {
		t.Fatalf("--version field 3 %q is not a strict semver", fields)
	}
	// podman 4.3.1: ^(version:|conmon version)? (\d+).(\d+).(\d+), minimum 2.0.1.
	m := regexp.MustCompile(`^(version:|conmon version)? (\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--version %q is not accepted by podman 4.3.1", lines[0])
	}
	if major, _ := strconv.Atoi(m[2]); major < 2 {
		t.Errorf("--version %q is not accepted by podman 4.3.1", lines[0])
	}
}

func TestHelp(t *testing.T) {
	setup(t)
	t.Parallel()
	out, _, code := runCLI(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, s := range []string{"--exec", "--log-global-size-max"} {
		if !strings.Contains(out, s) {
			t.Errorf("--help output lacks %q (engines grep for it)", s)
		}
	}
	t.Run("journald", func(t *testing.T) {
		requireConmonGo(t) // 2.1.6's help does not mention journald; 2.2.x's does
		if !strings.Contains(out, "journald") {
			t.Errorf("--help output lacks \"journald\"")
		}
	})
}

func TestUnknownOption(t *testing.T) {
	setup(t)
	t.Parallel()
	const want = "conmon: option parsing failed: Unknown option --bogus\n"
	out, errOut, code := runCLI(t, "--bogus")
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if !strings.Contains(out+errOut, want) {
		t.Errorf("output %q / %q lacks %q", out, errOut, want)
	}
	t.Run("stderr", func(t *testing.T) {
		requireConmonGo(t) // 2.1.6 prints it on stdout
		if errOut != want || out != "" {
			t.Errorf("stdout %q stderr %q, want the message on stderr only", out, errOut)
		}
	})
}

func TestValidationTexts(t *testing.T) {
	setup(t)
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no cid", []string{"-u", "x", "-r", runcPath}, "conmon: Container ID not provided. Use --cid\n"},
		{"no runtime", []string{"-c", "x", "-u", "x"}, "Runtime path not provided. Use --runtime\n"},
		{"bad runtime", []string{"-c", "x", "-u", "x", "-r", "/x/runc"}, "[conmon:e]: Runtime path /x/runc is not valid No such file or directory\n"},
		{"no cuuid", []string{"-c", "x", "-r", runcPath}, "Container UUID not provided. Use --cuuid\n"},
		{"exec attach without exec", []string{"-c", "x", "-u", "x", "-r", runcPath, "--exec-attach"}, "Attach can only be specified with exec\n"},
	}
	for _, tc := range cases {
		_, errOut, code := runCLI(t, tc.args...)
		if code != 1 || !strings.HasSuffix(errOut, tc.want) {
			t.Errorf("%s: exit %d stderr %q, want 1 and %q", tc.name, code, errOut, tc.want)
		}
	}
}
