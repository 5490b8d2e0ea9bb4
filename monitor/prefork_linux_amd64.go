package monitor

// preforkEntry is the binary's entry point when linked with
// -E github.com/conmon-go/conmon-go/monitor.preforkEntry (prefork.go); it ends by jumping to
// the Go runtime's entry, _rt0_amd64_linux.
func preforkEntry()
