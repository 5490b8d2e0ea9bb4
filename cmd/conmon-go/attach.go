package main

import (
	"errors"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/conmon-go/conmon-go/monitor/person"
)

func attachFlags() (*pflag.FlagSet, *person.AttachOptions) {
	o := &person.AttachOptions{}
	fs := pflag.NewFlagSet("attach", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.NoStdin, "no-stdin", false, "do not forward stdin")
	fs.BoolVarP(&o.Terminal, "tty", "t", false, "the container has a terminal (default: as its bundle's config.json says)")
	fs.StringVar(&o.DetachKeys, "detach-keys", person.DefaultDetachKeys, "`KEYS` that detach; \"\" for none")
	return fs, o
}

func attachUsage() string {
	fs, _ := attachFlags()
	return `Usage: conmon-go attach [OPTIONS] DIR|SOCKET|NAME

Attaches the terminal to a running container through its monitor's attach socket, of
conmon-go or of conmon: the container's stdout and stderr go to ours, our stdin to the
container, and for a container with a terminal our terminal is in raw mode and its window
size follows ours (through the ctl FIFO next to the socket). The target is the socket, the
directory that holds it (a bundle, the state directory of "conmon-go run", podman's
userdata directory, CRI-O's <socket-dir>/<id>), or the name given to "conmon-go run".

The detach keys (default ctrl-p,ctrl-q), SIGINT, SIGTERM and SIGHUP detach and leave the
container running. When the container ends while attached, its status is read from the
exit file the monitor's command line names.

Options:
` + fs.FlagUsages() + `
Exit status: 0 after a detach; the container's when it ended while attached; 125 when
conmon-go fails: a bad command line, no such container, not an attach socket, or no exit
status to be found.

Examples:
  conmon-go attach ticker
  conmon-go attach --no-stdin /run/conmon-go/ticker/attach
  conmon-go attach /var/lib/containers/storage/overlay-containers/ID/userdata
  conmon-go attach /var/run/crio/ID
`
}

func attachMain(args []string) int {
	fs, o := attachFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Stdout.WriteString(attachUsage())
			return 0
		}
		return failf("attach", "%v (conmon-go help attach)", err)
	}
	if fs.NArg() != 1 {
		return failf("attach", "give one container: its directory, attach socket or name (conmon-go help attach)")
	}
	o.Target = fs.Arg(0)
	status, err := person.Attach(*o)
	if err != nil {
		failf("attach", "%v", err)
	}
	return status
}
