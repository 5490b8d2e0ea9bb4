package trust

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// record is the trust record of docs/trust.md §6.
type record struct {
	CID           string `json:"cid"`
	SandboxID     string `json:"sandbox_id"`
	ContainerType string `json:"container_type"`
	Trusted       bool   `json:"trusted"`
	Privileged    bool   `json:"privileged"`
	Runtime       string `json:"runtime"`
	UntrustedArgs bool   `json:"untrusted_args"`
	Reason        string `json:"reason"`
}

func readRecord(t *testing.T, dir, id string) record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, id+".trust"))
	if err != nil {
		t.Fatalf("trust record: %v", err)
	}
	if strings.Count(string(data), "\n") != 1 || !strings.HasSuffix(string(data), "\n") {
		t.Errorf("record %q is not one line", data)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("record %q: %v", data, err)
	}
	return r
}

func assertNoRecords(t *testing.T, dir, when string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		t.Errorf("%s: trust state dir holds %v, want nothing", when, ents[0].Name())
	}
}

// TestDecisionTable runs one container per row of docs/trust.md §4.4 that matters to an
// engine and checks which runtime created it, the logged decision (stderr and syslog), the
// record written before the runtime ran and its removal when the monitor exited.
func TestDecisionTable(t *testing.T) {
	setup(t)
	const priv = "yes (PrivilegedRuntime=\"true\")"
	cases := []struct {
		name      string
		edit      func(map[string]any)
		args      []string // trust flags beyond --trust-state-dir (%W = wrapper)
		env       []string // instead of flags (%W, %S = state dir)
		untrusted bool
		line      string // expected stderr line (%R = runc, %W = wrapper)
	}{
		{name: "no hint", args: []string{"--runtime-untrusted", "%W"},
			line: "[conmon:i]: runtime selection: %R (workload trusted: no TrustedSandbox annotation; privileged: no; default trust trusted; untrusted runtime %W)"},
		{name: "hint true", edit: annotate("TrustedSandbox", "true"), args: []string{"--runtime-untrusted", "%W"},
			line: `[conmon:i]: runtime selection: %R (workload trusted: annotation TrustedSandbox="true"; privileged: no; default trust trusted; untrusted runtime %W)`},
		{name: "hint false", edit: annotate("TrustedSandbox", "false"), args: []string{"--runtime-untrusted", "%W"}, untrusted: true,
			line: `[conmon:i]: runtime selection: %W (workload untrusted: annotation TrustedSandbox="false"; privileged: no; default trust trusted; untrusted runtime %W)`},
		{name: "hint True is not true", edit: annotate("TrustedSandbox", "True"), args: []string{"--runtime-untrusted", "%W"}, untrusted: true,
			line: `[conmon:i]: runtime selection: %W (workload untrusted: annotation TrustedSandbox="True"; privileged: no; default trust trusted; untrusted runtime %W)`},
		{name: "hint false privileged", edit: annotate("TrustedSandbox", "false", "PrivilegedRuntime", "true"), args: []string{"--runtime-untrusted", "%W"},
			line: `[conmon:w]: Running an untrusted but privileged container; runtime selection: %R (workload untrusted: annotation TrustedSandbox="false"; privileged: ` + priv + `; default trust trusted; untrusted runtime %W)`},
		{name: "hint false no untrusted runtime", edit: annotate("TrustedSandbox", "false"), args: []string{"--default-trust", "trusted"},
			line: `[conmon:i]: runtime selection: %R (workload untrusted: annotation TrustedSandbox="false"; privileged: no; default trust trusted; untrusted runtime not configured)`},
		{name: "default untrusted unprivileged", args: []string{"--runtime-untrusted", "%W", "--default-trust", "untrusted"}, untrusted: true,
			line: "[conmon:i]: runtime selection: %W (workload trusted: no TrustedSandbox annotation; privileged: no; default trust untrusted; untrusted runtime %W)"},
		{name: "default untrusted host network", edit: setNamespace("network", ""), args: []string{"--runtime-untrusted", "%W", "--default-trust", "untrusted"},
			line: "[conmon:i]: runtime selection: %R (workload trusted: no TrustedSandbox annotation; privileged: yes (host network); default trust untrusted; untrusted runtime %W)"},
		{name: "env fallbacks", env: []string{"CONMON_GO_RUNTIME_UNTRUSTED=%W", "CONMON_GO_DEFAULT_TRUST=untrusted", "CONMON_GO_TRUST_STATE_DIR=%S"}, untrusted: true,
			line: "[conmon:i]: runtime selection: %W (workload trusted: no TrustedSandbox annotation; privileged: no; default trust untrusted; untrusted runtime %W)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			r := strings.NewReplacer("%R", runcPath, "%W", w.wrapper, "%S", w.stateDir)
			o := launchOpts{}
			if tc.env == nil {
				o.args = []string{"--trust-state-dir", w.stateDir}
			}
			for _, a := range tc.args {
				o.args = append(o.args, r.Replace(a))
			}
			for _, e := range tc.env {
				o.env = append(o.env, r.Replace(e))
			}
			var sock *os.File
			o.devDir, sock = e2eutil.DevDir(t)
			id := e2eutil.NewID()
			c := w.mustCreate(id, w.bundle("bundle", tc.edit, "sh", "-c", "exit 3"), o)

			want := r.Replace(tc.line)
			if got := c.decisionLines(); len(got) != 1 || got[0] != want {
				t.Errorf("decision on stderr:\n got %q\nwant %q", got, want)
			}
			text := want[strings.Index(want, "]: ")+3:]
			n := 0
			for _, m := range e2eutil.SyslogMessages(t, sock) {
				if strings.HasSuffix(m, ": "+text+"\n") && strings.Contains(m, id[:20]) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("decision sent to syslog %d times, want once: %q", n, text)
			}
			rec := readRecord(t, w.stateDir, id)
			wantRuntime := runcPath
			if tc.untrusted {
				wantRuntime = w.wrapper
			}
			if rec.CID != id || rec.Runtime != wantRuntime || rec.Reason != text || rec.UntrustedArgs != tc.untrusted {
				t.Errorf("record %+v: want cid %s, runtime %s, reason %q", rec, id, wantRuntime, text)
			}
			if got := w.ranUntrusted("create", id); got != tc.untrusted {
				t.Errorf("untrusted runtime ran create: %v, want %v (log %q)", got, tc.untrusted, w.wrapperLines(""))
			}
			if tc.untrusted {
				// The wrapper lists the records it finds: the monitor wrote its one first.
				if got := w.wrapperLines("records: "); len(got) != 1 || !strings.Contains(got[0], id+".trust") {
					t.Errorf("records when the untrusted runtime ran: %q, want %s.trust", got, id)
				}
			}
			c.start()
			if st := c.waitExit(); st != 3 {
				t.Errorf("exit status %d, want 3", st)
			}
			assertNoRecords(t, w.stateDir, "after the monitor exited")
		})
	}
}

