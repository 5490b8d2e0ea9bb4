package monitor

import (
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/diag"
)

func TestEncodeSyncMessage(t *testing.T) {
	for _, tc := range []struct {
		key, msg string
		value    int
		want     string
	}{
		{"data", "", 17614, "{\"data\": 17614}\n"},
		{"pid", "", -1, "{\"pid\": -1}\n"},
		{"exit_code", "command timed out", -1, "{\"exit_code\": -1, \"message\": \"command timed out\"}\n"},
		{"data", "exec: \"/nonexistent\": stat /nonexistent\n", -1,
			`{"data": -1, "message": "exec: \"\/nonexistent\": stat \/nonexistent\n"}` + "\n"},
		{"pid", "a\tb\rc\bd\fe\x01\x1f\x7f\\ é", -1,
			`{"pid": -1, "message": "a\tb\rc\bd\fe\u0001\u001f\u007f\\ é"}` + "\n"},
	} {
		if got := string(encodeSyncMessage(tc.key, tc.value, tc.msg)); got != tc.want {
			t.Errorf("encode(%q, %d, %q) = %q, want %q", tc.key, tc.value, tc.msg, got, tc.want)
		}
	}
}

// A long runtime error must still arrive as one complete line podman can read with a
// 4096-byte buffer, and must still decode as JSON.
func TestEncodeSyncMessageShortensToOneDatagram(t *testing.T) {
	long := strings.Repeat("é/\"x", 3000)
	buf := encodeSyncMessage("data", -1, long)
	if len(buf) > maxSyncMessage || buf[len(buf)-1] != '\n' {
		t.Fatalf("message of %d bytes, last byte %q", len(buf), buf[len(buf)-1])
	}
	var msg struct {
		Data    int    `json:"data"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(buf, &msg); err != nil {
		t.Fatalf("shortened message is not JSON: %v", err)
	}
	if msg.Data != -1 || !strings.HasPrefix(long, msg.Message) || len(msg.Message) < 2000 {
		t.Fatalf("decoded %d, message of %d bytes", msg.Data, len(msg.Message))
	}
}

func TestSyncPipeOneWritePerMessageAndEPIPE(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := newSyncPipe(fds[0], diag.Discard)
	p.send("data", 21669, "")
	p.send("data", 6, "")
	buf := make([]byte, 4096)
	for _, want := range []string{"{\"data\": 21669}\n", "{\"data\": 6}\n"} {
		n, err := unix.Read(fds[1], buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("datagram %q, %v; want %q", buf[:n], err, want)
		}
	}
	unix.Close(fds[1])
	p.send("data", 0, "") // EPIPE: closed quietly, never fatal
	if p.fd != -1 {
		t.Fatalf("fd still open after EPIPE")
	}
	p.send("data", 0, "") // and later sends are no-ops
}
