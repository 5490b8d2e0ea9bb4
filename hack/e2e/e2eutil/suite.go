package e2eutil

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Suite is what a root integration suite needs from the machine: runc, busybox, a
// template bundle and the monitor under test.
type Suite struct {
	Tmp      string // private temporary directory; the caller removes it
	Skip     string // non-empty: the machine cannot run the suite, every test skips with it
	Runc     string // absolute, as engines pass it
	Mkbundle string // hack/mkbundle.sh
	Template string // a busybox bundle; its rootfs can be shared (MakeBundle)
	Monitor  string // the binary under test (MonitorBinary)
	Version  string // its --version output on one line
	ConmonGo bool   // the second --version line names conmon-go
}

// SetUp prepares a suite in a new temporary directory named after prefix. It must run in
// TestMain after flag.Parse. Unless -test.parallel was given, up to parallel tests run at
// once: they wait on runc and the kernel, not on the CPU (the default is GOMAXPROCS).
func SetUp(prefix string, parallel int) (*Suite, error) {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(parallel))
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	s := &Suite{Tmp: tmp, Mkbundle: filepath.Join(root, "hack", "mkbundle.sh"), Template: filepath.Join(tmp, "template")}
	switch {
	case os.Geteuid() != 0:
		s.Skip = "needs root: the tests run runc containers"
	default:
		if s.Runc, err = exec.LookPath("runc"); err != nil {
			s.Skip = "needs runc in PATH: " + err.Error()
		} else if _, err = exec.LookPath("busybox"); err != nil {
			s.Skip = "needs busybox (busybox-static) in PATH: " + err.Error()
		}
	}
	if s.Skip != "" {
		return s, nil
	}
	fail := func(err error) (*Suite, error) {
		os.RemoveAll(tmp)
		return nil, err
	}
	if s.Runc, err = filepath.Abs(s.Runc); err != nil {
		return fail(err)
	}
	if err := MakeBundle(s.Mkbundle, "", s.Template); err != nil {
		return fail(err)
	}
	if s.Monitor, err = MonitorBinary(root, tmp); err != nil {
		return fail(err)
	}
	out, err := exec.Command(s.Monitor, "--version").Output()
	if err != nil {
		return fail(fmt.Errorf("%s --version: %w", s.Monitor, err))
	}
	lines := strings.Split(string(out), "\n")
	s.ConmonGo = len(lines) > 1 && strings.Contains(lines[1], "conmon-go")
	s.Version = strings.Join(lines, " ")
	return s, nil
}
