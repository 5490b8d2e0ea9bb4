// Package dispatch is conmon-go-runtime, the dispatching OCI runtime of
// trust-and-annotations.md §9. The engines call their runtime directly for everything
// but create/restore/exec (start, kill, delete, state, ...); dispatching every call by
// the record written at create keeps a container on the runtime that created it.
package dispatch

import (
	"bufio"
	"errors"
	"fmt"
	"log/syslog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/trust"
)

// Configuration keys, read from the environment or, failing that, from confPath.
const (
	envTrusted   = "CONMON_GO_RUNTIME_TRUSTED"
	envUntrusted = "CONMON_GO_RUNTIME_UNTRUSTED"
	envDefault   = "CONMON_GO_DEFAULT_TRUST"
	envStateDir  = "CONMON_GO_TRUST_STATE_DIR"
)

// Variables so that tests can point them into a temporary directory.
var (
	confPath   = "/etc/conmon-go/trust.conf"
	syslogPath = "" // the system's syslog socket
)

const progName = "conmon-go-runtime"

// Main runs the dispatcher with the runtime's argv and returns the exit status; on
// success for every sub-command but delete it does not return (the runtime replaces it).
func Main(args []string) int {
	log := logger{diag.NewSyslog(progName, syslogPath)}
	defer log.sys.Flush()
	status, err := dispatch(args, log)
	if err != nil {
		os.Stderr.WriteString(progName + ": " + err.Error() + "\n")
		return 1
	}
	return status
}

func dispatch(args []string, log logger) (int, error) {
	s, err := loadSettings(os.Getenv)
	if err != nil {
		return 1, err
	}
	s.Log = log
	inv := parseArgs(args)
	switch {
	case inv.id == "":
		return 1, log.execRuntime(s.Trusted, args)
	case inv.sub == "create" || inv.sub == "run" || inv.sub == "restore":
		// A record that later calls would ignore cannot keep the container on its runtime.
		if err := trust.CheckDir(s.StateDir); err != nil {
			return 1, fmt.Errorf("trust state dir: %w", err)
		}
		bundle := inv.bundle
		if bundle == "" {
			if bundle, err = os.Getwd(); err != nil {
				return 1, fmt.Errorf("get working directory: %w", err)
			}
		}
		d, err := trust.Decide(s, bundle, inv.id)
		if err != nil {
			return 1, err
		}
		severity := syslog.LOG_INFO
		if d.Warning {
			severity = syslog.LOG_WARNING
		}
		log.sys.Send(severity, d.LogText())
		if err := trust.WriteRecord(s.StateDir, d); err != nil {
			return 1, err
		}
		return 1, log.execRuntime(d.Runtime, args)
	case inv.sub == "delete":
		return deleteContainer(log, trust.DecideExec(s, inv.id).Runtime, args, s.StateDir, inv.id)
	default:
		return 1, log.execRuntime(trust.DecideExec(s, inv.id).Runtime, args)
	}
}

// execRuntime replaces the dispatcher with runtime, argv unchanged but for argv[0]. The
// syslog messages still queued are given their short time first: exec ends their sender.
func (l logger) execRuntime(runtime string, args []string) error {
	l.sys.Flush()
	argv := append([]string{runtime}, args[1:]...)
	err := unix.Exec(runtime, argv, os.Environ())
	return fmt.Errorf("exec %s: %w", runtime, err)
}

// deleteContainer runs the runtime as a child to learn whether the container is gone
// before its record is removed, and exits with the runtime's status.
func deleteContainer(log logger, runtime string, args []string, stateDir, id string) (int, error) {
	argv := append([]string{runtime}, args[1:]...)
	pid, err := syscall.ForkExec(runtime, argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		return 1, fmt.Errorf("run %s: %w", runtime, err)
	}
	var ws unix.WaitStatus
	for {
		_, err = unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 1, fmt.Errorf("wait for %s: %w", runtime, err)
	}
	switch {
	case ws.Signaled():
		return 128 + int(ws.Signal()), nil
	case ws.ExitStatus() != 0:
		return ws.ExitStatus(), nil
	}
	// The container is gone: a record left behind is only stale, so warn and succeed.
	if err := trust.RemoveRecord(stateDir, id); err != nil {
		log.Warnf("remove trust record: %v", err)
	}
	return 0, nil
}

// invocation is what the dispatcher needs from a runtime command line.
type invocation struct {
	sub    string // sub-command; "" for --version, --help or nothing
	id     string // container id; "" when the sub-command has none
	bundle string // --bundle/-b of create, run and restore
}

// The option and sub-command lists are slices, not maps: a slice of constants is data
// in the binary, a map is built by package initialisation in every process, including
// every monitor, which never dispatches.

// Global options of runc (and crun) that take a value: the sub-command is the first
// argument that is neither one of these options, nor their value.
var globalValueOpts = []string{"root", "log", "log-format", "criu", "rootless", "cgroup-manager"}

// firstPositional returns, for the sub-commands whose id is not the last argument
// (`exec [opts] <id> <cmd>...`, `kill [opts] <id> [signal]`, `ps [opts] <id> [ps args]`),
// their options that take a value.
func firstPositional(sub string) (valueOpts []string, ok bool) {
	switch sub {
	case "exec":
		return []string{"console-socket", "cwd", "env", "e", "user", "u", "additional-gids", "g",
			"process", "p", "pid-file", "process-label", "apparmor", "cap", "c", "preserve-fds", "cgroup"}, true
	case "kill":
		return nil, true
	case "ps":
		return []string{"format", "f"}, true
	}
	return nil, false
}

