// Package diag prints the monitor's own messages (cli.md §6): prefixed lines on stderr,
// filtered by --log-level, and optionally a copy to syslog in conmon's format.
package diag

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Level is a verbosity level; a message is shown when its level is <= the configured one.
type Level int

const (
	Error Level = iota
	Warning
	Info
	Debug
	Trace
)

// ParseLevel accepts the --log-level names of cli.md §6, ASCII case-insensitively.
func ParseLevel(s string) (Level, bool) {
	switch asciiLower(s) {
	case "error", "fatal", "panic":
		return Error, true
	case "warn", "warning":
		return Warning, true
	case "info":
		return Info, true
	case "debug":
		return Debug, true
	case "trace":
		return Trace, true
	}
	return 0, false
}

// asciiLower folds only A-Z, like strcasecmp in the C locale (strings.ToLower would also
// fold non-ASCII letters such as the Kelvin sign).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Strerror renders err like glibc's strerror when it is (or wraps) an errno: Go's errno
// table holds glibc's texts with the first letter lowered, so it is raised again.
func Strerror(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := errno.Error()
	if s != "" && 'a' <= s[0] && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// Syslog priorities (facility LOG_USER = 1<<3, LOG_ERR = 3, LOG_INFO = 6).
const (
	priErr  = 1<<3 | 3
	priInfo = 1<<3 | 6
)

var prefixes = [...]string{
	Error:   "[conmon:e]: ",
	Warning: "[conmon:w]: ",
	Info:    "[conmon:i]: ",
	Debug:   "[conmon:d]: ",
	Trace:   "[conmon:d]: ",
}

var tags = [...]string{
	Error:   "<error>",
	Warning: "<nwarn>",
	Info:    "<ninfo>",
	Debug:   "<ndebug>",
	Trace:   "<ntrace>",
}

// Logger is safe for concurrent use. A nil *Logger discards everything.
type Logger struct {
	level    Level
	syslog   bool
	ident    string // basename of argv[0], the syslog identifier
	id       string // "<cid>" or "<cid>: <tag>", cut at 20 bytes
	sockPath string // /dev/log; tests point it at their own socket

	mu     sync.Mutex
	stderr io.Writer
	buf    []byte
}

// New returns a logger showing messages up to level on stderr (nil: none), copying them to
// syslog when syslog is true. tag is --log-tag ("" when not given).
func New(level Level, stderr io.Writer, syslog bool, cid, tag string) *Logger {
	id := cid
	if tag != "" {
		id = cid + ": " + tag
	}
	if len(id) > 20 {
		id = id[:20]
	}
	return &Logger{
		level:    level,
		syslog:   syslog,
		ident:    filepath.Base(os.Args[0]),
		id:       id,
		sockPath: "/dev/log",
		stderr:   stderr,
	}
}

// SetStderr redirects the stderr copy (nil: drop it), e.g. once stdio is /dev/null.
func (l *Logger) SetStderr(w io.Writer) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.stderr = w
	l.mu.Unlock()
}

// Enabled reports whether messages of level v are shown.
func (l *Logger) Enabled(v Level) bool { return l != nil && v <= l.level }

func (l *Logger) Errorf(format string, args ...any) { l.logf(Error, format, args...) }
func (l *Logger) Warnf(format string, args ...any)  { l.logf(Warning, format, args...) }
func (l *Logger) Infof(format string, args ...any)  { l.logf(Info, format, args...) }
func (l *Logger) Debugf(format string, args ...any) { l.logf(Debug, format, args...) }
func (l *Logger) Tracef(format string, args ...any) { l.logf(Trace, format, args...) }

func (l *Logger) logf(v Level, format string, args ...any) {
	if !l.Enabled(v) {
		return
	}
	l.emit(v, tags[v], fmt.Sprintf(format, args...), "")
}

// Errnof logs "<msg> <strerror>" on stderr and "<msg>: <strerror>" to syslog, the form
// conmon uses for failed system calls.
func (l *Logger) Errnof(v Level, err error, format string, args ...any) {
	if !l.Enabled(v) {
		return
	}
	tag := tags[v]
	if v == Warning {
		tag = "<pwarn>"
	}
	l.emit(v, tag, fmt.Sprintf(format, args...), Strerror(err))
}

// Syslog sends msg to syslog whether or not --syslog was given and whatever the level
// (used for the trust decision, which must never be lost).
func (l *Logger) Syslog(v Level, msg string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sendSyslog(v, tags[v], msg, "")
}

func (l *Logger) emit(v Level, tag, msg, errText string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stderr != nil {
		b := append(l.buf[:0], prefixes[v]...)
		b = append(b, msg...)
		if errText != "" {
			b = append(b, ' ')
			b = append(b, errText...)
		}
		b = append(b, '\n')
		l.buf = b
		// A message that cannot be shown has nowhere else to go.
		_, _ = l.stderr.Write(b)
	}
	if l.syslog {
		l.sendSyslog(v, tag, msg, errText)
	}
}

// sendSyslog writes one RFC 3164 datagram the way glibc's syslog(3) does without openlog:
//
//	<PRI>Mmm dd hh:mm:ss ident: conmon <id> <tag>: <msg>[: <errText>]
//
// The socket is opened per message: messages are rare, and a fresh socket survives a
// restarted syslog daemon. MSG_DONTWAIT on a non-blocking socket means a full or absent
// /dev/log drops the message instead of parking the caller. Called with l.mu held.
func (l *Logger) sendSyslog(v Level, tag, msg, errText string) {
	pri := priInfo
	if v == Error {
		pri = priErr
	}
	b := append(l.buf[:0], '<')
	b = strconv.AppendInt(b, int64(pri), 10)
	b = append(b, '>')
	b = time.Now().AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	b = append(b, l.ident...)
	b = append(b, ": conmon "...)
	b = append(b, l.id...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ": "...)
	b = append(b, msg...)
	if errText != "" {
		b = append(b, ": "...)
		b = append(b, errText...)
	}
	l.buf = b

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return
	}
	_ = unix.Sendto(fd, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, &unix.SockaddrUnix{Name: l.sockPath})
	_ = unix.Close(fd)
}
