package cli

import (
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// flagSet binds every option to its field of o, in --help order. The back-quoted word of
// a usage text is the placeholder --help shows after "="; flags have none. Built per call,
// never at package init: the monitor pays for it only when it parses.
func (o *Options) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("conmon", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {} // pflag would print its own usage on "--help=x"
	str := func(p *string, name, short, usage string) { fs.StringVarP(p, name, short, *p, usage) }
	list := func(p *[]string, name, short, usage string) { fs.VarP(stringList{p}, name, short, usage) }
	num := func(p *int, name, short, usage string) { fs.VarP(strtolValue[int]{p, 32}, name, short, usage) }
	num64 := func(p *int64, name, usage string) { fs.VarP(strtolValue[int64]{p, 64}, name, "", usage) }
	flag := func(p *bool, name, short, usage string) {
		fs.BoolFuncP(name, short, usage, func(string) error { *p = true; return nil })
	}

	flag(&o.APIVersion, "api-version", "", "Use conmon API version 1 (a flag: takes no value)")
	str(&o.Bundle, "bundle", "b", "OCI bundle `DIR` (default: the working directory; none for exec)")
	str(&o.CID, "cid", "c", "`ID` identifying the container")
	str(&o.ConmonPidfile, "conmon-pidfile", "P", "`PATH` of the PID file for the conmon process")
	str(&o.ContainerPidfile, "container-pidfile", "p", "`PATH` of the PID file for the initial pid inside of the container")
	str(&o.CUUID, "cuuid", "u", "Container UUID: the `ID` naming the attach socket link")
	flag(&o.Exec, "exec", "e", "Exec a command into a running container")
	flag(&o.ExecAttach, "exec-attach", "", "Attach to an exec session: wait for a client before starting it")
	str(&o.ExecProcessSpec, "exec-process-spec", "", "`PATH` to the process spec for execution")
	str(&o.ExitCommand, "exit-command", "", "`PATH` to the program to execute when the container terminates its execution")
	list(&o.ExitCommandArgs, "exit-command-arg", "", "Additional `ARG` to pass to the exit command. Can be specified multiple times")
	num(&o.ExitDelay, "exit-delay", "", "Delay before invoking the exit command (in `SECONDS`)")
	str(&o.ExitDir, "exit-dir", "", "`DIR` where exit files are written")
	flag(&o.FullAttach, "full-attach", "", "Don't truncate the path to the attach socket. This option causes conmon to ignore --socket-dir-path")
	flag(&o.LeaveStdinOpen, "leave-stdin-open", "", "Leave stdin open when attached client disconnects")
	list(&o.LogAllowlistDirs, "log-allowlist-dir", "", "`DIR` where log rotation may create the log file. Can be specified multiple times")
	num64(&o.LogGlobalSizeMax, "log-global-size-max", "Maximum size of all log files in `BYTES`, none if <= 0")
	list(&o.LogLabels, "log-label", "", "Additional journald field `NAME=VALUE` for each entry. Can be specified multiple times")
	str(&o.LogLevel, "log-level", "", "Print debug logs based on log `LEVEL`: error, warning, info, debug or trace")
	num(&o.LogMaxFiles, "log-max-files", "", "Keep `N` rotated log files")
	list(&o.LogPaths, "log-path", "l", "Log file path as `[DRIVER:]PATH`, DRIVER being k8s-file (the default), journald, passthrough or none. Can be specified multiple times")
	flag(&o.LogRotate, "log-rotate", "", "Rotate the log file instead of truncating it")
	num64(&o.LogSizeMax, "log-size-max", "Maximum size of log file in `BYTES`, none if <= 0")
	str(&o.LogTag, "log-tag", "", "Additional `TAG` to use for logging (journald CONTAINER_TAG, syslog identifier)")
	str(&o.Name, "name", "n", "Container `NAME`")
	flag(&o.NoContainerPartialMessage, "no-container-partial-message", "", "Do not mark journald entries of split lines as partial")
	flag(&o.NoNewKeyring, "no-new-keyring", "", "Do not create a new session keyring for the container")
	flag(&o.NoPivot, "no-pivot", "", "Do not use pivot_root")
	flag(&o.NoSyncLog, "no-sync-log", "", "Do not manually call sync on logs after container shutdown")
	str(&o.PersistDir, "persist-dir", "0", "Persistent `DIR` for a container that can be used for storing container data")
	str(&o.ContainerPidfile, "pidfile", "", "Same as --container-pidfile `PATH` (deprecated)")
	flag(&o.ReplaceListenPID, "replace-listen-pid", "", "Replace listen pid if set for oci-runtime pid")
	str(&o.Restore, "restore", "", "Restore a container from the checkpoint `DIR`")
	list(&o.RuntimeOpts, "restore-arg", "", "Same as --runtime-opt `ARG` (deprecated)")
	str(&o.Runtime, "runtime", "r", "`PATH` of the OCI runtime")
	list(&o.RuntimeArgs, "runtime-arg", "", "Additional `ARG` to pass to the runtime. Can be specified multiple times")
	list(&o.RuntimeOpts, "runtime-opt", "", "Additional `OPT` to pass to the create, restore or exec command. Can be specified multiple times")
	str(&o.SdNotifySocket, "sdnotify-socket", "", "`PATH` to the host's sd-notify socket to relay messages to")
	str(&o.SeccompNotifyPlugins, "seccomp-notify-plugins", "", "`PLUGINS` to use for managing the seccomp notifications (ignored)")
	str(&o.SeccompNotifySocket, "seccomp-notify-socket", "", "`PATH` to the socket where the seccomp notification fd is received (not supported)")
	str(&o.SocketDir, "socket-dir-path", "", "`DIR` where the container attach sockets are linked")
	flag(&o.Stdin, "stdin", "i", "Open up a pipe to pass stdin to the container")
	flag(&o.Sync, "sync", "", "Do not daemonise: stay in the foreground and exit with the container's status")
	flag(&o.Syslog, "syslog", "", "Log to syslog (use with cgroupfs cgroup manager)")
	flag(&o.SystemdCgroup, "systemd-cgroup", "s", "Enable systemd cgroup manager, rather than use the cgroupfs directly")
	flag(&o.Terminal, "terminal", "t", "Allocate a pseudo-TTY. The default is false")
	num(&o.Timeout, "timeout", "T", "Kill container after specified timeout in `SECONDS`, never if 0")
	flag(&o.Version, "version", "", "Print the version and exit")
	str(&o.RuntimeUntrusted, "runtime-untrusted", "", "`PATH` of the runtime for untrusted workloads (env "+EnvRuntimeUntrusted+")")
	list(&o.RuntimeUntrustedArgs, "runtime-untrusted-arg", "", "`ARG` replacing the --runtime-arg list for the untrusted runtime. Can be specified multiple times")
	str(&o.DefaultTrust, "default-trust", "", "Default workload trust `LEVEL`: trusted or untrusted (env "+EnvDefaultTrust+")")
	str(&o.TrustStateDir, "trust-state-dir", "", "`DIR` of trust decision records (env "+EnvTrustStateDir+")")
	return fs
}

// given records which options were present, for those whose "given" differs from
// "non-empty" (`--cid=` is given).
func (o *Options) given(fs *pflag.FlagSet) {
	o.CIDSet = fs.Changed("cid")
	o.CUUIDSet = fs.Changed("cuuid")
	o.NameSet = fs.Changed("name")
	o.BundleSet = fs.Changed("bundle")
	o.ContainerPidfileSet = fs.Changed("container-pidfile") || fs.Changed("pidfile")
	o.RuntimeSet = fs.Changed("runtime")
	o.RestoreSet = fs.Changed("restore")
	o.ExecProcessSpecSet = fs.Changed("exec-process-spec")
	o.LogTagSet = fs.Changed("log-tag")
	o.SeccompNotifySocketSet = fs.Changed("seccomp-notify-socket")
	o.RuntimeUntrustedSet = fs.Changed("runtime-untrusted")
	o.DefaultTrustSet = fs.Changed("default-trust")
	o.TrustStateDirSet = fs.Changed("trust-state-dir")
}

// stringList is a repeatable option: each occurrence appends, so that two options may
// share one list (--runtime-opt and --restore-arg interleave in command-line order).
// pflag's stringArray would start its own list at its first occurrence.
type stringList struct{ p *[]string }

func (l stringList) Set(v string) error { *l.p = append(*l.p, v); return nil }
func (l stringList) String() string     { return strings.Join(*l.p, ",") }
func (l stringList) Type() string       { return "stringArray" }

// strtolValue is an integer option read as GLib does: C's strtol(v, &end, 0), then the
// value must be non-empty, fully consumed and fit in bits (32 for GLib's int).
type strtolValue[T int | int64] struct {
	p    *T
	bits int
}

func (v strtolValue[T]) Set(s string) error {
	n, err := strtol(s, v.bits)
	if err == nil {
		*v.p = T(n)
	}
	return err
}

func (v strtolValue[T]) String() string { return strconv.FormatInt(int64(*v.p), 10) }
func (v strtolValue[T]) Type() string   { return "int" + strconv.Itoa(v.bits) }

// strtol accepts what strtol(v, &end, 0) consumes whole: leading white space, one sign,
// then 0x/0X hexadecimal, 0 octal or decimal digits. Unlike strconv, which reports an
// overflow before looking at the rest, every byte is checked first: GLib calls
// "99999999999999999999x" unparsable, not out of range. The error wraps strconv.ErrSyntax
// or strconv.ErrRange.
func strtol(v string, bits int) (int64, error) {
	s := strings.TrimLeft(v, " \t\n\v\f\r")
	digits := s
	if digits != "" && (digits[0] == '+' || digits[0] == '-') {
		digits = digits[1:]
	}
	set := "0123456789"
	switch {
	case strings.HasPrefix(digits, "0x") || strings.HasPrefix(digits, "0X"):
		set, digits = "0123456789abcdefABCDEF", digits[2:]
	case strings.HasPrefix(digits, "0"):
		set = "01234567"
	}
	if digits == "" || strings.Trim(digits, set) != "" {
		return 0, &strconv.NumError{Func: "strtol", Num: v, Err: strconv.ErrSyntax}
	}
	return strconv.ParseInt(s, 0, bits)
}