// Sub-commands that never name a container.
var noID = []string{"features", "list", "spec", "help", "h"}

// optName returns the name of "-x", "--x", "-x=v" or "--x=v" and whether a value is attached.
func optName(arg string) (name string, hasValue bool) {
	name = strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], true
	}
	return name, false
}

func isOpt(arg string) bool { return len(arg) > 1 && arg[0] == '-' }

func parseArgs(args []string) invocation {
	var inv invocation
	i := 1
	for ; i < len(args) && isOpt(args[i]); i++ {
		name, hasValue := optName(args[i])
		switch {
		case name == "version" || name == "v" || name == "help" || name == "h":
			return inv
		case !hasValue && slices.Contains(globalValueOpts, name):
			i++ // skip the option's value
		}
	}
	if i >= len(args) {
		return inv
	}
	inv.sub = args[i]
	rest := args[i+1:]
	if slices.Contains(noID, inv.sub) || len(rest) == 0 {
		return inv
	}
	if valueOpts, ok := firstPositional(inv.sub); ok {
		for j := 0; j < len(rest); j++ {
			if rest[j] == "--" {
				if j+1 < len(rest) {
					inv.id = rest[j+1]
				}
				break
			}
			if !isOpt(rest[j]) {
				inv.id = rest[j]
				break
			}
			if name, hasValue := optName(rest[j]); !hasValue && slices.Contains(valueOpts, name) {
				j++
			}
		}
		return inv
	}
	if last := rest[len(rest)-1]; !isOpt(last) {
		inv.id = last
	}
	if inv.sub == "create" || inv.sub == "run" || inv.sub == "restore" {
		for j := 0; j < len(rest)-1; j++ {
			name, hasValue := optName(rest[j])
			if !isOpt(rest[j]) || (name != "bundle" && name != "b") {
				continue
			}
			if hasValue {
				inv.bundle = rest[j][strings.IndexByte(rest[j], '=')+1:]
			} else {
				inv.bundle = rest[j+1]
				j++
			}
		}
	}
	return inv
}

// loadSettings resolves the configuration: each variable from the environment if set
// and non-empty, else from the configuration file.
func loadSettings(getenv func(string) string) (trust.Settings, error) {
	conf, err := readConf(confPath)
	if err != nil {
		return trust.Settings{}, err
	}
	get := func(key string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return conf[key]
	}
	s := trust.Settings{
		Trusted:      get(envTrusted),
		Untrusted:    get(envUntrusted),
		DefaultTrust: get(envDefault),
		StateDir:     get(envStateDir),
	}
	if s.StateDir == "" {
		return s, errors.New(envStateDir + " is not set: the dispatching runtime needs a trust state dir")
	}
	if s.DefaultTrust != "" && s.DefaultTrust != "trusted" && s.DefaultTrust != "untrusted" {
		return s, fmt.Errorf("invalid %s value %q (must be \"trusted\" or \"untrusted\")", envDefault, s.DefaultTrust)
	}
	if s.Trusted == "" {
		s.Trusted = "runc"
	}
	if s.Trusted, err = resolveRuntime("trusted", s.Trusted); err != nil {
		return s, err
	}
	if s.Untrusted != "" {
		if s.Untrusted, err = resolveRuntime("untrusted", s.Untrusted); err != nil {
			return s, err
		}
	}
	return s, nil
}

// resolveRuntime looks a bare name up in PATH, checks that the result is executable and
// refuses the dispatcher itself, which would exec itself forever.
func resolveRuntime(kind, path string) (string, error) {
	if !strings.ContainsRune(path, '/') {
		found := ""
		for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
			if dir == "" {
				dir = "."
			}
			p := filepath.Join(dir, path)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
				found = p
				break
			}
		}
		if found == "" {
			return "", fmt.Errorf("%s runtime %q not found in PATH", kind, path)
		}
		path = found
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return "", fmt.Errorf("%s runtime path %s is not valid: %w", kind, path, err)
	}
	self, err1 := os.Stat("/proc/self/exe")
	target, err2 := os.Stat(path)
	if err1 == nil && err2 == nil && os.SameFile(self, target) {
		return "", fmt.Errorf("%s runtime %s is the dispatching runtime itself", kind, path)
	}
	return path, nil
}

// readConf parses KEY=VALUE lines; blank lines and lines starting with # are skipped,
// one pair of surrounding quotes is removed. A missing file is an empty configuration;
// an unknown key is an error, since a misspelt one would silently change the choice.
func readConf(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	conf := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case envTrusted, envUntrusted, envDefault, envStateDir:
		default:
			ok = false
		}
		if !ok {
			return nil, fmt.Errorf("%s:%d: expected one of %s, %s, %s, %s as KEY=VALUE", path, n, envTrusted, envUntrusted, envDefault, envStateDir)
		}
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		conf[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return conf, nil
}

// logger reports warnings on stderr, where the engine shows a runtime's messages, and to syslog.
type logger struct{ sys *diag.Syslog }

func (l logger) Warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	os.Stderr.WriteString(progName + ": warning: " + msg + "\n")
	l.sys.Send(syslog.LOG_WARNING, msg)
}

func (logger) Debugf(string, ...any) {}
