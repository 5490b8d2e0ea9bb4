package cli

import (
	"strconv"
	"strings"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"golang.org/x/sys/unix"
)

// ValidationError is a failed check of docs/cli.md §4; Error() is the exact line for stderr.
// The syslog copy (with --syslog, from step 5 on) is Msg, plus ": " + Errno if set.
type ValidationError struct {
	Msg   string // the text without prefix
	Errno string // strerror text of steps 11 and 11a, appended after a space on stderr
	Early bool   // steps 2–4: printed with "conmon: " before the message system exists
}

func (e *ValidationError) Error() string {
	if e.Early {
		return "conmon: " + e.Text()
	}
	return "[conmon:e]: " + e.Text()
}

// Text is the message without prefix, as the sync pipe carries it.
func (e *ValidationError) Text() string {
	if e.Errno != "" {
		return e.Msg + " " + e.Errno
	}
	return e.Msg
}

func early(msg string) error     { return &ValidationError{Msg: msg, Early: true} }
func fail(parts ...string) error { return &ValidationError{Msg: strings.Join(parts, "")} }

const partialWarning = "[conmon:w]: --no-container-partial-message has no effect without journald log driver"

// Validate runs steps 2–27 of docs/cli.md §4 in order (not 1, --version, nor 19, opening the
// k8s log: the caller does both) and fills Bundle, ContainerPidfile, Logs, Level and Trust.
// cwd is the working directory, "" when getcwd failed. Warnings are full stderr lines.
func (o *Options) Validate(cwd string, getenv func(string) string) (warnings []string, err error) {
	if o.LogMaxFiles < 0 {
		return nil, early("log-max-files must be non-negative, got " + strconv.Itoa(o.LogMaxFiles))
	}
	if o.LogRotate && o.LogMaxFiles == 0 {
		return nil, early("log-max-files must be at least 1 when log-rotate is enabled, got 0")
	}
	if !o.CIDSet {
		return nil, early("Container ID not provided. Use --cid")
	}
	lv, ok := diag.ParseLevel(o.LogLevel)
	if !ok {
		return nil, fail("No such log level ", o.LogLevel)
	}
	o.Level = lv
	switch {
	case o.Exec && o.RestoreSet:
		return nil, fail("Cannot use 'exec' and 'restore' at the same time")
	case o.ExecAttach && !o.Exec:
		return nil, fail("Attach can only be specified with exec")
	case o.ExecAttach && !o.APIVersion:
		return nil, fail("Attach can only be specified for a non-legacy exec session")
	case !o.CUUIDSet && !(o.Exec && !o.APIVersion):
		return nil, fail("Container UUID not provided. Use --cuuid")
	}
	if err := o.checkFileNames(); err != nil {
		return nil, err
	}
	if !o.RuntimeSet {
		return nil, fail("Runtime path not provided. Use --runtime")
	}
	if err := unix.Access(o.Runtime, unix.X_OK); err != nil {
		return nil, &ValidationError{Msg: "Runtime path " + o.Runtime + " is not valid", Errno: diag.Strerror(err)}
	}
	if err := o.resolveTrust(getenv); err != nil {
		return nil, err
	}
	if o.Exec && !o.ExecProcessSpecSet {
		return nil, fail("Exec process spec path not provided. Use --exec-process-spec")
	}
	if cwd == "" {
		return nil, fail("Failed to get working directory")
	}
	if !o.BundleSet && !o.Exec {
		o.Bundle = cwd
	}
	if o.ExitDelay < 0 {
		return nil, fail("Delay before invoking exit command must be greater than or equal to 0")
	}
	if !o.ContainerPidfileSet {
		o.ContainerPidfile = cwd + "/pidfile-" + o.CID
	}
	if len(o.LogPaths) == 0 {
		return nil, fail("Log driver not provided. Use --log-path")
	}
	o.Logs = LogConfig{}
	for _, v := range o.LogPaths {
		if err := o.Logs.add(v); err != nil {
			return nil, err
		}
	}
	if err := o.checkLogOptions(); err != nil {
		return nil, err
	}
	if o.NoContainerPartialMessage && !o.Logs.Journald {
		warnings = append(warnings, partialWarning)
	}
	if o.SeccompNotifySocketSet {
		return warnings, fail("seccomp notify is not supported")
	}
	return warnings, nil
}

// maxIDName bounds the container id: <exit-dir>/<cid> is written through the temporary
// name <cid>.XXXXXX, which must fit NAME_MAX (255) too.
const maxIDName = 255 - len(".XXXXXX")

