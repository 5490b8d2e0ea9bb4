package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/conmon-go/conmon-go/monitor/annotations"
)

const (
	trustedRT   = "/usr/bin/runc"
	untrustedRT = "/usr/bin/kata-runtime"
	// all three namespaces of their own: not privileged by namespaces
	ownNS = `{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"mount"}]}`
)

type testLog struct{ warnings []string }

func (l *testLog) Warnf(format string, args ...any) {
	l.warnings = append(l.warnings, fmt.Sprintf(format, args...))
}
func (l *testLog) Debugf(string, ...any) {}

// writeBundle creates a bundle whose config.json has the annotations and, unless
// linux is "", the given raw "linux" member.
func writeBundle(t *testing.T, ann map[string]string, linux string) string {
	t.Helper()
	dir := t.TempDir()
	a, err := json.Marshal(ann)
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"ociVersion":"1.0.2","process":{"args":["sh"]},"annotations":` + string(a)
	if linux != "" {
		cfg += `,"linux":` + linux
	}
	cfg += "}"
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stateDir returns a directory that passes CheckDir.
func stateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// row is one line of the table of docs/trust.md §4.4; nil means "any".
type row struct {
	trusted, privileged *bool
	defaultTrust        string // "" = any
	untrustedSet        *bool
	untrusted, warning  bool
}

var (
	yes, no = func() *bool { b := true; return &b }(), func() *bool { b := false; return &b }()
	table44 = []row{
		{trusted: no, privileged: yes, warning: true},
		{trusted: no, privileged: no, untrustedSet: yes, untrusted: true},
		{trusted: no, privileged: no, untrustedSet: no},
		{trusted: yes, defaultTrust: "trusted"},
		{trusted: yes, privileged: yes, defaultTrust: "untrusted"},
		{trusted: yes, privileged: no, defaultTrust: "untrusted", untrustedSet: no},
		{trusted: yes, privileged: no, defaultTrust: "untrusted", untrustedSet: yes, untrusted: true},
	}
)

// lookup finds the single row of the table that matches.
func lookup(t *testing.T, trusted, privileged bool, def string, untrustedSet bool) row {
	t.Helper()
	m := func(p *bool, v bool) bool { return p == nil || *p == v }
	var found []row
	for _, r := range table44 {
		if m(r.trusted, trusted) && m(r.privileged, privileged) && (r.defaultTrust == "" || r.defaultTrust == def) && m(r.untrustedSet, untrustedSet) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("table matched %d rows", len(found))
	}
	return found[0]
}

// TestTable runs every combination of the inputs of docs/trust.md §4.4 for each kind of
// container and compares with the row of its table that matches.
func TestTable(t *testing.T) {
	const sbID = "sb0123456789"
	kinds := []string{"sandbox", "absent", "container+record", "container"}
	for _, kind := range kinds {
		for _, trusted := range []bool{true, false} {
			for _, priv := range []bool{true, false} {
				for _, def := range []string{"trusted", "untrusted"} {
					for _, uset := range []bool{true, false} {
						name := fmt.Sprintf("%s/trusted=%v/priv=%v/default=%s/untrusted=%v", kind, trusted, priv, def, uset)
						t.Run(name, func(t *testing.T) {
							hint := fmt.Sprint(trusted)
							ann := map[string]string{}
							linux := ownNS
							sd := stateDir(t)
							switch kind {
							case "sandbox":
								ann[annotations.ContainerType] = annotations.ContainerTypeSandbox
								ann[annotations.TrustedSandbox] = hint
								ann[annotations.PrivilegedRuntime] = fmt.Sprint(priv)
							case "absent":
								ann[annotations.TrustedSandbox] = hint
								if priv {
									linux = `{"namespaces":[{"type":"pid"},{"type":"ipc"}]}` // host network
								}
							case "container+record":
								ann[annotations.ContainerType] = annotations.ContainerTypeContainer
								ann[annotations.SandboxID] = sbID
								// the record wins over the container's own, opposite hint
								ann[annotations.TrustedSandbox] = fmt.Sprint(!trusted)
								rec := Decision{CID: sbID, Trusted: trusted, Privileged: priv, Runtime: trustedRT, Reason: "x"}
								if err := WriteRecord(sd, rec); err != nil {
									t.Fatal(err)
								}
							case "container":
								ann[annotations.ContainerType] = annotations.ContainerTypeContainer
								ann[annotations.SandboxID] = sbID // no record written
								ann[annotations.TrustedSandbox] = hint
								ann[annotations.PrivilegedRuntime] = fmt.Sprint(priv)
							}
							s := Settings{Trusted: trustedRT, DefaultTrust: def, StateDir: sd}
							if uset {
								s.Untrusted = untrustedRT
							}
							d, err := Decide(s, writeBundle(t, ann, linux), "c1")
							if err != nil {
								t.Fatal(err)
							}
							want := lookup(t, trusted, priv, def, uset)
							wantRT := trustedRT
							if want.untrusted {
								wantRT = untrustedRT
							}
							if d.Runtime != wantRT || d.UseUntrusted != want.untrusted || d.Warning != want.warning ||
								d.Trusted != trusted || d.Privileged != priv {
								t.Errorf("got %+v, want runtime %s untrusted=%v warning=%v", d, wantRT, want.untrusted, want.warning)
							}
							if d.CID != "c1" {
								t.Errorf("CID %q", d.CID)
							}
						})
					}
				}
			}
		}
	}
}

func TestHints(t *testing.T) {
	for _, tc := range []struct {
		hint    *string
		trusted bool
		source  string
	}{
		{ptr("true"), true, `annotation TrustedSandbox="true"`},
		{ptr("false"), false, `annotation TrustedSandbox="false"`},
		{ptr("True"), false, `annotation TrustedSandbox="True"`},
		{ptr("1"), false, `annotation TrustedSandbox="1"`},
		{ptr(""), false, `annotation TrustedSandbox=""`},
		{nil, true, "no TrustedSandbox annotation"},
	} {
		ann := map[string]string{}
		if tc.hint != nil {
			ann[annotations.TrustedSandbox] = *tc.hint
		}
		d, err := Decide(Settings{Trusted: trustedRT, Untrusted: untrustedRT}, writeBundle(t, ann, ownNS), "c")
		if err != nil {
			t.Fatal(err)
		}
		if d.Trusted != tc.trusted || !strings.Contains(d.Reason, ": "+tc.source+";") {
			t.Errorf("hint %v: trusted=%v reason %q", tc.hint, d.Trusted, d.Reason)
		}
	}
	// A workload container with neither record nor hint is trusted.
	d, err := Decide(Settings{Trusted: trustedRT, Untrusted: untrustedRT},
		writeBundle(t, map[string]string{annotations.ContainerType: "container"}, ownNS), "c")
	if err != nil || !d.Trusted || !strings.Contains(d.Reason, "workload trusted: no hint;") {
		t.Errorf("container without hint: %+v %v", d, err)
	}
}

func ptr(s string) *string { return &s }

func TestPrivileged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		linux string
		want  string // privileged part of the reason
	}{
		{"own namespaces", nil, ownNS, "privileged: no;"},
		{"PrivilegedRuntime true", map[string]string{annotations.PrivilegedRuntime: "true"}, ownNS, `privileged: yes (PrivilegedRuntime="true");`},
		{"PrivilegedRuntime false", map[string]string{annotations.PrivilegedRuntime: "false"}, ownNS, "privileged: no;"},
		{"no network", nil, `{"namespaces":[{"type":"pid"},{"type":"ipc"}]}`, "privileged: yes (host network);"},
		{"no pid", nil, `{"namespaces":[{"type":"network"},{"type":"ipc"}]}`, "privileged: yes (host pid);"},
		{"no ipc", nil, `{"namespaces":[{"type":"network"},{"type":"pid"}]}`, "privileged: yes (host ipc);"},
		{"path entries", nil, `{"namespaces":[{"type":"network","path":"/proc/7/ns/net"},{"type":"pid"},{"type":"ipc","path":"/proc/7/ns/ipc"}]}`, "privileged: no;"},
		{"no namespaces", nil, `{}`, "privileged: yes (host network, host pid, host ipc);"},
		{"no linux", map[string]string{annotations.PrivilegedRuntime: "true"}, "", `privileged: yes (PrivilegedRuntime="true", host network, host pid, host ipc);`},
		{"linux null", nil, "null", "privileged: yes (host network, host pid, host ipc);"},
	} {
		d, err := Decide(Settings{Trusted: trustedRT, Untrusted: untrustedRT, DefaultTrust: "untrusted"}, writeBundle(t, tc.ann, tc.linux), "c")
		if err != nil {
			t.Fatal(err)
		}
		priv := tc.want != "privileged: no;"
		if d.Privileged != priv || !strings.Contains(d.Reason, tc.want) {
			t.Errorf("%s: privileged=%v reason %q, want %q", tc.name, d.Privileged, d.Reason, tc.want)
		}
		// default trust untrusted with an untrusted runtime: only privilege keeps -r
		if (d.Runtime == trustedRT) != priv {
			t.Errorf("%s: runtime %s", tc.name, d.Runtime)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	s := Settings{Trusted: trustedRT, Untrusted: untrustedRT}
	missing := t.TempDir()
	_, err := Decide(s, missing, "c")
	if want := "Cannot select runtime: " + missing + "/config.json: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing config: %v, want %q", err, want)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "config.json"), []byte(`{"annotations":`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Decide(s, bad, "c")
	if want := "Cannot select runtime: " + bad + "/config.json: unexpected end of JSON input"; err == nil || err.Error() != want {
		t.Errorf("unparsable config: %v, want %q", err, want)
	}
	dir := t.TempDir() // config.json is a directory: read fails
	if err := os.Mkdir(filepath.Join(dir, "config.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err = Decide(s, dir, "c"); err == nil || !strings.HasPrefix(err.Error(), "Cannot select runtime: "+dir+"/config.json: ") {
		t.Errorf("unreadable config: %v", err)
	}
	s.DefaultTrust = "Trusted"
	if _, err = Decide(s, writeBundle(t, nil, ownNS), "c"); err == nil {
		t.Error("bad default trust accepted")
	}
}

// TestLogTextExamples checks the exact texts of docs/trust.md §5.
func TestLogTextExamples(t *testing.T) {
	s := Settings{Trusted: trustedRT, Untrusted: untrustedRT, StateDir: stateDir(t)}
	d, err := Decide(s, writeBundle(t, map[string]string{annotations.TrustedSandbox: "false"}, ownNS), "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := `runtime selection: /usr/bin/kata-runtime (workload untrusted: annotation TrustedSandbox="false"; privileged: no; default trust trusted; untrusted runtime /usr/bin/kata-runtime)`
	if d.LogText() != want || d.Warning {
		t.Errorf("got  %q (warning %v)\nwant %q", d.LogText(), d.Warning, want)
	}

	const sb = "5f1c0a9be2"
	if err := WriteRecord(s.StateDir, Decision{CID: sb, Trusted: false, Runtime: untrustedRT, UseUntrusted: true}); err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{annotations.ContainerType: "container", annotations.SandboxID: sb}
	d, err = Decide(s, writeBundle(t, ann, `{"namespaces":[{"type":"pid"},{"type":"ipc"}]}`), "c2")
	if err != nil {
		t.Fatal(err)
	}
	want = `Running an untrusted but privileged container; runtime selection: /usr/bin/runc (workload untrusted: sandbox 5f1c0a9be2 record; privileged: yes (host network); default trust trusted; untrusted runtime /usr/bin/kata-runtime)`
	if d.LogText() != want || !d.Warning || d.SandboxID != sb || d.ContainerType != "container" {
		t.Errorf("got  %q (warning %v)\nwant %q", d.LogText(), d.Warning, want)
	}
	if d.Reason != strings.TrimPrefix(want, warningPrefix) {
		t.Errorf("Reason %q", d.Reason)
	}

	d, err = Decide(Settings{Trusted: trustedRT}, writeBundle(t, nil, ownNS), "c3")
	want = `runtime selection: /usr/bin/runc (workload trusted: no TrustedSandbox annotation; privileged: no; default trust trusted; untrusted runtime not configured)`
	if err != nil || d.LogText() != want {
		t.Errorf("got  %q %v\nwant %q", d.LogText(), err, want)
	}
}

// TestIgnoredRecords: an insecure directory or an unparsable record falls back to the
// container's own hint, with a warning.
func TestIgnoredRecords(t *testing.T) {
	const sb = "sandbox1"
	ann := map[string]string{annotations.ContainerType: "container", annotations.SandboxID: sb, annotations.TrustedSandbox: "true"}
	bundle := writeBundle(t, ann, ownNS)

	insecure := stateDir(t)
	if err := WriteRecord(insecure, Decision{CID: sb, Trusted: false, Runtime: untrustedRT}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(insecure, 0o777); err != nil {
		t.Fatal(err)
	}
	unparsable := stateDir(t)
	if err := os.WriteFile(filepath.Join(unparsable, sb+".trust"), []byte("{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"insecure": insecure, "unparsable": unparsable} {
		log := &testLog{}
		d, err := Decide(Settings{Trusted: trustedRT, Untrusted: untrustedRT, StateDir: dir, Log: log}, bundle, "c")
		if err != nil {
			t.Fatal(err)
		}
		if !d.Trusted || d.Runtime != trustedRT || !strings.Contains(d.Reason, `annotation TrustedSandbox="true"`) {
			t.Errorf("%s: record not ignored: %+v", name, d)
		}
		if len(log.warnings) != 1 || !strings.Contains(log.warnings[0], dir) {
			t.Errorf("%s: warnings %q", name, log.warnings)
		}
	}
	_, err := ReadRecord(insecure, sb)
	var ide *InsecureDirError
	if !errors.As(err, &ide) || ide.Mode != 0o777 {
		t.Errorf("insecure dir: %v", err)
	}
	_, err = ReadRecord(unparsable, sb)
	var bre *BadRecordError
	if !errors.As(err, &bre) {
		t.Errorf("unparsable record: %v", err)
	}
}

func TestForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown")
	}
	dir := stateDir(t)
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	var ide *InsecureDirError
	if err := CheckDir(dir); !errors.As(err, &ide) || ide.UID != 4242 {
		t.Errorf("foreign owner: %v", err)
	}
}

// A record anybody could have rewritten, or a link planted in its place, is not trusted.
func TestRecordMustBeOwnedAndPrivate(t *testing.T) {
	dir := stateDir(t)
	d := Decision{CID: "abc", Runtime: "/bin/r", Reason: "x"}
	old := syscall.Umask(0)
	err := WriteRecord(dir, d)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "abc.trust")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("written with umask 0: mode %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	var bad *BadRecordError
	if _, err := ReadRecord(dir, "abc"); !errors.As(err, &bad) {
		t.Errorf("world-writable record: %v, want a BadRecordError", err)
	}
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte(`{"cid":"abc","runtime":"/tmp/evil"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(dir, "abc"); !errors.As(err, &bad) {
		t.Errorf("record behind a symbolic link: %v, want a BadRecordError", err)
	}
}

func TestRecordFile(t *testing.T) {
	dir := stateDir(t)
	d := Decision{CID: "abc", SandboxID: "sb", ContainerType: "container", Trusted: false, Privileged: true,
		Warning: true, Runtime: "/bin/r<x>", Reason: "runtime selection: /bin/r<x> (…)"}
	if err := WriteRecord(dir, d); err != nil {
		t.Fatal(err)
	}
	if err := WriteRecord(dir, d); err != nil { // a stale record is replaced
		t.Fatal(err)
	}
	path := filepath.Join(dir, "abc.trust")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cid":"abc","sandbox_id":"sb","container_type":"container","trusted":false,"privileged":true,"runtime":"/bin/r<x>","untrusted_args":false,"reason":"Running an untrusted but privileged container; runtime selection: /bin/r<x> (…)"}` + "\n"
	if string(data) != want {
		t.Errorf("record\n%s\nwant\n%s", data, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	rec, err := ReadRecord(dir, "abc")
	if err != nil || rec.Runtime != "/bin/r<x>" || !rec.Privileged || rec.SandboxID != "sb" {
		t.Errorf("read back %+v %v", rec, err)
	}
	if err := RemoveRecord(dir, "abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(dir, "abc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after remove: %v", err)
	}
	if err := RemoveRecord(dir, "abc"); err != nil {
		t.Errorf("removing a missing record: %v", err)
	}
	for _, id := range []string{"", "..", "a/b"} {
		if err := WriteRecord(dir, Decision{CID: id, Runtime: "x"}); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	if err := WriteRecord(filepath.Join(dir, "nope"), d); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestDecideExec(t *testing.T) {
	dir := stateDir(t)
	if err := WriteRecord(dir, Decision{CID: "c1", Runtime: untrustedRT, UseUntrusted: true}); err != nil {
		t.Fatal(err)
	}
	s := Settings{Trusted: trustedRT, Untrusted: untrustedRT, StateDir: dir}
	d := DecideExec(s, "c1")
	if d.Runtime != untrustedRT || !d.UseUntrusted || d.Trusted ||
		d.LogText() != "runtime selection: /usr/bin/kata-runtime (exec: container c1 record)" {
		t.Errorf("with record: %+v", d)
	}
	d = DecideExec(s, "c2")
	if d.Runtime != trustedRT || d.UseUntrusted ||
		d.LogText() != "runtime selection: /usr/bin/runc (exec: no usable record for container c2)" {
		t.Errorf("without record: %+v", d)
	}
	s.StateDir = ""
	if d = DecideExec(s, "c1"); d.Runtime != trustedRT || !strings.Contains(d.Reason, "no trust state dir") {
		t.Errorf("without state dir: %+v", d)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	log := &testLog{}
	s = Settings{Trusted: trustedRT, StateDir: dir, Log: log}
	if d = DecideExec(s, "c1"); d.Runtime != trustedRT || len(log.warnings) != 1 {
		t.Errorf("insecure dir: %+v %q", d, log.warnings)
	}
}
