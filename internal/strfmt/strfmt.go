// Package strfmt formats the project's messages with the subset of fmt they use, without
// fmt and the reflect package it pulls in (about 180 kB more in a binary every container
// maps). Verbs: %v and %s (strings, errors, Stringers, booleans, integers, []string), %d
// and %o (integers), %q (strings, errors, Stringers), %w (Errorf's wrapped error), %%;
// flags '-' and '0', a width. Output matches fmt's for these; anything else is printed
// as %!<verb>(<kind>) rather than guessed.
package strfmt

import "strconv"

// Sprintf formats like fmt.Sprintf.
func Sprintf(format string, args ...any) string {
	s, _ := render(format, args)
	return s
}

// Errorf formats like fmt.Errorf: a %w operand is wrapped (errors.Is/As see it).
func Errorf(format string, args ...any) error {
	s, wrapped := render(format, args)
	if wrapped == nil {
		return &plainError{s}
	}
	return &wrapError{s, wrapped}
}

type plainError struct{ msg string }

func (e *plainError) Error() string { return e.msg }

type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

type stringer interface{ String() string }

func render(format string, args []any) (string, error) {
	b := make([]byte, 0, len(format)+16*len(args))
	var wrapped error
	next := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		i++
		minus, zero := false, false
		for ; i < len(format) && (format[i] == '-' || format[i] == '0'); i++ {
			minus = minus || format[i] == '-'
			zero = zero || format[i] == '0'
		}
		width := 0
		for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
			width = width*10 + int(format[i]-'0')
		}
		if i >= len(format) {
			b = append(b, "%!(NOVERB)"...)
			break
		}
		verb := format[i]
		if verb == '%' {
			b = append(b, '%')
			continue
		}
		if next >= len(args) {
			b = append(b, '%', '!', verb)
			b = append(b, "(MISSING)"...)
			continue
		}
		arg := args[next]
		next++
		if verb == 'w' {
			err, ok := arg.(error)
			if !ok {
				b = badVerb(b, verb, "not an error")
				continue
			}
			if wrapped == nil {
				wrapped = err
			}
			verb = 'v'
		}
		start := len(b)
		b = appendArg(b, verb, arg)
		if pad := width - (len(b) - start); pad > 0 {
			b = padField(b, start, pad, minus, zero && !minus)
		}
	}
	if next < len(args) {
		b = append(b, "%!(EXTRA)"...)
	}
	return string(b), wrapped
}

// padField pads the field that starts at start to its width: spaces on the left (right
// with '-'), or zeros after the sign.
func padField(b []byte, start, pad int, left, zeros bool) []byte {
	field := string(b[start:])
	b = b[:start]
	fill := byte(' ')
	if zeros {
		fill = '0'
		if len(field) > 0 && field[0] == '-' {
			b = append(b, '-')
			field = field[1:]
		}
	}
	if left {
		b = append(b, field...)
	}
	for ; pad > 0; pad-- {
		b = append(b, fill)
	}
	if !left {
		b = append(b, field...)
	}
	return b
}

func appendArg(b []byte, verb byte, arg any) []byte {
	switch verb {
	case 'v', 's':
		switch a := arg.(type) {
		case nil:
			if verb == 's' {
				return append(b, "%!s(<nil>)"...)
			}
			return append(b, "<nil>"...)
		case string:
			return append(b, a...)
		case error:
			return append(b, a.Error()...)
		case stringer:
			return append(b, a.String()...)
		case bool:
			if verb == 's' {
				return badVerb(b, verb, "bool")
			}
			return strconv.AppendBool(b, a)
		case []string:
			b = append(b, '[')
			for i, s := range a {
				if i > 0 {
					b = append(b, ' ')
				}
				b = append(b, s...)
			}
			return append(b, ']')
		}
		if verb == 'v' {
			if b2, ok := appendInt(b, arg, 10); ok {
				return b2
			}
		}
	case 'd', 'o':
		base := 10
		if verb == 'o' {
			base = 8
		}
		if b2, ok := appendInt(b, arg, base); ok {
			return b2
		}
	case 'q':
		switch a := arg.(type) {
		case string:
			return strconv.AppendQuote(b, a)
		case error:
			return strconv.AppendQuote(b, a.Error())
		case stringer:
			return strconv.AppendQuote(b, a.String())
		}
	}
	return badVerb(b, verb, "unsupported")
}

func badVerb(b []byte, verb byte, kind string) []byte {
	b = append(b, '%', '!', verb, '(')
	return append(append(b, kind...), ')')
}

func appendInt(b []byte, arg any, base int) ([]byte, bool) {
	switch a := arg.(type) {
	case int:
		return strconv.AppendInt(b, int64(a), base), true
	case int8:
		return strconv.AppendInt(b, int64(a), base), true
	case int16:
		return strconv.AppendInt(b, int64(a), base), true
	case int32:
		return strconv.AppendInt(b, int64(a), base), true
	case int64:
		return strconv.AppendInt(b, a, base), true
	case uint:
		return strconv.AppendUint(b, uint64(a), base), true
	case uint8:
		return strconv.AppendUint(b, uint64(a), base), true
	case uint16:
		return strconv.AppendUint(b, uint64(a), base), true
	case uint32:
		return strconv.AppendUint(b, uint64(a), base), true
	case uint64:
		return strconv.AppendUint(b, a, base), true
	case uintptr:
		return strconv.AppendUint(b, uint64(a), base), true
	}
	return b, false
}