// TestSandboxWorkloadExec: the infra container of an untrusted pod runs on the untrusted
// runtime; a workload container of the same sandbox without annotations of its own
// inherits that through the sandbox's record; an exec into the infra container follows
// its record (and without records goes to -r).
func TestSandboxWorkloadExec(t *testing.T) {
	setup(t)
	t.Parallel()
	w := newWorld(t)
	flags := []string{"--runtime-untrusted", w.wrapper, "--trust-state-dir", w.stateDir}
	infraID := e2eutil.NewID()
	infra := w.mustCreate(infraID, w.bundle("infra", annotate("ContainerType", "sandbox", "TrustedSandbox", "false"), "sleep", "60"),
		launchOpts{args: flags})
	infra.start()
	if rec := readRecord(t, w.stateDir, infraID); rec.Trusted || rec.Privileged || rec.Runtime != w.wrapper || rec.ContainerType != "sandbox" {
		t.Errorf("infra record %+v: want untrusted, unprivileged, runtime %s, type sandbox", rec, w.wrapper)
	}

	wlID := e2eutil.NewID()
	wl := w.mustCreate(wlID, w.bundle("workload", edits(
		annotate("ContainerType", "container", "SandboxID", infraID),
		setNamespace("network", "/proc/"+strconv.Itoa(infra.pid)+"/ns/net")), "sh", "-c", "exit 4"),
		launchOpts{args: flags})
	want := "[conmon:i]: runtime selection: " + w.wrapper + " (workload untrusted: sandbox " + infraID +
		" record; privileged: no; default trust trusted; untrusted runtime " + w.wrapper + ")"
	if got := wl.decisionLines(); len(got) != 1 || got[0] != want {
		t.Errorf("workload decision:\n got %q\nwant %q", got, want)
	}
	if !w.ranUntrusted("create", wlID) {
		t.Errorf("workload not created by the untrusted runtime: %q", w.wrapperLines("argv: "))
	}
	if rec := readRecord(t, w.stateDir, wlID); rec.SandboxID != infraID || rec.ContainerType != "container" || rec.Trusted {
		t.Errorf("workload record %+v", rec)
	}
	wl.start()
	if st := wl.waitExit(); st != 4 {
		t.Errorf("workload exit status %d, want 4", st)
	}
	if _, err := os.Stat(filepath.Join(w.stateDir, wlID+".trust")); !os.IsNotExist(err) {
		t.Errorf("workload record after its monitor exited: %v, want it removed", err)
	}

	st, stderr := w.execSync(infraID, flags, "exit 7")
	if st != 7 || !strings.Contains(stderr, "runtime selection: "+w.wrapper+" (") {
		t.Errorf("exec with the record: status %d, stderr %q; want 7 and the untrusted runtime", st, stderr)
	}
	if !w.ranUntrusted("exec", infraID) {
		t.Errorf("exec did not reach the untrusted runtime: %q", w.wrapperLines("argv: "))
	}
	before := len(w.wrapperLines("argv: "))
	st, stderr = w.execSync(infraID, []string{"--runtime-untrusted", w.wrapper}, "exit 8")
	if st != 8 || !strings.Contains(stderr, "runtime selection: "+runcPath+" (") {
		t.Errorf("exec without records: status %d, stderr %q; want 8 and -r", st, stderr)
	}
	if after := len(w.wrapperLines("argv: ")); after != before {
		t.Errorf("exec without records ran the untrusted runtime: %q", w.wrapperLines("argv: "))
	}

	infra.kill()
	if st := infra.waitExit(); st != 137 {
		t.Errorf("infra exit status %d, want 137", st)
	}
	assertNoRecords(t, w.stateDir, "after both monitors exited")
}

