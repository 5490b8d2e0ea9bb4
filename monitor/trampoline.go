package monitor

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trampolineMain runs in the process started by start when LISTEN_PID is set: argv[1] is
// the program, argv[1:] its argv. It applies the LISTEN_PID rule and execs the program.
func trampolineMain(args []string, replace bool) int {
	env := os.Environ()
	if v, ok := os.LookupEnv("LISTEN_PID"); ok {
		n := 0
		digits := 0
		for digits < len(v) && v[digits] >= '0' && v[digits] <= '9' {
			n = n*10 + int(v[digits]-'0')
			digits++
		}
		if digits == 0 || n <= 0 {
			short := v
			if len(short) > 10 {
				short = short[:10]
			}
			os.Stderr.WriteString("Invalid LISTEN_PID " + short + "\n")
			return 1
		}
		if replace || n == os.Getppid() {
			env = setEnv(env, "LISTEN_PID", strconv.Itoa(os.Getpid()))
		}
	}
	if len(args) < 2 {
		return 1
	}
	err := unix.Exec(args[1], args[1:], env)
	os.Stderr.WriteString("exec " + args[1] + ": " + err.Error() + "\n")
	return 127
}

func setEnv(env []string, key, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
