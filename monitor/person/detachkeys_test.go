package person

import (
	"bytes"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	for in, want := range map[string][]byte{
		"ctrl-p,ctrl-q": {0x10, 0x11},
		"ctrl-a,d":      {0x01, 'd'},
		"CTRL-Z":        {0x1a},
		"ctrl-@,ctrl-_": {0x00, 0x1f},
		"ctrl-[":        {0x1b},
		"":              nil,
	} {
		got, err := parseDetachKeys(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("parseDetachKeys(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "ctrl-1", "ab", "ctrl-p,", "p,,q"} {
		if _, err := parseDetachKeys(bad); err == nil {
			t.Errorf("parseDetachKeys(%q) accepted", bad)
		}
	}
}

// The sequence is found across reads; bytes that only began it are forwarded once it is
// clear they are ordinary input, in their original order.
func TestDetacherScan(t *testing.T) {
	keys := []byte{0x10, 0x11}
	tests := []struct {
		name   string
		chunks []string
		want   string // forwarded bytes
		hit    bool
	}{
		{"plain", []string{"ls\r"}, "ls\r", false},
		{"sequence", []string{"ab\x10\x11cd"}, "ab", true},
		{"split", []string{"ab\x10", "\x11cd"}, "ab", true},
		{"false start", []string{"a\x10b"}, "a\x10b", false},
		{"false start across reads", []string{"a\x10", "b"}, "a\x10b", false},
		{"restart", []string{"\x10\x10\x11"}, "\x10", true},
	}
	for _, tc := range tests {
		d := detacher{keys: keys}
		var out []byte
		hit := false
		for _, c := range tc.chunks {
			p, h := d.scan([]byte(c))
			out = append(out, p...)
			if h {
				hit = true
				break
			}
		}
		if string(out) != tc.want || hit != tc.hit {
			t.Errorf("%s: forwarded %q, detach %v; want %q, %v", tc.name, out, hit, tc.want, tc.hit)
		}
	}
	d := detacher{keys: keys}
	d.scan([]byte("x\x10"))
	if p := d.pending(); string(p) != "\x10" {
		t.Errorf("pending at the end of input = %q; want the held byte", p)
	}
	if p, hit := (&detacher{}).scan([]byte("\x10\x11")); hit || string(p) != "\x10\x11" {
		t.Errorf("no keys: %q, %v", p, hit)
	}
}
