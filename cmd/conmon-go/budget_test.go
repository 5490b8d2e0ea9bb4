package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxBinarySize (4 MiB) is the ceiling for the static, stripped binary: every node maps it once
// per monitor, and its text is shared between them, so the size is a node cost, not a
// per-container one (the per-container cost is guarded by the idle budget test of the
// direct suite).
const maxBinarySize = 4 << 20

// designModules are the libraries the binary is built on; each must be linked, so that a
// stand-in written by hand does not quietly replace one.
var designModules = []string{
	"golang.org/x/sys",
	"github.com/containerd/console",
	"github.com/spf13/pflag",
	"github.com/coreos/go-systemd/v22",
}

// TestBinaryBudget checks the binary `make` built (CONMON_BINARY, as make test exports
// it), or builds one the same way.
func TestBinaryBudget(t *testing.T) {
	bin := os.Getenv("CONMON_BINARY")
	if bin == "" {
		if testing.Short() {
			t.Skip("builds the binary")
		}
		bin = filepath.Join(t.TempDir(), "conmon-go")
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > maxBinarySize {
		t.Errorf("binary is %d bytes, over the %d-byte ceiling", st.Size(), maxBinarySize)
	}
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Skipf("%s is not a Go binary (go version -m: %v)", bin, err)
	}
	for _, m := range designModules {
		if !strings.Contains(string(out), "\tdep\t"+m+"\t") {
			t.Errorf("the binary does not link %s:\n%s", m, out)
		}
	}
}