// TestUntrustedArgs: --runtime-untrusted-arg replaces --runtime-arg for the untrusted
// runtime, at create and, through the record, at exec.
func TestUntrustedArgs(t *testing.T) {
	setup(t)
	t.Parallel()
	w := newWorld(t)
	root2 := filepath.Join(w.dir, "runc-untrusted")
	flags := []string{"--runtime-untrusted", w.wrapper, "--trust-state-dir", w.stateDir, "--runtime-untrusted-arg", "--root=" + root2}
	id := e2eutil.NewID()
	c := w.mustCreate(id, w.bundle("bundle", annotate("TrustedSandbox", "false"), "sleep", "60"), launchOpts{args: flags, root: root2})
	if got := w.wrapperLines("argv: "); len(got) != 1 || !strings.Contains(got[0], " --root="+root2+" ") || strings.Contains(got[0], w.root+" ") {
		t.Errorf("untrusted create argv %q: want --root=%s instead of the --runtime-arg", got, root2)
	}
	if _, err := w.runc(w.root, "state", id); err == nil {
		t.Errorf("container exists in the trusted runtime's root")
	}
	if rec := readRecord(t, w.stateDir, id); !rec.UntrustedArgs {
		t.Errorf("record %+v: want untrusted_args true", rec)
	}
	c.start()
	if st, stderr := w.execSync(id, flags, "exit 5"); st != 5 {
		t.Errorf("exec status %d, want 5; stderr %q", st, stderr)
	}
	if !w.ranUntrusted("exec", id) || !strings.Contains(w.wrapperLines("argv: ")[1], "--root="+root2) {
		t.Errorf("exec argv %q: want the untrusted runtime with --root=%s", w.wrapperLines("argv: "), root2)
	}
	c.kill()
	c.waitExit()
}

