// Package diag prints the monitor's own messages (docs/cli.md §6): prefixed lines on stderr,
// filtered by --log-level, and optionally a copy to syslog in conmon's format. Its Syslog
// sender also carries the dispatching runtime's messages.
package diag

import (
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
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

// ParseLevel accepts the --log-level names of docs/cli.md §6, ASCII case-insensitively.
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
	level  Level
	syslog bool    // --syslog: copy every shown message
	sys    *Syslog // tagged with argv[0]'s basename, as syslog(3) does
	id     string  // "<cid>" or "<cid>: <tag>", cut at 20 bytes

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
		level:  level,
		syslog: syslog,
		sys:    NewSyslog(filepath.Base(os.Args[0]), ""),
		id:     id,
		stderr: stderr,
	}
}

// Flush gives the syslog messages still queued a short time to leave; the process calls
// it before it exits.
func (p *Printer) Flush() {
	if p != nil {
		p.sys.Flush()
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

// Record logs msg at level v like the other methods, and sends it to syslog once whether
// or not --syslog was given and whatever the level: the trust decision is always kept.
func (p *Printer) Record(v Level, msg string) {
	if p == nil {
		return
	}
	if p.Enabled(v) {
		p.emit(v, tags[v], msg, "")
	}
	if !p.Enabled(v) || !p.syslog {
		p.sendSyslog(v, tags[v], msg, "")
	}
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

// sendSyslog sends conmon's form of a message:
//
//	conmon <id> <tag>: <msg>[: <errText>]
func (p *Printer) sendSyslog(v Level, tag, msg, errText string) {
	severity := syslog.LOG_INFO
	if v == Error {
		severity = syslog.LOG_ERR
	}
	text := "conmon " + p.id + " " + tag + ": " + msg
	if errText != "" {
		text += ": " + errText
	}
	p.sys.Send(severity, text)
}
