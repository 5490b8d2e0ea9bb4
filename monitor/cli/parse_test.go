package cli

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseValues(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		check func(o *Options) bool
	}{
		{"defaults", nil, func(o *Options) bool {
			return o.SocketDir == "/var/run/crio" && o.LogSizeMax == -1 && o.LogGlobalSizeMax == -1 &&
				o.LogMaxFiles == 1 && o.LogLevel == "warning" && o.Timeout == 0 && o.ExitDelay == 0 &&
				!o.CIDSet && !o.Help
		}},
		{"long with next arg", []string{"--cid", "abc"}, func(o *Options) bool { return o.CID == "abc" && o.CIDSet }},
		{"long with =", []string{"--cid=abc"}, func(o *Options) bool { return o.CID == "abc" && o.CIDSet }},
		{"empty = counts as given", []string{"--cid=", "--cuuid="}, func(o *Options) bool {
			return o.CIDSet && o.CID == "" && o.CUUIDSet
		}},
		{"value = keeps later =", []string{"--log-label=A=b"}, func(o *Options) bool { return reflect.DeepEqual(o.LogLabels, []string{"A=b"}) }},
		{"value starting with dash", []string{"--runtime-arg", "--log-format=json", "-c", "-x"}, func(o *Options) bool {
			return reflect.DeepEqual(o.RuntimeArgs, []string{"--log-format=json"}) && o.CID == "-x"
		}},
		{"short value taken even if --", []string{"-c", "--", "-t"}, func(o *Options) bool { return o.CID == "--" && o.Terminal }},
		{"bool ignores =value", []string{"--sync=false", "--api-version=0", "--terminal="}, func(o *Options) bool {
			return o.Sync && o.APIVersion && o.Terminal
		}},
		{"api-version stray 1 ignored", []string{"--api-version", "1", "-c", "x"}, func(o *Options) bool {
			return o.APIVersion && o.CID == "x"
		}},
		{"bool never consumes next", []string{"--sync", "-c", "x"}, func(o *Options) bool { return o.Sync && o.CID == "x" }},
		{"positionals anywhere", []string{"foo", "-c", "x", "bar", "-", "baz"}, func(o *Options) bool { return o.CID == "x" }},
		{"-- ends options", []string{"-c", "x", "--", "--bogus", "-c", "y"}, func(o *Options) bool { return o.CID == "x" }},
		{"short group", []string{"-it"}, func(o *Options) bool { return o.Stdin && o.Terminal }},
		{"group with value", []string{"-ic", "ID", "-est"}, func(o *Options) bool {
			return o.Stdin && o.CID == "ID" && o.Exec && o.SystemdCgroup && o.Terminal
		}},
		{"group value may look like an option", []string{"-ic", "-u", "ID"}, func(o *Options) bool {
			return o.Stdin && o.CID == "-u" && !o.CUUIDSet
		}},
		{"value option first in group", []string{"-ci", "ID"}, func(o *Options) bool { return o.Stdin && o.CID == "ID" }},
		{"every short", []string{"-c", "c", "-u", "u", "-n", "n", "-b", "b", "-p", "p", "-P", "P", "-0", "0",
			"-r", "r", "-s", "-e", "-t", "-i", "-T", "5", "-l", "l"}, func(o *Options) bool {
			return o.CID == "c" && o.CUUID == "u" && o.Name == "n" && o.NameSet && o.Bundle == "b" && o.BundleSet &&
				o.ContainerPidfile == "p" && o.ContainerPidfileSet && o.ConmonPidfile == "P" && o.PersistDir == "0" &&
				o.Runtime == "r" && o.RuntimeSet && o.SystemdCgroup && o.Exec && o.Terminal && o.Stdin &&
				o.Timeout == 5 && reflect.DeepEqual(o.LogPaths, []string{"l"})
		}},
		{"every long name", []string{"--name", "n", "--bundle", "b", "--cuuid", "u", "--conmon-pidfile", "P",
			"--container-pidfile", "p", "--persist-dir", "0", "--runtime", "r", "--log-path", "l", "--systemd-cgroup",
			"--exec", "--terminal", "--stdin"}, func(o *Options) bool {
			return o.Name == "n" && o.NameSet && o.Bundle == "b" && o.CUUID == "u" && o.CUUIDSet && o.ConmonPidfile == "P" &&
				o.ContainerPidfile == "p" && o.ContainerPidfileSet && o.PersistDir == "0" && o.Runtime == "r" && o.RuntimeSet &&
				reflect.DeepEqual(o.LogPaths, []string{"l"}) && o.SystemdCgroup && o.Exec && o.Terminal && o.Stdin
		}},
		{"last scalar wins; pidfile alias", []string{"-c", "a", "--cid", "b", "-p", "x", "--pidfile", "y"}, func(o *Options) bool {
			return o.CID == "b" && o.ContainerPidfile == "y"
		}},
		{"arrays accumulate; restore-arg interleaves", []string{
			"--runtime-opt", "a", "--restore-arg", "b", "--runtime-opt", "c", "-l", "x", "--log-path=y",
			"--exit-command-arg", "1", "--exit-command-arg", "2", "--log-allowlist-dir", "/d",
			"--runtime-untrusted-arg", "u"}, func(o *Options) bool {
			return reflect.DeepEqual(o.RuntimeOpts, []string{"a", "b", "c"}) &&
				reflect.DeepEqual(o.LogPaths, []string{"x", "y"}) &&
				reflect.DeepEqual(o.ExitCommandArgs, []string{"1", "2"}) &&
				reflect.DeepEqual(o.LogAllowlistDirs, []string{"/d"}) &&
				reflect.DeepEqual(o.RuntimeUntrustedArgs, []string{"u"})
		}},
		{"hex", []string{"-T", "0x10"}, func(o *Options) bool { return o.Timeout == 16 }},
		{"octal", []string{"--exit-delay", "010"}, func(o *Options) bool { return o.ExitDelay == 8 }},
		{"ints", []string{"--timeout=-0X1f", "--log-max-files", "  +7", "--log-size-max", "-9223372036854775808",
			"--log-global-size-max", "9223372036854775807"}, func(o *Options) bool {
			return o.Timeout == -31 && o.LogMaxFiles == 7 && o.LogSizeMax == -9223372036854775808 &&
				o.LogGlobalSizeMax == 9223372036854775807
		}},
		{"int32 limits", []string{"--exit-delay", "-2147483648", "-T", "2147483647"}, func(o *Options) bool {
			return o.ExitDelay == -2147483648 && o.Timeout == 2147483647
		}},
		{"zeros", []string{"-T", "0", "--exit-delay", "00", "--log-max-files", "-0"}, func(o *Options) bool {
			return o.Timeout == 0 && o.ExitDelay == 0 && o.LogMaxFiles == 0
		}},
		{"all flags", []string{"--full-attach", "--no-pivot", "--no-new-keyring", "--exec-attach", "--replace-listen-pid",
			"--leave-stdin-open", "--log-rotate", "--no-container-partial-message", "--no-sync-log", "--syslog", "--version"},
			func(o *Options) bool {
				return o.FullAttach && o.NoPivot && o.NoNewKeyring && o.ExecAttach && o.ReplaceListenPID &&
					o.LeaveStdinOpen && o.LogRotate && o.NoContainerPartialMessage && o.NoSyncLog && o.Syslog && o.Version
			}},
		{"strings", []string{"--restore", "", "--exec-process-spec", "s", "--exit-command", "e", "--exit-dir", "d",
			"--socket-dir-path", "/s", "--sdnotify-socket", "n", "--log-tag", "", "--log-level", "debug",
			"--seccomp-notify-socket", "ss", "--seccomp-notify-plugins", "a.so", "--runtime-untrusted", "ru",
			"--default-trust", "untrusted", "--trust-state-dir", "td"}, func(o *Options) bool {
			return o.RestoreSet && o.Restore == "" && o.ExecProcessSpecSet && o.ExecProcessSpec == "s" &&
				o.ExitCommand == "e" && o.ExitDir == "d" && o.SocketDir == "/s" && o.SdNotifySocket == "n" &&
				o.LogTagSet && o.LogLevel == "debug" && o.SeccompNotifySocketSet && o.SeccompNotifySocket == "ss" &&
				o.SeccompNotifyPlugins == "a.so" && o.RuntimeUntrustedSet && o.RuntimeUntrusted == "ru" &&
				o.DefaultTrustSet && o.DefaultTrust == "untrusted" && o.TrustStateDirSet && o.TrustStateDir == "td"
		}},
		{"help stops the scan", []string{"-c", "x", "--help", "--bogus", "-c", "y"}, func(o *Options) bool {
			return o.Help && o.CID == "x"
		}},
		{"--help-all", []string{"--help-all", "-T", "abc"}, func(o *Options) bool { return o.Help }},
		{"-h", []string{"-h", "--bogus"}, func(o *Options) bool { return o.Help }},
		{"-? in a group", []string{"-i?x"}, func(o *Options) bool { return o.Help && o.Stdin }},
		{"-h in a group before unknown", []string{"-thZ"}, func(o *Options) bool { return o.Help && o.Terminal }},
		{"help after --", []string{"--", "--help"}, func(o *Options) bool { return !o.Help }},
		{"help as a value", []string{"-c", "--help"}, func(o *Options) bool { return !o.Help && o.CID == "--help" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := Parse(c.args)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.args, err)
			}
			if !c.check(o) {
				t.Errorf("Parse(%q) = %+v", c.args, o)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const p = "conmon: option parsing failed: "
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus=1"}, "Unknown option --bogus=1"},
		{[]string{"-xyz"}, "Unknown option -xyz"},
		{[]string{"-cID"}, "Missing argument for -c"},
		{[]string{"-cID", "x"}, "Unknown option -cID"},
		{[]string{"-cu", "A", "B"}, "Error parsing option -u"},
		{[]string{"-ict", "ID", "-rT", "x"}, "Error parsing option -T"},
		{[]string{"--cid"}, "Missing argument for --cid"},
		{[]string{"-c", "x", "-T"}, "Missing argument for -T"},
		{[]string{"--help=x"}, "Unknown option --help=x"},
		{[]string{"--help-main"}, "Unknown option --help-main"},
		{[]string{"--ci", "x"}, "Unknown option --ci"}, // no abbreviations
		{[]string{"--cidx=1"}, "Unknown option --cidx=1"},
		{[]string{"--version", "--bogus"}, "Unknown option --bogus"},
		{[]string{"--bogus", "--help"}, "Unknown option --bogus"},
		{[]string{"-T", "abc"}, "Cannot parse integer value “abc” for -T"},
		{[]string{"--timeout", "5s"}, "Cannot parse integer value “5s” for --timeout"},
		{[]string{"--timeout=abc"}, "Cannot parse integer value “abc” for --timeout"},
		{[]string{"-T", ""}, "Cannot parse integer value “” for -T"},
		{[]string{"-T", "0x"}, "Cannot parse integer value “0x” for -T"},
		{[]string{"-T", "08"}, "Cannot parse integer value “08” for -T"},
		{[]string{"-T", "0x-1"}, "Cannot parse integer value “0x-1” for -T"},
		{[]string{"-T", "1_0"}, "Cannot parse integer value “1_0” for -T"},
		{[]string{"-T", "5 "}, "Cannot parse integer value “5 ” for -T"},
		{[]string{"-T", "- 5"}, "Cannot parse integer value “- 5” for -T"},
		{[]string{"-T", "+-5"}, "Cannot parse integer value “+-5” for -T"},
		{[]string{"--log-max-files", "2147483648"}, "Integer value “2147483648” for --log-max-files out of range"},
		{[]string{"--exit-delay", "-2147483649"}, "Integer value “-2147483649” for --exit-delay out of range"},
		{[]string{"--log-size-max", "9223372036854775808"}, "Integer value “9223372036854775808” for --log-size-max out of range"},
		{[]string{"--log-global-size-max", "-0x8000000000000001"}, "Integer value “-0x8000000000000001” for --log-global-size-max out of range"},
		{[]string{"-T", "99999999999999999999999"}, "Integer value “99999999999999999999999” for -T out of range"},
		{[]string{"-T", "99999999999999999999999x"}, "Cannot parse integer value “99999999999999999999999x” for -T"},
		{[]string{"-T", "abc", "--help"}, "Cannot parse integer value “abc” for -T"},
		{[]string{"-TZ", "1"}, "Unknown option -TZ"},
		{[]string{"-TZ", "q"}, "Cannot parse integer value “q” for -T"},
		// Arguments pflag reads in its own way (bad syntax, go test flags, -x=value, help).
		{[]string{"---x"}, "Unknown option ---x"},
		{[]string{"--=x"}, "Unknown option --=x"},
		{[]string{"-test.v"}, "Unknown option -test.v"},
		{[]string{"-c=x", "y"}, "Unknown option -c=x"},
		{[]string{"-c=x"}, "Missing argument for -c"},
		{[]string{"-ic"}, "Missing argument for -c"},
		{[]string{"-i-cid", "x"}, "Unknown option -i-cid"},
		{[]string{"--help="}, "Unknown option --help="},
		{[]string{"--help-all=1"}, "Unknown option --help-all=1"},
		{[]string{"-T", "0b1"}, "Cannot parse integer value “0b1” for -T"},
		{[]string{"-T", "0o7"}, "Cannot parse integer value “0o7” for -T"},
		{[]string{"--exit-delay=0x80000000"}, "Integer value “0x80000000” for --exit-delay out of range"},
	}
	for _, c := range cases {
		o, err := Parse(c.args)
		pe, ok := err.(*ParseError)
		if !ok || o != nil {
			t.Errorf("Parse(%q) = %v, %v; want *ParseError", c.args, o, err)
			continue
		}
		if got := pe.Error(); got != p+c.want {
			t.Errorf("Parse(%q) error %q, want %q", c.args, got, p+c.want)
		}
	}
}

