package main

import "testing"

// Engines begin with an option: their command lines never reach a command.
func TestDispatchLeavesMonitorCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"--api-version", "1", "-c", "run"},
		{"-b", "/bundle", "-c", "attach"},
		{"--version"},
		{""},
	} {
		if _, ok := dispatchCommand(args); ok {
			t.Errorf("%q was taken for a command", args)
		}
	}
	if code, ok := dispatchCommand([]string{"frobnicate"}); !ok || code != 125 {
		t.Errorf("unknown command: %d, %v; want 125, true", code, ok)
	}
}

// The LISTEN_PID trampoline is this binary re-executed with the runtime's argv: its first
// argument is a program path, not a command.
func TestDispatchLeavesTrampoline(t *testing.T) {
	t.Setenv("_CONMON_GO_TRAMPOLINE", "0")
	if _, ok := dispatchCommand([]string{"/usr/sbin/runc", "create"}); ok {
		t.Error("the trampoline's argv was taken for a command")
	}
}