// checkFileNames is step 9a: the container id names files (the exit file, the default pid
// file) and the uuid the attach socket's link in the socket directory, so each must be one
// file name that stays in its directory.
func (o *Options) checkFileNames() error {
	if !isFileName(o.CID, maxIDName) {
		return fail("Container ID cannot be used as a file name: ", quoteID(o.CID))
	}
	if o.CUUIDSet && !o.FullAttach && !isFileName(o.CUUID, 255) {
		return fail("Container UUID cannot be used as a file name: ", quoteID(o.CUUID))
	}
	return nil
}

func isFileName(s string, max int) bool {
	return s != "" && s != "." && s != ".." && len(s) <= max && !strings.ContainsRune(s, '/')
}

// quoteID quotes an id for a message, at most its first 64 bytes.
func quoteID(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
	}
	return strconv.Quote(s)
}

// add applies one -l value (docs/logging.md §1): split at ':' like strtok (empty fields vanish,
// only the first two count); a leading ':' or a colon-less unknown word names a k8s-file.
func (c *LogConfig) add(v string) error {
	var f []string
	for _, s := range strings.Split(v, ":") {
		if s != "" {
			f = append(f, s)
		}
	}
	if len(f) == 0 {
		return fail("log-path must not be empty")
	}
	driver := f[0]
	if v[0] == ':' {
		c.HasK8s, c.K8sPath = true, driver
		return nil
	}
	switch driver {
	case "none", "off", "null":
	case "passthrough":
		c.Passthrough = true
	case "journald":
		c.Journald = true
	case "k8s-file":
		if len(f) < 2 {
			return fail("k8s-file requires a filename")
		}
		c.HasK8s, c.K8sPath = true, f[1]
	default:
		if strings.IndexByte(v, ':') >= 0 {
			return fail("No such log driver ", driver)
		}
		c.HasK8s, c.K8sPath = true, v
	}
	return nil
}

// checkLogOptions runs steps 20–25, which depend on the set of drivers.
func (o *Options) checkLogOptions() error {
	if o.Logs.HasK8s && !o.Logs.Journald {
		if o.LogTagSet {
			return fail("k8s-file doesn't support --log-tag")
		}
		if len(o.LogLabels) > 0 {
			return fail("k8s-file doesn't support --log-label")
		}
	}
	if !o.Logs.Journald {
		return nil
	}
	if len(o.CID) <= 12 {
		return fail("Container ID must be longer than 12 characters")
	}
	for _, l := range o.LogLabels {
		name, _, _ := strings.Cut(l, "=")
		switch {
		case strings.HasPrefix(l, "="):
			return fail("Container labels must be in format LABEL=VALUE (no LABEL present in '", l, "')")
		case strings.Count(l, "=") != 1:
			return fail("Container labels must be in format LABEL=VALUE (none or more than one '=' present in '", l, "')")
		case strings.TrimLeft(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "":
			return fail("Container label names must contain only uppercase letters, numbers and underscore (in '", l, "')")
		}
	}
	return nil
}

// resolveTrust applies the environment fallbacks of docs/cli.md §3.7 and §4 step 11a.
func (o *Options) resolveTrust(getenv func(string) string) error {
	pick := func(flag string, set bool, env string) (string, bool) {
		if set {
			return flag, true
		}
		v := getenv(env)
		return v, v != ""
	}
	t := TrustOptions{UntrustedArgs: o.RuntimeUntrustedArgs}
	var untrustedSet, trustSet bool
	t.RuntimeUntrusted, untrustedSet = pick(o.RuntimeUntrusted, o.RuntimeUntrustedSet, EnvRuntimeUntrusted)
	t.DefaultTrust, trustSet = pick(o.DefaultTrust, o.DefaultTrustSet, EnvDefaultTrust)
	t.StateDir, _ = pick(o.TrustStateDir, o.TrustStateDirSet, EnvTrustStateDir)
	t.Active = untrustedSet || trustSet
	if !trustSet {
		t.DefaultTrust = "trusted"
	}
	if untrustedSet {
		if err := unix.Access(t.RuntimeUntrusted, unix.X_OK); err != nil {
			return &ValidationError{Msg: "Untrusted runtime path " + t.RuntimeUntrusted + " is not valid", Errno: diag.Strerror(err)}
		}
	}
	if t.DefaultTrust != "trusted" && t.DefaultTrust != "untrusted" {
		return fail(`Invalid --default-trust value "`, t.DefaultTrust, `" (must be "trusted" or "untrusted")`)
	}
	o.Trust = t
	return nil
}
