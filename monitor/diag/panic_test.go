package diag

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// recordLog is a Logger with Printer's Record, as the monitor passes it.
type recordLog struct {
	levels []Level
	msgs   []string
}

func (l *recordLog) Warnf(string, ...any)  {}
func (l *recordLog) Debugf(string, ...any) {}
func (l *recordLog) Record(v Level, msg string) {
	l.levels = append(l.levels, v)
	l.msgs = append(l.msgs, msg)
}

// In production a panic is reported as an error with its stack, appended to the panic
// file, remembered for the monitor, and the part is switched off.
func TestRecoverReportsAndSwitchesOff(t *testing.T) {
	ProductionPanics(t.Cleanup)
	file := filepath.Join(t.TempDir(), "panics")
	t.Setenv(EnvPanicFile, file)
	log := &recordLog{}
	stopped := make(chan struct{})
	for _, v := range []string{"first", "second"} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer Recover(log, "test part", func() { stopped <- struct{}{} })
			panic(v)
		}()
		<-stopped
		<-done
	}
	if len(log.msgs) != 2 || log.levels[0] != Error ||
		!strings.HasPrefix(log.msgs[0], "internal error in test part: first\ngoroutine ") ||
		!strings.Contains(log.msgs[0], "diag.TestRecoverReportsAndSwitchesOff") {
		t.Fatalf("reports %q at levels %v", log.msgs, log.levels)
	}
	if got := Panicked(); got != "internal error in test part: first" {
		t.Errorf("Panicked() = %q, want the first report", got)
	}
	data, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(data, []byte("internal error in test part: first\n")) ||
		!bytes.Contains(data, []byte("\ninternal error in test part: second\n")) {
		t.Errorf("panic file %q, %v", data, err)
	}
}

// Under go test a panic is reported, then raised again: the test binary dies and the test
// fails. Checked in a child process running TestRepanicChild.
func TestRecoverRepanicsUnderTest(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRepanicChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DIAG_REPANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the child passed: %s", out)
	}
	for _, want := range []string{"internal error in child part: boom", "panic: boom", "TestRepanicChild"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("switched off")) {
		t.Errorf("the part was switched off under go test:\n%s", out)
	}
}

func TestRepanicChild(t *testing.T) {
	if os.Getenv("DIAG_REPANIC_CHILD") == "" {
		t.Skip("run by TestRecoverRepanicsUnderTest")
	}
	log := New(Warning, os.Stderr, false, "cid", "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer Recover(log, "child part", func() { os.Stderr.WriteString("switched off\n") })
		panic("boom")
	}()
	<-done
}

// PanicPoint fires once, at the point named, and nowhere else.
func TestPanicPoint(t *testing.T) {
	InjectPanic(t.Cleanup, "here")
	PanicPoint("elsewhere")
	func() {
		defer func() {
			if v := recover(); v != "injected panic at here" {
				t.Errorf("recovered %v", v)
			}
		}()
		PanicPoint("here")
	}()
	PanicPoint("here") // once only
}
