package dispatch

import (
	"slices"
	"strings"
)

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
