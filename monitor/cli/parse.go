package cli

import (
	"errors"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// ParseError is a command-line parse failure; Error() is the full line conmon prints.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return "conmon: option parsing failed: " + e.Msg }

func parseErr(parts ...string) error { return &ParseError{Msg: strings.Join(parts, "")} }

// Parse reads args (os.Args[1:]) as GLib's GOptionContext does (docs/cli.md §2): glibScan
// adapts the arguments, a pflag FlagSet parses them, and pflag's errors get GLib's texts.
// When a help option is reached it returns the options seen so far with Help set.
func Parse(args []string) (*Options, error) {
	o := defaults()
	fs := o.flagSet()
	s := glibScan(fs, args)
	// pflag stops at the first failing option; each one before it was set once.
	set := 0
	err := fs.ParseAll(s.args, func(f *pflag.Flag, v string) error {
		err := fs.Set(f.Name, v)
		if err == nil {
			set++
		}
		return err
	})
	if err != nil {
		return nil, glibError(err, s.opts[set])
	}
	if s.err != nil {
		return nil, s.err
	}
	o.given(fs)
	o.Help = s.help
	return o, nil
}

// scan is the argument list as pflag should parse it.
type scan struct {
	args []string     // options and their values, nothing else
	opts []occurrence // one per option in args, in order
	help bool         // stopped at a help option
	err  error        // stopped at an error only a short group raises
}

// occurrence is how GLib names one option in its errors.
type occurrence struct {
	name    string // "--cid" or "-c"
	written string // the whole argument: "--cid=x", or "-ic" for -i and for -c
}

func (s *scan) add(arg, name, written string) {
	s.args = append(s.args, arg)
	s.opts = append(s.opts, occurrence{name, written})
}

// glibScan adapts args to pflag where GLib scans differently. It leaves out positional
// arguments (anywhere, ignored) and everything from "--" on; it splits each short group
// into single options, the letter that takes a value followed by the next argument (GLib
// reads -ci ID as -c ID -i, pflag as -c i); and it stops where GLib stops: at -h, -?,
// --help or --help-all, or at an unknown letter or a second value-taking letter in a
// group. Whether an option takes a value is pflag's rule: it has no NoOptDefVal.
func glibScan(fs *pflag.FlagSet, args []string) (s scan) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case len(a) < 2 || a[0] != '-':
			continue
		case a == "--":
			return s
		case a == "--help" || a == "--help-all":
			s.help = true
			return s
		case a[1] == '-':
			name, _, inline := strings.Cut(a[2:], "=")
			s.add(a, "--"+name, a)
			if f := fs.Lookup(name); f != nil && f.NoOptDefVal == "" && !inline && i+1 < len(args) {
				i++
				s.args = append(s.args, args[i])
			}
			continue
		}
		value := i // the argument a letter of this group took
		for j := 1; j < len(a); j++ {
			c := a[j : j+1] // GLib's letters are bytes here: every short name is ASCII
			f := fs.ShorthandLookup(c)
			switch {
			case c == "h" || c == "?":
				s.help = true
				return s
			case f == nil:
				s.err = parseErr("Unknown option ", a)
				return s
			case f.NoOptDefVal != "":
				s.add("-"+c, "-"+c, a)
			case value > i:
				s.err = parseErr("Error parsing option -", c)
				return s
			case i+1 == len(args):
				s.add("-"+c, "-"+c, a) // pflag reports the missing argument
				return s
			default:
				value = i + 1
				s.add("-"+c, "-"+c, a)
				s.args = append(s.args, args[value])
			}
		}
		i = value
	}
	return s
}

// glibError gives pflag's error about option op GLib's text.
func glibError(err error, op occurrence) error {
	var (
		missing *pflag.ValueRequiredError
		invalid *pflag.InvalidValueError
		unknown *pflag.NotExistError
		syntax  *pflag.InvalidSyntaxError // "---x", "--=x"
	)
	switch {
	case errors.As(err, &missing):
		return parseErr("Missing argument for ", op.name)
	case errors.As(err, &invalid) && errors.Is(err, strconv.ErrRange):
		return parseErr("Integer value “", invalid.GetValue(), "” for ", op.name, " out of range")
	case errors.As(err, &invalid) && errors.Is(err, strconv.ErrSyntax):
		return parseErr("Cannot parse integer value “", invalid.GetValue(), "” for ", op.name)
	case errors.As(err, &unknown), errors.As(err, &syntax), errors.Is(err, pflag.ErrHelp):
		// pflag answers "--help=x" with ErrHelp; GLib knows no help option with a value.
		return parseErr("Unknown option ", op.written)
	}
	return parseErr("Error parsing option ", op.name)
}
