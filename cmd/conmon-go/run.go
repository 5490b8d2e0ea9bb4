package main

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/conmon-go/conmon-go/monitor/person"
)

func runFlags() (*pflag.FlagSet, *person.RunOptions, *uint) {
	o := &person.RunOptions{}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetInterspersed(false) // the container's command begins at the first argument
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.StringVarP(&o.Bundle, "bundle", "b", "", "OCI bundle `DIR`; its config.json is copied, the bundle only read")
	fs.StringVar(&o.Rootfs, "rootfs", "", "root filesystem `DIR` for a default configuration (read-only root, no network)")
	fs.BoolVarP(&o.Terminal, "tty", "t", false, "give the container a terminal (a bundle may ask for one itself)")
	fs.BoolVarP(&o.Stdin, "interactive", "i", false, "forward stdin to the container; with -t the terminal is in raw mode")
	fs.StringVarP(&o.Name, "name", "n", "", "container `NAME`, names the state directory (default: 12 digits of the generated id)")
	fs.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime: a `PATH` or a command in PATH")
	fs.StringArrayVarP(&o.LogPaths, "log-path", "l", nil, "log `DRIVER`: k8s-file[:PATH], journald, passthrough or none; repeatable\n(default: k8s-file in the state directory; journald when stderr is the journal)")
	fs.StringVar(&o.StateDir, "state-dir", "", "state `DIR` (default: /run/conmon-go/NAME as root, else $XDG_RUNTIME_DIR/conmon-go/NAME)")
	fs.BoolVarP(&o.Detach, "detach", "d", false, "start the container, print its name and leave it running")
	fs.BoolVar(&o.Remove, "rm", false, "remove the state directory after the container ended")
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "no report on stderr (where the state is, the exit status)")
	fs.StringVar(&o.DetachKeys, "detach-keys", person.DefaultDetachKeys, "`KEYS` that detach from the container; \"\" for none")
	stop := fs.Uint("stop-timeout", 10, "`SECONDS` a container has to end after a forwarded SIGINT, SIGTERM or SIGHUP before SIGKILL")
	fs.StringVar(&o.LogLevel, "log-level", "warning", "`LEVEL` of the monitor's own messages, sent to syslog: error, warning, info, debug")
	return fs, o, stop
}

func runUsage() string {
	fs, _, _ := runFlags()
	return `Usage: conmon-go run (--bundle DIR | --rootfs DIR) [OPTIONS] [--] [COMMAND [ARG...]]

Runs one container under the monitor, in the foreground, the way an engine would: the
monitor (this binary with conmon's options) creates it with the OCI runtime, keeps its log
and serves its attach socket; run starts it, streams its output to stdout and stderr,
forwards stdin (-i), window size changes (-t) and signals to it, and exits with its status
(128+N when killed by signal N). Its state directory holds config.json, the log (ctr.log),
the attach socket, the ctl FIFO and the exit files (exits/<id>, exit); where they are is
printed on stderr. The detach keys (default ctrl-p,ctrl-q) leave the container running;
"conmon-go attach NAME" comes back.

Under systemd, as ExecStart= of a Type=notify service, run sends READY=1 with its own pid
as MAINPID once the container runs (the monitor's pid with --detach), STOPPING=1 when it
ends, and WATCHDOG=1 while the monitor lives if WatchdogSec= is set. The container's output
goes to journald there unless -l says otherwise.

Options:
` + fs.FlagUsages() + `
Exit status: the container's; 0 after a detach; 125 when conmon-go (a bad command line
included), the monitor or the runtime fails; 126 when the command cannot be executed, 127
when it is not found.

Examples (as root; hack/mkbundle.sh /tmp/bb makes a busybox bundle):
  conmon-go run --rootfs /tmp/bb/rootfs -- sh -c 'echo hello; exit 3'; echo $?
  conmon-go run -it --rootfs /tmp/bb/rootfs -- sh
  conmon-go run --bundle /tmp/bb --name hello --rm
  conmon-go run -d --name ticker --rootfs /tmp/bb/rootfs -- sh -c 'while sleep 1; do date; done'
`
}

func runMain(args []string) int {
	fs, o, stop := runFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Stdout.WriteString(runUsage())
			return 0
		}
		return failf("run", "%v (conmon-go help run)", err)
	}
	o.Args = fs.Args()
	o.StopTimeout = time.Duration(*stop) * time.Second
	status, err := person.Run(*o)
	if err != nil {
		failf("run", "%v", err)
	}
	return status
}
