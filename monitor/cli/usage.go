package cli

import (
	"strings"

	"github.com/spf13/pflag"
)

// Version is the --version text (docs/cli.md §7). The first line is fixed: engines parse it.
func Version(commit string) string {
	return "conmon version 2.2.1\ncommit: " + commit + "\n"
}

// Usage is the --help text in GLib's layout ("-c, --cid=ID  text"), generated from the
// FlagSet: pflag.UnquoteUsage gives each option's placeholder and text, and a default
// that is not zero is shown as pflag's own usage does.
func Usage() string {
	type row struct{ left, help string }
	helpRows := []row{{"-h, --help", "Show help options"}, {"    --help-all", "Show all help options"}}
	var appRows []row
	defaults().flagSet().VisitAll(func(f *pflag.Flag) {
		left := "    --" + f.Name // long-only rows line up with "-x, --long"
		if f.Shorthand != "" {
			left = "-" + f.Shorthand + ", --" + f.Name
		}
		arg, help := pflag.UnquoteUsage(f)
		if arg != "" {
			left += "=" + arg
		}
		if f.DefValue != "" && f.DefValue != "0" {
			help += " (default " + f.DefValue + ")"
		}
		appRows = append(appRows, row{left, help})
	})
	width := 0
	for _, r := range append(helpRows, appRows...) {
		width = max(width, len(r.left))
	}
	var b strings.Builder
	group := func(title string, rows []row) {
		b.WriteString(title + ":\n")
		for _, r := range rows {
			b.WriteString("  " + r.left + strings.Repeat(" ", width-len(r.left)+2) + r.help + "\n")
		}
		b.WriteByte('\n')
	}
	b.WriteString("Usage:\n  conmon [OPTION…] - conmon utility\n\n")
	group("Help Options", helpRows)
	group("Application Options", appRows)
	return b.String()
}
