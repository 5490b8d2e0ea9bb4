package person

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// attach and logs find a container's file by path, by directory and by run's name alike.
func TestLocate(t *testing.T) {
	base, err := StateBase()
	if err != nil {
		t.Skip(err)
	}
	name := "locate-test-" + strconv.Itoa(os.Getpid())
	state := filepath.Join(base, name)
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	log := filepath.Join(state, "ctr.log")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bare := t.TempDir()
	for _, c := range []struct{ target, want, fails string }{
		{log, log, ""},
		{state, log, ""},
		{name, log, ""},
		{bare, "", bare + " has no the log"},
		{name + "-none", "", name + "-none: no such file, directory or container name (no " + state + "-none)"},
		{filepath.Join(bare, "none"), "", "no such file or directory"},
	} {
		got, err := Locate(c.target, "ctr.log", "the log")
		switch {
		case c.fails == "" && (err != nil || got != c.want):
			t.Errorf("Locate(%s) = %q, %v; want %q", c.target, got, err, c.want)
		case c.fails != "" && (err == nil || !strings.Contains(err.Error(), c.fails) || ExitCode(err) != ExitFailure):
			t.Errorf("Locate(%s) = %q, %v; want an error with %q", c.target, got, err, c.fails)
		}
	}
}
