package monitor

import (
	"strconv"
	"unicode/utf8"

	"github.com/conmon-go/conmon-go/monitor/diag"

	"golang.org/x/sys/unix"
)

// The sync pipe (_OCI_SYNCPIPE, monitor → engine) and the attach pipe (_OCI_ATTACHPIPE)
// carry newline-terminated JSON objects, each in exactly one write(2):
//
//	{"<key>": <int>}\n
//	{"<key>": <int>, "message": "<escaped text>"}\n
//
// <key> is "data" (--api-version), "pid" (create/restore) or "exit_code" (legacy exec).
// podman reads SOCK_SEQPACKET datagrams with a 4096-byte buffer, so a message longer than
// maxSyncMessage would be truncated by the kernel and never complete: the text is shortened
// instead, never dropped.
const maxSyncMessage = 4096

// syncPipe is one of the engine's notification fds. It is inherited (engine-owned open file
// description), so its flags are never changed: writes are plain blocking writes of a few
// bytes into an otherwise empty buffer.
type syncPipe struct {
	fd  int // -1 once closed or absent
	log diag.Logger
}

func newSyncPipe(fd int, log diag.Logger) *syncPipe { return &syncPipe{fd: fd, log: log} }

// send writes one message. EPIPE (podman closes its end before an exec's final message)
// and every other error close the fd: the pipe only notifies and must never take the
// monitor down (docs/protocol.md §3.5).
func (p *syncPipe) send(key string, value int, message string) {
	if p == nil || p.fd < 0 {
		return
	}
	buf := encodeSyncMessage(key, value, message)
	for {
		_, err := unix.Write(p.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err != unix.EPIPE {
				p.log.Warnf("Failed to write to sync pipe fd %d: %v", p.fd, err)
			}
			p.close()
		}
		return
	}
}

func (p *syncPipe) close() {
	if p != nil && p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}

// encodeSyncMessage builds the exact bytes conmon 2.2.x writes. The message is shortened
// (at a UTF-8 and escape boundary) until the whole line fits into maxSyncMessage.
func encodeSyncMessage(key string, value int, message string) []byte {
	buf := make([]byte, 0, 64+len(message))
	buf = append(buf, `{"`...)
	buf = append(buf, key...)
	buf = append(buf, `": `...)
	buf = strconv.AppendInt(buf, int64(value), 10)
	if message == "" {
		return append(buf, "}\n"...)
	}
	buf = append(buf, `, "message": "`...)
	const tail = "\"}\n"
	room := maxSyncMessage - len(buf) - len(tail)
	for i := 0; i < len(message); {
		n := 1
		if message[i] >= utf8.RuneSelf {
			if _, size := utf8.DecodeRuneInString(message[i:]); size > 1 {
				n = size // keep valid multi-byte sequences whole; invalid bytes pass raw
			}
		}
		esc := escapeJSON(nil, message[i:i+n])
		if len(esc) > room {
			break
		}
		room -= len(esc)
		buf = append(buf, esc...)
		i += n
	}
	return append(buf, tail...)
}

// escapeJSON appends s escaped byte by byte as conmon 2.2.x does (docs/protocol.md §3.4):
// '/' is escaped, control bytes and DEL become \u00xx, bytes ≥ 0x80 pass unchanged.
func escapeJSON(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\', '/':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			if c < 0x20 || c == 0x7f {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return dst
}

func (m *monitor) syncKey() string {
	switch {
	case m.opts.APIVersion:
		return "data"
	case m.opts.Exec:
		return "exit_code"
	}
	return "pid"
}
