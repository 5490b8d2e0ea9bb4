package direct

import (
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"

	"github.com/conmon-go/conmon-go/ptyio/journald/journaldtest"
)

// The container's lines as journald entries: fields, priorities from the stream or a <N>
// prefix, a partial line at exit; alone (podman -l journald) and next to k8s-file (CRI-O).
func TestJournald(t *testing.T) {
	setup(t)
	t.Cleanup(journaldtest.Ensure(t))
	const script = `echo out1; echo err1 >&2; echo '<3>prio3'; echo '<8>plain'; printf partial`
	type want struct{ prio, partial string }
	wants := map[string]want{"out1\n": {"6", ""}, "err1\n": {"3", ""}, "<8>plain\n": {"6", ""}, "partial": {"6", "true"}}
	if conmonGo { // 2.2.0+: priority prefixes and labels
		wants["prio3\n"] = want{"3", ""}
	} else {
		wants["<3>prio3\n"] = want{"6", ""}
	}
	for _, style := range []string{"podman-journald", "crio-both"} {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			c := newContainer(t, bundleOpts{}, "sh", "-c", script)
			extra := []string{"--log-tag", "mytag"}
			if conmonGo {
				extra = append(extra, "--log-label", "A=b")
			}
			name := "k8s_e2e_pod_ns_uid_0"
			if style == "podman-journald" {
				name = "e2e-" + c.id[:8]
				c.logPath = "" // podmanArgs then passes -l journald
				podmanStyle.createOK(t, c, extra...)
			} else {
				crioStyle.createOK(t, c, append(extra, "-l", "journald:")...)
			}
			c.start()
			if got := e2eutil.WaitFile(t, c.exitFile(), 10*time.Second, e2eutil.NonEmpty); string(got) != "0" {
				t.Fatalf("exit file %q", got)
			}
			entries := journaldtest.Entries(t, c.id, len(wants))
			if len(entries) != len(wants) {
				t.Fatalf("%d journal entries %v, want %d", len(entries), entries, len(wants))
			}
			for _, e := range entries {
				w, ok := wants[e["MESSAGE"]]
				if !ok {
					t.Errorf("unexpected entry MESSAGE %q", e["MESSAGE"])
					continue
				}
				if e["PRIORITY"] != w.prio || e["CONTAINER_PARTIAL_MESSAGE"] != w.partial {
					t.Errorf("MESSAGE %q: PRIORITY %q partial %q, want %q %q", e["MESSAGE"], e["PRIORITY"], e["CONTAINER_PARTIAL_MESSAGE"], w.prio, w.partial)
				}
				fields := map[string]string{"CONTAINER_ID": c.id[:12], "CONTAINER_TAG": "mytag",
					"SYSLOG_IDENTIFIER": "mytag", "CONTAINER_NAME": name}
				if conmonGo {
					fields["A"] = "b"
				}
				for k, v := range fields {
					if e[k] != v {
						t.Errorf("MESSAGE %q: %s=%q, want %q", e["MESSAGE"], k, e[k], v)
					}
				}
			}
			if style == "crio-both" {
				recs := readLog(t, c.logPath)
				if o, e := string(joined(recs, "stdout")), string(joined(recs, "stderr")); o != "out1\n<3>prio3\n<8>plain\npartial" || e != "err1\n" {
					t.Errorf("k8s log stdout %q stderr %q: want the raw lines", o, e)
				}
			}
		})
	}
}
