// Command conmon-go is a per-container monitor for podman and CRI-O, a drop-in
// replacement for conmon. Installed under the name conmon-go-runtime it acts as a
// dispatching OCI runtime instead (trust-based runtime selection).
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

// subcommands are the faces for people, recognised only as the first argument: engines
// always start with a flag.
var subcommands = map[string]func(args []string) int{
	"logs": logsMain,
}

func main() {
	if filepath.Base(os.Args[0]) == "conmon-go-runtime" {
		os.Exit(dispatch.Main(os.Args))
	}
	if len(os.Args) > 1 {
		if sub, ok := subcommands[os.Args[1]]; ok {
			os.Exit(sub(os.Args[2:]))
		}
	}
	os.Exit(monitor.Main(os.Args))
}