// TestFlagSetConsistent: building the FlagSet panics on a duplicate long or short name.
func TestFlagSetConsistent(t *testing.T) {
	fs := defaults().flagSet()
	fs.VisitAll(func(f *pflag.Flag) {
		isFlag := f.NoOptDefVal != ""
		if hasArg := strings.Count(f.Usage, "`") == 2; isFlag == hasArg {
			t.Errorf("--%s: placeholder in %q does not match its kind", f.Name, f.Usage)
		}
	})
	if fs.ShorthandLookup("h") != nil || fs.ShorthandLookup("?") != nil {
		t.Error("-h and -? are reserved for help")
	}
}

// TestEveryOption pins the option names and kinds (f: flag, v: one value, r: repeatable).
func TestEveryOption(t *testing.T) {
	want := "api-version f,bundle:b v,cid:c v,conmon-pidfile:P v,container-pidfile:p v,cuuid:u v,exec:e f," +
		"exec-attach f,exec-process-spec v,exit-command v,exit-command-arg r,exit-delay v,exit-dir v,full-attach f," +
		"leave-stdin-open f,log-allowlist-dir r,log-global-size-max v,log-label r,log-level v,log-max-files v," +
		"log-path:l r,log-rotate f,log-size-max v,log-tag v,name:n v,no-container-partial-message f," +
		"no-new-keyring f,no-pivot f,no-sync-log f,persist-dir:0 v,pidfile v,replace-listen-pid f,restore v," +
		"restore-arg r,runtime:r v,runtime-arg r,runtime-opt r,sdnotify-socket v,seccomp-notify-plugins v," +
		"seccomp-notify-socket v,socket-dir-path v,stdin:i f,sync f,syslog f,systemd-cgroup:s f,terminal:t f," +
		"timeout:T v,version f,runtime-untrusted v,runtime-untrusted-arg r,default-trust v,trust-state-dir v"
	var got []string
	defaults().flagSet().VisitAll(func(f *pflag.Flag) {
		name, kind := f.Name, "v"
		if f.Shorthand != "" {
			name += ":" + f.Shorthand
		}
		switch {
		case f.NoOptDefVal != "":
			kind = "f"
		case f.Value.Type() == "stringArray":
			kind = "r"
		}
		got = append(got, name+" "+kind)
	})
	if g := strings.Join(got, ","); g != want {
		t.Errorf("options\n got %s\nwant %s", g, want)
	}
}

