// Command conmon-go is a per-container monitor for podman and CRI-O, a drop-in
// replacement for conmon. Installed under the name conmon-go-runtime it acts as a
// dispatching OCI runtime instead (trust-based runtime selection).
package main

import (
	"os"
	"path/filepath"

	"github.com/conmon-go/conmon-go/monitor"
	"github.com/conmon-go/conmon-go/monitor/dispatch"
)

func main() {
	if filepath.Base(os.Args[0]) == "conmon-go-runtime" {
		os.Exit(dispatch.Main(os.Args))
	}
	os.Exit(monitor.Main(os.Args))
}
