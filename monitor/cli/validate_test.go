package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

const longCID = "0123456789abcdef"

// runtimes returns an executable and a non-executable file.
func runtimes(t *testing.T) (exe, noexe string) {
	t.Helper()
	dir := t.TempDir()
	exe, noexe = filepath.Join(dir, "runc"), filepath.Join(dir, "data")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(noexe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return exe, noexe
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func validate(t *testing.T, args []string, cwd string, getenv func(string) string) (*Options, []string, error) {
	t.Helper()
	o, err := Parse(args)
	if err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	w, err := o.Validate(cwd, getenv)
	return o, w, err
}

func TestValidateErrors(t *testing.T) {
	exe, noexe := runtimes(t)
	base := []string{"-c", longCID, "-u", "u", "-r", exe}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	cases := []struct {
		name string
		args []string
		cwd  string
		want string
	}{
		{"2 log-max-files", with("--log-max-files", "-1"), "/w", "conmon: log-max-files must be non-negative, got -1"},
		{"2 before cid", []string{"--log-max-files", "-5"}, "/w", "conmon: log-max-files must be non-negative, got -5"},
		{"3 rotate", []string{"--log-rotate", "--log-max-files", "0"}, "/w", "conmon: log-max-files must be at least 1 when log-rotate is enabled, got 0"},
		{"4 cid", []string{"-u", "u"}, "/w", "conmon: Container ID not provided. Use --cid"},
		{"5 log level", with("--log-level", "foo"), "/w", "[conmon:e]: No such log level foo"},
		{"5 empty log level", []string{"--cid=", "--log-level="}, "/w", "[conmon:e]: No such log level "},
		{"6 exec+restore", []string{"-c", "x", "-e", "--restore", ""}, "/w", "[conmon:e]: Cannot use 'exec' and 'restore' at the same time"},
		{"7 attach without exec", []string{"-c", "x", "--exec-attach", "--api-version"}, "/w", "[conmon:e]: Attach can only be specified with exec"},
		{"8 attach legacy", []string{"-c", "x", "-e", "--exec-attach"}, "/w", "[conmon:e]: Attach can only be specified for a non-legacy exec session"},
		{"9 cuuid", []string{"-c", "x"}, "/w", "[conmon:e]: Container UUID not provided. Use --cuuid"},
		{"9 cuuid api exec", []string{"-c", "x", "-e", "--api-version"}, "/w", "[conmon:e]: Container UUID not provided. Use --cuuid"},
		{"9a cid with slash", []string{"-c", "../x", "-u", "u"}, "/w", `[conmon:e]: Container ID cannot be used as a file name: "../x"`},
		{"9a cid dot-dot", []string{"-c", "..", "-u", "u"}, "/w", `[conmon:e]: Container ID cannot be used as a file name: ".."`},
		{"9a empty cid", []string{"--cid=", "-u", "u"}, "/w", `[conmon:e]: Container ID cannot be used as a file name: ""`},
		{"9a long cid", []string{"-c", strings.Repeat("a", 249), "-u", "u"}, "/w",
			`[conmon:e]: Container ID cannot be used as a file name: "` + strings.Repeat("a", 64) + `"... (249 bytes)`},
		{"9a 4 KiB cid", []string{"-c", strings.Repeat("\xff", 4096), "-e"}, "/w",
			`[conmon:e]: Container ID cannot be used as a file name: "` + strings.Repeat(`\xff`, 64) + `"... (4096 bytes)`},
		{"9a cuuid", []string{"-c", "x", "-u", "../../etc/passwd"}, "/w", `[conmon:e]: Container UUID cannot be used as a file name: "../../etc/passwd"`},
		{"9a cuuid dot", []string{"-c", "x", "-u", "."}, "/w", `[conmon:e]: Container UUID cannot be used as a file name: "."`},
		{"10 runtime legacy exec", []string{"-c", "x", "-e"}, "/w", "[conmon:e]: Runtime path not provided. Use --runtime"},
		{"11 missing runtime", []string{"-c", "x", "-u", "u", "-r", "/x/runc"}, "/w", "[conmon:e]: Runtime path /x/runc is not valid No such file or directory"},
		{"11 empty runtime", []string{"-c", "x", "-u", "u", "--runtime="}, "/w", "[conmon:e]: Runtime path  is not valid No such file or directory"},
		{"11 not executable", []string{"-c", "x", "-u", "u", "-r", noexe}, "/w", "[conmon:e]: Runtime path " + noexe + " is not valid Permission denied"},
		{"11a untrusted", with("--runtime-untrusted", "/x/kata"), "/w", "[conmon:e]: Untrusted runtime path /x/kata is not valid No such file or directory"},
		{"11a default trust", with("--default-trust", "Trusted"), "/w", `[conmon:e]: Invalid --default-trust value "Trusted" (must be "trusted" or "untrusted")`},
		{"11a empty default trust flag", with("--default-trust="), "/w", `[conmon:e]: Invalid --default-trust value "" (must be "trusted" or "untrusted")`},
		{"12 exec spec", with("-e"), "/w", "[conmon:e]: Exec process spec path not provided. Use --exec-process-spec"},
		{"13 cwd", with("-l", "none"), "", "[conmon:e]: Failed to get working directory"},
		{"15 exit delay", with("--exit-delay", "-1"), "/w", "[conmon:e]: Delay before invoking exit command must be greater than or equal to 0"},
		{"17 no -l", with(), "/w", "[conmon:e]: Log driver not provided. Use --log-path"},
		{"18 empty", with("-l", "none", "-l", ""), "/w", "[conmon:e]: log-path must not be empty"},
		{"18 colon", with("-l", "::"), "/w", "[conmon:e]: log-path must not be empty"},
		{"18 k8s-file", with("-l", "k8s-file"), "/w", "[conmon:e]: k8s-file requires a filename"},
		{"18 k8s-file:", with("-l", "k8s-file:"), "/w", "[conmon:e]: k8s-file requires a filename"},
		{"18 driver", with("-l", "foo:/x"), "/w", "[conmon:e]: No such log driver foo"},
		{"18 colon in path", with("-l", "/x/c:d.log"), "/w", "[conmon:e]: No such log driver /x/c"},
		{"18 first failure wins", with("-l", "foo:/x", "-l", ""), "/w", "[conmon:e]: No such log driver foo"},
		{"20 tag", with("-l", "/x/log", "--log-tag", "t"), "/w", "[conmon:e]: k8s-file doesn't support --log-tag"},
		{"20 empty tag", with("-l", "/x/log", "--log-tag="), "/w", "[conmon:e]: k8s-file doesn't support --log-tag"},
		{"21 label", with("-l", "/x/log", "-l", "none", "--log-label", "A=b"), "/w", "[conmon:e]: k8s-file doesn't support --log-label"},
		{"22 short cid", []string{"-c", "123456789012", "-u", "u", "-r", exe, "-l", "journald"}, "/w", "[conmon:e]: Container ID must be longer than 12 characters"},
		{"23 no name", with("-l", "journald", "--log-label", "A=b", "--log-label", "=x"), "/w", "[conmon:e]: Container labels must be in format LABEL=VALUE (no LABEL present in '=x')"},
		{"23 before 24", with("-l", "journald", "--log-label", "==x"), "/w", "[conmon:e]: Container labels must be in format LABEL=VALUE (no LABEL present in '==x')"},
		{"24 two", with("-l", "journald", "--log-label", "A=b=c"), "/w", "[conmon:e]: Container labels must be in format LABEL=VALUE (none or more than one '=' present in 'A=b=c')"},
		{"24 none", with("-l", "journald", "--log-label", "AB"), "/w", "[conmon:e]: Container labels must be in format LABEL=VALUE (none or more than one '=' present in 'AB')"},
		{"25 lowercase", with("-l", "journald", "--log-label", "a=b"), "/w", "[conmon:e]: Container label names must contain only uppercase letters, numbers and underscore (in 'a=b')"},
		{"25 dash", with("-l", "journald", "--log-label", "A-B=b"), "/w", "[conmon:e]: Container label names must contain only uppercase letters, numbers and underscore (in 'A-B=b')"},
		{"27 seccomp", with("-l", "none", "--seccomp-notify-socket", "/s"), "/w", "[conmon:e]: seccomp notify is not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := validate(t, c.args, c.cwd, env(nil))
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if ve.Error() != c.want {
				t.Errorf("got  %q\nwant %q", ve.Error(), c.want)
			}
			errnoStep := strings.HasPrefix(c.name, "11 ") || c.name == "11a untrusted"
			text := c.want
			if ve.Errno != "" {
				text = strings.TrimSuffix(text, " "+ve.Errno)
			}
			if ve.Early != strings.HasPrefix(c.want, "conmon: ") || (ve.Errno != "") != errnoStep ||
				!strings.HasSuffix(text, ": "+ve.Msg) {
				t.Errorf("Msg %q Errno %q Early %v inconsistent with %q", ve.Msg, ve.Errno, ve.Early, c.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	exe, _ := runtimes(t)
	cases := []struct {
		name  string
		args  []string
		check func(o *Options, w []string) bool
	}{
		{"create defaults", []string{"-c", "x", "-u", "u", "-r", exe, "-l", "/l/a", "-l", "k8s-file:/l/b"}, func(o *Options, w []string) bool {
			return o.Bundle == "/w" && o.ContainerPidfile == "/w/pidfile-x" && o.Level == diag.Warning &&
				o.Logs == LogConfig{K8sPath: "/l/b", HasK8s: true} && !o.Trust.Active && o.Trust.DefaultTrust == "trusted" &&
				o.SyncKey() == "pid" && len(w) == 0
		}},
		{"given bundle and pidfile kept", []string{"-c", "x", "-u", "u", "-r", exe, "-l", "none", "-b", "", "--pidfile", "/p",
			"--restore", "/ck", "--log-level", "TRACE"}, func(o *Options, w []string) bool {
			return o.Bundle == "" && o.ContainerPidfile == "/p" && o.Level == diag.Trace && o.SyncKey() == "pid"
		}},
		{"legacy exec: no cuuid, no bundle", []string{"-c", "x", "-e", "-r", exe, "--exec-process-spec", "/s", "-l", "/l"}, func(o *Options, w []string) bool {
			return o.Bundle == "" && o.ContainerPidfile == "/w/pidfile-x" && o.SyncKey() == "exit_code"
		}},
		{"api exec", []string{"-c", "x", "-u", "s", "-e", "--api-version", "1", "--exec-attach", "-r", exe,
			"--exec-process-spec", "/s", "-l", "none"}, func(o *Options, w []string) bool {
			return o.SyncKey() == "data" && o.Bundle == ""
		}},
		{"drivers", []string{"-c", longCID, "-u", "u", "-r", exe, "-l", "journald:", "-l", ":journald", "-l", "passthrough",
			"-l", "off:x", "-l", "null", "-l", "k8s-file:/x/c:d.log", "-l", ":/y:/z", "--log-tag", "t",
			"--log-label", "A_1=x y", "--log-label", "B="}, func(o *Options, w []string) bool {
			return o.Logs == LogConfig{K8sPath: "/y", HasK8s: true, Journald: true, Passthrough: true}
		}},
		{"bare word is a file", []string{"-c", "x", "-u", "u", "-r", exe, "-l", "foo"}, func(o *Options, w []string) bool {
			return o.Logs == LogConfig{K8sPath: "foo", HasK8s: true}
		}},
		{"labels ignored without journald and k8s", []string{"-c", "x", "-u", "u", "-r", exe, "-l", "none", "--log-label", "bad",
			"--log-tag", "t"}, func(o *Options, w []string) bool { return len(w) == 0 }},
		{"26 warning", []string{"-c", "x", "-u", "u", "-r", exe, "-l", "none", "--no-container-partial-message"}, func(o *Options, w []string) bool {
			return reflect.DeepEqual(w, []string{"[conmon:w]: --no-container-partial-message has no effect without journald log driver"})
		}},
		{"26 quiet with journald", []string{"-c", longCID, "-u", "u", "-r", exe, "-l", "journald", "--no-container-partial-message"}, func(o *Options, w []string) bool {
			return len(w) == 0
		}},
		{"cid of 248 bytes", []string{"-c", strings.Repeat("a", 248), "-u", strings.Repeat("b", 255), "-r", exe, "-l", "none"},
			func(o *Options, w []string) bool { return true }},
		{"full attach: the uuid names no link", []string{"-c", "x", "-u", "a/b", "--full-attach", "-r", exe, "-l", "none"},
			func(o *Options, w []string) bool { return o.CUUID == "a/b" }},
		{"directory runtime passes", []string{"-c", "x", "-u", "u", "-r", "/", "-l", "none"}, func(o *Options, w []string) bool { return true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, w, err := validate(t, c.args, "/w", env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(o, w) {
				t.Errorf("%+v warnings %q", o, w)
			}
		})
	}
}

func TestValidateWarningBeforeSeccompError(t *testing.T) {
	exe, _ := runtimes(t)
	_, w, err := validate(t, []string{"-c", "x", "-u", "u", "-r", exe, "-l", "none", "--no-container-partial-message",
		"--seccomp-notify-socket="}, "/w", env(nil))
	if err == nil || len(w) != 1 {
		t.Errorf("warnings %q err %v", w, err)
	}
}

func TestTrustResolution(t *testing.T) {
	exe, noexe := runtimes(t)
	base := []string{"-c", "x", "-u", "u", "-r", exe, "-l", "none"}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want TrustOptions
		err  string
	}{
		{"off", nil, nil, TrustOptions{DefaultTrust: "trusted"}, ""},
		{"state dir alone stays off", []string{"--trust-state-dir", "/t"}, map[string]string{EnvTrustStateDir: "/e"},
			TrustOptions{DefaultTrust: "trusted", StateDir: "/t"}, ""},
		{"env only", nil, map[string]string{EnvRuntimeUntrusted: exe, EnvDefaultTrust: "untrusted", EnvTrustStateDir: "/e"},
			TrustOptions{Active: true, RuntimeUntrusted: exe, DefaultTrust: "untrusted", StateDir: "/e"}, ""},
		{"flags win", []string{"--runtime-untrusted", exe, "--default-trust", "trusted", "--runtime-untrusted-arg", "--root=/k"},
			map[string]string{EnvRuntimeUntrusted: noexe, EnvDefaultTrust: "bogus"},
			TrustOptions{Active: true, RuntimeUntrusted: exe, DefaultTrust: "trusted", UntrustedArgs: []string{"--root=/k"}}, ""},
		{"default trust alone activates", []string{"--default-trust", "untrusted"}, nil,
			TrustOptions{Active: true, DefaultTrust: "untrusted"}, ""},
		{"env runtime checked", nil, map[string]string{EnvRuntimeUntrusted: noexe}, TrustOptions{},
			"[conmon:e]: Untrusted runtime path " + noexe + " is not valid Permission denied"},
		{"env trust checked", nil, map[string]string{EnvDefaultTrust: "yes"}, TrustOptions{},
			`[conmon:e]: Invalid --default-trust value "yes" (must be "trusted" or "untrusted")`},
		{"runtime checked before trust", []string{"--default-trust", "x", "--runtime-untrusted", "/x/k"}, nil, TrustOptions{},
			"[conmon:e]: Untrusted runtime path /x/k is not valid No such file or directory"},
		{"after -r check", []string{"-r", "/x/runc", "--default-trust", "x"}, nil, TrustOptions{},
			"[conmon:e]: Runtime path /x/runc is not valid No such file or directory"},
		{"before exec spec", []string{"-e", "--default-trust", "x"}, nil, TrustOptions{},
			`[conmon:e]: Invalid --default-trust value "x" (must be "trusted" or "untrusted")`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, _, err := validate(t, append(append([]string{}, base...), c.args...), "/w", env(c.env))
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.Trust, c.want) {
				t.Errorf("Trust = %+v, want %+v", o.Trust, c.want)
			}
		})
	}
}