func TestUsageAndVersion(t *testing.T) {
	u := Usage()
	for _, s := range []string{"Usage:\n", "Help Options:", "-h, --help", "--help-all", "Application Options:",
		"--exec", "--log-global-size-max", "journald", "-c, --cid=ID", "    --api-version  "} {
		if !strings.Contains(u, s) {
			t.Errorf("usage lacks %q", s)
		}
	}
	defaults().flagSet().VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(u, "--"+f.Name) {
			t.Errorf("usage lacks --%s", f.Name)
		}
	})
	// Defaults come from the FlagSet.
	for _, s := range []string{"(default /var/run/crio)", "(default warning)", "(default -1)", "-l, --log-path=[DRIVER:]PATH"} {
		if !strings.Contains(u, s) {
			t.Errorf("usage lacks %q", s)
		}
	}
	if got := Version("conmon-go 0.1 abc"); got != "conmon version 2.2.1\ncommit: conmon-go 0.1 abc\n" {
		t.Errorf("Version = %q", got)
	}
}

// glibMessage matches every parse error GLib prints; none of pflag's own texts may leak.
var glibMessage = regexp.MustCompile(`^(Unknown option -.*|Missing argument for -[^-]|Missing argument for --[a-z-]+|` +
	`Error parsing option -.|Cannot parse integer value “.*” for --?[a-zT-]+|Integer value “.*” for --?[a-zT-]+ out of range)$`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"-c x -it", "--cid=", "-ic ID", "-T 0x10", "--bogus=1", "-cID", "--help", "-- -c",
		"--log-size-max -9223372036854775808", "-?", "--sync=false --api-version 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Parse(strings.Fields(s))
		if (o == nil) == (err == nil) {
			t.Fatalf("Parse(%q) = %v, %v", s, o, err)
		}
		if pe, ok := err.(*ParseError); err != nil && (!ok || !glibMessage.MatchString(pe.Msg)) {
			t.Fatalf("Parse(%q) error %q is not one of GLib's", s, err)
		}
		if o != nil {
			_, _ = o.Validate("/tmp", func(string) string { return "" })
		}
	})
}

// BenchmarkParse reports the cost of building the FlagSet and parsing a podman create.
func BenchmarkParse(b *testing.B) {
	args := strings.Fields("--api-version 1 -c 0123456789abcdef0123456789abcdef -u 0123456789abcdef -r /usr/bin/runc " +
		"-b /var/lib/containers/b -p /run/b/pidfile -n name --exit-dir /run/exits --full-attach -s -l k8s-file:/b/ctr.log " +
		"--log-level warning --runtime-arg --log-format=json --runtime-arg --log --runtime-arg=/run/b/oci-log " +
		"--conmon-pidfile /run/b/conmon.pid --exit-command /usr/bin/podman --exit-command-arg --root " +
		"--exit-command-arg /var/lib/containers --exit-command-arg container --exit-command-arg cleanup")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(args); err != nil {
			b.Fatal(err)
		}
	}
}
