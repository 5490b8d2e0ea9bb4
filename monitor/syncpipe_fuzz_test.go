package monitor

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The structures the engines decode a sync message into.
type (
	podmanSync struct { // podman: every message with --api-version
		Data    int    `json:"data"`
		Message string `json:"message,omitempty"`
	}
	crioPid struct { // CRI-O create and restore
		Pid     int    `json:"pid"`
		Message string `json:"message,omitempty"`
	}
	crioExit struct { // CRI-O ExecSync
		ExitCode int32  `json:"exit_code"`
		Message  string `json:"message,omitempty"`
	}
)

// escapedLen is the length of s escaped as docs/protocol.md §3.4 prescribes.
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case strings.IndexByte("\"\\/\n\r\t\b\f", c) >= 0:
			n += 2
		case c < 0x20 || c == 0x7f:
			n += 6
		default:
			n++
		}
	}
	return n
}

// unescape reverses docs/protocol.md §3.4 on the raw bytes between the message's quotes.
func unescape(t *testing.T, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case '"', '\\', '/':
			b.WriteByte(c)
		case 'n', 'r', 't', 'b', 'f':
			b.WriteByte(map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', 'b': '\b', 'f': '\f'}[c])
		case 'u':
			v, err := strconv.ParseUint(s[i+1:i+5], 16, 8)
			if err != nil || s[i+1:i+3] != "00" || strings.ToLower(s[i+1:i+5]) != s[i+1:i+5] {
				t.Fatalf("escape %q", s[i-1:i+5])
			}
			b.WriteByte(byte(v))
			i += 4
		default:
			t.Fatalf("escape \\%c", c)
		}
	}
	return b.String()
}

// goString is what Go's encoding/json makes of raw message bytes: each byte that is not part
// of a valid UTF-8 sequence becomes U+FFFD, everything else is kept.
func goString(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// Any runtime stderr (any bytes, any length) becomes one line of at most 4096 bytes that is
// valid JSON for podman's and CRI-O's decoders. What it keeps is defined exactly: the
// message is the longest prefix of the text that fits, cut only between UTF-8 sequences
// (an invalid byte counts as a sequence of its own); its bytes are escaped as docs/protocol.md
// §3.4 says, so unescaping gives back exactly that prefix, invalid bytes included; Go's
// decoder turns each invalid byte into U+FFFD and keeps all valid UTF-8 as it is.
func FuzzSyncMessage(f *testing.F) {
	f.Add(0, int32(-1), "runc create failed: exec: \"/x\": stat /x: no such file or directory\n")
	f.Add(1, int32(-1), "command timed out")
	f.Add(2, int32(137), "")
	f.Add(0, int32(13295), "\xff\xfe\x00\x1f\x7f\\ é \u2028 \xed\xa0\x80 \U0001F600")
	f.Add(1, int32(-1), strings.Repeat("\x01é", 1500))
	f.Fuzz(func(t *testing.T, keyIdx int, value int32, stderr string) {
		key := [...]string{"data", "pid", "exit_code"}[uint(keyIdx)%3]
		line := encodeSyncMessage(key, int(value), stderr)
		if len(line) > maxSyncMessage || bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("%d bytes, newline at %d: not one line of at most %d bytes", len(line), bytes.IndexByte(line, '\n'), maxSyncMessage)
		}
		head := `{"` + key + `": ` + strconv.Itoa(int(value))
		if stderr == "" && string(line) != head+"}\n" {
			t.Fatalf("line %q for an empty message", line)
		}
		if !bytes.HasPrefix(line, []byte(head)) {
			t.Fatalf("line %q does not start with %q", line, head)
		}
		// The raw message, and the prefix of stderr it stands for.
		raw := ""
		if stderr != "" {
			body, ok := strings.CutPrefix(string(line), head+`, "message": "`)
			if raw, ok = strings.CutSuffix(body, "\"}\n"); !ok {
				t.Fatalf("line %q: message member malformed", line)
			}
		}
		kept := unescape(t, raw)
		if !strings.HasPrefix(stderr, kept) {
			t.Fatalf("message %q is not a prefix of the text", kept)
		}
		at := 0
		for at < len(kept) {
			_, n := utf8.DecodeRuneInString(stderr[at:])
			at += n
		}
		if at != len(kept) {
			t.Fatalf("cut inside a UTF-8 sequence at %d", len(kept))
		}
		if len(kept) < len(stderr) {
			_, n := utf8.DecodeRuneInString(stderr[len(kept):])
			if next := len(head) + len(`, "message": "`) + escapedLen(stderr[:len(kept)+n]) + len("\"}\n"); next <= maxSyncMessage {
				t.Fatalf("cut at %d of %d bytes, but the next %d would fit (%d bytes)", len(kept), len(stderr), n, next)
			}
		}
		wantMsg := goString(kept)

		var p podmanSync
		var c crioPid
		var e crioExit
		for _, dst := range []any{&p, &c, &e} {
			if err := json.Unmarshal(line, dst); err != nil {
				t.Fatalf("%T: %v in %q", dst, err, line)
			}
		}
		want := map[string]int{"data": p.Data, "pid": c.Pid, "exit_code": int(e.ExitCode)}[key]
		if want != int(value) {
			t.Fatalf("%s decodes as %d, want %d", key, want, value)
		}
		if p.Message != wantMsg || c.Message != wantMsg || e.Message != wantMsg {
			t.Fatalf("decoded message %q, want %q", p.Message, wantMsg)
		}
	})
}
