// Package cli parses and validates the monitor's command line exactly as conmon's GLib
// based parser does (docs/cli.md §2–§8), with a pflag FlagSet.
package cli

import "github.com/conmon-go/conmon-go/monitor/diag"

// Options holds one field per option of docs/cli.md §3. The *Set fields record "given", which
// differs from "non-empty" for values like `--cid=`. Fields after Help are filled by Validate.
type Options struct {
	// Identity, bundle, pid files (docs/cli.md §3.1).
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

	// Runtime (docs/cli.md §3.2).
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

	// Stdio, terminal, attach (docs/cli.md §3.3).
	Terminal       bool
	Stdin          bool
	LeaveStdinOpen bool
	Timeout        int
	Sync           bool
	SdNotifySocket string

	// Logging (docs/cli.md §3.4).
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

	// Exit (docs/cli.md §3.5).
	ExitCommand     string
	ExitCommandArgs []string
	ExitDelay       int

	// Other (docs/cli.md §3.6).
	Version                bool
	SeccompNotifySocket    string
	SeccompNotifySocketSet bool
	SeccompNotifyPlugins   string

	// conmon-go extensions (docs/cli.md §3.7), as given on the command line; Trust is the
	// resolved view.
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

// LogConfig is the outcome of the -l values (docs/logging.md §1).
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

// Environment fallbacks of docs/cli.md §3.7.
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
