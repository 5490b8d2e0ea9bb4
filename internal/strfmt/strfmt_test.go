package strfmt

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

type stream int

func (s stream) String() string { return [...]string{"stdin", "stdout"}[s] }

// Every supported verb and operand type formats exactly as fmt formats it.
func TestMatchesFmt(t *testing.T) {
	pathErr := &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}
	for _, tc := range []struct {
		format string
		args   []any
	}{
		{"plain text, 100%% sure", nil},
		{"%s and %v", []any{"str", "ing"}},
		{"err %v / %s / %q", []any{pathErr, syscall.EPIPE, errors.New(`a "b"`)}},
		{"stringers %v %s %q %v", []any{stream(1), syscall.SIGTERM, time.Duration(1500) * time.Millisecond, 2 * time.Second}},
		{"ints %d %d %d %d %v %d", []any{0, -7, int64(1) << 40, uint32(42), uint8(255), uintptr(3)}},
		{"mode %04o %o %5d|%-5d|%05d|%-05d", []any{uint32(0o755), 8, 42, 42, -42, 7}},
		{"%8s|%-8s|%3s|%q|%q", []any{"ab", "ab", "abcdef", "tab\there", "é\x00"}},
		{"bool %v, list %v, empty %v, nil %v", []any{true, []string{"a", "b c"}, []string{}, nil}},
		{"%s:%d: want %s", []any{"/etc/x.conf", 3, "KEY=VALUE"}},
	} {
		if got, want := Sprintf(tc.format, tc.args...), fmt.Sprintf(tc.format, tc.args...); got != want {
			t.Errorf("Sprintf(%q) = %q, fmt: %q", tc.format, got, want)
		}
	}
}

// Mistakes show up in the text rather than as guesses. (The formats are variables so
// that go vet, told that Sprintf is a print function, lets them through.)
func TestBadVerbs(t *testing.T) {
	d, s, two, trailing := "%d", "%s", "%v %v", "%v trailing %"
	for _, tc := range []struct {
		got, want string
	}{
		{Sprintf(d, "x"), "%!d(unsupported)"},
		{Sprintf(s, true), "%!s(bool)"},
		{Sprintf(two, 1), "1 %!v(MISSING)"},
		{Sprintf(d, 1, 2), "1%!(EXTRA)"},
		{Sprintf("%v", struct{}{}), "%!v(unsupported)"},
		{Sprintf(trailing, 1), "1 trailing %!(NOVERB)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

const wrapFormat = "x: %w"

func TestErrorf(t *testing.T) {
	inner := &os.PathError{Op: "write", Path: "/p", Err: syscall.ENOSPC}
	err := Errorf("Failed to write %s: %w", "exit file", inner)
	if want := fmt.Errorf("Failed to write %s: %w", "exit file", inner).Error(); err.Error() != want {
		t.Errorf("%q, want %q", err, want)
	}
	var pe *os.PathError
	if !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &pe) || pe != inner {
		t.Errorf("%v does not wrap %v", err, inner)
	}
	if err := Errorf("no %s", "wrap"); err.Error() != "no wrap" || errors.Unwrap(err) != nil {
		t.Errorf("%v (unwraps to %v)", err, errors.Unwrap(err))
	}
	if err := Errorf(wrapFormat, "not an error"); err.Error() != "x: %!w(not an error)" || errors.Unwrap(err) != nil {
		t.Errorf("%q", err)
	}
}