// TestConfigErrors: a config.json that cannot be read or parsed fails the launcher with the
// message of docs/trust.md §4.1, and nothing is started or recorded.
func TestConfigErrors(t *testing.T) {
	setup(t)
	for _, tc := range []struct{ name, content, reason string }{
		{"missing", "", "no such file or directory"},
		{"malformed", `{"annotations": `, "unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			bundle := w.bundle("bundle", nil)
			cfg := filepath.Join(bundle, "config.json")
			var err error
			if tc.content == "" {
				err = os.Remove(cfg)
			} else {
				err = os.WriteFile(cfg, []byte(tc.content), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			id := e2eutil.NewID()
			c := w.create(id, bundle, launchOpts{args: []string{"--runtime-untrusted", w.wrapper, "--trust-state-dir", w.stateDir}})
			want := "[conmon:e]: Cannot select runtime: " + cfg + ": "
			if c.code != 1 || !c.syncEOF || !strings.HasPrefix(c.stderr, want) || !strings.Contains(strings.ToLower(c.stderr), strings.ToLower(tc.reason)) {
				t.Errorf("launcher exit %d, sync EOF %v, stderr %q; want 1, EOF, %q…%s", c.code, c.syncEOF, c.stderr, want, tc.reason)
			}
			assertNothingStarted(t, w, c)
		})
	}
}

func assertNothingStarted(t *testing.T, w *world, c *ctr) {
	t.Helper()
	if got := w.wrapperLines(""); len(got) > 0 {
		t.Errorf("untrusted runtime ran: %q", got)
	}
	if _, err := w.runc(w.root, "state", c.id); err == nil {
		t.Errorf("a container was created")
	}
	if _, err := os.Stat(c.conmonPid); !os.IsNotExist(err) {
		t.Errorf("conmon pid file: %v, want none (no monitor)", err)
	}
	assertNoRecords(t, w.stateDir, "after the failed launch")
}

// TestBadTrustOptions: an unknown trust level (flag or environment) and an unusable
// untrusted runtime are command-line errors.
func TestBadTrustOptions(t *testing.T) {
	setup(t)
	t.Parallel()
	w := newWorld(t)
	bundle := w.bundle("bundle", annotate("TrustedSandbox", "false"))
	level := `[conmon:e]: Invalid --default-trust value "maybe" (must be "trusted" or "untrusted")` + "\n"
	for _, tc := range []struct {
		name   string
		o      launchOpts
		stderr string // exact, or a prefix when it ends without \n
	}{
		{"flag", launchOpts{args: []string{"--default-trust", "maybe"}}, level},
		{"env", launchOpts{env: []string{"CONMON_GO_DEFAULT_TRUST=maybe"}}, level},
		{"capitalised", launchOpts{args: []string{"--default-trust", "Untrusted"}},
			`[conmon:e]: Invalid --default-trust value "Untrusted" (must be "trusted" or "untrusted")` + "\n"},
		{"untrusted runtime", launchOpts{args: []string{"--runtime-untrusted", "/nonexistent/kata"}},
			"[conmon:e]: Untrusted runtime path /nonexistent/kata is not valid "},
	} {
		c := w.create(e2eutil.NewID(), bundle, tc.o)
		ok := c.stderr == tc.stderr || !strings.HasSuffix(tc.stderr, "\n") && strings.HasPrefix(c.stderr, tc.stderr)
		if c.code != 1 || !c.syncEOF || !ok {
			t.Errorf("%s: launcher exit %d, sync EOF %v, stderr %q; want 1, EOF, %q", tc.name, c.code, c.syncEOF, c.stderr, tc.stderr)
		}
		assertNothingStarted(t, w, c)
	}
}

// TestFeatureOff: without --runtime-untrusted and --default-trust (a trust state dir alone
// does not enable the feature) the monitor is conmon: -r runs, config.json is not read,
// nothing is logged, sent to syslog or recorded.
func TestFeatureOff(t *testing.T) {
	setup(t)
	t.Parallel()
	w := newWorld(t)
	dev, sock := e2eutil.DevDir(t)
	o := launchOpts{args: []string{"--trust-state-dir", w.stateDir}, env: []string{"CONMON_GO_TRUST_STATE_DIR=" + w.stateDir}, devDir: dev}
	c := w.mustCreate(e2eutil.NewID(), w.bundle("bundle", annotate("TrustedSandbox", "false"), "sh", "-c", "exit 2"), o)
	if c.stderr != "" {
		t.Errorf("launcher stderr %q, want nothing", c.stderr)
	}
	for _, m := range e2eutil.SyslogMessages(t, sock) {
		t.Errorf("syslog message %q, want none", m)
	}
	assertNoRecords(t, w.stateDir, "after create")
	c.start()
	if st := c.waitExit(); st != 2 {
		t.Errorf("exit status %d, want 2", st)
	}

	// config.json is not the monitor's business: a malformed one reaches runc, which fails.
	bundle := w.bundle("bad", nil)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := w.create(e2eutil.NewID(), bundle, o)
	if bad.code != 0 || bad.pid != -1 {
		t.Errorf("malformed config.json without the feature: launcher exit %d, sync data %d; want 0 and -1 (runc's failure); stderr %q",
			bad.code, bad.pid, bad.stderr)
	}
	if got := w.wrapperLines(""); len(got) > 0 {
		t.Errorf("untrusted runtime ran: %q", got)
	}
}
