// Package cli parses and validates the monitor's command line exactly as conmon's GLib
// based parser does (cli.md §2–§8).
package cli

import "github.com/conmon-go/conmon-go/monitor/diag"

// Options holds one field per option of cli.md §3. The *Set fields record "given", which
// differs from "non-empty" for values like `--cid=`. Fields after Help are filled by Validate.
type Options struct {
	// Identity, bundle, pid files (§3.1).
	CID, CUUID          string
	CIDSet, CUUIDSet    bool
	Name                string
	NameSet             bool
	Bundle              string // Validate: cwd for create/restore when not given
	BundleSet           bool
	ContainerPidfile    string // -p and the hidden --pidfile; Validate: <cwd>/pidfile-<cid>
	ContainerPidfileSet bool
	ConmonPidfile       string
	PersistDir          string
	ExitDir             string
	SocketDir           string
	FullAttach          bool

	// Runtime (§3.2).
	Runtime            string
	RuntimeSet         bool
	RuntimeArgs        []string
	RuntimeOpts        []string // --runtime-opt and the hidden --restore-arg, in order
	SystemdCgroup      bool
	NoPivot            bool
	NoNewKeyring       bool
	Restore            string
	RestoreSet         bool
	Exec               bool
	ExecProcessSpec    string
	ExecProcessSpecSet bool
	ExecAttach         bool
	APIVersion         bool
	ReplaceListenPID   bool

	// Stdio, terminal, attach (§3.3).
	Terminal       bool
	Stdin          bool
	LeaveStdinOpen bool
	Timeout        int
	Sync           bool
	SdNotifySocket string

	// Logging (§3.4).
	LogPaths                  []string
	LogSizeMax                int64
	LogGlobalSizeMax          int64
	LogRotate                 bool
	LogMaxFiles               int
	LogAllowlistDirs          []string
	LogTag                    string
	LogTagSet                 bool
	LogLabels                 []string
	NoContainerPartialMessage bool
	NoSyncLog                 bool
	LogLevel                  string
	Syslog                    bool

	// Exit (§3.5).
	ExitCommand     string
	ExitCommandArgs []string
	ExitDelay       int

	// Other (§3.6).
	Version                bool
	SeccompNotifySocket    string
	SeccompNotifySocketSet bool
	SeccompNotifyPlugins   string

	// conmon-go extensions (§3.7), as given on the command line; Trust is the resolved view.
	RuntimeUntrusted     string
	RuntimeUntrustedSet  bool
	DefaultTrust         string
	DefaultTrustSet      bool
	TrustStateDir        string
	TrustStateDirSet     bool
	RuntimeUntrustedArgs []string

	// Help is set when -h, -?, --help or --help-all was reached; parsing stopped there.
	Help bool

	// Derived by Validate.
	Logs  LogConfig
	Level diag.Level
	Trust TrustOptions
}

// LogConfig is the outcome of the -l values (logging.md §1).
type LogConfig struct {
	K8sPath     string // the last k8s-file path
	HasK8s      bool
	Journald    bool
	Passthrough bool
}

// TrustOptions is the trust extension with environment fallbacks applied (flag wins).
type TrustOptions struct {
	Active           bool // --runtime-untrusted or --default-trust set by flag or env
	RuntimeUntrusted string
	DefaultTrust     string // "trusted" or "untrusted"
	StateDir         string
	UntrustedArgs    []string
}

// Environment fallbacks of §3.7.
const (
	EnvRuntimeUntrusted = "CONMON_GO_RUNTIME_UNTRUSTED"
	EnvDefaultTrust     = "CONMON_GO_DEFAULT_TRUST"
	EnvTrustStateDir    = "CONMON_GO_TRUST_STATE_DIR"
)

func defaults() *Options {
	return &Options{
		SocketDir:        "/var/run/crio",
		LogSizeMax:       -1,
		LogGlobalSizeMax: -1,
		LogMaxFiles:      1,
		LogLevel:         "warning",
	}
}

// SyncKey is the JSON key of the pid message on the sync pipe: "data" for API 1, else
// "pid" (create/restore) or "exit_code" (legacy exec).
func (o *Options) SyncKey() string {
	switch {
	case o.APIVersion:
		return "data"
	case o.Exec:
		return "exit_code"
	}
	return "pid"
}

// ref points an option at its field; given (may be nil) records that it was seen.
// The pointer type selects the GLib argument kind: *bool flag, *string, *[]string
// (repeatable), *int (32-bit), *int64.
type ref struct {
	p     any
	given *bool
}

