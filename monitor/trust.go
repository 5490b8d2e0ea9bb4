package monitor

import (
	"path/filepath"

	"github.com/conmon-go/conmon-go/monitor/cli"
	"github.com/conmon-go/conmon-go/monitor/diag"
	"github.com/conmon-go/conmon-go/monitor/trust"
)

// dispatcherName is the name under which the binary acts as the dispatching runtime.
const dispatcherName = "conmon-go-runtime"

// runtimeChoice is the runtime (and its global arguments) trust selection picked.
type runtimeChoice struct {
	path      string
	args      []string
	recordDir string // where this monitor recorded the decision; removed at exit
}

// selectRuntime applies trust-based runtime selection (docs/trust.md §4). The launcher
// announces the decision (stderr by level, syslog always); the monitor repeats it silently
// from the same inputs and records it before the runtime starts.
func selectRuntime(opts *cli.Options, log *diag.Printer, announce bool) (runtimeChoice, error) {
	if filepath.Base(opts.Runtime) == dispatcherName {
		// The dispatcher decides and keeps the record for the container's whole life
		// (docs/trust.md §9); a decision and record of ours would bypass it and our record would
		// be removed at exit, before the engine's delete.
		if announce {
			log.Debugf("runtime selection: left to the dispatching runtime %s", opts.Runtime)
		}
		return runtimeChoice{path: opts.Runtime, args: opts.RuntimeArgs}, nil
	}
	s := trust.Settings{
		Trusted:      opts.Runtime,
		Untrusted:    opts.Trust.RuntimeUntrusted,
		DefaultTrust: opts.Trust.DefaultTrust,
		StateDir:     opts.Trust.StateDir,
		Log:          log,
	}
	var d trust.Decision
	if opts.Exec {
		d = trust.DecideExec(s, opts.CID)
	} else {
		var err error
		if d, err = trust.Decide(s, opts.Bundle, opts.CID); err != nil {
			return runtimeChoice{}, err
		}
	}
	choice := runtimeChoice{path: d.Runtime, args: opts.RuntimeArgs}
	if d.UseUntrusted && len(opts.Trust.UntrustedArgs) > 0 {
		choice.args = opts.Trust.UntrustedArgs
	}
	if announce {
		level := diag.Info
		if d.Warning {
			level = diag.Warning
		}
		log.Record(level, d.LogText())
		return choice, nil
	}
	if !opts.Exec && s.StateDir != "" {
		if err := trust.WriteRecord(s.StateDir, d); err != nil {
			return runtimeChoice{}, err
		}
		choice.recordDir = s.StateDir
	}
	return choice, nil
}
