package cli

import "strings"

// Version is the --version text (cli.md §7). The first line is fixed: engines parse it.
func Version(commit string) string {
	return "conmon version 2.2.1\ncommit: " + commit + "\n"
}

// Usage is the --help text in GLib's layout, listing every option (cli.md §8).
func Usage() string {
	type row struct{ left, help string }
	rows := make([]row, 0, len(table))
	width := 0
	for k := range table {
		op := &table[k]
		left := "    --" + op.long // long-only rows line up with "-x, --long"
		if op.short != 0 {
			left = "-" + string(op.short) + ", --" + op.long
		}
		if op.takesValue() {
			left += "=" + op.arg
		}
		rows = append(rows, row{left, op.help})
		width = max(width, len(left))
	}
	var b strings.Builder
	line := func(left, help string) {
		b.WriteString("  ")
		b.WriteString(left)
		b.WriteString(strings.Repeat(" ", width-len(left)+2))
		b.WriteString(help)
		b.WriteByte('\n')
	}
	b.WriteString("Usage:\n  conmon [OPTION…] - conmon utility\n\nHelp Options:\n")
	line("-h, --help", "Show help options")
	line("    --help-all", "Show all help options")
	b.WriteString("\nApplication Options:\n")
	for _, r := range rows {
		line(r.left, r.help)
	}
	b.WriteByte('\n')
	return b.String()
}
