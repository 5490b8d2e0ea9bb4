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

// Logger is what every part of the monitor reports through. *Printer implements it; parts
// used on their own (tests, tools) take Discard.
type Logger interface {
	Warnf(format string, args ...any)
	Debugf(format string, args ...any)
}

// Discard drops every message.
var Discard Logger = discard{}

type discard struct{}

func (discard) Warnf(string, ...any)  {}
func (discard) Debugf(string, ...any) {}

// OrDiscard returns l, or Discard when l is nil.
func OrDiscard(l Logger) Logger {
	if l == nil {
		return Discard
	}
	return l
}

// Printer prints the monitor's messages. It is safe for concurrent use; a nil *Printer
// discards everything.
type Printer struct {
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
func New(level Level, stderr io.Writer, syslog bool, cid, tag string) *Printer {
	id := cid
	if tag != "" {
		id = cid + ": " + tag
	}
	if len(id) > 20 {
		id = id[:20]
	}
	return &Printer{
		level:    level,
		syslog:   syslog,
		ident:    filepath.Base(os.Args[0]),
		id:       id,
		sockPath: "/dev/log",
		stderr:   stderr,
	}
}

// SetStderr redirects the stderr copy (nil: drop it), e.g. once stdio is /dev/null.
func (p *Printer) SetStderr(w io.Writer) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stderr = w
	p.mu.Unlock()
}

// Enabled reports whether messages of level v are shown.
func (p *Printer) Enabled(v Level) bool { return p != nil && v <= p.level }

func (p *Printer) Errorf(format string, args ...any) { p.logf(Error, format, args...) }
func (p *Printer) Warnf(format string, args ...any)  { p.logf(Warning, format, args...) }
func (p *Printer) Infof(format string, args ...any)  { p.logf(Info, format, args...) }
func (p *Printer) Debugf(format string, args ...any) { p.logf(Debug, format, args...) }
func (p *Printer) Tracef(format string, args ...any) { p.logf(Trace, format, args...) }

func (p *Printer) logf(v Level, format string, args ...any) {
	if !p.Enabled(v) {
		return
	}
	p.emit(v, tags[v], fmt.Sprintf(format, args...), "")
}

// Errnof logs "<msg> <strerror>" on stderr and "<msg>: <strerror>" to syslog, the form
// conmon uses for failed system calls.
func (p *Printer) Errnof(v Level, err error, format string, args ...any) {
	if !p.Enabled(v) {
		return
	}
	tag := tags[v]
	if v == Warning {
		tag = "<pwarn>"
	}
	p.emit(v, tag, fmt.Sprintf(format, args...), Strerror(err))
}

// Syslog sends msg to syslog whether or not --syslog was given and whatever the level
// (used for the trust decision, which must never be lost).
func (p *Printer) Syslog(v Level, msg string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendSyslog(v, tags[v], msg, "")
}

func (p *Printer) emit(v Level, tag, msg, errText string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stderr != nil {
		b := append(p.buf[:0], prefixes[v]...)
		b = append(b, msg...)
		if errText != "" {
			b = append(b, ' ')
			b = append(b, errText...)
		}
		b = append(b, '\n')
		p.buf = b
		// A message that cannot be shown has nowhere else to go.
		_, _ = p.stderr.Write(b)
	}
	if p.syslog {
		p.sendSyslog(v, tag, msg, errText)
	}
}

// sendSyslog writes one RFC 3164 datagram the way glibc's syslog(3) does without openlog:
//
//	<PRI>Mmm dd hh:mm:ss ident: conmon <id> <tag>: <msg>[: <errText>]
//
// The socket is opened per message: messages are rare, and a fresh socket survives a
// restarted syslog daemon. MSG_DONTWAIT on a non-blocking socket means a full or absent
// /dev/log drops the message instead of parking the caller. Called with p.mu held.
func (p *Printer) sendSyslog(v Level, tag, msg, errText string) {
	pri := priInfo
	if v == Error {
		pri = priErr
	}
	b := append(p.buf[:0], '<')
	b = strconv.AppendInt(b, int64(pri), 10)
	b = append(b, '>')
	b = time.Now().AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	b = append(b, p.ident...)
	b = append(b, ": conmon "...)
	b = append(b, p.id...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ": "...)
	b = append(b, msg...)
	if errText != "" {
		b = append(b, ": "...)
		b = append(b, errText...)
	}
	p.buf = b

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return
	}
	_ = unix.Sendto(fd, b, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, &unix.SockaddrUnix{Name: p.sockPath})
	_ = unix.Close(fd)
}
