package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/conmon-go/conmon-go/monitor/person"
)

const overview = `conmon-go is a container monitor with two faces.

For engines: a drop-in replacement for conmon. podman and CRI-O start one monitor per
container with conmon's options (conmon-go --api-version 1 -c ID -b BUNDLE -r RUNTIME ...):
it runs the OCI runtime, keeps the container's log, serves the attach socket and writes
the exit files. "conmon-go --help" lists those options. Configure it with
podman --conmon /usr/local/bin/conmon-go, or conmon_path/monitor_path in the engine's config.

For people: commands that drive the same monitor by hand, given as the first argument.
Each fails with one line on stderr and exit status 125, as podman does; run and attach
otherwise exit with the container's status.
`

const overviewExamples = `
Examples (as root, with a busybox bundle from hack/mkbundle.sh /tmp/bb):
  conmon-go run --rootfs /tmp/bb/rootfs -- sh -c 'echo hello; exit 3'
  conmon-go run -it --rootfs /tmp/bb/rootfs -- sh
  conmon-go run -d --name web --bundle /tmp/bb -- sh -c 'while sleep 1; do date; done'
  conmon-go attach web
  conmon-go help run
`

// commandList lists the commands with their summaries, one a line.
func commandList() string {
	var b strings.Builder
	for _, name := range sortedCommands() {
		fmt.Fprintf(&b, "  %-8s %s\n", name, commands[name].summary)
	}
	return b.String()
}

func sortedCommands() []string {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func commandNames() string { return strings.Join(sortedCommands(), ", ") }

// commandsHelp follows the monitor's --help: the face it does not describe.
func commandsHelp() string {
	return "Commands for people (first argument; \"conmon-go help\" explains both faces):\n" +
		commandList() + overviewExamples
}

func helpUsage() string {
	return "Usage: conmon-go help [COMMAND]\n\nExplains conmon-go, or one command.\n\nExit status: 0; 125 for an unknown command.\n"
}

func helpMain(args []string) int {
	switch {
	case len(args) == 0:
		os.Stdout.WriteString(overview + "\n" + commandList() + overviewExamples)
		return 0
	case len(args) > 1:
		return failf("help", "one command at a time (%s)", commandNames())
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return failf("help", "unknown command %q: the commands are %s", args[0], commandNames())
	}
	os.Stdout.WriteString(cmd.usage())
	return 0
}

// failf prints one line on stderr, "conmon-go[ <cmd>]: <message>", and returns the status
// of conmon-go's own failures, the same for every command.
func failf(cmd, format string, args ...any) int {
	return failTo(os.Stderr, cmd, format, args...)
}

// failTo is failf writing to w.
func failTo(w io.Writer, cmd, format string, args ...any) int {
	prefix := "conmon-go: "
	if cmd != "" {
		prefix = "conmon-go " + cmd + ": "
	}
	fmt.Fprintf(w, prefix+format+"\n", args...)
	return person.ExitFailure
}
