package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/conmon-go/conmon-go/monitor/person"
	"github.com/conmon-go/conmon-go/ptyio/k8sfile/logview"
)

func logsFlags(o *logview.Options, since *string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("logs", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.BoolVarP(&o.Follow, "follow", "f", false, "go on showing new output until the container's monitor exits")
	fs.BoolVarP(&o.Timestamps, "timestamps", "t", false, "prefix each line with its timestamp")
	fs.IntVar(&o.Tail, "tail", -1, "show only the last `N` lines; -1: all")
	fs.StringVar(since, "since", "", "show only lines since `T`: an RFC 3339 time or a duration back from now (10m, 1h30m)")
	return fs
}

func logsUsage() string {
	return `Usage: conmon-go logs [OPTIONS] PATH|NAME

Shows a k8s-file container log (written by conmon-go or conmon): the container's stdout
on stdout and its stderr on stderr, records joined into whole lines.

PATH is the log file or the directory holding it as ctr.log (a podman container's
userdata directory, a conmon-go run state directory); NAME is the name given to
"conmon-go run", as for attach: its log is /run/conmon-go/NAME/ctr.log as root, else
$XDG_RUNTIME_DIR/conmon-go/NAME/ctr.log.

With --follow it goes on showing what the container writes, across log reopens,
rotations and truncations, and ends when the container's monitor has exited.

Options:
` + logsFlags(&logview.Options{}, new(string)).FlagUsages() + `
Exit status: 0; 125 for a bad command line, no such file or container, a file that is not
a k8s-file log or a failure to read it, as for every command.

Examples:
  conmon-go logs --tail 20 -f /run/conmon-go/web/ctr.log
  conmon-go logs --since 10m --timestamps web
`
}

func logsMain(args []string) int { return logs(args, os.Stdout, os.Stderr) }

// logs is the logs command, writing to stdout and stderr.
func logs(args []string, stdout, stderr io.Writer) int {
	var o logview.Options
	var since string
	flags := logsFlags(&o, &since)
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			io.WriteString(stdout, logsUsage())
			return 0
		}
		return failTo(stderr, "logs", "%v (conmon-go help logs)", err)
	}
	if flags.NArg() != 1 {
		return failTo(stderr, "logs", "want one log file, directory or container name, got %d arguments (conmon-go help logs)", flags.NArg())
	}
	var err error
	if o.Since, err = parseSince(since, time.Now()); err != nil {
		return failTo(stderr, "logs", "--since: %v", err)
	}
	path, err := person.Locate(flags.Arg(0), "ctr.log", "ctr.log")
	if err == nil {
		err = logview.Show(path, o, stdout, stderr)
	}
	if err != nil {
		return failTo(stderr, "logs", "%v", err)
	}
	return 0
}

// parseSince reads an RFC 3339 time, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2006-01-02T15:04:05Z07:00) nor a duration (10m)", s)
	}
	return now.Add(-d), nil
}
