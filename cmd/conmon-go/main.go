// Command conmon-go is a per-container monitor for podman and CRI-O, a drop-in
// replacement for conmon. Installed under the name conmon-go-runtime it acts as a
// dispatching OCI runtime instead (trust-based runtime selection). Given one of the words
// of commands as its first argument, it serves a person instead: engines always begin
// with an option, so the monitor's command line is never mistaken for a command.
//
// The runtime must not watch the cgroup's CPU limit: GOMAXPROCS is set by the monitor
// itself, and the watch keeps two cgroup files open and wakes the process periodically.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"os"
	"path/filepath"

	"github.com/conmon-go/conmon-go/monitor"
	"github.com/conmon-go/conmon-go/monitor/dispatch"
)

// command is a subcommand for people.
type command struct {
	summary string
	main    func(args []string) int // args after the command word
	usage   func() string
}

// commands are the first arguments that select a command; anything else beginning with
// '-' (or nothing) is the monitor's command line. Filled by init: help refers to it.
var commands map[string]command

func init() {
	commands = map[string]command{
		"run":    {"run a container in the foreground under the monitor", runMain, runUsage},
		"attach": {"attach the terminal to a running container (conmon-go's, podman's, CRI-O's)", attachMain, attachUsage},
		"logs":   {"show a container's k8s-file log, whole lines, optionally following it", logsMain, logsUsage},
		"help":   {"explain the monitor and the commands", helpMain, helpUsage},
	}
}

func main() {
	if filepath.Base(os.Args[0]) == "conmon-go-runtime" {
		os.Exit(dispatch.Main(os.Args))
	}
	if len(os.Args) > 1 {
		if code, ok := dispatchCommand(os.Args[1:]); ok {
			os.Exit(code)
		}
	}
	os.Exit(monitor.Main(os.Args))
}

// dispatchCommand runs the command args name; ok is false for the monitor's command line.
func dispatchCommand(args []string) (code int, ok bool) {
	if monitor.Reexecuted() {
		// The monitor's own hidden modes carry their argv through unchanged (the LISTEN_PID
		// trampoline's first argument is the program it execs).
		return 0, false
	}
	word := args[0]
	switch {
	case isHelpOption(word):
		// The monitor's own help, then what it does not know about: the commands.
		code := monitor.Main(os.Args)
		os.Stdout.WriteString(commandsHelp())
		return code, true
	case word == "" || word[0] == '-':
		return 0, false
	}
	cmd, found := commands[word]
	if !found {
		return failf("", "unknown command %q: the commands are %s; the monitor's options begin with '-' (conmon-go --help)", word, commandNames()), true
	}
	defer func() {
		if r := recover(); r != nil {
			code = failf(word, "internal error: %v", r)
		}
	}()
	return cmd.main(args[1:]), true
}

func isHelpOption(a string) bool {
	return a == "-h" || a == "--help" || a == "--help-all" || a == "-?"
}
