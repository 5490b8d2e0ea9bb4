package ctl

import (
	"fmt"
	"testing"
)

// controlTable is docs/protocol.md §6.2's table plus sscanf corner cases.
var controlTable = []struct {
	line string
	msg  Message
	err  string
}{
	{"1 2 2", Message{1, 2, 2}, ""},
	{"1 0010 0020", Message{1, 10, 20}, ""},
	{"1 1000 1000", Message{1, 1000, 1000}, ""},
	{"1 2 2 3", Message{1, 2, 2}, ""},
	{"1 30 100", Message{1, 30, 100}, ""},
	{"1 0 0", Message{1, 0, 0}, ""},
	{"2 0 0", Message{2, 0, 0}, ""},
	{"2 1 1", Message{2, 1, 1}, ""},
	{"  \t1\v+5  7trailing", Message{1, 5, 7}, ""},
	{"1+2+3", Message{1, 2, 3}, ""},
	{"1 -1 -1", Message{}, "Invalid window size: -1x-1 (must be between 0 and 1000)"},
	{"1 1001 1000", Message{}, "Invalid window size: 1001x1000 (must be between 0 and 1000)"},
	{"1 1000 1001", Message{}, "Invalid window size: 1000x1001 (must be between 0 and 1000)"},
	{"1 100000 100000", Message{}, "Invalid window size: 100000x100000 (must be between 0 and 1000)"},
	{"1 65535 65535", Message{}, "Invalid window size: 65535x65535 (must be between 0 and 1000)"},
	{"2 1001 0", Message{}, "Invalid window size: 1001x0 (must be between 0 and 1000)"},
	{"1 4294967298 2", Message{}, "Invalid window size: 4294967296x2 (must be between 0 and 1000)"},
	{"1 99999999999999999999999 2", Message{}, "Invalid window size: 4294967296x2 (must be between 0 and 1000)"},
	{"1", Message{}, "Invalid control message format"},
	{"1 2", Message{}, "Invalid control message format"},
	{"1 10.5 20.3", Message{}, "Invalid control message format"},
	{"1 0x10 0x20", Message{}, "Invalid control message format"},
	{"foo", Message{}, "Invalid control message format"},
	{"", Message{}, "Invalid control message format"},
	{"   ", Message{}, "Invalid control message format"},
	{"1 - 2 3", Message{}, "Invalid control message format"},
	{"1 2\x00 3", Message{}, "Invalid control message format"},
	{"999", Message{}, "Invalid control message format"},
	{"999 2 2", Message{}, "Invalid control message type: 999"},
	{"0 2 2", Message{}, "Invalid control message type: 0"},
	{"-1 2 2", Message{}, "Invalid control message type: -1"},
	{"4294967297 2 2", Message{}, "Invalid control message type: 4294967296"},
}

func TestParseControl(t *testing.T) {
	for _, tc := range controlTable {
		msg, err := ParseControl([]byte(tc.line))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err || msg != tc.msg {
			t.Errorf("%q: got %+v, %q; want %+v, %q", tc.line, msg, got, tc.msg, tc.err)
		}
	}
}

func TestParseWinsz(t *testing.T) {
	for _, tc := range []struct {
		line       string
		rows, cols int
		err        string
	}{
		{"30 100", 30, 100, ""},
		{"0010 0020 junk", 10, 20, ""},
		{"1000 0", 1000, 0, ""},
		{"30", 0, 0, "Failed to parse window size"},
		{"x 1", 0, 0, "Failed to parse window size"},
		{"1001 1", 0, 0, "Invalid window size: 1001x1 (must be between 0 and 1000)"},
		{"-5 1", 0, 0, "Invalid window size: -5x1 (must be between 0 and 1000)"},
	} {
		rows, cols, err := ParseWinsz([]byte(tc.line))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err || rows != tc.rows || cols != tc.cols {
			t.Errorf("%q: got %d %d %q", tc.line, rows, cols, got)
		}
	}
}

func FuzzParseControl(f *testing.F) {
	for _, tc := range controlTable {
		f.Add([]byte(tc.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		msg, err := ParseControl(line)
		if err != nil {
			if msg != (Message{}) {
				t.Fatalf("rejected line %q returned %+v", line, msg)
			}
			return
		}
		if msg.Type != TypeResize && msg.Type != TypeReopen ||
			msg.A < 0 || msg.A > 1000 || msg.B < 0 || msg.B > 1000 {
			t.Fatalf("accepted out-of-range %+v from %q", msg, line)
		}
		// The canonical form of an accepted line parses to the same message.
		again, err := ParseControl(fmt.Appendf(nil, "%d %d %d", msg.Type, msg.A, msg.B))
		if err != nil || again != msg {
			t.Fatalf("%+v does not round-trip: %+v, %v", msg, again, err)
		}
	})
}
