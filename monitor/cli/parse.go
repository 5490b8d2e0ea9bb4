package cli

import (
	"math"
	"strings"
)

// ParseError is a command-line parse failure; Error() is the full line conmon prints.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return "conmon: option parsing failed: " + e.Msg }

func parseErr(parts ...string) error { return &ParseError{Msg: strings.Join(parts, "")} }

// Parse scans args (os.Args[1:]) with the rules of GLib's GOptionContext (cli.md §2).
// When a help option is reached it returns the options seen so far with Help set.
func Parse(args []string) (*Options, error) {
	o := defaults()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			continue // positional: ignored
		}
		if a[1] == '-' {
			name := a[2:]
			switch name {
			case "":
				return o, nil // "--": the rest is positional
			case "help", "help-all":
				o.Help = true
				return o, nil
			}
			ok, err := parseLong(o, args, &i, name)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, parseErr("Unknown option ", a)
			}
			continue
		}
		// A short group: each letter in turn; at most one of them takes the next argument.
		next := i
		for j := 1; j < len(a); j++ {
			c := a[j]
			if c == '?' || c == 'h' {
				o.Help = true
				return o, nil
			}
			op := findShort(c)
			if op == nil {
				return nil, parseErr("Unknown option ", a)
			}
			name := "-" + string(c)
			var v string
			if op.takesValue() {
				if next > i {
					return nil, parseErr("Error parsing option ", name)
				}
				if i+1 >= len(args) {
					return nil, parseErr("Missing argument for ", name)
				}
				next = i + 1
				v = args[next]
			}
			if err := apply(o, op, name, v); err != nil {
				return nil, err
			}
		}
		i = next
	}
	return o, nil
}

func findShort(c byte) *option {
	for k := range table {
		if table[k].short == c {
			return &table[k]
		}
	}
	return nil
}

// parseLong handles "--name", "--name=value" and "--name value". A flag accepts and
// ignores "=value"; a value option takes the next argument whatever it looks like.
func parseLong(o *Options, args []string, i *int, arg string) (bool, error) {
	for k := range table {
		op := &table[k]
		rest, ok := strings.CutPrefix(arg, op.long)
		if !ok || (rest != "" && rest[0] != '=') {
			continue
		}
		name := "--" + op.long
		var v string
		switch {
		case !op.takesValue():
		case rest != "":
			v = rest[1:]
		case *i+1 < len(args):
			*i++
			v = args[*i]
		default:
			return false, parseErr("Missing argument for ", name)
		}
		return true, apply(o, op, name, v)
	}
	return false, nil
}

// apply stores v into op's field; name is the option as GLib names it in errors.
func apply(o *Options, op *option, name, v string) error {
	r := op.bind(o)
	switch p := r.p.(type) {
	case *bool:
		*p = true
	case *string:
		*p = v
	case *[]string:
		*p = append(*p, v)
	case *int:
		n, err := parseInt(v, name, 32)
		if err != nil {
			return err
		}
		*p = int(n)
	case *int64:
		n, err := parseInt(v, name, 64)
		if err != nil {
			return err
		}
		*p = n
	}
	if r.given != nil {
		*r.given = true
	}
	return nil
}

// parseInt follows strtol(v, &end, 0) plus GLib's checks: the value must be non-empty and
// fully consumed (else "Cannot parse"), then fit in bits (else "out of range").
func parseInt(v, name string, bits int) (int64, error) {
	s := strings.TrimLeft(v, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := uint64(10)
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	limit := uint64(math.MaxInt64)
	if bits == 32 {
		limit = math.MaxInt32
	}
	if neg {
		limit++
	}
	// Every byte must be a digit of the base, even after an overflow: strtol consumes all
	// digits before reporting ERANGE, so "99999999999999999999x" cannot be parsed.
	ok, over := s != "", false
	var u uint64
	for i := 0; i < len(s) && ok; i++ {
		d := digit(s[i])
		switch {
		case d >= base:
			ok = false
		case over:
		case u > (limit-d)/base:
			over = true
		default:
			u = u*base + d
		}
	}
	switch {
	case !ok:
		return 0, parseErr("Cannot parse integer value “", v, "” for ", name)
	case over:
		return 0, parseErr("Integer value “", v, "” for ", name, " out of range")
	case neg:
		return int64(-u), nil // two's complement: also right for -2^63
	}
	return int64(u), nil
}

// digit returns the value of an ASCII digit or letter, or 36 for anything else.
func digit(c byte) uint64 {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0')
	case 'a' <= c && c <= 'z':
		return uint64(c-'a') + 10
	case 'A' <= c && c <= 'Z':
		return uint64(c-'A') + 10
	}
	return 36
}
