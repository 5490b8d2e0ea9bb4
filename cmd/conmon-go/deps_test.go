package main

import (
	"os/exec"
	"strings"
	"testing"
)

// Packages that would put hundreds of kB of text into a binary every container maps
// (README, Layout): net (go-systemd, log/syslog), fmt, encoding/json.
var heavyPackages = []string{"net", "log", "log/syslog", "fmt", "encoding/json"}

func TestNoHeavyDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["golang.org/x/sys/unix"] {
		t.Fatalf("go list -deps did not list the binary's packages:\n%s", out)
	}
	for _, p := range heavyPackages {
		if deps[p] {
			t.Errorf("the binary imports %s", p)
		}
	}
}