type option struct {
	long  string
	short byte
	arg   string // placeholder shown by --help; "" for flags
	help  string
	bind  func(o *Options) ref
}

func (op *option) takesValue() bool { return op.arg != "" }

// table lists every option in --help order. Descriptions are conmon-go's own.
var table = []option{
	{"api-version", 0, "", "Use the API 1 sync-pipe messages (takes no value)", func(o *Options) ref { return ref{p: &o.APIVersion} }},
	{"bundle", 'b', "DIR", "OCI bundle directory (default: working directory, not for exec)", func(o *Options) ref { return ref{&o.Bundle, &o.BundleSet} }},
	{"cid", 'c', "ID", "Container id", func(o *Options) ref { return ref{&o.CID, &o.CIDSet} }},
	{"conmon-pidfile", 'P', "PATH", "Write the monitor's pid to this file", func(o *Options) ref { return ref{p: &o.ConmonPidfile} }},
	{"container-pidfile", 'p', "PATH", "Runtime --pid-file for the container or exec process", func(o *Options) ref { return ref{&o.ContainerPidfile, &o.ContainerPidfileSet} }},
	{"cuuid", 'u', "ID", "Container UUID: name of the attach socket link", func(o *Options) ref { return ref{&o.CUUID, &o.CUUIDSet} }},
	{"exec", 'e', "", "Exec a process in a running container", func(o *Options) ref { return ref{p: &o.Exec} }},
	{"exec-attach", 0, "", "Wait for an attach client before starting the exec", func(o *Options) ref { return ref{p: &o.ExecAttach} }},
	{"exec-process-spec", 0, "PATH", "OCI process JSON for the exec", func(o *Options) ref { return ref{&o.ExecProcessSpec, &o.ExecProcessSpecSet} }},
	{"exit-command", 0, "PATH", "Program to run after the container exited", func(o *Options) ref { return ref{p: &o.ExitCommand} }},
	{"exit-command-arg", 0, "ARG", "Argument of the exit command (repeatable)", func(o *Options) ref { return ref{p: &o.ExitCommandArgs} }},
	{"exit-delay", 0, "SECONDS", "Delay before running the exit command", func(o *Options) ref { return ref{p: &o.ExitDelay} }},
	{"exit-dir", 0, "DIR", "Directory receiving the <cid> exit file", func(o *Options) ref { return ref{p: &o.ExitDir} }},
	{"full-attach", 0, "", "Bind the attach socket in the bundle without a link (ignores --socket-dir-path)", func(o *Options) ref { return ref{p: &o.FullAttach} }},
	{"leave-stdin-open", 0, "", "Keep container stdin open when an attach client leaves", func(o *Options) ref { return ref{p: &o.LeaveStdinOpen} }},
	{"log-allowlist-dir", 0, "DIR", "Directory allowed for log rotation (repeatable)", func(o *Options) ref { return ref{p: &o.LogAllowlistDirs} }},
	{"log-global-size-max", 0, "BYTES", "Total bytes of container log to write", func(o *Options) ref { return ref{p: &o.LogGlobalSizeMax} }},
	{"log-label", 0, "NAME=VALUE", "Extra journald field for each entry (repeatable)", func(o *Options) ref { return ref{p: &o.LogLabels} }},
	{"log-level", 0, "LEVEL", "Level of the monitor's own messages: error, warning, info, debug, trace", func(o *Options) ref { return ref{p: &o.LogLevel} }},
	{"log-max-files", 0, "N", "Number of rotated log files kept", func(o *Options) ref { return ref{p: &o.LogMaxFiles} }},
	{"log-path", 'l', "[DRIVER:]PATH", "Log driver: k8s-file:PATH, journald, passthrough or none (repeatable)", func(o *Options) ref { return ref{p: &o.LogPaths} }},
	{"log-rotate", 0, "", "Rotate the k8s-file log instead of truncating it", func(o *Options) ref { return ref{p: &o.LogRotate} }},
	{"log-size-max", 0, "BYTES", "Maximum size of the k8s-file log", func(o *Options) ref { return ref{p: &o.LogSizeMax} }},
	{"log-tag", 0, "TAG", "journald CONTAINER_TAG and syslog identifier", func(o *Options) ref { return ref{&o.LogTag, &o.LogTagSet} }},
	{"name", 'n', "NAME", "Container name", func(o *Options) ref { return ref{&o.Name, &o.NameSet} }},
	{"no-container-partial-message", 0, "", "Never mark journald entries as partial", func(o *Options) ref { return ref{p: &o.NoContainerPartialMessage} }},
	{"no-new-keyring", 0, "", "Pass --no-new-keyring to the runtime", func(o *Options) ref { return ref{p: &o.NoNewKeyring} }},
	{"no-pivot", 0, "", "Pass --no-pivot to the runtime", func(o *Options) ref { return ref{p: &o.NoPivot} }},
	{"no-sync-log", 0, "", "Do not fsync the log file at exit", func(o *Options) ref { return ref{p: &o.NoSyncLog} }},
	{"persist-dir", '0', "DIR", "Directory receiving the exit and oom files", func(o *Options) ref { return ref{p: &o.PersistDir} }},
	{"pidfile", 0, "PATH", "Same as --container-pidfile (deprecated)", func(o *Options) ref { return ref{&o.ContainerPidfile, &o.ContainerPidfileSet} }},
	{"replace-listen-pid", 0, "", "Always set LISTEN_PID to the runtime's pid", func(o *Options) ref { return ref{p: &o.ReplaceListenPID} }},
	{"restore", 0, "DIR", "Restore the container from this checkpoint", func(o *Options) ref { return ref{&o.Restore, &o.RestoreSet} }},
	{"restore-arg", 0, "ARG", "Same as --runtime-opt (deprecated)", func(o *Options) ref { return ref{p: &o.RuntimeOpts} }},
	{"runtime", 'r', "PATH", "OCI runtime binary", func(o *Options) ref { return ref{&o.Runtime, &o.RuntimeSet} }},
	{"runtime-arg", 0, "ARG", "Runtime argument before the sub-command (repeatable)", func(o *Options) ref { return ref{p: &o.RuntimeArgs} }},
	{"runtime-opt", 0, "ARG", "Argument of the create, restore or exec sub-command (repeatable)", func(o *Options) ref { return ref{p: &o.RuntimeOpts} }},
	{"sdnotify-socket", 0, "PATH", "Host sd_notify socket to relay container notifications to", func(o *Options) ref { return ref{p: &o.SdNotifySocket} }},
	{"seccomp-notify-plugins", 0, "PLUGINS", "Seccomp notification plugins (ignored)", func(o *Options) ref { return ref{p: &o.SeccompNotifyPlugins} }},
	{"seccomp-notify-socket", 0, "PATH", "Seccomp notification socket (not supported)", func(o *Options) ref { return ref{&o.SeccompNotifySocket, &o.SeccompNotifySocketSet} }},
	{"socket-dir-path", 0, "DIR", "Directory of the attach socket links (default /var/run/crio)", func(o *Options) ref { return ref{p: &o.SocketDir} }},
	{"stdin", 'i', "", "Give the container a stdin pipe", func(o *Options) ref { return ref{p: &o.Stdin} }},
	{"sync", 0, "", "Do not daemonise; exit with the container's status", func(o *Options) ref { return ref{p: &o.Sync} }},
	{"syslog", 0, "", "Also send the monitor's messages to syslog", func(o *Options) ref { return ref{p: &o.Syslog} }},
	{"systemd-cgroup", 's', "", "Pass --systemd-cgroup to the runtime", func(o *Options) ref { return ref{p: &o.SystemdCgroup} }},
	{"terminal", 't', "", "Allocate a pseudo-terminal", func(o *Options) ref { return ref{p: &o.Terminal} }},
	{"timeout", 'T', "SECONDS", "Kill the container after this many seconds (0: never)", func(o *Options) ref { return ref{p: &o.Timeout} }},
	{"version", 0, "", "Print the version and exit", func(o *Options) ref { return ref{p: &o.Version} }},
	{"runtime-untrusted", 0, "PATH", "Runtime for untrusted workloads (env " + EnvRuntimeUntrusted + ")", func(o *Options) ref { return ref{&o.RuntimeUntrusted, &o.RuntimeUntrustedSet} }},
	{"runtime-untrusted-arg", 0, "ARG", "Replaces --runtime-arg for the untrusted runtime (repeatable)", func(o *Options) ref { return ref{p: &o.RuntimeUntrustedArgs} }},
	{"default-trust", 0, "LEVEL", "Default workload trust: trusted or untrusted (env " + EnvDefaultTrust + ")", func(o *Options) ref { return ref{&o.DefaultTrust, &o.DefaultTrustSet} }},
	{"trust-state-dir", 0, "DIR", "Directory of trust decision records (env " + EnvTrustStateDir + ")", func(o *Options) ref { return ref{&o.TrustStateDir, &o.TrustStateDirSet} }},
}
