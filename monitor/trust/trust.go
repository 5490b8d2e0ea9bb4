// Package trust chooses the OCI runtime by workload trust (docs/trust.md §4–§6):
// the decision for create/restore from the bundle's config.json, the choice for an exec,
// the log text of a decision, and the records that let workload containers inherit their
// sandbox's trust and later calls reach the runtime that created the container.
package trust

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"github.com/conmon-go/conmon-go/monitor/annotations"
)

// Settings are the resolved trust options (flags or their environment fallbacks).
type Settings struct {
	Trusted      string      // -r
	Untrusted    string      // --runtime-untrusted; "" when not configured
	DefaultTrust string      // "trusted" or "untrusted"; "" means "trusted"
	StateDir     string      // --trust-state-dir; "" when not configured
	Log          diag.Logger // nil: warnings are dropped
}

func (s Settings) warnf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Warnf(format, args...)
	}
}

// Decision is the outcome of a runtime selection.
type Decision struct {
	CID           string
	SandboxID     string // the SandboxID annotation
	ContainerType string // the ContainerType annotation
	Trusted       bool   // the workload is trusted
	Privileged    bool
	UseUntrusted  bool // the untrusted runtime (and --runtime-untrusted-arg) was chosen
	Warning       bool // untrusted but privileged: log at warning level
	Runtime       string
	Reason        string // "runtime selection: <path> (…)" without the warning prefix
}

const warningPrefix = "Running an untrusted but privileged container; "

// LogText is the decision's log line (docs/trust.md §5), also stored as the record's reason.
func (d Decision) LogText() string {
	if d.Warning {
		return warningPrefix + d.Reason
	}
	return d.Reason
}

// Decide makes the create/restore decision of docs/trust.md §4.1–§4.4 for the bundle's
// config.json. The error is fatal: the caller must not fall back to the trusted runtime.
func Decide(s Settings, bundle, cid string) (Decision, error) {
	defaultUntrusted, err := parseDefaultTrust(s.DefaultTrust)
	if err != nil {
		return Decision{}, err
	}
	path := filepath.Join(bundle, "config.json")
	cfg, err := readConfig(path)
	if err != nil {
		return Decision{}, errors.New("Cannot select runtime: " + path + ": " + err.Error())
	}
	ann := cfg.Annotations
	d := Decision{CID: cid, SandboxID: ann[annotations.SandboxID], ContainerType: ann[annotations.ContainerType]}

	var reasons []string
	if ann[annotations.PrivilegedRuntime] == "true" {
		reasons = append(reasons, `PrivilegedRuntime="true"`)
	}
	for _, ns := range [...]string{"network", "pid", "ipc"} {
		if !cfg.hasNamespace(ns) {
			reasons = append(reasons, "host "+ns)
		}
	}

	hint, hasHint := ann[annotations.TrustedSandbox]
	var source string
	switch {
	case d.ContainerType == annotations.ContainerTypeContainer:
		if rec, ok := s.sandboxRecord(d.SandboxID); ok {
			d.Trusted = rec.Trusted
			source = "sandbox " + d.SandboxID + " record"
			if rec.Privileged {
				reasons = append(reasons, "sandbox privileged")
			}
		} else if hasHint {
			d.Trusted = hint == "true"
			source = "annotation TrustedSandbox=" + strconv.Quote(hint)
		} else {
			d.Trusted = true
			source = "no hint"
		}
	case hasHint:
		d.Trusted = hint == "true"
		source = "annotation TrustedSandbox=" + strconv.Quote(hint)
	default:
		d.Trusted = true
		source = "no TrustedSandbox annotation"
	}
	d.Privileged = len(reasons) > 0

	// docs/trust.md §4.4: privileged always gets -r; otherwise the untrusted runtime when it
	// exists and either the workload or the default trust level is untrusted.
	d.Warning = !d.Trusted && d.Privileged
	d.UseUntrusted = !d.Privileged && s.Untrusted != "" && (!d.Trusted || defaultUntrusted)
	d.Runtime = s.Trusted
	if d.UseUntrusted {
		d.Runtime = s.Untrusted
	}

	var b strings.Builder
	b.WriteString("runtime selection: ")
	b.WriteString(d.Runtime)
	b.WriteString(" (workload ")
	b.WriteString(trustWord(d.Trusted))
	b.WriteString(": ")
	b.WriteString(source)
	b.WriteString("; privileged: ")
	if d.Privileged {
		b.WriteString("yes (" + strings.Join(reasons, ", ") + ")")
	} else {
		b.WriteString("no")
	}
	b.WriteString("; default trust ")
	b.WriteString(trustWord(!defaultUntrusted))
	b.WriteString("; untrusted runtime ")
	if s.Untrusted != "" {
		b.WriteString(s.Untrusted)
	} else {
		b.WriteString("not configured")
	}
	b.WriteString(")")
	d.Reason = b.String()
	return d, nil
}

// DecideExec chooses the runtime for an exec (docs/trust.md §4.5): the one recorded for the
// container, else -r. It cannot fail; an unusable record is reported through s.Log.
func DecideExec(s Settings, cid string) Decision {
	d := Decision{CID: cid, Trusted: true, Runtime: s.Trusted}
	var why string
	if s.StateDir == "" {
		why = "no trust state dir"
	} else if rec, err := ReadRecord(s.StateDir, cid); err == nil {
		d.SandboxID, d.ContainerType = rec.SandboxID, rec.ContainerType
		d.Trusted, d.Privileged = rec.Trusted, rec.Privileged
		d.Runtime, d.UseUntrusted = rec.Runtime, rec.UntrustedArgs
		why = "container " + cid + " record"
	} else {
		if !errors.Is(err, fs.ErrNotExist) {
			s.warnf("ignoring %v", err)
		}
		why = "no usable record for container " + cid
	}
	d.Reason = "runtime selection: " + d.Runtime + " (exec: " + why + ")"
	return d
}

// sandboxRecord returns the sandbox's record when one is configured, present and usable.
func (s Settings) sandboxRecord(id string) (Record, bool) {
	if s.StateDir == "" || id == "" {
		return Record{}, false
	}
	rec, err := ReadRecord(s.StateDir, id)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.warnf("ignoring %v", err)
		}
		return Record{}, false
	}
	return rec, true
}

func parseDefaultTrust(v string) (untrusted bool, err error) {
	switch v {
	case "", "trusted":
		return false, nil
	case "untrusted":
		return true, nil
	}
	return false, errors.New(`Invalid default trust value ` + strconv.Quote(v) + ` (must be "trusted" or "untrusted")`)
}

func trustWord(trusted bool) string {
	if trusted {
		return "trusted"
	}
	return "untrusted"
}
